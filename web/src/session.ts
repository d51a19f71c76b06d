// Who is signed in. `scripts/up` prints URLs of the form `/#token=<jwt>`: the hash never reaches a
// server, the token is moved into this tab's sessionStorage and the hash removed from the address
// bar. Only the token is taken from a link or from storage: where the services are comes from the
// configuration (config.ts), so a link cannot send the token anywhere else.

const KEY = "invest.session";

export interface Session {
  token: string;
}

/** What the dashboard knows of the token without verifying it (the services do that). */
export interface Claims {
  sub: string;
  roles: string[];
  exp?: number;
}

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

/** The token saved in this tab, if any (whatever else an older version saved is ignored). */
function stored(storage: Storage): string | undefined {
  try {
    const s = JSON.parse(storage.getItem(KEY) ?? "null") as unknown;
    const token = typeof s === "object" && s !== null ? (s as Record<string, unknown>).token : undefined;
    return typeof token === "string" ? token : undefined;
  } catch {
    return undefined;
  }
}

/** Reads a session from the URL hash's `token` or from sessionStorage. Any hash is removed from
 * the address bar; its other parameters (an `investment=` address, say) are ignored. */
export function load(location: Location, storage: Storage, history: History): Session | undefined {
  const raw = location.hash.replace(/^#/, "");
  const token = (new URLSearchParams(raw).get("token") ?? stored(storage))?.trim();
  if (raw !== "") history.replaceState(null, "", location.pathname + location.search);
  if (!token) return undefined;
  const session: Session = { token };
  save(storage, session);
  return session;
}

/** Saves the token, and only the token. */
export function save(storage: Storage, session: Session): void {
  storage.setItem(KEY, JSON.stringify({ token: session.token }));
}

export function clear(storage: Storage): void {
  storage.removeItem(KEY);
}
