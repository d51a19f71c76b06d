// The dashboard's page as the scenarios read and drive it: the sign-in link, the history's rows,
// the plan's balance, the live stream's state, and an investment made with the keyboard.

import { ACTIVE } from "./seed.mjs";
import { until } from "./wait.mjs";

/** The active plan's balances. */
export const PLAN = `#balances .plan[data-id="${ACTIVE}"]`;

/** A sign-in link to the page of `stack` with `token`, naming the decoy for both services: the
 * page must ignore those addresses. */
export const signInLink = (stack, token) =>
  `${stack.origin}/#token=${token}&investment=${stack.decoy.origin}&allocation=${stack.decoy.origin}`;

export const rowsOf = (p) => p.locator("#investments tbody tr[data-id]");
export const rowOf = (p, id) => p.locator(`#investments tbody tr[data-id="${id}"]`);
/** The ids of the history's rows, newest first. */
export const idsOf = (p) => rowsOf(p).evaluateAll((trs) => trs.map((tr) => tr.dataset.id));
export const live = (p) => p.waitForSelector('#link[data-state="live"]');
export const text = async (p, selector) => (await p.locator(selector).textContent())?.trim();

/** The active plan's available amount, as shown. */
export const available = (p) => text(p, `${PLAN} [data-term="available"]`);
export const waitAvailable = (p, amount) => until(`${amount} available`, async () => (await available(p)) === amount);

/** Reviews and confirms an investment on `p` with the keyboard. */
export async function invest(p, subscription, deal, shares) {
  await p.selectOption("#subscription", subscription);
  await p.selectOption("#deal", deal);
  await p.fill("#shares", String(shares));
  await p.focus("#shares");
  await p.keyboard.press("Enter");
  await p.locator("#confirm").waitFor();
  if ((await p.evaluate(() => document.activeElement?.id)) !== "confirm-yes") throw new Error("the focus is not on Confirm");
  await p.keyboard.press("Enter");
}
