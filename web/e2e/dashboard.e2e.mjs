// End to end: the built dashboard in a real headless Chromium (Debian's `chromium`, driven by
// playwright-core) against the real services, PostgreSQL and NATS. Run by scripts/test-web,
// which builds everything and passes:
//   INVEST_BIN_DIR  directory of investctl, investment-svc and allocation-svc
//   DATABASE_URL    a PostgreSQL server (a database of its own is made here)
//   NATS_URL        a NATS JetStream server (a stream and subjects of its own are used here)
//   CHROMIUM        the browser (default /usr/bin/chromium)
//   SCREENSHOTS     where to save each view at 1280 and 390 px (sign-in, dashboard, operator; default web/e2e/screenshots,
//                   git-ignored; `SCREENSHOTS=docs scripts/test-web` refreshes the README's)
//   E2E_TLS=1       everything over HTTPS: the page (vite preview) and both services (TLS_CERT_FILE /
//                   TLS_KEY_FILE) with certificates of a development CA made here by
//                   `investctl dev-certs`, which Chromium trusts through the NSS database of a
//                   temporary HOME (certutil, Debian's libnss3-tools): no certificate error ignored.
// The page is configured as a deployment would configure it (DASHBOARD_* for vite.config.ts) and
// opened from a link naming other addresses, served by a decoy that must see no request at all;
// any Content-Security-Policy violation fails the test. Every wait is on a condition with a
// deadline; nothing sleeps to synchronize.
// This file runs the scenarios in order; each module beside it holds one part: stack.mjs starts
// the system under test (services.mjs, devca.mjs, decoy.mjs), session.mjs watches the browser,
// dashboard.mjs reads and drives the page, and sign-in, invest, resilience, operator, cancel,
// history, views and boundaries hold the scenarios of that name.

import { nothingElsewhere } from "./boundaries.mjs";
import { cancelTooLate, cancelWaiting } from "./cancel.mjs";
import { dealClosed, historyPages } from "./history.mjs";
import { investWithKeyboard, lastSharesTaken, lostAnswer, pausedPlan, sharesChecked } from "./invest.mjs";
import { retryFailed, reversed } from "./operator.mjs";
import { allocationRestarts, completedWhileLoading } from "./resilience.mjs";
import { openSession } from "./session.mjs";
import { refusedToken, signInFromLink, signOut, signedOut } from "./sign-in.mjs";
import { prepare } from "./stack.mjs";
import { everyView, wordsNotInternals } from "./views.mjs";
import { elapsed, step } from "./wait.mjs";

/** In order: each scenario starts where the one before left the pages, the balances and the
 * database (see each module). */
const scenarios = [
  signedOut,
  refusedToken,
  signInFromLink,
  sharesChecked,
  investWithKeyboard,
  lostAnswer,
  pausedPlan,
  lastSharesTaken,
  allocationRestarts,
  completedWhileLoading,
  retryFailed,
  cancelWaiting,
  cancelTooLate,
  reversed,
  dealClosed,
  wordsNotInternals,
  everyView,
  historyPages,
  signOut,
  nothingElsewhere,
];

const stack = await prepare();
/** What the scenarios share: the stack, the browser session, the investor's tab (`page`), and
 * what earlier scenarios leave for later ones (the admin's tab, investments' ids, a row lock). */
const t = { stack };
try {
  t.session = await openSession(await stack.start(), stack);
  t.page = await t.session.newPage();
  for (const scenario of scenarios) await scenario(t);
  step(`passed in ${elapsed()} s`);
} catch (err) {
  console.error(`[e2e] FAILED: ${err.stack ?? err}`);
  const consoleErrors = t.session?.consoleErrors ?? [];
  if (consoleErrors.length > 0) console.error(`[e2e] console errors so far:\n${consoleErrors.join("\n")}`);
  console.error(`[e2e] service logs (last 60 lines):\n${stack.services.logs.join("").split("\n").slice(-60).join("\n")}`);
  process.exitCode = 1;
} finally {
  await t.hold?.release().catch(() => {});
  await stack.stop();
  console.log(`DATABASE=${stack.dbName}`);
}
