// Scenarios of the live stream's gaps: allocation-svc restarting under the page, and an
// investment completing while the page loads (between the stream opening and the list read).

import { invest, live, rowOf, rowsOf, signInLink } from "./dashboard.mjs";
import { ACTIVE, OPEN_DEAL } from "./seed.mjs";
import { step, until } from "./wait.mjs";

export async function allocationRestarts({ stack, session, page, admin }) {
  step("allocation-svc restarts: the dashboard reconnects and catches up");
  session.networkErrorsExpected = true;
  await stack.services.stop("allocation-svc");
  await page.waitForSelector('#link[data-state="reconnecting"]');
  await invest(page, ACTIVE, OPEN_DEAL, 2);
  await page.locator("#invest-done").filter({ hasText: "2 shares" }).waitFor();
  await stack.services.start("allocation-svc", stack.allocPort);
  await live(page);
  await live(admin);
  session.networkErrorsExpected = false;
  await until("the investment made while allocation-svc was down COMPLETED", async () => {
    const statuses = await rowsOf(page).evaluateAll((trs) => trs.map((tr) => tr.dataset.status));
    return statuses.length === 5 && statuses.filter((s) => s === "COMPLETED").length === 4;
  });
}

export async function completedWhileLoading({ stack, session, page, admin }) {
  step("an investment completed while the page loads is shown (the stream opens before the list is read)");
  const loading = await session.newPage();
  let listHeld;
  const listed = new Promise((resolve) => (listHeld = resolve));
  let heldOnce = false;
  // The history's first page (page_size 50 and nothing else, after grpc-web's 5-byte frame
  // header), not the portfolio's read of completed investments.
  const historyFirstPage = (r) => Buffer.from([0x08, 50]).equals((r.postDataBuffer() ?? Buffer.alloc(0)).subarray(5));
  await loading.route("**/invest.v1.InvestmentService/ListInvestments", async (route) => {
    if (heldOnce || !historyFirstPage(route.request())) return route.continue();
    heldOnce = true;
    try {
      const answer = await stack.deliverOnly(route.request()); // read now, delivered after the investment completed
      listHeld();
      await until("the other tab's investment COMPLETED", async () => (await rowsOf(admin).evaluateAll((t) => t.filter((r) => r.dataset.status === "COMPLETED").length)) === 5);
      const hopByHop = new Set(["connection", "content-length", "transfer-encoding", "keep-alive"]);
      const headers = Object.fromEntries(
        Object.entries(answer.headers).filter(([k]) => !hopByHop.has(k)).map(([k, v]) => [k, String(v)]),
      );
      await route.fulfill({ status: answer.status, headers, body: answer.body });
    } catch (err) {
      listHeld(Promise.reject(err));
    }
  });
  await loading.goto(signInLink(stack, stack.token));
  await listed;
  await invest(admin, ACTIVE, OPEN_DEAL, 1);
  await until("the other tab shows its new investment", async () => (await rowsOf(admin).count()) === 6);
  const late = await rowsOf(admin).first().getAttribute("data-id");
  await rowOf(loading, late).and(loading.locator('[data-status="COMPLETED"]')).waitFor();
  await loading.close();
  await until("six rows here, five COMPLETED, none twice", async () => {
    const all = await rowsOf(page).evaluateAll((trs) => trs.map((tr) => [tr.dataset.id, tr.dataset.status]));
    return all.length === 6 && new Set(all.map(([id]) => id)).size === 6 && all.filter(([, s]) => s === "COMPLETED").length === 5;
  });
}
