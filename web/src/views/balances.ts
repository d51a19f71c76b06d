// "Your plans": each subscription with what it can still invest, in words, a page at a time.

import { el, find } from "../dom.js";
import type { Context } from "../context.js";
import { describe } from "../errors.js";
import type { SubscriptionBalance } from "../gen/invest/v1/investment_pb.js";
import { Pager, type PagerView } from "../pager.js";
import { subscriptionWord } from "./words.js";

export class Balances {
  private readonly pager: Pager<SubscriptionBalance>;
  private readonly list: HTMLElement;
  private readonly prev: HTMLButtonElement;
  private readonly next: HTMLButtonElement;
  private readonly error: HTMLElement;
  private readonly pagerNav: HTMLElement;
  private loaded = false;

  constructor(
    root: HTMLElement,
    private readonly ctx: Context,
  ) {
    this.list = find(root, ".plans");
    this.prev = find<HTMLButtonElement>(root, '[data-turn="prev"]');
    this.next = find<HTMLButtonElement>(root, '[data-turn="next"]');
    this.error = find(root, ".error");
    this.pagerNav = find(root, ".pager");
    this.pager = new Pager(
      async (pageToken) => {
        const r = await ctx.api.investments.listSubscriptionBalances({ pageSize: 5, pageToken });
        return { items: r.balances, next: r.nextPageToken };
      },
      (view) => this.render(view),
    );
    this.prev.onclick = () => void this.pager.prev();
    this.next.onclick = () => void this.pager.next();
    this.list.replaceChildren(el("li", { class: "note" }, "Loading your plans…"));
  }

  load(): Promise<void> {
    return this.pager.reload();
  }

  private render(view: PagerView<SubscriptionBalance>) {
    this.list.setAttribute("aria-busy", String(view.loading));
    this.prev.disabled = !view.hasPrev;
    this.next.disabled = !view.hasNext;
    // One page only: no pager to read past.
    this.pagerNav.hidden = !view.loading && view.index === 0 && !view.hasNext;
    if (view.error !== undefined) {
      const problem = describe(view.error, this.ctx.format);
      this.ctx.failed(problem);
      this.error.textContent = problem.message;
      return;
    }
    this.error.textContent = "";
    if (view.loading && this.loaded) return; // keep showing the page until the next one is here
    if (view.loading) return;
    this.loaded = true;
    if (view.items.length === 0) {
      this.list.replaceChildren(el("li", { class: "note" }, "You have no active or paused plans."));
      return;
    }
    this.list.replaceChildren(...view.items.map((b) => this.plan(b)));
  }

  private plan(b: SubscriptionBalance): HTMLElement {
    const f = this.ctx.format;
    const term = (name: string, label: string, value: string) =>
      el("div", {}, el("dt", {}, label), el("dd", { "data-term": name }, value));
    return el(
      "li",
      { class: "plan", "data-id": b.subscriptionId },
      el(
        "div",
        { class: "plan-head" },
        el("h3", {}, b.planName),
        el("span", { class: "badge", "data-status": subscriptionWord(b.status) }, subscriptionWord(b.status)),
      ),
      el(
        "p",
        { class: "available" },
        el("span", { class: "label" }, "Available to invest "),
        el("strong", { "data-term": "available", "data-amount": b.availableBalance }, f.amount(b.availableBalance)),
      ),
      el(
        "dl",
        { class: "terms" },
        term("total", "Plan value", `${f.amount(b.totalValue)} (${f.amount(b.monthlyAmount)} a month for ${b.durationMonths} months)`),
        term("invested", "Invested", f.amount(b.totalInvested)),
        term("reserved", "Held for investments in progress", f.amount(b.reservedAmount)),
        term("paid", "Paid so far", `${f.amount(b.totalPaid)} (${b.monthsCompleted} of ${b.durationMonths} months)`),
      ),
    );
  }
}
