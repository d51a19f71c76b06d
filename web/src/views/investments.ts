// "Your investments": newest first, kept current by WatchAllocations across reconnects, with
// older ones read page by page from ListInvestments. Rows that arrive over the stream (made in
// another tab or client) are read once for their shares and amount.

import { Book, isFinished, statusName, type Row } from "../book.js";
import { cell, el, find, noteRow } from "../dom.js";
import type { Context } from "../context.js";
import { describe } from "../errors.js";
import { AllocationStatus, type Investment } from "../gen/invest/v1/investment_pb.js";
import { keepWatching, type LinkState } from "../watch.js";
import { eachLimited } from "../util.js";
import { allocationWords, failureInWords } from "./words.js";

const COLUMNS = 6;
const PAGE = 50;

export class Investments {
  private readonly book = new Book();
  private readonly body: HTMLElement;
  private readonly older: HTMLButtonElement;
  private readonly error: HTMLElement;
  private olderToken = "";
  private listed = false;
  private scheduled = false;

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
    await this.fillAllocations();
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
      void this.fillAllocations();
    } catch {
      // Said in the view's error line.
    } finally {
      this.older.disabled = false;
      this.older.textContent = "Show older investments";
    }
  }

  /** Shares and amount of rows known only from the stream. */
  private async fillDetails() {
    await eachLimited(this.book.missingDetails(), 4, async (id) => {
      const r = await this.ctx.api.investments.getInvestment({ investmentId: id });
      if (r.investment && this.book.applyInvestment(r.investment)) this.render();
    });
  }

  /** Allocations of completed rows known only from a list: a WatchAllocation on a finished
   * investment sends its final update and ends. */
  private async fillAllocations() {
    await eachLimited(this.book.missingAllocations(), 4, async (id) => {
      const stream = this.ctx.api.allocations.watchAllocation({ investmentId: id }, { signal: AbortSignal.timeout(10_000) });
      for await (const m of stream) if (m.update && this.book.applyUpdate(m.update)) this.render();
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
        this.body.replaceChildren(noteRow(COLUMNS, this.listed ? "No investments yet: use the form above to make your first." : "Loading your investments…"));
        return;
      }
      this.body.replaceChildren(...rows.map((r) => this.row(r)));
    });
  }

  private row(r: Row): HTMLElement {
    const f = this.ctx.format;
    const status = statusName(r.status);
    let details: Node | string = "";
    if (r.allocations.length > 0) {
      details = el(
        "ul",
        { class: "allocations" },
        ...r.allocations.map((a) => el("li", {}, `${f.units(a.units)} ${a.units === 1n ? "share" : "shares"} allocated, ${f.amount(a.value)}`)),
      );
    } else if (r.status === AllocationStatus.FAILED) {
      details = failureInWords(r.failure);
    } else if (!isFinished(r.status)) {
      details = "The amount is held until the shares are allocated.";
    }
    return el(
      "tr",
      { "data-id": r.id, "data-status": status, "data-version": String(r.version) },
      cell("Date", f.date(r.since), { class: "date" }),
      cell("Deal", this.ctx.deals.name(r.dealId), { "data-term": "deal" }),
      cell("Shares", r.shares === undefined ? "…" : f.units(r.shares), { class: "num", "data-term": "shares" }),
      cell("Amount", r.totalAmount === undefined ? "…" : f.amount(r.totalAmount), { class: "num", "data-term": "amount" }),
      cell("Status", el("span", { class: "status", "data-status": status }, allocationWords(r.status)), { "data-term": "status" }),
      cell("Details", details, { class: "details" }),
    );
  }
}
