import { describe, expect, it } from "vitest";
import { Pager, type PagerView } from "../src/pager.js";

/** A page answer the test releases when it wants. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe("Pager", () => {
  it("shows an answer only on the page it was asked for, and turns no page while loading", async () => {
    const asked: string[] = [];
    const answers: ReturnType<typeof deferred<{ items: string[]; next: string }>>[] = [];
    const views: PagerView<string>[] = [];
    const pager = new Pager<string>(
      (token) => {
        asked.push(token);
        const d = deferred<{ items: string[]; next: string }>();
        answers.push(d);
        return d.promise;
      },
      (v) => views.push(v),
    );
    const first = pager.reload();
    expect(views.at(-1)).toMatchObject({ loading: true, hasNext: false, hasPrev: false });
    answers[0].resolve({ items: ["p1"], next: "t2" });
    await first;
    expect(views.at(-1)).toMatchObject({ items: ["p1"], index: 0, hasNext: true, loading: false });

    const toSecond = pager.next();
    expect(views.at(-1)).toMatchObject({ loading: true, hasNext: false, hasPrev: false });
    // Clicking again while loading asks for nothing.
    await pager.next();
    await pager.prev();
    expect(asked).toEqual(["", "t2"]);
    // A reload started meanwhile answers first; the slow page-2 answer must not land.
    const again = pager.reload();
    answers[2].resolve({ items: ["p1 again"], next: "t2" });
    await again;
    answers[1].resolve({ items: ["p2"], next: "" });
    await toSecond;
    expect(views.at(-1)).toMatchObject({ items: ["p1 again"], index: 0, hasNext: true });
    expect(asked).toEqual(["", "t2", ""]);
  });
});
