// Scenarios of the investor's history and holdings over time: a deal closed still named on its
// investments and holdings (with the portfolio's totals), and the history paging back through
// investments made elsewhere.

import { idsOf, live, rowOf, rowsOf, text } from "./dashboard.mjs";
import { ACTIVE, OPEN_DEAL, SCARCE_DEAL } from "./seed.mjs";
import { step, until } from "./wait.mjs";

export async function dealClosed({ stack, page, taken }) {
  step("a deal closed: its investments and holdings still show its name (GetDeals)");
  stack.sql(`UPDATE deals SET status = 'closed' WHERE id = '${SCARCE_DEAL}'`);
  await page.reload();
  await live(page);
  await rowsOf(page).nth(7).waitFor();
  await page.locator(`#deal option[value="${SCARCE_DEAL}"]`).waitFor({ state: "detached" });
  await rowOf(page, taken).locator('[data-term="deal"]').filter({ hasText: "Initech AI (little inventory)" }).waitFor();
  await page.locator(`#portfolio tr[data-deal="${SCARCE_DEAL}"]`).filter({ hasText: "Initech AI" }).waitFor();
  // 3 + 2 + 1 + 1 shares of Acme at $25.00 (the 4 reversed, the 2 cancelled are not held) and
  // 5 of Initech at $10.00.
  await page.locator("#portfolio .total").filter({ hasText: "Total value $225.00 in 2 deals" }).waitFor();
  const share = await text(page, `#portfolio tr[data-deal="${OPEN_DEAL}"] [data-term="share"]`);
  if (share !== "77.8 %") throw new Error(`Acme's share of the portfolio ${share}`);
  if (!(await page.locator("#portfolio canvas").evaluate((c) => c.width > 0 && c.height > 0))) throw new Error("no chart drawn");
}

export async function historyPages({ stack, page }) {
  step("history pages back: 50 more investments made elsewhere, the newest 50 shown, older ones on request");
  for (let n = 0; n < 50; n++) await stack.createElsewhere(stack.token, ACTIVE, OPEN_DEAL, 1);
  await page.reload();
  await live(page);
  await until("50 rows and a way to older ones", async () => (await rowsOf(page).count()) === 50 && (await page.locator("#older").isVisible()));
  await page.click("#older");
  await until("all 58 investments, none twice", async () => {
    const all = await idsOf(page);
    return all.length === 58 && new Set(all).size === 58;
  });
  if (await page.locator("#older").isVisible()) throw new Error("a way to older investments after the last page");
  if ((await rowsOf(page).first().locator('[data-term="deal"]').textContent()) !== "Acme Robotics (pre-IPO)") throw new Error("newest row");
}
