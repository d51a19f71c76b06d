// The dashboard: balances, an invest form, the user's investments kept live by WatchAllocations,
// and, with an admin token, the allocation queue and failed allocations with Retry. Plain DOM;
// the logic worth testing lives in book.ts, watch.ts and errors.ts.

import "./style.css";
import { connect, type Api } from "./api.js";
import { loadConfig, type Config } from "./config.js";
import { Book, isFinished, statusName, type Row } from "./book.js";
import { describe } from "./errors.js";
import type { Deal, Investment, SubscriptionBalance } from "./gen/invest/v1/investment_pb.js";
import { DealStatus, SubscriptionStatus } from "./gen/invest/v1/investment_pb.js";
import * as session from "./session.js";
import { keepWatching, sleep, type LinkState } from "./watch.js";

const byId = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/** An element with text or children; attributes as given. */
function el(
  tag: string,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElement {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

/** The end of a UUID: v7 ids made close together share their first (time) digits. */
const short = (id: string) => id.slice(-8);
const idCell = (id: string) => el("td", { class: "id", title: id }, short(id));
const num = (text: string) => el("td", { class: "num" }, text);

/** A fresh idempotency key (crypto.randomUUID needs a secure context; this does not). */
function newRequestId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** `f`, run once things settle: `ms` after the last of a burst of calls. */
function debounce(f: () => void, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(f, ms);
  };
}

/** Runs `work` over `items`, at most `limit` at a time. */
async function eachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>) {
  const queue = [...items];
  const worker = async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
      await work(item).catch(() => {});
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, queue.length) }, worker));
}

