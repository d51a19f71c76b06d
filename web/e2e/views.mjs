// Scenarios of how the views read and look: words rather than internals on the investor's page,
// and every view (investor's, operator's) at 1280 and 390 px, audited, with screenshots.

import { walkView } from "./checks.mjs";
import { PLAN, text } from "./dashboard.mjs";
import { step } from "./wait.mjs";

export async function wordsNotInternals({ page, first }) {
  step("words, not internals: no UUID, formula or raw status name on the investor's page; dates on rows");
  const shown = await page.locator("#app").innerText();
  const internals = shown.match(/[0-9a-f]{8}-[0-9a-f]{4}-|max\(|total value =|ALLOCATION_STATUS|PENDING|COMPLETED|Bearer/g);
  if (internals) throw new Error(`the page shows ${JSON.stringify(internals)}`);
  const date = await text(page, `#investments tr[data-id="${first}"] .date`);
  if (!/^[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2} [AP]M$/.test(date)) throw new Error(`the row's date reads ${JSON.stringify(date)}`);
}

export async function everyView({ session, page, admin, failed }) {
  const { screenshots, shots } = session;
  step(`every view at 1280 and 390 px: layout, accessibility audit, screenshots in ${screenshots}`);
  const important = ['#investments [data-term="status"]', '#investments [data-term="amount"]', `${PLAN} [data-term="available"]`];
  // The README's pictures: the investor's dashboard and the operator's.
  await page.setViewportSize({ width: 1280, height: 900 });
  shots.push(...(await walkView(page, screenshots, "dashboard", important)));
  shots.push(
    ...(await walkView(admin, screenshots, "operator", [
      ...important,
      `#failed tr[data-id="${failed}"] button`,
      `#failed tr[data-id="${failed}"] [data-term="amount"]`,
    ])),
  );
  for (const s of shots) step(`  ${s}`);
}
