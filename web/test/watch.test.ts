import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { backoff, keepWatching, type LinkState } from "../src/watch.js";

/** A stream that opens, yields `items`, then fails with `end` (or ends if none). */
function stream(items: number[], end?: ConnectError) {
  return async function* (_signal: AbortSignal, opened: () => void) {
    opened();
    for (const i of items) yield i;
    if (end) throw end;
  };
}

describe("keepWatching", () => {
  it("reconnects with growing backoff after the stream breaks and catches up after every open, the first included", async () => {
    const opens = [
      stream([1, 2], new ConnectError("server shutting down", Code.Unavailable)),
      // Refused before opening (the server is still down).
      async function* () {
        throw new ConnectError("connection refused", Code.Unavailable);
      },
      stream([3]),
    ];
    const stop = new AbortController();
    const seen: number[] = [];
    const states: LinkState[] = [];
    const waits: number[] = [];
    let catchUps = 0;
    await keepWatching<number>(
      {
        open: (signal, opened) => {
          const next = opens.shift();
          if (!next) {
            stop.abort();
            return (async function* () {})();
          }
          return next(signal, opened);
        },
        onMessage: (m) => seen.push(m),
        onState: (s) => states.push(s),
        onOpened: async () => void (catchUps += 1),
        backoff: (n) => 100 * (n + 1),
        sleep: async (ms) => void waits.push(ms),
      },
      stop.signal,
    );
    expect(seen).toEqual([1, 2, 3]);
    expect(catchUps).toBe(2); // the first and third opens; the failed second one never opened
    expect(waits).toEqual([100, 200, 100]); // reset once the stream opened again
    // Consecutive repeats folded: what the indicator showed.
    const shown = states.filter((s, i) => s !== states[i - 1]);
    expect(shown).toEqual(["connecting", "live", "reconnecting", "live", "reconnecting"]);
  });

  it("stops when the token is refused: retrying cannot help", async () => {
    const states: [LinkState, string | undefined][] = [];
    let opens = 0;
    await keepWatching<number>(
      {
        open: () => {
          opens += 1;
          return (async function* () {
            throw new ConnectError("invalid or expired token", Code.Unauthenticated);
          })();
        },
        onMessage: () => {},
        onState: (s, d) => states.push([s, d]),
        sleep: async () => {},
      },
      new AbortController().signal,
    );
    expect(opens).toBe(1);
    expect(states.at(-1)).toEqual(["stopped", "invalid or expired token"]);
  });

  it("backs off from half a second to at most ten, with jitter", () => {
    expect(backoff(0, () => 1)).toBe(500);
    expect(backoff(0, () => 0)).toBe(250);
    expect(backoff(3, () => 1)).toBe(4000);
    expect(backoff(30, () => 1)).toBe(10_000);
  });
});
