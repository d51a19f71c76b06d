// The invest form: plan, deal and shares, a cost preview as they change, a check of the shares
// against the units the page shows as available, then a confirmation step before any money is
// reserved. One request_id per intent, so a double click or a retry after a lost answer
// creates one investment.

import { el, find } from "../dom.js";
import type { Context } from "../context.js";
import { cost } from "../decimal.js";
import { describe } from "../errors.js";
import { DealStatus, type Deal, type Investment, type SubscriptionBalance } from "../gen/invest/v1/investment_pb.js";
import { checkShares } from "../shares.js";
import { allPages, newRequestId } from "../util.js";
import { subscriptionWord } from "./words.js";

/** The request's field names and the inputs they belong to. */
const FIELDS: Record<string, string> = { subscription_id: "subscription", deal_id: "deal", shares: "shares" };

export class InvestForm {
  private intent: string | undefined;
  private busy = false;
  private subscriptions = new Map<string, SubscriptionBalance>();
  private open = new Map<string, Deal>();
  private readonly form: HTMLFormElement;
  private readonly subscription: HTMLSelectElement;
  private readonly deal: HTMLSelectElement;
  private readonly shares: HTMLInputElement;
  private readonly cost: HTMLElement;
  private readonly confirm: HTMLElement;
  private readonly confirmText: HTMLElement;
  private readonly yes: HTMLButtonElement;
  private readonly error: HTMLElement;
  private readonly done: HTMLElement;
  private pending: { subscriptionId: string; dealId: string; shares: bigint } | undefined;

  constructor(
    private readonly root: HTMLElement,
    private readonly ctx: Context,
    private readonly onCreated: (investment: Investment) => void,
  ) {
    this.form = find<HTMLFormElement>(root, "form");
    this.subscription = find<HTMLSelectElement>(root, "#subscription");
    this.deal = find<HTMLSelectElement>(root, "#deal");
    this.shares = find<HTMLInputElement>(root, "#shares");
    this.cost = find(root, "#cost");
    this.confirm = find(root, "#confirm");
    this.confirmText = find(root, "#confirm-text");
    this.yes = find<HTMLButtonElement>(root, "#confirm-yes");
    this.error = find(root, "#invest-error");
    this.done = find(root, "#invest-done");
    // Changing anything makes a new intent; confirming the same one again reuses its key.
    this.form.oninput = () => {
      this.intent = undefined;
      this.hideConfirm();
      this.preview();
    };
    this.form.onsubmit = (event) => {
      event.preventDefault();
      this.review();
    };
    this.yes.onclick = () => void this.submit();
    find<HTMLButtonElement>(root, "#confirm-no").onclick = () => {
      this.hideConfirm();
      this.shares.focus();
    };
    this.subscription.replaceChildren(el("option", { value: "" }, "Loading…"));
    this.deal.replaceChildren(el("option", { value: "" }, "Loading…"));
  }

  /** Numbers each read of the pickers: only the latest one's answer is shown. */
  private reads = 0;

  async loadPickers() {
    const read = ++this.reads;
    try {
      const api = this.ctx.api.investments;
      const [subscriptions, deals] = await Promise.all([
        allPages<SubscriptionBalance>(async (pageToken) => {
          const r = await api.listSubscriptionBalances({ pageSize: 100, pageToken });
          return { items: r.balances, next: r.nextPageToken };
        }),
        allPages<Deal>(async (pageToken) => {
          const r = await api.listDeals({ pageSize: 100, pageToken });
          return { items: r.deals, next: r.nextPageToken };
        }),
      ]);
      this.ctx.deals.learn(deals);
      if (read !== this.reads) return;
      // Refreshed as balances change: what was picked stays picked.
      const picked = [this.subscription.value, this.deal.value];
      const f = this.ctx.format;
      this.subscriptions = new Map(subscriptions.map((b) => [b.subscriptionId, b]));
      this.open = new Map(deals.filter((d) => d.status === DealStatus.OPEN).map((d) => [d.id, d]));
      this.subscription.replaceChildren(
        ...subscriptions.map((b) =>
          el("option", { value: b.subscriptionId }, `${b.planName} (${subscriptionWord(b.status)}): ${f.amount(b.availableBalance)} available`),
        ),
      );
      this.deal.replaceChildren(
        ...[...this.open.values()].map((d) =>
          el("option", { value: d.id }, `${d.name}: ${f.amount(d.pricePerShare)} a share, ${f.units(d.unitsAvailable)} available`),
        ),
      );
      if (subscriptions.length === 0) this.subscription.replaceChildren(el("option", { value: "" }, "No plan to pay from"));
      if (this.open.size === 0) this.deal.replaceChildren(el("option", { value: "" }, "No deal is open now"));
      if (this.subscriptions.has(picked[0])) this.subscription.value = picked[0];
      if (this.open.has(picked[1])) this.deal.value = picked[1];
      this.preview();
    } catch (err) {
      this.fail(err);
    }
  }

