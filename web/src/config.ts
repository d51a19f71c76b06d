// Where the services are: configuration of whoever serves the page, never the link.
//
// The page reads `config.json` from its own origin at start. `vite preview` (and `vite` in
// development) serve it from DASHBOARD_INVESTMENT_URL / DASHBOARD_ALLOCATION_URL (vite.config.ts),
// with the same addresses in the Content-Security-Policy's connect-src; a static deployment
// writes the file next to index.html and sends the header `contentSecurityPolicy` gives. No
// file (404): the local defaults. Shared by the page and vite.config.ts (no DOM here).

export interface Config {
  /** Origins (`scheme://host:port`) of the services, as grpc-web base URLs. */
  investmentUrl: string;
  allocationUrl: string;
}

export const DEFAULTS: Config = {
  investmentUrl: "http://127.0.0.1:50051",
  allocationUrl: "http://127.0.0.1:50052",
};

/** The origin of an http(s) address with nothing else in it, or an Error saying what is wrong. */
export function serviceOrigin(name: string, value: unknown): string {
  if (typeof value !== "string" || value === "") throw new Error(`${name}: expected an http(s) address`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`${name}: ${JSON.stringify(value)} is not an address`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`${name}: ${JSON.stringify(value)} is not http or https`);
  }
  if (url.username || url.password || url.pathname !== "/" || url.search || url.hash) {
    throw new Error(`${name}: ${JSON.stringify(value)} must be scheme://host:port only`);
  }
  return url.origin;
}

/** A configuration from `config.json`'s content: `{"investment": url, "allocation": url}`,
 * either one absent meaning its default. Anything else is refused, not guessed at. */
export function parseConfig(json: unknown): Config {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new Error("config.json: expected an object");
  }
  const o = json as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => k !== "investment" && k !== "allocation");
  if (unknown.length > 0) throw new Error(`config.json: unknown keys ${unknown.join(", ")}`);
  return {
    investmentUrl: o.investment === undefined ? DEFAULTS.investmentUrl : serviceOrigin("investment", o.investment),
    allocationUrl: o.allocation === undefined ? DEFAULTS.allocationUrl : serviceOrigin("allocation", o.allocation),
  };
}

/** What `config.json` holds for a configuration. */
export function configJson(config: Config): string {
  return JSON.stringify({ investment: config.investmentUrl, allocation: config.allocationUrl });
}

/** The page's configuration: `config.json` beside it, or the defaults when there is none. */
export async function loadConfig(
  fetchFn: (input: string, init?: RequestInit) => Promise<Response>,
  url = "config.json",
): Promise<Config> {
  const response = await fetchFn(url, { cache: "no-store", credentials: "same-origin" });
  if (response.status === 404) return DEFAULTS;
  if (!response.ok) throw new Error(`config.json: HTTP ${response.status}`);
  let json: unknown;
  try {
    json = await response.json();
  } catch {
    throw new Error("config.json: not JSON");
  }
  return parseConfig(json);
}

/** The Content-Security-Policy the page is served with: its own origin for everything, plus
 * exactly the configured services for grpc-web calls; no inline script or style, no eval, no
 * framing, no <base>, no form posting anywhere. `img-src data:` is for the empty favicon. */
export function contentSecurityPolicy(config: Config): string {
  const services = [...new Set([config.investmentUrl, config.allocationUrl])];
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    `connect-src 'self' ${services.join(" ")}`,
    "img-src 'self' data:",
    "object-src 'none'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join("; ");
}
