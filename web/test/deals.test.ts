import { describe, expect, it } from "vitest";
import { toAsk } from "../src/deals.js";

describe("toAsk", () => {
  it("asks GetDeals once for each deal not known, at most 100 ids a call", () => {
    const ids = Array.from({ length: 250 }, (_, i) => `d${i % 230}`);
    const chunks = toAsk(["", ...ids], (id) => id === "d0" || id === "d1");
    expect(chunks.map((c) => c.length)).toEqual([100, 100, 28]);
    expect(new Set(chunks.flat()).size).toBe(228);
    expect(chunks.flat()).not.toContain("d0");
    expect(toAsk(["d0"], () => true)).toEqual([]);
  });
});