  /** The shares as entered, checked against what the chosen deal shows as available. */
  private checked() {
    const deal = this.open.get(this.deal.value);
    return { deal, check: checkShares(this.shares.value, deal?.unitsAvailable) };
  }

  /** "4 shares at $25.00 = $100.00" under the form as the user types. */
  private preview() {
    const { deal, check } = this.checked();
    if (!deal || "error" in check) {
      this.cost.textContent = "";
      return;
    }
    const f = this.ctx.format;
    const total = cost(check.shares, deal.pricePerShare) ?? "";
    this.cost.textContent = `${f.units(check.shares)} × ${f.amount(deal.pricePerShare)} = ${f.amount(total)}`;
  }

  /** Checks what it can, then asks for confirmation with the cost in full. */
  private review() {
    if (this.busy) return;
    this.done.textContent = "";
    const { deal, check } = this.checked();
    const plan = this.subscriptions.get(this.subscription.value);
    const fields: Record<string, string> = {};
    if (!plan) fields.subscription_id = "Choose a plan to pay from.";
    if (!deal) fields.deal_id = "Choose a deal.";
    if ("error" in check) fields.shares = check.error;
    if (!plan || !deal || "error" in check) {
      this.showErrors("", fields);
      return;
    }
    this.showErrors("", {});
    const f = this.ctx.format;
    const total = cost(check.shares, deal.pricePerShare) ?? "";
    this.pending = { subscriptionId: plan.subscriptionId, dealId: deal.id, shares: check.shares };
    this.confirmText.textContent =
      `Invest ${f.amount(total)} in ${deal.name}: ${f.units(check.shares)} ${check.shares === 1n ? "share" : "shares"} at ` +
      `${f.amount(deal.pricePerShare)} each, paid from ${plan.planName} (${f.amount(plan.availableBalance)} available).`;
    this.confirm.hidden = false;
    this.yes.focus();
  }

  private hideConfirm() {
    this.confirm.hidden = true;
    this.pending = undefined;
  }

  private showErrors(message: string, fields: Record<string, string>) {
    this.error.textContent = message;
    for (const [field, id] of Object.entries(FIELDS)) {
      const input = find(this.root, `#${id}`);
      const text = fields[field] ?? "";
      find(this.root, `#${id}-error`).textContent = text;
      if (text) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
  }

  private fail(err: unknown) {
    const problem = describe(err, this.ctx.format);
    this.ctx.failed(problem);
    this.showErrors(problem.message, problem.fields);
  }

  private async submit() {
    const pending = this.pending;
    if (this.busy || !pending) return;
    this.intent ??= newRequestId();
    this.busy = true;
    this.yes.disabled = true;
    this.yes.textContent = "Investing…";
    try {
      const response = await this.ctx.api.investments.createInvestment({ ...pending, requestId: this.intent });
      const investment = response.investment;
      this.intent = undefined;
      this.hideConfirm();
      this.shares.focus(); // the Confirm button is gone: the focus goes back to the form
      if (investment) {
        this.onCreated(investment);
        const f = this.ctx.format;
        this.done.textContent =
          `Accepted: ${f.units(investment.shares)} ${investment.shares === 1n ? "share" : "shares"} of ` +
          `${this.ctx.deals.name(investment.dealId)} for ${f.amount(investment.totalAmount)}. ` +
          "The amount is held while the shares are allocated; the status below follows it.";
      }
      void this.loadPickers();
    } catch (err) {
      // The same intent is kept: confirming again after a network error cannot create two.
      this.fail(err);
    } finally {
      this.busy = false;
      this.yes.disabled = false;
      this.yes.textContent = "Confirm and invest";
    }
  }
}
