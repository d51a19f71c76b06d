import { beforeEach, describe, expect, it } from "vitest";
import { clear, load, save } from "../src/session.js";

/** The parts of `location`, `sessionStorage` and `history` that session.ts uses. */
function tab(hash: string, stored?: unknown) {
  const items = new Map<string, string>();
  if (stored !== undefined) items.set("invest.session", JSON.stringify(stored));
  const storage = {
    getItem: (k: string) => items.get(k) ?? null,
    setItem: (k: string, v: string) => void items.set(k, v),
    removeItem: (k: string) => void items.delete(k),
  } as Storage;
  const location = { hash, pathname: "/", search: "" } as Location;
  const replaced: string[] = [];
  const history = { replaceState: (_s: unknown, _t: string, url: string) => void replaced.push(url) } as History;
  return { storage, location, history, replaced, items };
}

const stored = (items: Map<string, string>) => JSON.parse(items.get("invest.session")!);

describe("session.load", () => {
  let t: ReturnType<typeof tab>;
  beforeEach(() => {
    t = tab("");
  });

  it("takes the token from the link and removes the hash from the address bar", () => {
    t = tab("#token=abc");
    expect(load(t.location, t.storage, t.history)).toEqual({ token: "abc" });
    expect(t.replaced).toEqual(["/"]);
    expect(stored(t.items)).toEqual({ token: "abc" });
  });

  it("ignores service addresses named in the link, and removes them too", () => {
    t = tab("#token=abc&investment=https://evil.example&allocation=http://127.0.0.1:9");
    const s = load(t.location, t.storage, t.history);
    expect(s).toEqual({ token: "abc" });
    expect(JSON.stringify(s)).not.toContain("evil");
    expect(t.items.get("invest.session")).not.toContain("evil");
    expect(t.replaced).toEqual(["/"]);
  });

  it("removes a hash with no token, keeping the stored session", () => {
    t = tab("#investment=https://evil.example", { token: "kept" });
    expect(load(t.location, t.storage, t.history)).toEqual({ token: "kept" });
    expect(t.replaced).toEqual(["/"]);
  });

  it("ignores addresses in a stored session (an older version saved them) and drops them", () => {
    t = tab("", { token: "abc", investmentUrl: "https://evil.example", allocationUrl: "https://evil.example" });
    expect(load(t.location, t.storage, t.history)).toEqual({ token: "abc" });
    expect(stored(t.items)).toEqual({ token: "abc" });
    expect(t.replaced).toEqual([]);
  });

  it("is signed out with nothing in the link or storage, or garbage in storage", () => {
    expect(load(t.location, t.storage, t.history)).toBeUndefined();
    t = tab("");
    t.storage.setItem("invest.session", "{not json");
    expect(load(t.location, t.storage, t.history)).toBeUndefined();
  });

  it("saves only the token", () => {
    save(t.storage, { token: "x", investmentUrl: "https://evil.example" } as never);
    expect(stored(t.items)).toEqual({ token: "x" });
    clear(t.storage);
    expect(t.items.size).toBe(0);
  });
});
