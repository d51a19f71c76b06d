// The run's closing checks, over everything the scenarios did: the sign-in link's addresses got
// nothing, no Content-Security-Policy violation or console error, both configured services were
// called; and the services' own audit of the database finds nothing stuck.

import { step } from "./wait.mjs";

export async function nothingElsewhere({ stack, session }) {
  step("the link's addresses got nothing, no CSP violation; the configured services got the calls");
  session.noDecoyNoViolation();
  if (session.consoleErrors.length > 0) throw new Error(`console errors:\n${session.consoleErrors.join("\n")}`);
  for (const o of [stack.investOrigin, stack.allocOrigin]) if (!session.requested.has(o)) throw new Error(`no request to ${o}`);
  step("audit");
  stack.audit();
}
