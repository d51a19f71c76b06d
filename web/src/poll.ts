// Refreshing something every few seconds, but only while someone can see it: a hidden tab
// waits until it is shown again (then refreshes at once), and the loop ends for good when
// `work` says so (the token refused: asking again cannot help) or the signal aborts.

import { sleep as defaultSleep } from "./watch.js";

export interface PollOptions {
  intervalMs: number;
  /** Whether the page is visible now. */
  visible: () => boolean;
  /** Resolves when the page becomes visible (or the signal aborts). */
  whenVisible: (signal: AbortSignal) => Promise<void>;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** Runs `work` until it returns "stop" or `signal` aborts. */
export async function poll(
  work: () => Promise<"stop" | void>,
  options: PollOptions,
  signal: AbortSignal,
): Promise<void> {
  const wait = options.sleep ?? defaultSleep;
  while (!signal.aborted) {
    if (!options.visible()) {
      await options.whenVisible(signal);
      continue;
    }
    if ((await work()) === "stop") return;
    await wait(options.intervalMs, signal);
  }
}

/** The document's visibility, for `poll`. */
export function documentVisibility(doc: Document): Pick<PollOptions, "visible" | "whenVisible"> {
  return {
    visible: () => doc.visibilityState === "visible",
    whenVisible: (signal) =>
      new Promise<void>((resolve) => {
        const done = () => {
          if (doc.visibilityState !== "visible" && !signal.aborted) return;
          doc.removeEventListener("visibilitychange", done);
          signal.removeEventListener("abort", done);
          resolve();
        };
        doc.addEventListener("visibilitychange", done);
        signal.addEventListener("abort", done, { once: true });
      }),
  };
}
