import { describe, expect, it } from "vitest";
import { poll } from "../src/poll.js";

describe("poll", () => {
  it("waits while the tab is hidden, refreshes once shown, and stops for good when told", async () => {
    let visible = false;
    const events: string[] = [];
    let calls = 0;
    await poll(
      async () => {
        calls += 1;
        events.push(`work ${calls}`);
        return calls === 3 ? "stop" : undefined;
      },
      {
        intervalMs: 2000,
        visible: () => visible,
        whenVisible: async () => {
          events.push("hidden: waiting");
          visible = true;
        },
        sleep: async (ms) => {
          events.push(`sleep ${ms}`);
          if (calls === 1) visible = false; // the tab was hidden during the first wait
        },
      },
      new AbortController().signal,
    );
    expect(events).toEqual(["hidden: waiting", "work 1", "sleep 2000", "hidden: waiting", "work 2", "sleep 2000", "work 3"]);
  });

  it("ends when the signal aborts", async () => {
    const stop = new AbortController();
    let calls = 0;
    await poll(
      async () => void (calls += 1),
      { intervalMs: 10, visible: () => true, whenVisible: async () => {}, sleep: async () => stop.abort() },
      stop.signal,
    );
    expect(calls).toBe(1);
  });
});
