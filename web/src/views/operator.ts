// "Operations" (admin sign-in only): queue figures and failed allocations with Retry, refreshed
// every two seconds while the tab is visible; a refused token ends it.

import { cell, el, find, noteRow } from "../dom.js";
import type { Context } from "../context.js";
import { describe } from "../errors.js";
import type { Investment } from "../gen/invest/v1/investment_pb.js";
import { documentVisibility, poll } from "../poll.js";
import { failureInWords } from "./words.js";

const COLUMNS = 7;

export class Operator {
  private shown = "";
  private readonly queue: HTMLElement;
  private readonly body: HTMLElement;
  private readonly done: HTMLElement;
  private readonly error: HTMLElement;
  private latest: Investment[] = [];

  constructor(
    private readonly root: HTMLElement,
    private readonly ctx: Context,
  ) {
    this.queue = find(root, "#queue");
    this.body = find(root, "tbody");
    this.done = find(root, "#operator-done");
    this.error = find(root, "#operator-error");
    this.body.replaceChildren(noteRow(COLUMNS, "Loading…"));
  }

  run(): Promise<void> {
    this.root.hidden = false;
    return poll(() => this.refresh(), { intervalMs: 2000, ...documentVisibility(document) }, this.ctx.signal);
  }

  /** One refresh; "stop" once the token is refused. */
  private async refresh(): Promise<"stop" | void> {
    try {
      const [stats, failed] = await Promise.all([
        this.ctx.api.allocations.getQueueStats({}),
        this.ctx.api.allocations.listFailedAllocations({ pageSize: 20 }),
      ]);
      const f = this.ctx.format;
      const figures: [string, bigint][] = [
        ["Waiting", stats.pendingCount],
        ["Allocating", stats.processingCount],
        ["Completed", stats.completedCount],
        ["Failed", stats.failedCount],
        ["Cancelled", stats.cancelledCount],
        ["Reversed", stats.reversedCount],
        ["Requests queued", stats.streamMessages],
        ["Not yet delivered", stats.consumerPending],
        ["Delivered, not yet done", stats.consumerInFlight],
        ["Delivered again", stats.consumerRedelivered],
      ];
      this.queue.replaceChildren(...figures.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, f.units(v)))));
      this.latest = failed.investments;
      await this.ctx.deals.ensure(failed.investments.map((i) => i.dealId)).catch(() => {});
      this.renderFailed();
      this.error.textContent = "";
    } catch (err) {
      const problem = describe(err, this.ctx.format);
      this.ctx.failed(problem);
      this.error.textContent = problem.message;
      if (problem.signedOut) return "stop";
    }
  }

  /** Rebuilt only when it changes: a refresh must not take the keyboard focus away. */
  renderFailed() {
    const key = this.latest.map((i) => `${i.id}:${i.statusVersion}:${this.ctx.deals.get(i.dealId)?.name ?? ""}`).join();
    if (key === this.shown) return;
    this.shown = key;
    this.body.replaceChildren(
      ...(this.latest.length === 0 ? [noteRow(COLUMNS, "No failed allocations.")] : this.latest.map((i) => this.failedRow(i))),
    );
  }

  private failedRow(i: Investment): HTMLElement {
    const f = this.ctx.format;
    const deal = this.ctx.deals.name(i.dealId);
    const retry = el("button", { type: "button", "aria-label": `Retry the investment in ${deal} of ${f.date(i.createdAt)}` }, "Retry");
    retry.onclick = async () => {
      retry.disabled = true;
      retry.textContent = "Retrying…";
      this.done.textContent = "";
      try {
        await this.ctx.api.allocations.retryAllocation({ investmentId: i.id });
        this.done.textContent = `Retried: the investment in ${deal} (${f.units(i.shares)} shares, ${f.amount(i.totalAmount)}) is queued again.`;
        await this.refresh();
      } catch (err) {
        const problem = describe(err, this.ctx.format, "retry");
        this.ctx.failed(problem);
        this.error.textContent = `Retry failed: ${problem.message}`;
        retry.disabled = false;
        retry.textContent = "Retry";
      }
    };
    const attempts =
      i.allocationAttempts > 0
        ? ` After ${i.allocationAttempts} ${i.allocationAttempts === 1 ? "try" : "tries"} that failed with a database error.`
        : "";
    return el(
      "tr",
      { "data-id": i.id },
      cell("Failed", f.date(i.updatedAt)),
      cell("Deal", deal, { "data-term": "deal" }),
      cell("Investor", el("span", { class: "id", title: i.userId }, `…${i.userId.slice(-8)}`)),
      cell("Shares", f.units(i.shares), { class: "num", "data-term": "shares" }),
      cell("Amount", f.amount(i.totalAmount), { class: "num", "data-term": "amount" }),
      cell("Reason", `${failureInWords(i.allocationFailure)}${attempts}`, { "data-term": "reason" }),
      cell("Action", retry),
    );
  }
}
