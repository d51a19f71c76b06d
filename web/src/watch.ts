// Keeps a server stream open for as long as the page wants it: when it ends or breaks (a server
// restart ends it with UNAVAILABLE), it is opened again with capped, jittered exponential
// backoff, and `onOpened` catches up on what the stream does not bring. Only an answer that
// retrying cannot change (the token refused) stops it.

import { Code, ConnectError } from "@connectrpc/connect";

export type LinkState = "connecting" | "live" | "reconnecting" | "stopped";

export interface WatchOptions<T> {
  /** Opens the stream; calls `opened` once the server has answered with headers. */
  open: (signal: AbortSignal, opened: () => void) => AsyncIterable<T>;
  onMessage: (message: T) => void;
  onState: (state: LinkState, detail?: string) => void;
  /** After every open, the first one included: read what the stream does not bring (what
   * finished before it opened; a list read before the first open would miss what finished
   * between that read and the open). Its errors are dropped: the next open catches up again. */
  onOpened?: () => Promise<void>;
  /** Milliseconds to wait before attempt `n` (0-based) to reconnect. */
  backoff?: (n: number) => number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** 0.5 s doubling to 10 s, with jitter so that many dashboards do not come back at once. */
export function backoff(n: number, random: () => number = Math.random): number {
  const ceiling = Math.min(10_000, 500 * 2 ** n);
  return Math.round(ceiling * (0.5 + random() / 2));
}

/** Waits `ms`, or less if `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

/** Codes no retry can fix: the caller must sign in again. */
const FATAL = new Set([Code.Unauthenticated, Code.PermissionDenied]);

/** Runs until `signal` aborts or the server refuses the caller. */
export async function keepWatching<T>(options: WatchOptions<T>, signal: AbortSignal): Promise<void> {
  const wait = options.sleep ?? sleep;
  const delay = options.backoff ?? ((n: number) => backoff(n));
  let failures = 0;
  let opens = 0;
  while (!signal.aborted) {
    options.onState(opens === 0 ? "connecting" : "reconnecting");
    let detail = "the stream ended";
    try {
      let caughtUp: Promise<void> | undefined;
      const stream = options.open(signal, () => {
        opens += 1;
        failures = 0;
        options.onState("live");
        if (options.onOpened) caughtUp = options.onOpened().catch(() => {});
      });
      for await (const message of stream) options.onMessage(message);
      await caughtUp;
    } catch (err) {
      if (signal.aborted) return;
      const e = ConnectError.from(err);
      if (FATAL.has(e.code)) {
        options.onState("stopped", e.rawMessage);
        return;
      }
      detail = e.rawMessage;
    }
    if (signal.aborted) return;
    options.onState("reconnecting", detail);
    await wait(delay(failures), signal);
    failures += 1;
  }
}
