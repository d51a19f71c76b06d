// Who is signed in and where the services are. `scripts/up` prints URLs of the form
// `/#token=<jwt>` (and `&investment=<url>&allocation=<url>` when not the defaults): the hash never
// reaches a server, is moved into this tab's sessionStorage and removed from the address bar.

const KEY = "invest.session";

export interface Session {
  token: string;
  investmentUrl: string;
  allocationUrl: string;
}

/** What the dashboard knows of the token without verifying it (the services do that). */
export interface Claims {
  sub: string;
  roles: string[];
  exp?: number;
}

export const DEFAULTS = {
  investmentUrl: "http://127.0.0.1:50051",
  allocationUrl: "http://127.0.0.1:50052",
};

/** The claims of a JWT, or undefined if it is not one. */
export function claims(token: string): Claims | undefined {
  const part = token.split(".")[1];
  if (!part) return undefined;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
    const c = JSON.parse(json) as Partial<Claims>;
    if (typeof c.sub !== "string") return undefined;
    return { sub: c.sub, roles: Array.isArray(c.roles) ? c.roles : [], exp: c.exp };
  } catch {
    return undefined;
  }
}

/** Reads a session from the URL hash (then removes it) or from sessionStorage. */
export function load(location: Location, storage: Storage, history: History): Session | undefined {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
  const stored = storage.getItem(KEY);
  const previous = stored ? (JSON.parse(stored) as Partial<Session>) : {};
  const token = hash.get("token") ?? previous.token;
  if (hash.size > 0) history.replaceState(null, "", location.pathname + location.search);
  if (!token) return undefined;
  const session: Session = {
    token: token.trim(),
    investmentUrl: hash.get("investment") ?? previous.investmentUrl ?? DEFAULTS.investmentUrl,
    allocationUrl: hash.get("allocation") ?? previous.allocationUrl ?? DEFAULTS.allocationUrl,
  };
  save(storage, session);
  return session;
}

export function save(storage: Storage, session: Session): void {
  storage.setItem(KEY, JSON.stringify(session));
}

export function clear(storage: Storage): void {
  storage.removeItem(KEY);
}
