// Cancel on a waiting investment: the row's button asks first (in the row, naming the deal,
// shares and amount), then calls CancelInvestment; the outcome is said on the history's
// status line, a refusal (it moved on meanwhile) in words on its alert line.

import type { Row } from "../book.js";
import type { Context } from "../context.js";
import { el } from "../dom.js";
import { describe } from "../errors.js";
import type { Investment } from "../gen/invest/v1/investment_pb.js";
import { newRequestId } from "../util.js";

export type CancelState = "" | "confirming" | "sending";

export interface CancelHost {
  /** Shows the rows again, then moves the keyboard focus to what `focus` finds (if anything). */
  rerender(focus?: () => HTMLElement | null): void;
  /** The service answered with the investment, CANCELLED. */
  cancelled(investment: Investment): void;
}

export class CancelControls {
  private readonly states = new Map<string, CancelState>();

  constructor(
    private readonly ctx: Context,
    private readonly table: HTMLElement,
    private readonly done: HTMLElement,
    private readonly error: HTMLElement,
    private readonly host: CancelHost,
  ) {}

  state(id: string): CancelState {
    return this.states.get(id) ?? "";
  }

  /** The Action cell of a waiting row. */
  controls(r: Row, deal: string): HTMLElement {
    const f = this.ctx.format;
    const state = this.state(r.id);
    if (state === "") {
      const ask = el("button", { type: "button", class: "cancel", "aria-label": `Cancel the investment in ${deal} of ${f.date(r.since)}` }, "Cancel");
      ask.onclick = () => this.set(r.id, "confirming", ".cancel-yes");
      return ask;
    }
    const what =
      r.shares === undefined || r.totalAmount === undefined
        ? `this investment in ${deal}`
        : `${f.units(r.shares)} ${r.shares === 1n ? "share" : "shares"} of ${deal} (${f.amount(r.totalAmount)})`;
    const question = el("p", { id: `cancel-${r.id}` }, `Cancel ${what}? The amount goes back to your plan.`);
    const yes = el("button", { type: "button", class: "primary cancel-yes" }, state === "sending" ? "Cancelling…" : "Yes, cancel it");
    const no = el("button", { type: "button", class: "cancel-no" }, "Keep it");
    yes.disabled = no.disabled = state === "sending";
    yes.onclick = () => void this.send(r, what);
    no.onclick = () => this.set(r.id, "", ".cancel");
    return el("div", { class: "confirm", role: "group", "aria-labelledby": question.id }, question, yes, no);
  }

  private set(id: string, state: CancelState, focus?: string) {
    if (state === "") this.states.delete(id);
    else this.states.set(id, state);
    this.host.rerender(focus ? () => this.table.querySelector<HTMLElement>(`tr[data-id="${id}"] ${focus}`) : undefined);
  }

  private async send(r: Row, what: string) {
    if (this.state(r.id) === "sending") return;
    this.set(r.id, "sending");
    this.done.textContent = "";
    this.error.textContent = "";
    try {
      const answer = await this.ctx.api.investments.cancelInvestment({ investmentId: r.id, requestId: newRequestId() });
      this.states.delete(r.id);
      if (answer.investment) this.host.cancelled(answer.investment);
      this.done.textContent = `Cancelled: ${what}. The amount is back in your plan.`;
      this.host.rerender(() => this.done);
    } catch (err) {
      const problem = describe(err, this.ctx.format, "cancel");
      this.ctx.failed(problem);
      this.error.textContent = `Not cancelled: ${problem.message}`;
      // Back to the button if the row still waits; else to the reason it no longer does.
      this.states.delete(r.id);
      this.host.rerender(() => this.table.querySelector<HTMLElement>(`tr[data-id="${r.id}"] .cancel`) ?? this.error);
    }
  }
}
