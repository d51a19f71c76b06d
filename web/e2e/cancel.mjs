// Scenarios of cancelling a waiting investment: its deal's row held open in the database so the
// allocator waits; cancelled in time (CANCELLED in both tabs, the amount back, the question
// accessible and fitting a phone), and too late (refused in words).

import { audit, fitsWidth } from "./checks.mjs";
import { holdRow } from "./db.mjs";
import { invest, rowOf, waitAvailable } from "./dashboard.mjs";
import { ACTIVE, OPEN_DEAL } from "./seed.mjs";
import { WAIT, step, until } from "./wait.mjs";

const waitingRow = (page) => page.locator('#investments tbody tr[data-status="PENDING"]');

/** Leaves the deal's row held in `t.hold` for `cancelTooLate`, which lets it go. */
export async function cancelWaiting(t) {
  const { stack, page, admin } = t;
  step("a waiting investment cancelled (its deal's row held open, so the allocator waits): CANCELLED in both tabs, the balance back");
  await waitAvailable(page, "$5,700.00");
  t.hold = await holdRow(stack.dbUrl, `SELECT id FROM deals WHERE id = '${OPEN_DEAL}'`, "FOR NO KEY UPDATE", WAIT);
  await invest(page, ACTIVE, OPEN_DEAL, 2);
  const waiting = waitingRow(page);
  await waiting.waitFor();
  const cancelled = await waiting.getAttribute("data-id");
  await waitAvailable(page, "$5,650.00");
  await page.getByRole("button", { name: /^Cancel the investment in Acme Robotics \(pre-IPO\) of / }).focus();
  await page.keyboard.press("Enter");
  await rowOf(page, cancelled).getByRole("group", { name: "Cancel 2 shares of Acme Robotics (pre-IPO) ($50.00)? The amount goes back to your plan." }).waitFor();
  if (!(await page.evaluate(() => document.activeElement?.classList.contains("cancel-yes")))) throw new Error("the focus is not on Yes, cancel it");
  // The question in the row passes the audit, and fits a phone's width.
  step(`  the open question: axe ${JSON.stringify(await audit(page, "a waiting row's Cancel question"))}`);
  await page.setViewportSize({ width: 390, height: 844 });
  await fitsWidth(page, [`#investments tr[data-id="${cancelled}"] .cancel-yes`, `#investments tr[data-id="${cancelled}"] .cancel-no`]);
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.keyboard.press("Enter");
  await page.locator("#history-done").filter({ hasText: "Cancelled: 2 shares of Acme Robotics (pre-IPO) ($50.00)." }).waitFor();
  await rowOf(page, cancelled).and(page.locator('[data-status="CANCELLED"]')).locator(".details").filter({ hasText: "You cancelled it" }).waitFor();
  // The other tab learns it from the stream only.
  await rowOf(admin, cancelled).and(admin.locator('[data-status="CANCELLED"]')).waitFor();
  await waitAvailable(page, "$5,700.00");
}

export async function cancelTooLate(t) {
  const { page, admin } = t;
  step("a cancel too late (the deal let go and the investment allocated before the call arrives): refused, in words");
  await invest(page, ACTIVE, OPEN_DEAL, 1);
  const waiting = waitingRow(page);
  await waiting.waitFor();
  const tooLate = await waiting.getAttribute("data-id");
  const row = rowOf(page, tooLate);
  // "Keep it" closes the question and gives the focus back to the row's Cancel button.
  await row.getByRole("button", { name: /^Cancel the investment/ }).click();
  await row.getByRole("button", { name: "Keep it" }).click();
  await row.getByRole("group").waitFor({ state: "detached" });
  await until("the focus back on Cancel", () => page.evaluate((id) => document.activeElement?.matches(`tr[data-id="${id}"] .cancel`), tooLate));
  await row.getByRole("button", { name: /^Cancel the investment/ }).click();
  await page.route("**/invest.v1.InvestmentService/CancelInvestment", async (route) => {
    await t.hold.release();
    t.hold = undefined;
    await until("the investment COMPLETED in the other tab", async () => (await rowOf(admin, tooLate).getAttribute("data-status")) === "COMPLETED");
    await route.continue();
  });
  await row.getByRole("button", { name: "Yes, cancel it" }).click();
  await page.locator("#history .error").filter({ hasText: "Not cancelled: This investment can no longer be cancelled: its shares were already allocated." }).waitFor();
  await page.unroute("**/invest.v1.InvestmentService/CancelInvestment");
  await row.and(page.locator('[data-status="COMPLETED"]')).waitFor();
  if ((await row.getByRole("button").count()) !== 0) throw new Error("a completed row still offers Cancel");
  await waitAvailable(page, "$5,675.00");
}
