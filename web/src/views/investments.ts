// "Your investments": newest first, kept current by WatchAllocations across reconnects, with
// older ones read page by page from ListInvestments (each with its allocations). Rows that
// arrive over the stream (made in another tab or client) are read once for their shares and
// amount, reversed ones for their reason. Waiting rows can be cancelled (./cancel.ts).

import { Book, isCancellable, isFinished, statusName, type Row } from "../book.js";
import { cell, el, find, noteRow } from "../dom.js";
import type { Context } from "../context.js";
import { describe } from "../errors.js";
import type { Investment } from "../gen/invest/v1/investment_pb.js";
import { keepWatching, type LinkState } from "../watch.js";
import { eachLimited } from "../util.js";
import { CancelControls } from "./cancel.js";
import { allocationWords, detailsInWords } from "./words.js";

const COLUMNS = 7;
const PAGE = 50;

export class Investments {
  private readonly book = new Book();
  private readonly body: HTMLElement;
  private readonly older: HTMLButtonElement;
  private readonly error: HTMLElement;
  private olderToken = "";
  private listed = false;
  private scheduled = false;
  /** Each row's element and what it showed when built. */
  private readonly shown = new Map<string, { key: string; tr: HTMLElement }>();
  private focusNext: (() => HTMLElement | null) | undefined;
  private readonly cancel: CancelControls;

  constructor(
    root: HTMLElement,
    private readonly ctx: Context,
    private readonly onLink: (state: LinkState, detail?: string) => void,
    /** A row finished, or money was reserved: balances and holdings change. */
    private readonly onChange: () => void,
  ) {
    this.body = find(root, "tbody");
    this.older = find<HTMLButtonElement>(root, "#older");
    this.error = find(root, ".error");
    this.cancel = new CancelControls(ctx, this.body, find(root, "#history-done"), this.error, {
      rerender: (focus) => {
        this.focusNext = focus;
        this.render();
      },
      cancelled: (investment) => {
        if (this.book.applyInvestment(investment)) this.render();
        this.onChange(); // its reservation is released
      },
    });
    this.older.onclick = () => void this.readOlder();
    this.body.replaceChildren(noteRow(COLUMNS, "Loading your investments…"));
  }

  add(investment: Investment) {
    if (this.book.applyInvestment(investment)) this.render();
    this.onChange(); // its amount is reserved now
  }

  /** Until the signal aborts: the stream first, then (on every open) what it does not bring. */
  run(): Promise<void> {
    return keepWatching(
      {
        open: (signal, opened) => this.ctx.api.allocations.watchAllocations({}, { signal, onHeader: opened }),
        onMessage: (m) => {
          const u = m.update;
          if (!u) return;
          const before = this.book.get(u.investmentId)?.status;
          if (!this.book.applyUpdate(u)) return;
          this.render();
          if (before !== u.allocationStatus && isFinished(u.allocationStatus)) {
            this.ctx.announce(`Your investment in ${this.ctx.deals.name(u.dealId)} is ${allocationWords(u.allocationStatus).toLowerCase()}.`);
            this.onChange();
          }
          void this.fillDetails();
        },
        onState: this.onLink,
        onOpened: () => this.catchUp(),
      },
      this.ctx.signal,
    );
  }

  /** After the stream opens: the newest page (what finished or was made before it opened),
   * the rows still unfinished, and the details the stream does not carry. */
  private async catchUp() {
    await this.readPage("", true);
    await eachLimited(this.book.unfinished(), 4, async (id) => {
      const r = await this.ctx.api.investments.getInvestment({ investmentId: id });
      if (r.investment && this.book.applyInvestment(r.investment)) this.render();
    });
    this.onChange();
    await this.fillDetails();
  }