/** Every page of a paginated list, up to `maxPages`. */
async function allPages<T>(
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

// ---------------------------------------------------------------------------------------------
// Sign-in

function showSignIn(message = "") {
  byId("sign-in").hidden = false;
  byId("app").hidden = true;
  const form = byId<HTMLFormElement>("sign-in-form");
  const hint = form.querySelector(".error") ?? form.appendChild(el("p", { class: "error", role: "alert" }));
  hint.textContent = message;
  form.onsubmit = (event) => {
    event.preventDefault();
    const token = byId<HTMLTextAreaElement>("token").value.trim();
    if (!session.claims(token)) {
      hint.textContent = "That is not a JWT (three base64url parts separated by dots).";
      return;
    }
    const s = { token };
    session.save(sessionStorage, s);
    byId("sign-in").hidden = true;
    start(s);
  };
  byId("token").focus();
}

// ---------------------------------------------------------------------------------------------
// The signed-in dashboard

function start(s: session.Session) {
  const claims = session.claims(s.token);
  if (!claims) return showSignIn("The saved token is not a JWT: sign in again.");
  if (claims.exp !== undefined && claims.exp * 1000 < Date.now()) {
    return showSignIn("Your token has expired: sign in again.");
  }
  const api = connect(config, s);
  const stop = new AbortController();
  const admin = claims.roles.includes("admin");
  byId("app").hidden = false;
  byId("who").textContent = `user ${claims.sub}${admin ? " (admin)" : ""}`;
  const signOut = byId<HTMLButtonElement>("sign-out");
  signOut.hidden = false;
  signOut.onclick = () => {
    stop.abort();
    session.clear(sessionStorage);
    location.assign(location.pathname);
  };

  const deals = new Map<string, Deal>();
  const balances = new Balances(api);
  // Balances and what the pickers say (available balance, units) change as investments end.
  const refresh = debounce(() => {
    void balances.load();
    void form.loadPickers();
  }, 300);
  const live = new Live(api, deals, refresh);
  const form = new InvestForm(api, deals, live);
  void balances.load();
  void form.loadPickers();
  void live.run(stop.signal);
  if (admin) void new Operator(api).run(stop.signal);
}

/** The balances table, a page at a time, with every term of the formula. */
class Balances {
  private pages = [""];
  private index = 0;

  constructor(private readonly api: Api) {
    byId<HTMLButtonElement>("balances-prev").onclick = () => this.turn(-1);
    byId<HTMLButtonElement>("balances-next").onclick = () => this.turn(1);
  }

  private turn(by: number) {
    this.index = Math.max(0, this.index + by);
    void this.load();
  }

  async load() {
    const error = byId("balances-error");
    try {
      const page = await this.api.investments.listSubscriptionBalances({
        pageSize: 5,
        pageToken: this.pages[this.index],
      });
      this.pages[this.index + 1] = page.nextPageToken;
      byId("balances").querySelector("tbody")!.replaceChildren(...page.balances.map(balanceRow));
      byId<HTMLButtonElement>("balances-prev").disabled = this.index === 0;
      byId<HTMLButtonElement>("balances-next").disabled = page.nextPageToken === "";
      error.textContent = "";
    } catch (err) {
      error.textContent = describe(err).message;
    }
  }
}

function subscriptionWord(status: SubscriptionStatus): string {
  return (SubscriptionStatus[status] ?? "unknown").toLowerCase();
}

function balanceRow(b: SubscriptionBalance): HTMLElement {
  return el(
    "tr",
    { "data-id": b.subscriptionId },
    el("td", {}, b.planName),
    el("td", { class: "num", "data-term": "available" }, el("strong", {}, b.availableBalance)),
    el("td", {}, subscriptionWord(b.status)),
    num(b.monthlyAmount),
    num(String(b.durationMonths)),
    num(String(b.monthsCompleted)),
    num(b.totalValue),
    num(b.totalPaid),
    el("td", { class: "num", "data-term": "invested" }, b.totalInvested),
    num(b.reservedAmount),
  );
}

/** The invest form: one request_id per intent, so a double click or a retry creates one. */
class InvestForm {
  private intent: string | undefined;
  private busy = false;
  private readonly fields = ["subscription_id", "deal_id", "shares"];

  constructor(
    private readonly api: Api,
    private readonly deals: Map<string, Deal>,
    private readonly live: Live,
  ) {
    const form = byId<HTMLFormElement>("invest");
    // Changing anything makes a new intent; submitting the same one again reuses its key.
    form.addEventListener("input", () => (this.intent = undefined));
    form.onsubmit = (event) => {
      event.preventDefault();
      void this.submit();
    };
  }

  async loadPickers() {
    try {
      const [subscriptions, deals] = await Promise.all([
        allPages<SubscriptionBalance>(async (pageToken) => {
          const r = await this.api.investments.listSubscriptionBalances({ pageSize: 100, pageToken });
          return { items: r.balances, next: r.nextPageToken };
        }),
        allPages<Deal>(async (pageToken) => {
          const r = await this.api.investments.listDeals({ pageSize: 100, pageToken });
          return { items: r.deals, next: r.nextPageToken };
        }),
      ]);
      // Refreshed as balances change: what was picked stays picked.
      const picked = [byId<HTMLSelectElement>("subscription").value, byId<HTMLSelectElement>("deal").value];
      byId("subscription").replaceChildren(
        ...subscriptions.map((b) =>
          el(
            "option",
            { value: b.subscriptionId },
            `${b.planName} (${subscriptionWord(b.status)}), ${b.availableBalance} available`,
          ),
        ),
      );
      for (const d of deals) this.deals.set(d.id, d);
      byId("deal").replaceChildren(
        ...deals
          .filter((d) => d.status === DealStatus.OPEN)
          .map((d) =>
            el(
              "option",
              { value: d.id },
              `${d.name}: ${d.pricePerShare} per share, ${d.unitsAvailable} available`,
            ),
          ),
      );
      byId<HTMLSelectElement>("subscription").value = picked[0] || subscriptions[0]?.subscriptionId || "";
      byId<HTMLSelectElement>("deal").value = picked[1] || byId<HTMLSelectElement>("deal").value;
      this.live.render();
    } catch (err) {
      byId("invest-error").textContent = describe(err).message;
    }
  }

  private showErrors(message: string, fields: Record<string, string>) {
    byId("invest-error").textContent = message;
    const ids: Record<string, string> = {
      subscription_id: "subscription",
      deal_id: "deal",
      shares: "shares",
    };
    for (const field of this.fields) {
      const input = byId(ids[field]);
      const text = fields[field] ?? "";
      byId(`${ids[field]}-error`).textContent = text;
      if (text) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
  }

  private async submit() {
    if (this.busy) return;
    const button = byId<HTMLButtonElement>("invest-submit");
    const sharesText = byId<HTMLInputElement>("shares").value.trim();
    const shares = Number(sharesText === "" ? "0" : sharesText);
    byId("invest-done").textContent = "";
    if (!Number.isSafeInteger(shares)) {
      this.showErrors("", { shares: "Enter a whole number of shares." });
      return;
    }
    this.showErrors("", {});
    this.intent ??= newRequestId();
    this.busy = true;
    button.disabled = true;
    try {
      const response = await this.api.investments.createInvestment({
        subscriptionId: byId<HTMLSelectElement>("subscription").value,
        dealId: byId<HTMLSelectElement>("deal").value,
        shares: BigInt(shares),
        requestId: this.intent,
      });
      const investment = response.investment;
      if (investment) {
        this.live.add(investment);
        byId("invest-done").textContent =
          `Investment ${short(investment.id)} accepted: ${investment.shares} shares for ${investment.totalAmount}.`;
      }
      this.intent = undefined;
    } catch (err) {
      // The same intent is kept: submitting again after a network error cannot create two.
      const problem = describe(err);
      this.showErrors(problem.message, problem.fields);
    } finally {
      this.busy = false;
      button.disabled = false;
    }
  }
}

/** The user's investments, kept current by WatchAllocations across reconnects. */
class Live {
  private readonly book = new Book();
  private scheduled = false;

  constructor(
    private readonly api: Api,
    private readonly deals: Map<string, Deal>,
    private readonly onBalanceChange: () => void,
  ) {}

  add(investment: Investment) {
    if (this.book.applyInvestment(investment)) this.render();
    this.onBalanceChange(); // its amount is reserved now
  }

  async run(signal: AbortSignal) {
    await this.readList().catch(() => {});
    void this.fillAllocations();
    await keepWatching(
      {
        open: (s, opened) => this.api.allocations.watchAllocations({}, { signal: s, onHeader: opened }),
        onMessage: (m) => {
          if (m.update && this.book.applyUpdate(m.update)) {
            this.render();
            if (isFinished(m.update.allocationStatus)) this.onBalanceChange();
          }
        },
        onState: showLink,
        onReconnect: () => this.catchUp(),
      },
      signal,
    );
  }

  /** The newest page of ListInvestments. */
  private async readList() {
    const page = await this.api.investments.listInvestments({ pageSize: 50 });
    let changed = false;
    for (const i of page.investments) changed = this.book.applyInvestment(i) || changed;
    if (changed) this.render();
  }

  /** Allocations of completed rows known only from a list: a WatchAllocation on a finished
   * investment sends its final update and ends. */
  private async fillAllocations() {
    await eachLimited(this.book.missingAllocations(), 4, async (id) => {
      const stream = this.api.allocations.watchAllocation(
        { investmentId: id },
        { signal: AbortSignal.timeout(10_000) },
      );
      for await (const m of stream) if (m.update && this.book.applyUpdate(m.update)) this.render();
    });
  }

  /** After a reconnect: the stream's snapshot brings every unfinished investment; what finished
   * or was made while it was down is read here. Merging by version keeps each update once. */
  private async catchUp() {
    const unfinished = this.book.unfinished();
    await eachLimited(unfinished, 4, async (id) => {
      const r = await this.api.investments.getInvestment({ investmentId: id });
      if (r.investment && this.book.applyInvestment(r.investment)) this.render();
    });
    await this.readList();
    this.onBalanceChange();
    await this.fillAllocations();
  }

  render() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      const rows = this.book.list().slice(0, 200);
      byId("investments")
        .querySelector("tbody")!
        .replaceChildren(...rows.map((r) => this.row(r)));
    });
  }

  private row(r: Row): HTMLElement {
    const status = statusName(r.status);
    const deal = this.deals.get(r.dealId);
    let details: Node | string = "";
    if (r.allocations.length > 0) {
      details = el(
        "ul",
        { class: "allocations" },
        ...r.allocations.map((a) =>
          el("li", {}, `batch ${short(a.batchId)}: ${a.units} units, ${a.value}`),
        ),
      );
    } else if (r.error) {
      details = r.error;
    }
    return el(
      "tr",
      { "data-id": r.id, "data-status": status, "data-version": String(r.version) },
      idCell(r.id),
      el("td", { title: r.dealId }, deal?.name ?? short(r.dealId)),
      num(r.shares === undefined ? "" : String(r.shares)),
      num(r.totalAmount ?? ""),
      el("td", {}, el("span", { class: "status", "data-status": status }, status)),
      el("td", { class: "num", "data-term": "attempts" }, String(r.attempt)),
      el("td", { class: "details" }, details),
    );
  }
}

