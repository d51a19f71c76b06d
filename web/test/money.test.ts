import { describe, expect, it } from "vitest";
import { cost, fromCents, percent, toCents } from "../src/decimal.js";
import { Format } from "../src/format.js";
import { holdings } from "../src/holdings.js";
import { checkShares } from "../src/shares.js";

describe("exact money", () => {
  it("multiplies shares by a price in cents, never in floats", () => {
    expect(cost(3n, "0.10")).toBe("0.30"); // 0.1 * 3 = 0.30000000000000004 in floats
    expect(cost(1_000_000_000n, "12345.67")).toBe("12345670000000.00");
    expect(toCents("12.5")).toBe(1250n);
    expect(toCents("1e3")).toBeUndefined();
    expect(fromCents(-5n)).toBe("-0.05");
    expect(percent(1n, 3n)).toBe("33.3");
    expect(percent(2n, 3n)).toBe("66.7");
    expect(percent(0n, 0n)).toBe("0.0");
  });

  it("formats amounts with the currency and thousands separators, dates with the time", () => {
    const f = new Format("USD", "en-US", "UTC");
    expect(f.amount("1234567.50")).toBe("$1,234,567.50");
    // Past 2^53: formatted from the string as written, not through a float.
    expect(f.amount("9007199254740993.01")).toBe("$9,007,199,254,740,993.01");
    expect(new Format("EUR", "de-DE").amount("1234.5")).toBe("1.234,50\u00a0€");
    expect(f.units(12345n)).toBe("12,345");
    expect(f.date({ seconds: 1_764_547_200n, nanos: 0 })).toBe("Dec 1, 2025, 12:00 AM");
  });
});

describe("checkShares", () => {
  it("takes digits only: not 1e3, hex, decimals or signs", () => {
    for (const text of ["1e3", "0x10", "1.0", "-1", "+2", " ", "", "١٢"]) {
      expect(checkShares(text), text).toHaveProperty("error");
    }
    expect(checkShares(" 42 ")).toEqual({ shares: 42n });
    expect(checkShares("0")).toEqual({ error: "Buy at least 1 share." });
    expect(checkShares("1000000001")).toHaveProperty("error");
  });

  it("refuses more shares than the deal shows as available, before anything is sent", () => {
    expect(checkShares("50", 5n)).toEqual({ error: "Only 5 shares are available in this deal." });
    expect(checkShares("1", 0n)).toEqual({ error: "No shares of this deal are available now." });
    expect(checkShares("5", 5n)).toEqual({ shares: 5n });
  });
});

describe("holdings", () => {
  it("sums shares per deal, values them at today's price (else the price paid), largest first", () => {
    const { rows, total } = holdings(
      [
        { dealId: "a", shares: 4n, pricePerShare: "25.00" },
        { dealId: "b", shares: 1n, pricePerShare: "10.00" },
        { dealId: "a", shares: 2n, pricePerShare: "25.00" },
      ],
      (id) => (id === "a" ? "30.00" : undefined),
    );
    expect(total).toBe("190.00");
    expect(rows).toEqual([
      { dealId: "a", units: 6n, value: "180.00", share: "94.7" },
      { dealId: "b", units: 1n, value: "10.00", share: "5.3" },
    ]);
  });
});
