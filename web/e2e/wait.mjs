// The end-to-end run's clock: a log line per step with the time since the start, and waits on a
// condition with a deadline (nothing sleeps to synchronize).

/** How long any one wait may take, in ms. */
export const WAIT = 30_000;
const started = Date.now();

/** Seconds since the run started, for the log. */
export const elapsed = () => ((Date.now() - started) / 1000).toFixed(1);

export function step(what) {
  console.log(`[e2e ${elapsed()}s] ${what}`);
}

/** Resolves once `check()` is true; throws (naming `what`) after `deadline` ms. */
export async function until(what, check, deadline = WAIT) {
  const end = Date.now() + deadline;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out after ${deadline} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
