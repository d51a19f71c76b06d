import { describe, expect, it } from "vitest";
import { configJson, contentSecurityPolicy, DEFAULTS, loadConfig, parseConfig } from "../src/config.js";

const respond = (status: number, body: string) => async () => new Response(body, { status });

describe("loadConfig", () => {
  it("reads config.json from the page's own origin, uncached", async () => {
    const asked: [string, RequestInit | undefined][] = [];
    const config = await loadConfig(async (url, init) => {
      asked.push([url, init]);
      return new Response(JSON.stringify({ investment: "https://inv.example:8443", allocation: "https://alloc.example" }));
    });
    expect(config).toEqual({ investmentUrl: "https://inv.example:8443", allocationUrl: "https://alloc.example" });
    expect(asked).toEqual([["config.json", { cache: "no-store", credentials: "same-origin" }]]);
  });

  it("falls back to the local defaults when there is no config.json", async () => {
    expect(await loadConfig(respond(404, "not found"))).toEqual(DEFAULTS);
    expect(await loadConfig(respond(200, "{}"))).toEqual(DEFAULTS);
  });

  it("fails, rather than guessing, on a broken config.json or a server error", async () => {
    await expect(loadConfig(respond(500, ""))).rejects.toThrow("HTTP 500");
    await expect(loadConfig(respond(200, "<html>"))).rejects.toThrow("not JSON");
  });
});

describe("parseConfig", () => {
  it("keeps the origin of each address", () => {
    expect(parseConfig({ investment: "http://127.0.0.1:1/", allocation: "HTTPS://Host:443" })).toEqual({
      investmentUrl: "http://127.0.0.1:1",
      allocationUrl: "https://host",
    });
  });

  it.each([
    [{ investment: "javascript:alert(1)" }, "not http or https"],
    [{ investment: "ftp://host" }, "not http or https"],
    [{ investment: "//host" }, "not an address"],
    [{ investment: "https://user:pw@host" }, "scheme://host:port only"],
    [{ allocation: "https://host/path" }, "scheme://host:port only"],
    [{ allocation: "https://host?x=1" }, "scheme://host:port only"],
    [{ allocation: 50052 }, "expected an http(s) address"],
    [{ investmentUrl: "https://host" }, "unknown keys investmentUrl"],
    [[], "expected an object"],
    [null, "expected an object"],
  ])("refuses %j", (json, message) => {
    expect(() => parseConfig(json)).toThrow(message);
  });

  it("reads what configJson writes", () => {
    const config = { investmentUrl: "https://a.example", allocationUrl: "https://b.example:8443" };
    expect(parseConfig(JSON.parse(configJson(config)))).toEqual(config);
  });
});

describe("contentSecurityPolicy", () => {
  it("allows connecting to the page's origin and exactly the configured services", () => {
    const csp = contentSecurityPolicy({ investmentUrl: "https://a.example", allocationUrl: "https://b.example:8443" });
    const directives = Object.fromEntries(csp.split("; ").map((d) => [d.split(" ")[0], d.split(" ").slice(1)]));
    expect(directives).toEqual({
      "default-src": ["'self'"],
      "script-src": ["'self'"],
      "style-src": ["'self'"],
      "connect-src": ["'self'", "https://a.example", "https://b.example:8443"],
      "img-src": ["'self'", "data:"],
      "object-src": ["'none'"],
      "frame-ancestors": ["'none'"],
      "base-uri": ["'none'"],
      "form-action": ["'none'"],
    });
    expect(csp).not.toMatch(/unsafe|\*/);
  });

  it("names a service once when both share an origin", () => {
    const csp = contentSecurityPolicy({ investmentUrl: "https://a.example", allocationUrl: "https://a.example" });
    expect(csp).toContain("connect-src 'self' https://a.example;");
  });
});
