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

import { execFileSync, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { preview } from "vite";
import { audit, fitsWidth, walkView } from "./checks.mjs";
import { holdRow, sql as sqlOn } from "./db.mjs";
import { field, unary } from "./grpcweb.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const bin = process.env.INVEST_BIN_DIR ?? path.join(root, "target/debug");
const DEMO_USER = "11111111-1111-4111-8111-111111111111";
const ACTIVE = "a0000000-0000-4000-8000-000000000001";
const PAUSED = "a0000000-0000-4000-8000-000000000002";
const OPEN_DEAL = "d0000000-0000-4000-8000-000000000001";
const SCARCE_DEAL = "d0000000-0000-4000-8000-000000000003";
const WAIT = 30_000;
const screenshots = path.resolve(root, process.env.SCREENSHOTS ?? "web/e2e/screenshots");
const tls = process.env.E2E_TLS === "1";
const scheme = tls ? "https" : "http";
const started = Date.now();

function step(what) {
  console.log(`[e2e ${((Date.now() - started) / 1000).toFixed(1)}s] ${what}`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function until(what, check, deadline = WAIT) {
  const end = Date.now() + deadline;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out after ${deadline} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

// --- the system under test ---------------------------------------------------------------------

const run = `${process.pid}${randomBytes(3).toString("hex")}`;
const dbUrl = new URL(process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:55432/postgres");
dbUrl.pathname = `/web_e2e_${run}`;
const secret = randomBytes(32).toString("hex");
const [investPort, allocPort, webPort] = await Promise.all([freePort(), freePort(), freePort()]);
const origin = `${scheme}://127.0.0.1:${webPort}`;
const investOrigin = `${scheme}://127.0.0.1:${investPort}`;
const allocOrigin = `${scheme}://127.0.0.1:${allocPort}`;
const scratch = mkdtempSync(path.join(tmpdir(), "invest-web-e2e-"));
const env = {
  ...process.env,
  DATABASE_URL: dbUrl.toString(),
  NATS_URL: process.env.NATS_URL ?? "nats://127.0.0.1:54222",
  NATS_STREAM: `WEB_E2E_${run}`,
  NATS_SUBJECT_PREFIX: `webe2e${run}`,
  JWT_SECRET: secret,
  CORS_ALLOWED_ORIGINS: origin,
  LOG_FORMAT: "text",
  // The cancel step holds the deal's row in an open transaction so that the allocator waits for
  // it: long enough that no attempt times out (and is retried) while the test cancels.
  LOCK_TIMEOUT: "120s",
};
const investctl = (...args) =>
  execFileSync(path.join(bin, "investctl"), args, { env, encoding: "utf8" }).trim().split("\n").at(-1);

step(`database ${dbUrl.pathname.slice(1)}: migrate and seed`);
investctl("migrate");
investctl("seed");
const token = investctl("token", "--user", DEMO_USER);
const adminToken = investctl("token", "--user", DEMO_USER, "--admin");

// HTTPS: a development CA, the services' and the page's certificate from it, and a HOME whose NSS
// database trusts that CA, for Chromium alone (nothing of the machine's trust changes).
const certs = path.join(scratch, "certs");
const browserHome = path.join(scratch, "home");
let ca;
if (tls) {
  step("HTTPS: development CA (investctl dev-certs), trusted by Chromium through its NSS database");
  execFileSync(path.join(bin, "investctl"), ["dev-certs", "--dir", certs], { env, stdio: "ignore" });
  const nssdb = `sql:${path.join(browserHome, ".pki/nssdb")}`;
  mkdirSync(path.join(browserHome, ".pki/nssdb"), { recursive: true });
  try {
    execFileSync("certutil", ["-N", "-d", nssdb, "--empty-password"], { stdio: "inherit" });
    execFileSync("certutil", ["-A", "-d", nssdb, "-t", "C,,", "-n", "invest-dev-ca", "-i", path.join(certs, "ca.pem")], {
      stdio: "inherit",
    });
  } catch (err) {
    throw new Error(`certutil failed (apt-get install libnss3-tools): ${err.message}`);
  }
  ca = readFileSync(path.join(certs, "ca.pem"));
  Object.assign(env, {
    TLS_CERT_FILE: path.join(certs, "server.pem"),
    TLS_KEY_FILE: path.join(certs, "server-key.pem"),
  });
}

const services = new Map();
const logs = [];
async function startService(name, port) {
  const child = spawn(path.join(bin, name), [], {
    env: { ...env, LISTEN_ADDR: `127.0.0.1:${port}` },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => logs.push(`${name}: ${d}`));
  child.stderr.on("data", (d) => logs.push(`${name}: ${d}`));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  services.set(name, { child, exited });
  await until(`${name} listening`, async () => {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`);
    return portOpen(port);
  });
}
async function stopService(name) {
  const s = services.get(name);
  s.child.kill("SIGTERM");
  await s.exited;
}

// Where a link tries to send the dashboard: a server that only counts what reaches it.
const decoyRequests = [];
const decoyHandler = (req, res) => {
  decoyRequests.push(`${req.method} ${req.url}`);
  res.writeHead(404).end();
};
const decoy = tls
  ? https.createServer(
      { cert: readFileSync(env.TLS_CERT_FILE), key: readFileSync(env.TLS_KEY_FILE) },
      decoyHandler,
    )
  : http.createServer(decoyHandler);
await new Promise((resolve) => decoy.listen(0, "127.0.0.1", resolve));
const decoyOrigin = `${scheme}://127.0.0.1:${decoy.address().port}`;

/** Sends a request the page made to the real service from here, and reads the whole answer
 * (status, headers, body): the service acts on it whatever the page is then told. */
async function deliverOnly(request) {
  const url = new URL(request.url());
  const headers = { ...request.headers() };
  for (const h of ["host", "connection", "content-length"]) delete headers[h];
  const body = request.postDataBuffer() ?? Buffer.alloc(0);
  return new Promise((resolve, reject) => {
    const req = (url.protocol === "https:" ? https : http).request(
      url,
      { method: request.method(), headers: { ...headers, "content-length": body.length }, ca },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** CreateInvestment over grpc-web from here, as another client would (subscription_id = 1,
 * deal_id = 2, shares = 3). */
const createElsewhere = (bearer, subscriptionId, dealId, shares) =>
  unary({
    serviceOrigin: investOrigin,
    method: "invest.v1.InvestmentService/CreateInvestment",
    bearer,
    pageOrigin: origin,
    ca,
    fields: [field(1, subscriptionId), field(2, dealId), field(3, shares)],
  });

/** ReverseAllocation as an operator's tool would call it (investment_id = 1, reason = 2,
 * request_id = 3). */
const reverseElsewhere = (bearer, investmentId, reason) =>
  unary({
    serviceOrigin: allocOrigin,
    method: "invest.v1.AllocationService/ReverseAllocation",
    bearer,
    pageOrigin: origin,
    ca,
    fields: [field(1, investmentId), field(2, reason), field(3, randomUUID())],
  });

let browser;
let server;
/** The deal's row lock the cancel step holds, while it does. */
let hold;
async function cleanup() {
  await hold?.release().catch(() => {});
  await browser?.close().catch(() => {});
  await server?.close().catch(() => {});
  decoy.close();
  for (const { child } of services.values()) if (child.exitCode === null) child.kill("SIGTERM");
  await Promise.all([...services.values()].map((s) => s.exited));
  rmSync(scratch, { recursive: true, force: true });
}

// --- the test ------------------------------------------------------------------------------------

const consoleErrors = [];
let networkErrorsExpected = false;
/** Every origin the pages sent a request to. */
const requested = new Set();

/** A statement on the test's database (a deal closed, as an operator would). */
const sql = (statement) => sqlOn(dbUrl.toString(), statement);

/** A token whose signature the services cannot verify: well formed, refused. */
function forgedToken() {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const exp = Math.floor(Date.now() / 1000) + 3600;
  return `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: DEMO_USER, roles: [], exp })}.${randomBytes(32).toString("base64url")}`;
}

const shots = [];
try {
  await startService("investment-svc", investPort);
  await startService("allocation-svc", allocPort);
  // The dashboard's configuration, as scripts/up or a deployment gives it (vite.config.ts).
  Object.assign(process.env, {
    DASHBOARD_INVESTMENT_URL: investOrigin,
    DASHBOARD_ALLOCATION_URL: allocOrigin,
    ...(tls ? { DASHBOARD_TLS_CERT_FILE: env.TLS_CERT_FILE, DASHBOARD_TLS_KEY_FILE: env.TLS_KEY_FILE } : {}),
  });
  server = await preview({
    root: path.resolve(here, ".."),
    logLevel: "warn",
    preview: { host: "127.0.0.1", port: webPort, strictPort: true },
  });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox"],
    // The development CA is trusted through this HOME's NSS database, and only there.
    env: tls ? { ...process.env, HOME: browserHome } : process.env,
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-US", timezoneId: "UTC" });
  // Every CSP violation is an error on the console (the test fails on those), also where the
  // browser would report it only to a report-uri.
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) =>
      console.error(`Content Security Policy violation: ${e.violatedDirective} blocked ${e.blockedURI}`),
    );
  });
  context.on("request", (r) => requested.add(new URL(r.url()).origin));
  const watchConsole = (p) => {
    p.on("console", (m) => {
      if (m.type() !== "error") return;
      const text = m.text();
      // A failed fetch is logged by the browser itself: expected only while we break the
      // network (or the services refuse a token); never one that the CSP refused.
      const csp = /Content.Security.Policy|ERR_BLOCKED_BY_CSP/i.test(text);
      if (!csp && networkErrorsExpected && /Failed to load resource|ERR_/.test(text)) return;
      consoleErrors.push(text);
    });
    p.on("pageerror", (e) => consoleErrors.push(String(e)));
  };
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  watchConsole(page);
  const noDecoyNoViolation = () => {
    if (decoyRequests.length > 0 || requested.has(decoyOrigin)) {
      throw new Error(`the page called ${decoyOrigin}: ${JSON.stringify(decoyRequests)}`);
    }
    const violations = consoleErrors.filter((e) => /Content.Security.Policy/i.test(e));
    if (violations.length > 0) throw new Error(`Content-Security-Policy violations:\n${violations.join("\n")}`);
  };
  const creates = [];
  context.on("request", (r) => {
    if (r.url().endsWith("/invest.v1.InvestmentService/CreateInvestment")) creates.push(r);
  });

  // A link naming other addresses for both services: they must be ignored.
  const signIn = (t) => `${origin}/#token=${t}&investment=${decoyOrigin}&allocation=${decoyOrigin}`;
  const rowsOf = (p) => p.locator("#investments tbody tr[data-id]");
  const rowOf = (p, id) => p.locator(`#investments tbody tr[data-id="${id}"]`);
  const rows = () => rowsOf(page);
  const row = (id) => rowOf(page, id);
  const ids = () => rows().evaluateAll((trs) => trs.map((tr) => tr.dataset.id));
  const live = (p = page) => p.waitForSelector('#link[data-state="live"]');
  const text = async (p, selector) => (await p.locator(selector).textContent())?.trim();
  mkdirSync(screenshots, { recursive: true });

  /** Reviews and confirms an investment on `p` with the keyboard. */
  async function invest(p, subscription, deal, shares) {
    await p.selectOption("#subscription", subscription);
    await p.selectOption("#deal", deal);
    await p.fill("#shares", String(shares));
    await p.focus("#shares");
    await p.keyboard.press("Enter");
    await p.locator("#confirm").waitFor();
    if ((await p.evaluate(() => document.activeElement?.id)) !== "confirm-yes") throw new Error("the focus is not on Confirm");
    await p.keyboard.press("Enter");
  }

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
  shots.push(...(await walkView(page, screenshots, "sign-in", ["#sign-in button"])));

  step("a refused token: signed out once, with the sign-in form and one message");
  networkErrorsExpected = true;
  await page.goto(signIn(forgedToken()));
  await page.locator("#sign-in").waitFor();
  await until("one message on the sign-in form", async () => (await page.locator("#sign-in .error").textContent()) !== "");
  const alerts = await page.locator('[role="alert"]:visible').allTextContents();
  if (alerts.filter((t) => t.trim() !== "").length !== 1 || !/sign in again/i.test(alerts.join(" "))) {
    throw new Error(`after a refused token: ${JSON.stringify(alerts)}`);
  }
  if (await page.locator("#app").isVisible()) throw new Error("the dashboard shows after a refused token");
  networkErrorsExpected = false;

  step("a sign-in link opened in the tab already on the page signs in (the link's addresses ignored)");
  await page.evaluate((hash) => (location.hash = hash), signIn(token).split("#")[1]);
  await until("the page live, having called no one else", async () => {
    noDecoyNoViolation();
    return page.locator('#link[data-state="live"]').isVisible();
  });
  if (page.url() !== `${origin}/`) throw new Error(`the address bar kept ${page.url()}`);
  if (!(await page.locator("#sign-in").isHidden())) throw new Error("the sign-in form stayed");
  if ((await text(page, "#who")).includes(DEMO_USER)) throw new Error("the header shows the user's id");
  const plan = `#balances .plan[data-id="${ACTIVE}"]`;
  await page.locator(plan).waitFor();
  if ((await text(page, `${plan} [data-term="available"]`)) !== "$6,000.00") {
    throw new Error(`available ${await text(page, `${plan} [data-term="available"]`)}, expected $6,000.00`);
  }
  await page.locator(`#deal option[value="${SCARCE_DEAL}"]`).waitFor({ state: "attached" });
  await page.locator("#portfolio .total").filter({ hasText: "no shares yet" }).waitFor();
  await page.locator("#investments tr.note").filter({ hasText: "No investments yet" }).waitFor();

  step("shares checked before anything is sent: 1e3, then 50 of a deal with 5 available");
  await page.selectOption("#deal", SCARCE_DEAL);
  await page.fill("#shares", "1e3");
  await page.click("#invest-submit");
  await page.locator("#shares-error").filter({ hasText: "digits only" }).waitFor();
  await page.fill("#shares", "50");
  await page.click("#invest-submit");
  await page.locator("#shares-error").filter({ hasText: "Only 5 shares are available" }).waitFor();
  if ((await page.getAttribute("#shares", "aria-invalid")) !== "true") throw new Error("shares not marked invalid");
  if (creates.length !== 0) throw new Error(`${creates.length} CreateInvestment sent for refused shares`);

  step("invest with the keyboard: cost preview, confirmation, then COMPLETED live with its allocations");
  await page.selectOption("#deal", OPEN_DEAL);
  await page.fill("#shares", "4");
  await page.locator("#cost").filter({ hasText: "4 × $25.00 = $100.00" }).waitFor();
  await invest(page, ACTIVE, OPEN_DEAL, 4);
  await page.locator('#investments tbody tr[data-status="COMPLETED"] .allocations li').first().waitFor();
  const first = (await ids())[0];
  const allocations = await row(first).locator(".allocations li").allTextContents();
  if (allocations.length !== 1 || allocations[0] !== "4 shares allocated, $100.00") {
    throw new Error(`allocations ${JSON.stringify(allocations)}`);
  }
  if ((await text(page, `#investments tr[data-id="${first}"] [data-term="deal"]`)) !== "Acme Robotics (pre-IPO)") {
    throw new Error("the row does not name its deal");
  }
  if ((await page.locator("#announce").textContent()) === "") throw new Error("the status change was not announced");
  // Balances and holdings follow without a reload.
  await page.locator(`${plan} [data-term="invested"]`).filter({ hasText: "$100.00" }).waitFor();
  await page.locator(`#portfolio tr[data-deal="${OPEN_DEAL}"] [data-term="units"]`).filter({ hasText: "4" }).waitFor();

  step("an answer lost on the way back: confirming again reuses the intent's request_id");
  networkErrorsExpected = true;
  let lost = 0;
  await page.route("**/invest.v1.InvestmentService/CreateInvestment", async (route) => {
    if (lost++ === 0) {
      await deliverOnly(route.request()); // the server commits it...
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
  networkErrorsExpected = false;
  await until("two investments, each shown once", async () => (await ids()).length === 2);
  await page.locator('#investments tbody tr[data-status="COMPLETED"]').nth(1).waitFor();

  step("a paused plan: the refusal in words next to the plan");
  await invest(page, PAUSED, OPEN_DEAL, 1);
  await page.locator("#subscription-error").filter({ hasText: "This plan is paused" }).waitFor();
  await page.click("#confirm-no");

  step("another tab takes the last 5 shares of a deal this tab is about to buy: FAILED, with its reason");
  const admin = await context.newPage();
  admin.setDefaultTimeout(WAIT);
  watchConsole(admin);
  await admin.goto(signIn(adminToken));
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
  // Made in the other tab: here it arrives over the stream, with its shares and amount.
  await row(taken).locator('[data-term="amount"]').filter({ hasText: "$50.00" }).waitFor();
  if ((await text(page, `#investments tr[data-id="${taken}"] [data-term="shares"]`)) !== "5") throw new Error("no shares on a streamed row");
  await page.click("#confirm-yes");
  await page.locator('#investments tbody tr[data-status="FAILED"] .details').filter({ hasText: "Not enough shares" }).waitFor();
  const failed = await page.locator('#investments tbody tr[data-status="FAILED"]').getAttribute("data-id");

  step("allocation-svc restarts: the dashboard reconnects and catches up");
  networkErrorsExpected = true;
  await stopService("allocation-svc");
  await page.waitForSelector('#link[data-state="reconnecting"]');
  await invest(page, ACTIVE, OPEN_DEAL, 2);
  await page.locator("#invest-done").filter({ hasText: "2 shares" }).waitFor();
  await startService("allocation-svc", allocPort);
  await live();
  await live(admin);
  networkErrorsExpected = false;
  await until("the investment made while allocation-svc was down COMPLETED", async () => {
    const statuses = await rows().evaluateAll((trs) => trs.map((tr) => tr.dataset.status));
    return statuses.length === 5 && statuses.filter((s) => s === "COMPLETED").length === 4;
  });

  step("an investment completed while the page loads is shown (the stream opens before the list is read)");
  const loading = await context.newPage();
  loading.setDefaultTimeout(WAIT);
  watchConsole(loading);
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
      const answer = await deliverOnly(route.request()); // read now, delivered after the investment completed
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
  await loading.goto(signIn(token));
  await listed;
  await invest(admin, ACTIVE, OPEN_DEAL, 1);
  await until("the other tab shows its new investment", async () => (await rowsOf(admin).count()) === 6);
  const late = await rowsOf(admin).first().getAttribute("data-id");
  await rowOf(loading, late).and(loading.locator('[data-status="COMPLETED"]')).waitFor();
  await loading.close();
  await until("six rows here, five COMPLETED, none twice", async () => {
    const all = await rows().evaluateAll((trs) => trs.map((tr) => [tr.dataset.id, tr.dataset.status]));
    return all.length === 6 && new Set(all.map(([id]) => id)).size === 6 && all.filter(([, s]) => s === "COMPLETED").length === 5;
  });

  step("as admin: the failed allocation named, Retry from the keyboard with feedback");
  const retry = admin.locator(`#failed tbody tr[data-id="${failed}"] button`);
  await retry.waitFor();
  if ((await text(admin, `#failed tr[data-id="${failed}"] [data-term="deal"]`)) !== "Initech AI (little inventory)") {
    throw new Error("the failed row does not name its deal");
  }
  if ((await text(admin, `#failed tr[data-id="${failed}"] [data-term="amount"]`)) !== "$50.00") throw new Error("no amount on the failed row");
  const before = Number(await row(failed).getAttribute("data-version"));
  await retry.focus();
  await admin.keyboard.press("Enter");
  await admin.locator("#operator-done").filter({ hasText: "Retried" }).waitFor();
  // The deal still has nothing left, so it fails again, with a newer version: the user's page
  // follows it live.
  await until("the retried investment FAILED again at a newer version", async () => {
    const version = Number(await row(failed).getAttribute("data-version"));
    return version > before && (await row(failed).getAttribute("data-status")) === "FAILED";
  });
  await admin.locator(`#failed tbody tr[data-id="${failed}"]`).waitFor();

  step("a waiting investment cancelled (its deal's row held open, so the allocator waits): CANCELLED in both tabs, the balance back");
  const available = () => text(page, `${plan} [data-term="available"]`);
  const waitAvailable = (amount) => until(`${amount} available`, async () => (await available()) === amount);
  await waitAvailable("$5,700.00");
  hold = await holdRow(dbUrl.toString(), `SELECT id FROM deals WHERE id = '${OPEN_DEAL}'`, "FOR NO KEY UPDATE", WAIT);
  await invest(page, ACTIVE, OPEN_DEAL, 2);
  const waiting = page.locator('#investments tbody tr[data-status="PENDING"]');
  await waiting.waitFor();
  const cancelled = await waiting.getAttribute("data-id");
  await waitAvailable("$5,650.00");
  await page.getByRole("button", { name: /^Cancel the investment in Acme Robotics \(pre-IPO\) of / }).focus();
  await page.keyboard.press("Enter");
  await row(cancelled).getByRole("group", { name: "Cancel 2 shares of Acme Robotics (pre-IPO) ($50.00)? The amount goes back to your plan." }).waitFor();
  if (!(await page.evaluate(() => document.activeElement?.classList.contains("cancel-yes")))) throw new Error("the focus is not on Yes, cancel it");
  // The question in the row passes the audit, and fits a phone's width.
  step(`  the open question: axe ${JSON.stringify(await audit(page, "a waiting row's Cancel question"))}`);
  await page.setViewportSize({ width: 390, height: 844 });
  await fitsWidth(page, [`#investments tr[data-id="${cancelled}"] .cancel-yes`, `#investments tr[data-id="${cancelled}"] .cancel-no`]);
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.keyboard.press("Enter");
  await page.locator("#history-done").filter({ hasText: "Cancelled: 2 shares of Acme Robotics (pre-IPO) ($50.00)." }).waitFor();
  await row(cancelled).and(page.locator('[data-status="CANCELLED"]')).locator(".details").filter({ hasText: "You cancelled it" }).waitFor();
  // The other tab learns it from the stream only.
  await rowOf(admin, cancelled).and(admin.locator('[data-status="CANCELLED"]')).waitFor();
  await waitAvailable("$5,700.00");

  step("a cancel too late (the deal let go and the investment allocated before the call arrives): refused, in words");
  await invest(page, ACTIVE, OPEN_DEAL, 1);
  await waiting.waitFor();
  const tooLate = await waiting.getAttribute("data-id");
  // "Keep it" closes the question and gives the focus back to the row's Cancel button.
  await row(tooLate).getByRole("button", { name: /^Cancel the investment/ }).click();
  await row(tooLate).getByRole("button", { name: "Keep it" }).click();
  await row(tooLate).getByRole("group").waitFor({ state: "detached" });
  await until("the focus back on Cancel", () => page.evaluate((id) => document.activeElement?.matches(`tr[data-id="${id}"] .cancel`), tooLate));
  await row(tooLate).getByRole("button", { name: /^Cancel the investment/ }).click();
  await page.route("**/invest.v1.InvestmentService/CancelInvestment", async (route) => {
    await hold.release();
    hold = undefined;
    await until("the investment COMPLETED in the other tab", async () => (await rowOf(admin, tooLate).getAttribute("data-status")) === "COMPLETED");
    await route.continue();
  });
  await row(tooLate).getByRole("button", { name: "Yes, cancel it" }).click();
  await page.locator("#history .error").filter({ hasText: "Not cancelled: This investment can no longer be cancelled: its shares were already allocated." }).waitFor();
  await page.unroute("**/invest.v1.InvestmentService/CancelInvestment");
  await row(tooLate).and(page.locator('[data-status="COMPLETED"]')).waitFor();
  if ((await row(tooLate).getByRole("button").count()) !== 0) throw new Error("a completed row still offers Cancel");
  await waitAvailable("$5,675.00");

  step("an operator reverses a completed investment (ReverseAllocation): REVERSED live with its reason, the value back");
  await reverseElsewhere(adminToken, first, "Refund requested by the investor");
  await row(first)
    .and(page.locator('[data-status="REVERSED"]'))
    .locator(".details")
    .filter({ hasText: "Reversed by an operator (“Refund requested by the investor”): $100.00 is back in your plan." })
    .waitFor();
  const returned = await row(first).locator(".allocations li").allTextContents();
  if (returned.join("|") !== "4 shares allocated, $100.00 (returned)") throw new Error(`reversed allocations ${JSON.stringify(returned)}`);
  await waitAvailable("$5,775.00");
  // The operator's figures count both (GetQueueStats), refreshed by the page's polling.
  await until("one cancelled and one reversed in the operator's figures", async () => {
    const figures = await admin.locator("#queue div").evaluateAll((ds) =>
      Object.fromEntries(ds.map((d) => [d.querySelector("dt").textContent, d.querySelector("dd").textContent])),
    );
    return figures.Cancelled === "1" && figures.Reversed === "1";
  });

  step("a deal closed: its investments and holdings still show its name (GetDeals)");
  sql(`UPDATE deals SET status = 'closed' WHERE id = '${SCARCE_DEAL}'`);
  await page.reload();
  await live();
  await rows().nth(7).waitFor();
  await page.locator(`#deal option[value="${SCARCE_DEAL}"]`).waitFor({ state: "detached" });
  await row(taken).locator('[data-term="deal"]').filter({ hasText: "Initech AI (little inventory)" }).waitFor();
  await page.locator(`#portfolio tr[data-deal="${SCARCE_DEAL}"]`).filter({ hasText: "Initech AI" }).waitFor();
  // 3 + 2 + 1 + 1 shares of Acme at $25.00 (the 4 reversed, the 2 cancelled are not held) and
  // 5 of Initech at $10.00.
  await page.locator("#portfolio .total").filter({ hasText: "Total value $225.00 in 2 deals" }).waitFor();
  const share = await text(page, `#portfolio tr[data-deal="${OPEN_DEAL}"] [data-term="share"]`);
  if (share !== "77.8 %") throw new Error(`Acme's share of the portfolio ${share}`);
  if (!(await page.locator("#portfolio canvas").evaluate((c) => c.width > 0 && c.height > 0))) throw new Error("no chart drawn");

  step("words, not internals: no UUID, formula or raw status name on the investor's page; dates on rows");
  const shown = await page.locator("#app").innerText();
  const internals = shown.match(/[0-9a-f]{8}-[0-9a-f]{4}-|max\(|total value =|ALLOCATION_STATUS|PENDING|COMPLETED|Bearer/g);
  if (internals) throw new Error(`the page shows ${JSON.stringify(internals)}`);
  const date = await text(page, `#investments tr[data-id="${first}"] .date`);
  if (!/^[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2} [AP]M$/.test(date)) throw new Error(`the row's date reads ${JSON.stringify(date)}`);

  step(`every view at 1280 and 390 px: layout, accessibility audit, screenshots in ${screenshots}`);
  const important = ['#investments [data-term="status"]', '#investments [data-term="amount"]', `${plan} [data-term="available"]`];
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

  step("history pages back: 50 more investments made elsewhere, the newest 50 shown, older ones on request");
  for (let n = 0; n < 50; n++) await createElsewhere(token, ACTIVE, OPEN_DEAL, 1);
  await page.reload();
  await live();
  await until("50 rows and a way to older ones", async () => (await rows().count()) === 50 && (await page.locator("#older").isVisible()));
  await page.click("#older");
  await until("all 58 investments, none twice", async () => {
    const all = await ids();
    return all.length === 58 && new Set(all).size === 58;
  });
  if (await page.locator("#older").isVisible()) throw new Error("a way to older investments after the last page");
  if ((await rows().first().locator('[data-term="deal"]').textContent()) !== "Acme Robotics (pre-IPO)") throw new Error("newest row");

  step("signing out: back to the sign-in form only");
  await page.click("#sign-out");
  await page.locator("#sign-in").waitFor();
  if (await page.locator("#app").isVisible()) throw new Error("the dashboard shows after signing out");

  step("the link's addresses got nothing, no CSP violation; the configured services got the calls");
  noDecoyNoViolation();
  if (consoleErrors.length > 0) throw new Error(`console errors:\n${consoleErrors.join("\n")}`);
  for (const o of [investOrigin, allocOrigin]) if (!requested.has(o)) throw new Error(`no request to ${o}`);
  step("audit");
  execFileSync(path.join(bin, "investctl"), ["audit", "--stuck-after", "0s"], { env, stdio: "inherit" });
  step(`passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (err) {
  console.error(`[e2e] FAILED: ${err.stack ?? err}`);
  if (consoleErrors.length > 0) console.error(`[e2e] console errors so far:\n${consoleErrors.join("\n")}`);
  console.error(`[e2e] service logs (last 60 lines):\n${logs.join("").split("\n").slice(-60).join("\n")}`);
  process.exitCode = 1;
} finally {
  await cleanup();
  console.log(`DATABASE=${dbUrl.pathname.slice(1)}`);
}
