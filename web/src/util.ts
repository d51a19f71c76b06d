// Small helpers for calls: every page of a list, bounded concurrency, settling bursts.

/** Every page of a paginated list, up to `maxPages`. */
export async function allPages<T>(
  fetchPage: (pageToken: string) => Promise<{ items: T[]; next: string }>,
  maxPages = 20,
): Promise<T[]> {
  const all: T[] = [];
  let token = "";
  for (let i = 0; i < maxPages; i++) {
    const page = await fetchPage(token);
    all.push(...page.items);
    token = page.next;
    if (!token) break;
  }
  return all;
}

/** Runs `work` over `items`, at most `limit` at a time; a failed item does not stop the rest. */
export async function eachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>) {
  const queue = [...items];
  const worker = async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
      await work(item).catch(() => {});
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, queue.length) }, worker));
}

/** `f`, run once things settle: `ms` after the last of a burst of calls. */
export function debounce(f: () => void, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(f, ms);
  };
}

/** A fresh idempotency key (crypto.randomUUID needs a secure context; this does not). */
export function newRequestId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
