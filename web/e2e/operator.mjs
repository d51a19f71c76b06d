// Scenarios of an operator's actions, followed live on the investor's page: a failed allocation
// retried from the admin's tab, and a completed investment reversed (ReverseAllocation) by an
// operator's tool, counted in the operator's figures.

import { rowOf, text, waitAvailable } from "./dashboard.mjs";
import { step, until } from "./wait.mjs";

export async function retryFailed({ page, admin, failed }) {
  step("as admin: the failed allocation named, Retry from the keyboard with feedback");
  const retry = admin.locator(`#failed tbody tr[data-id="${failed}"] button`);
  await retry.waitFor();
  if ((await text(admin, `#failed tr[data-id="${failed}"] [data-term="deal"]`)) !== "Initech AI (little inventory)") {
    throw new Error("the failed row does not name its deal");
  }
  if ((await text(admin, `#failed tr[data-id="${failed}"] [data-term="amount"]`)) !== "$50.00") throw new Error("no amount on the failed row");
  const before = Number(await rowOf(page, failed).getAttribute("data-version"));
  await retry.focus();
  await admin.keyboard.press("Enter");
  await admin.locator("#operator-done").filter({ hasText: "Retried" }).waitFor();
  // The deal still has nothing left, so it fails again, with a newer version: the user's page
  // follows it live.
  await until("the retried investment FAILED again at a newer version", async () => {
    const version = Number(await rowOf(page, failed).getAttribute("data-version"));
    return version > before && (await rowOf(page, failed).getAttribute("data-status")) === "FAILED";
  });
  await admin.locator(`#failed tbody tr[data-id="${failed}"]`).waitFor();
}

export async function reversed({ stack, page, admin, first }) {
  step("an operator reverses a completed investment (ReverseAllocation): REVERSED live with its reason, the value back");
  await stack.reverseElsewhere(stack.adminToken, first, "Refund requested by the investor");
  await rowOf(page, first)
    .and(page.locator('[data-status="REVERSED"]'))
    .locator(".details")
    .filter({ hasText: "Reversed by an operator (“Refund requested by the investor”): $100.00 is back in your plan." })
    .waitFor();
  const returned = await rowOf(page, first).locator(".allocations li").allTextContents();
  if (returned.join("|") !== "4 shares allocated, $100.00 (returned)") throw new Error(`reversed allocations ${JSON.stringify(returned)}`);
  await waitAvailable(page, "$5,775.00");
  // The operator's figures count both (GetQueueStats), refreshed by the page's polling.
  await until("one cancelled and one reversed in the operator's figures", async () => {
    const figures = await admin.locator("#queue div").evaluateAll((ds) =>
      Object.fromEntries(ds.map((d) => [d.querySelector("dt").textContent, d.querySelector("dd").textContent])),
    );
    return figures.Cancelled === "1" && figures.Reversed === "1";
  });
}