  private async readPage(pageToken: string, newest: boolean) {
    try {
      const page = await this.ctx.api.investments.listInvestments({ pageSize: PAGE, pageToken });
      for (const i of page.investments) this.book.applyInvestment(i);
      if (!newest || !this.listed) this.olderToken = page.nextPageToken;
      this.listed = true;
      this.error.textContent = "";
      void this.ctx.deals.ensure(page.investments.map((i) => i.dealId)).catch(() => {});
    } catch (err) {
      const problem = describe(err, this.ctx.format);
      this.ctx.failed(problem);
      this.error.textContent = problem.message;
      throw err;
    } finally {
      this.render();
    }
  }

  private async readOlder() {
    if (this.older.disabled || this.olderToken === "") return;
    this.older.disabled = true;
    this.older.textContent = "Loading older investments…";
    try {
      await this.readPage(this.olderToken, false);
    } catch {
      // Said in the view's error line.
    } finally {
      this.older.disabled = false;
      this.older.textContent = "Show older investments";
    }
  }

  /** What the stream does not carry: shares and amount of rows known only from it, the reason
   * of a reversal. */
  private async fillDetails() {
    await eachLimited(this.book.missingDetails(), 4, async (id) => {
      const r = await this.ctx.api.investments.getInvestment({ investmentId: id });
      if (r.investment && this.book.applyInvestment(r.investment)) this.render();
    });
  }

  render() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      const rows = this.book.list();
      void this.ctx.deals.ensure(rows.map((r) => r.dealId)).catch(() => {});
      this.older.hidden = this.olderToken === "";
      if (rows.length === 0) {
        this.shown.clear();
        this.body.replaceChildren(noteRow(COLUMNS, this.listed ? "No investments yet: use the form above to make your first." : "Loading your investments…"));
        return;
      }
      this.place(rows.map((r) => this.rowElement(r)));
      this.focusNext?.()?.focus();
      this.focusNext = undefined;
    });
  }

  /** Puts `wanted` in the table in order, moving nothing that is already in its place: a row
   * that did not change keeps its element (and the keyboard focus in it). */
  private place(wanted: HTMLElement[]) {
    const keep = new Set<Element>(wanted);
    for (const child of [...this.body.children]) if (!keep.has(child)) child.remove();
    let cursor = this.body.firstElementChild;
    for (const tr of wanted) {
      if (tr === cursor) cursor = cursor.nextElementSibling;
      else this.body.insertBefore(tr, cursor);
    }
    for (const id of this.shown.keys()) if (this.book.get(id) === undefined) this.shown.delete(id);
  }

  /** The row's element, built again only when what it shows changed. */
  private rowElement(r: Row): HTMLElement {
    const deal = this.ctx.deals.name(r.dealId);
    const key = [r.version, r.shares, r.totalAmount, deal, r.reversalReason, this.cancel.state(r.id)].join("|");
    const shown = this.shown.get(r.id);
    if (shown?.key === key) return shown.tr;
    const tr = this.row(r, deal);
    this.shown.set(r.id, { key, tr });
    return tr;
  }

  private row(r: Row, deal: string): HTMLElement {
    const f = this.ctx.format;
    const status = statusName(r.status);
    const words = detailsInWords(r, f);
    const details = el("div", {}, ...(words.text ? [el("p", {}, words.text)] : []));
    if (words.allocations.length > 0) {
      details.append(el("ul", { class: "allocations" }, ...words.allocations.map((a) => el("li", {}, a))));
    }
    return el(
      "tr",
      { "data-id": r.id, "data-status": status, "data-version": String(r.version) },
      cell("Date", f.date(r.since), { class: "date" }),
      cell("Deal", deal, { "data-term": "deal" }),
      cell("Shares", r.shares === undefined ? "…" : f.units(r.shares), { class: "num", "data-term": "shares" }),
      cell("Amount", r.totalAmount === undefined ? "…" : f.amount(r.totalAmount), { class: "num", "data-term": "amount" }),
      cell("Status", el("span", { class: "status", "data-status": status }, allocationWords(r.status)), { "data-term": "status" }),
      cell("Details", details, { class: "details" }),
      cell("Action", isCancellable(r) ? this.cancel.controls(r, deal) : "", { class: "action" }),
    );
  }
}
