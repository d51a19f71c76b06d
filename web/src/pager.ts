// Pages of a list, forward and back. The page asked for and the token it is asked with are
// taken together when a request starts, and an answer is shown only if no later request was
// made since: a slow answer never lands on the wrong page. The buttons are off while loading.

export interface Page<T> {
  items: T[];
  next: string;
}

export interface PagerView<T> {
  items: T[];
  /** 0-based page shown. */
  index: number;
  hasPrev: boolean;
  hasNext: boolean;
  loading: boolean;
  error?: unknown;
}

export class Pager<T> {
  /** tokens[i]: what page i is asked with ("" for the first). */
  private tokens = [""];
  private index = 0;
  private items: T[] = [];
  private seq = 0;
  private loading = false;

  constructor(
    private readonly fetchPage: (pageToken: string) => Promise<Page<T>>,
    private readonly show: (view: PagerView<T>) => void,
  ) {}

  /** Reloads the page shown (e.g. after a change). */
  reload(): Promise<void> {
    return this.load(this.index);
  }

  next(): Promise<void> {
    if (this.loading || this.tokens[this.index + 1] === undefined || this.tokens[this.index + 1] === "") {
      return Promise.resolve();
    }
    return this.load(this.index + 1);
  }

  prev(): Promise<void> {
    if (this.loading || this.index === 0) return Promise.resolve();
    return this.load(this.index - 1);
  }

  private async load(index: number): Promise<void> {
    const seq = ++this.seq;
    const token = this.tokens[index];
    this.loading = true;
    this.render();
    let error: unknown;
    try {
      const page = await this.fetchPage(token);
      if (seq !== this.seq) return;
      this.index = index;
      this.items = page.items;
      this.tokens[index + 1] = page.next;
      this.tokens.length = index + 2;
    } catch (err) {
      if (seq !== this.seq) return;
      error = err;
    }
    this.loading = false;
    this.render(error);
  }

  private render(error?: unknown) {
    const next = this.tokens[this.index + 1];
    this.show({
      items: this.items,
      index: this.index,
      hasPrev: !this.loading && this.index > 0,
      hasNext: !this.loading && next !== undefined && next !== "",
      loading: this.loading,
      error,
    });
  }
}
