// Scenarios of signing in and out: signed out only the sign-in form shows (under the page's
// Content-Security-Policy), a refused token signs out with one message, a sign-in link signs in
// without calling the addresses it names, and signing out leaves the sign-in form alone.

import { randomBytes } from "node:crypto";
import { walkView } from "./checks.mjs";
import { PLAN, signInLink, text } from "./dashboard.mjs";
import { DEMO_USER, SCARCE_DEAL } from "./seed.mjs";
import { step, until } from "./wait.mjs";

/** A token whose signature the services cannot verify: well formed, refused. */
function forgedToken() {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const exp = Math.floor(Date.now() / 1000) + 3600;
  return `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: DEMO_USER, roles: [], exp })}.${randomBytes(32).toString("base64url")}`;
}

export async function signedOut({ stack, session, page }) {
  const { origin, investOrigin, allocOrigin } = stack;
  step(`signed out (${origin}): the sign-in form only, nothing of the dashboard`);
  const response = await page.goto(origin);
  const csp = response.headers()["content-security-policy"] ?? "";
  const expectedCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; " +
    `connect-src 'self' ${investOrigin} ${allocOrigin}; img-src 'self' data:; object-src 'none'; ` +
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
  if (csp !== expectedCsp) throw new Error(`Content-Security-Policy ${JSON.stringify(csp)}, expected ${expectedCsp}`);
  await page.locator("#sign-in").waitFor();
  for (const hidden of ["#app", "#invest", "#link", "#sign-out"]) {
    if (await page.locator(hidden).isVisible()) throw new Error(`${hidden} shows while signed out`);
  }
  session.shots.push(...(await walkView(page, session.screenshots, "sign-in", ["#sign-in button"])));
}

export async function refusedToken({ stack, session, page }) {
  step("a refused token: signed out once, with the sign-in form and one message");
  session.networkErrorsExpected = true;
  await page.goto(signInLink(stack, forgedToken()));
  await page.locator("#sign-in").waitFor();
  await until("one message on the sign-in form", async () => (await page.locator("#sign-in .error").textContent()) !== "");
  const alerts = await page.locator('[role="alert"]:visible').allTextContents();
  if (alerts.filter((t) => t.trim() !== "").length !== 1 || !/sign in again/i.test(alerts.join(" "))) {
    throw new Error(`after a refused token: ${JSON.stringify(alerts)}`);
  }
  if (await page.locator("#app").isVisible()) throw new Error("the dashboard shows after a refused token");
  session.networkErrorsExpected = false;
}

export async function signInFromLink({ stack, session, page }) {
  const { origin } = stack;
  step("a sign-in link opened in the tab already on the page signs in (the link's addresses ignored)");
  await page.evaluate((hash) => (location.hash = hash), signInLink(stack, stack.token).split("#")[1]);
  await until("the page live, having called no one else", async () => {
    session.noDecoyNoViolation();
    return page.locator('#link[data-state="live"]').isVisible();
  });
  if (page.url() !== `${origin}/`) throw new Error(`the address bar kept ${page.url()}`);
  if (!(await page.locator("#sign-in").isHidden())) throw new Error("the sign-in form stayed");
  if ((await text(page, "#who")).includes(DEMO_USER)) throw new Error("the header shows the user's id");
  await page.locator(PLAN).waitFor();
  if ((await text(page, `${PLAN} [data-term="available"]`)) !== "$6,000.00") {
    throw new Error(`available ${await text(page, `${PLAN} [data-term="available"]`)}, expected $6,000.00`);
  }
  await page.locator(`#deal option[value="${SCARCE_DEAL}"]`).waitFor({ state: "attached" });
  await page.locator("#portfolio .total").filter({ hasText: "no shares yet" }).waitFor();
  await page.locator("#investments tr.note").filter({ hasText: "No investments yet" }).waitFor();
}

export async function signOut({ page }) {
  step("signing out: back to the sign-in form only");
  await page.click("#sign-out");
  await page.locator("#sign-in").waitFor();
  if (await page.locator("#app").isVisible()) throw new Error("the dashboard shows after signing out");
}