function showLink(state: LinkState, detail?: string) {
  const link = byId("link");
  link.dataset.state = state;
  link.textContent = {
    connecting: "connecting",
    live: "live",
    reconnecting: "reconnecting",
    stopped: "signed out",
  }[state];
  link.title = detail ?? "";
}

/** Queue figures and failed allocations, refreshed every two seconds, with Retry. */
class Operator {
  private shown = "";

  constructor(private readonly api: Api) {
    byId("operator").hidden = false;
  }

  async run(signal: AbortSignal) {
    while (!signal.aborted) {
      await this.refresh();
      await sleep(2000, signal);
    }
  }

  private async refresh() {
    const error = byId("operator-error");
    try {
      const [stats, failed] = await Promise.all([
        this.api.allocations.getQueueStats({}),
        this.api.allocations.listFailedAllocations({ pageSize: 20 }),
      ]);
      const figures: [string, bigint][] = [
        ["Pending", stats.pendingCount],
        ["Processing", stats.processingCount],
        ["Completed", stats.completedCount],
        ["Failed", stats.failedCount],
        ["In the stream", stats.streamMessages],
        ["Not yet delivered", stats.consumerPending],
        ["Delivered, unacked", stats.consumerInFlight],
        ["Redelivered", stats.consumerRedelivered],
      ];
      byId("queue").replaceChildren(
        ...figures.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, String(v)))),
      );
      // Rebuilt only when it changes: a refresh must not take the keyboard focus away.
      const key = failed.investments.map((i) => `${i.id}:${i.statusVersion}`).join();
      if (key !== this.shown) {
        this.shown = key;
        byId("failed")
          .querySelector("tbody")!
          .replaceChildren(...failed.investments.map((i) => this.failedRow(i)));
      }
      error.textContent = "";
    } catch (err) {
      error.textContent = describe(err).message;
    }
  }

  private failedRow(i: Investment): HTMLElement {
    const retry = el("button", { type: "button", "aria-label": `Retry ${i.id}` }, "Retry") as HTMLButtonElement;
    retry.onclick = async () => {
      retry.disabled = true;
      try {
        await this.api.allocations.retryAllocation({ investmentId: i.id });
        await this.refresh();
      } catch (err) {
        byId("operator-error").textContent = describe(err).message;
        retry.disabled = false;
      }
    };
    return el(
      "tr",
      { "data-id": i.id },
      idCell(i.id),
      idCell(i.userId),
      idCell(i.dealId),
      el("td", {}, i.allocationError),
      num(String(i.allocationAttempts)),
      el("td", {}, retry),
    );
  }
}

/** Nothing works without the configuration: say so instead of guessing addresses. */
function showFatal(message: string) {
  const fatal = byId("fatal");
  fatal.textContent = message;
  fatal.hidden = false;
}

// The token leaves the address bar first, whatever happens next.
const current = session.load(location, sessionStorage, history);
let config: Config;
try {
  config = await loadConfig((input, init) => fetch(input, init));
} catch (err) {
  showFatal(`The dashboard's configuration could not be read: ${err instanceof Error ? err.message : String(err)}`);
  throw err;
}
if (current) start(current);
else showSignIn();
