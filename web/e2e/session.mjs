// The browser session the scenarios share, and what it watches for the whole run: every console
// error (a Content-Security-Policy violation among them, even one the browser would report only
// to a report-uri), every origin a page called, every CreateInvestment sent.

import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { WAIT } from "./wait.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** A context of `browser` at 1280 px, with its watchers, for the page at `stack.origin`. */
export async function openSession(browser, stack) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-US", timezoneId: "UTC" });
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) =>
      console.error(`Content Security Policy violation: ${e.violatedDirective} blocked ${e.blockedURI}`),
    );
  });
  const session = {
    context,
    consoleErrors: [],
    /** Set while a scenario breaks the network (or the services refuse a token). */
    networkErrorsExpected: false,
    /** Every origin the pages sent a request to. */
    requested: new Set(),
    /** Every CreateInvestment the pages sent. */
    creates: [],
    /** Where each view's screenshots go (SCREENSHOTS, else web/e2e/screenshots). */
    screenshots: path.resolve(root, process.env.SCREENSHOTS ?? "web/e2e/screenshots"),
    /** The screenshots taken, with their audits, for the log. */
    shots: [],

    /** A new tab, watched like the others. */
    async newPage() {
      const p = await context.newPage();
      p.setDefaultTimeout(WAIT);
      session.watchConsole(p);
      return p;
    },

    watchConsole(p) {
      p.on("console", (m) => {
        if (m.type() !== "error") return;
        const text = m.text();
        // A failed fetch is logged by the browser itself: expected only while we break the
        // network (or the services refuse a token); never one that the CSP refused.
        const csp = /Content.Security.Policy|ERR_BLOCKED_BY_CSP/i.test(text);
        if (!csp && session.networkErrorsExpected && /Failed to load resource|ERR_/.test(text)) return;
        session.consoleErrors.push(text);
      });
      p.on("pageerror", (e) => session.consoleErrors.push(String(e)));
    },

    /** Throws if a page called the decoy or the CSP refused anything, so far. */
    noDecoyNoViolation() {
      const { origin, requests } = stack.decoy;
      if (requests.length > 0 || session.requested.has(origin)) {
        throw new Error(`the page called ${origin}: ${JSON.stringify(requests)}`);
      }
      const violations = session.consoleErrors.filter((e) => /Content.Security.Policy/i.test(e));
      if (violations.length > 0) throw new Error(`Content-Security-Policy violations:\n${violations.join("\n")}`);
    },
  };
  context.on("request", (r) => session.requested.add(new URL(r.url()).origin));
  context.on("request", (r) => {
    if (r.url().endsWith("/invest.v1.InvestmentService/CreateInvestment")) session.creates.push(r);
  });
  mkdirSync(session.screenshots, { recursive: true });
  return session;
}
