// The signed-in dashboard: builds the views for one session on their root elements, and tears
// them down when the user signs out or a service refuses the token (then once: the sign-in
// form with one message).

import { connect } from "./api.js";
import type { Config } from "./config.js";
import type { Context } from "./context.js";
import { DealNames } from "./deals.js";
import { find } from "./dom.js";
import { describe, type Problem } from "./errors.js";
import { Format } from "./format.js";
import * as session from "./session.js";
import { debounce } from "./util.js";
import { Balances } from "./views/balances.js";
import { InvestForm } from "./views/invest.js";
import { Investments } from "./views/investments.js";
import { Operator } from "./views/operator.js";
import { Portfolio } from "./views/portfolio.js";
import type { LinkState } from "./watch.js";

export interface Shell {
  app: HTMLElement;
  link: HTMLElement;
  who: HTMLElement;
  signOut: HTMLButtonElement;
  announce: HTMLElement;
}

/** Runs the dashboard for `s` until it ends; `ended` gets why (empty when the user signed out). */
export async function runDashboard(config: Config, s: session.Session, shell: Shell, ended: (message: string) => void) {
  const claims = session.claims(s.token);
  if (!claims) return ended("The saved access key is not valid: please sign in again.");
  if (claims.exp !== undefined && claims.exp * 1000 < Date.now()) {
    return ended("Your sign-in has expired: please sign in again.");
  }
  const stop = new AbortController();
  let over = false;
  const end = (message: string) => {
    if (over) return;
    over = true;
    stop.abort();
    session.clear(sessionStorage);
    shell.app.hidden = true;
    shell.link.hidden = true;
    shell.signOut.hidden = true;
    shell.who.textContent = "";
    ended(message);
  };
  const refused = () => end("You were signed out: your sign-in expired or was not accepted. Please sign in again.");
  const api = connect(config, s, refused);
  const admin = claims.roles.includes("admin");

  // The currency first: every amount on the page is shown in it.
  let currency = "USD";
  try {
    currency = (await api.investments.listSubscriptionBalances({ pageSize: 1 })).currencyCode || "USD";
  } catch (err) {
    if (describe(err).signedOut) return; // `refused` has ended it
  }
  if (over) return;

  shell.app.hidden = false;
  shell.link.hidden = false;
  shell.who.textContent = admin ? "Signed in as an operator" : "Signed in";
  shell.signOut.hidden = false;
  shell.signOut.onclick = () => end("");

  const views: { portfolio?: Portfolio; investments?: Investments; operator?: Operator } = {};
  const deals = new DealNames(api, () => {
    views.portfolio?.render();
    views.investments?.render();
    views.operator?.renderFailed();
  });
  const ctx: Context = {
    api,
    format: new Format(currency),
    deals,
    signal: stop.signal,
    failed: (problem: Problem) => void (problem.signedOut && refused()),
    announce: (text) => {
      shell.announce.textContent = text;
    },
  };
  const root = (id: string) => find(document, `#${id}`);
  const portfolio = (views.portfolio = new Portfolio(root("portfolio"), ctx));
  const balances = new Balances(root("balances"), ctx);
  // Balances, holdings and what the pickers say change as investments end.
  const refresh = debounce(() => {
    if (stop.signal.aborted) return;
    void balances.load();
    void form.loadPickers();
    void portfolio.load();
  }, 300);
  const investments = (views.investments = new Investments(root("history"), ctx, (state, detail) => {
    showLink(shell.link, state, detail);
    if (state === "stopped") refused();
  }, refresh));
  const form = new InvestForm(root("invest-view"), ctx, (i) => investments.add(i));
  void balances.load();
  void form.loadPickers();
  void portfolio.load();
  void investments.run();
  if (admin) void (views.operator = new Operator(root("operator"), ctx)).run();
  else root("operator").hidden = true;
}

function showLink(link: HTMLElement, state: LinkState, detail?: string) {
  link.dataset.state = state;
  link.textContent = {
    connecting: "Connecting…",
    live: "Live updates on",
    reconnecting: "Reconnecting…",
    stopped: "Signed out",
  }[state];
  link.title = detail ? "The live connection was interrupted; it is being restored." : "";
}
