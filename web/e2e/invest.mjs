// Scenarios of investing: shares checked before anything is sent, an investment made with the
// keyboard and followed live, an answer lost on the way back (the retry reuses its request_id),
// a paused plan refused in words, and a deal's last shares taken by another tab first.

import { PLAN, idsOf, invest, live, rowOf, signInLink, text } from "./dashboard.mjs";
import { ACTIVE, OPEN_DEAL, PAUSED, SCARCE_DEAL } from "./seed.mjs";
import { step, until } from "./wait.mjs";

export async function sharesChecked({ session, page }) {
  step("shares checked before anything is sent: 1e3, then 50 of a deal with 5 available");
  await page.selectOption("#deal", SCARCE_DEAL);
  await page.fill("#shares", "1e3");
  await page.click("#invest-submit");
  await page.locator("#shares-error").filter({ hasText: "digits only" }).waitFor();
  await page.fill("#shares", "50");
  await page.click("#invest-submit");
  await page.locator("#shares-error").filter({ hasText: "Only 5 shares are available" }).waitFor();
  if ((await page.getAttribute("#shares", "aria-invalid")) !== "true") throw new Error("shares not marked invalid");
  if (session.creates.length !== 0) throw new Error(`${session.creates.length} CreateInvestment sent for refused shares`);
}

/** Leaves the investment made in `t.first`. */
export async function investWithKeyboard(t) {
  const { page } = t;
  step("invest with the keyboard: cost preview, confirmation, then COMPLETED live with its allocations");
  await page.selectOption("#deal", OPEN_DEAL);
  await page.fill("#shares", "4");
  await page.locator("#cost").filter({ hasText: "4 × $25.00 = $100.00" }).waitFor();
  await invest(page, ACTIVE, OPEN_DEAL, 4);
  await page.locator('#investments tbody tr[data-status="COMPLETED"] .allocations li').first().waitFor();
  const first = (await idsOf(page))[0];
  t.first = first;
  const allocations = await rowOf(page, first).locator(".allocations li").allTextContents();
  if (allocations.length !== 1 || allocations[0] !== "4 shares allocated, $100.00") {
    throw new Error(`allocations ${JSON.stringify(allocations)}`);
  }
  if ((await text(page, `#investments tr[data-id="${first}"] [data-term="deal"]`)) !== "Acme Robotics (pre-IPO)") {
    throw new Error("the row does not name its deal");
  }
  if ((await page.locator("#announce").textContent()) === "") throw new Error("the status change was not announced");
  // Balances and holdings follow without a reload.
  await page.locator(`${PLAN} [data-term="invested"]`).filter({ hasText: "$100.00" }).waitFor();
  await page.locator(`#portfolio tr[data-deal="${OPEN_DEAL}"] [data-term="units"]`).filter({ hasText: "4" }).waitFor();
}

export async function lostAnswer({ stack, session, page }) {
  step("an answer lost on the way back: confirming again reuses the intent's request_id");
  session.networkErrorsExpected = true;
  let lost = 0;
  await page.route("**/invest.v1.InvestmentService/CreateInvestment", async (route) => {
    if (lost++ === 0) {
      await stack.deliverOnly(route.request()); // the server commits it...
      await route.abort("connectionreset"); // ...and the browser never hears back
    } else {
      await route.continue();
    }
  });
  await invest(page, ACTIVE, OPEN_DEAL, 3);
  await page.locator("#invest-error").filter({ hasText: /./ }).waitFor();
  await page.click("#confirm-yes");
  await page.locator("#invest-done").filter({ hasText: "3 shares" }).waitFor();
  await page.unroute("**/invest.v1.InvestmentService/CreateInvestment");
  session.networkErrorsExpected = false;
  await until("two investments, each shown once", async () => (await idsOf(page)).length === 2);
  await page.locator('#investments tbody tr[data-status="COMPLETED"]').nth(1).waitFor();
}

export async function pausedPlan({ page }) {
  step("a paused plan: the refusal in words next to the plan");
  await invest(page, PAUSED, OPEN_DEAL, 1);
  await page.locator("#subscription-error").filter({ hasText: "This plan is paused" }).waitFor();
  await page.click("#confirm-no");
}

/** Opens the admin's tab (`t.admin`), used from here on; leaves the other tab's investment in
 * `t.taken` and the one that failed here in `t.failed`. */
export async function lastSharesTaken(t) {
  const { stack, session, page } = t;
  step("another tab takes the last 5 shares of a deal this tab is about to buy: FAILED, with its reason");
  const admin = await session.newPage();
  t.admin = admin;
  await admin.goto(signInLink(stack, stack.adminToken));
  await live(admin);
  await admin.locator(`#deal option[value="${SCARCE_DEAL}"]`).waitFor({ state: "attached" });
  await page.selectOption("#subscription", ACTIVE);
  await page.selectOption("#deal", SCARCE_DEAL);
  await page.fill("#shares", "5");
  await page.click("#invest-submit");
  await page.locator("#confirm").waitFor();
  await invest(admin, ACTIVE, SCARCE_DEAL, 5);
  await admin.locator('#investments tbody tr[data-status="COMPLETED"]').nth(2).waitFor();
  const taken = await admin.locator("#investments tbody tr[data-id]").first().getAttribute("data-id");
  t.taken = taken;
  // Made in the other tab: here it arrives over the stream, with its shares and amount.
  await rowOf(page, taken).locator('[data-term="amount"]').filter({ hasText: "$50.00" }).waitFor();
  if ((await text(page, `#investments tr[data-id="${taken}"] [data-term="shares"]`)) !== "5") throw new Error("no shares on a streamed row");
  await page.click("#confirm-yes");
  await page.locator('#investments tbody tr[data-status="FAILED"] .details').filter({ hasText: "Not enough shares" }).waitFor();
  t.failed = await page.locator('#investments tbody tr[data-status="FAILED"]').getAttribute("data-id");
}
