// End to end: the built dashboard in a real headless Chromium (Debian's `chromium`, driven by
// playwright-core) against the real services, PostgreSQL and NATS. Run by scripts/test-web,
// which builds everything and passes:
//   INVEST_BIN_DIR  directory of investctl, investment-svc and allocation-svc
//   DATABASE_URL    a PostgreSQL server (a database of its own is made here)
//   NATS_URL        a NATS JetStream server (a stream and subjects of its own are used here)
//   CHROMIUM        the browser (default /usr/bin/chromium)
//   SCREENSHOTS     where to save dashboard.png and dashboard-390.png (default web/e2e/screenshots,
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
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { preview } from "vite";

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

/** Sends a request the page made to the real service from here, and reads the whole answer:
 * the service acts on it while the page is told the connection broke. */
async function deliverOnly(request) {
  const url = new URL(request.url());
  const headers = { ...request.headers() };
  for (const h of ["host", "connection", "content-length"]) delete headers[h];
  const body = request.postDataBuffer() ?? Buffer.alloc(0);
  await new Promise((resolve, reject) => {
    const req = (url.protocol === "https:" ? https : http).request(
      url,
      { method: request.method(), headers: { ...headers, "content-length": body.length }, ca },
      (res) => {
        res.on("data", () => {});
        res.on("end", resolve);
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

let browser;
let server;
async function cleanup() {
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
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
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
      // network; never one that the Content-Security-Policy refused.
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

  // A link naming other addresses for both services: they must be ignored.
  const signIn = (t) => `${origin}/#token=${t}&investment=${decoyOrigin}&allocation=${decoyOrigin}`;
  const rows = () => page.locator("#investments tbody tr");
  const row = (id) => page.locator(`#investments tbody tr[data-id="${id}"]`);
  const ids = () => rows().evaluateAll((trs) => trs.map((tr) => tr.dataset.id));
  const live = () => page.waitForSelector('#link[data-state="live"]');

  step(`open the dashboard (${origin}) from a link naming ${decoyOrigin} for both services`);
  const response = await page.goto(signIn(token));
  const csp = response.headers()["content-security-policy"] ?? "";
  const expectedCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; " +
    `connect-src 'self' ${investOrigin} ${allocOrigin}; img-src 'self' data:; object-src 'none'; ` +
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
  if (csp !== expectedCsp) throw new Error(`Content-Security-Policy ${JSON.stringify(csp)}, expected ${expectedCsp}`);
  await until("the page live, having called no one else", async () => {
    noDecoyNoViolation();
    return page.locator('#link[data-state="live"]').isVisible();
  });
  if (page.url() !== `${origin}/`) throw new Error(`the address bar kept ${page.url()}`);
  await page.locator(`#balances tbody tr[data-id="${ACTIVE}"]`).waitFor();
  const available = await page
    .locator(`#balances tbody tr[data-id="${ACTIVE}"] [data-term="available"]`)
    .textContent();
  if (available !== "6000.00") throw new Error(`available balance ${available}, expected 6000.00`);
  await page.locator(`#deal option[value="${SCARCE_DEAL}"]`).waitFor({ state: "attached" });

  step("invest with the keyboard; the row reaches COMPLETED live, with its allocations");
  await page.selectOption("#subscription", ACTIVE);
  await page.selectOption("#deal", OPEN_DEAL);
  await page.fill("#shares", "4");
  await page.focus("#shares");
  await page.keyboard.press("Enter");
  await page.locator('#investments tbody tr[data-status="COMPLETED"] .allocations li').first().waitFor();
  const first = (await ids())[0];
  const allocations = await row(first).locator(".allocations li").allTextContents();
  if (allocations.length !== 1 || !allocations[0].endsWith("4 units, 100.00")) {
    throw new Error(`allocations ${JSON.stringify(allocations)}`);
  }

  // The balances follow without a reload.
  await page.locator(`#balances tbody tr[data-id="${ACTIVE}"] [data-term="invested"]`).filter({ hasText: "100.00" }).waitFor();

  step("an answer lost on the way back: submitting again reuses the intent's request_id");
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
  await page.fill("#shares", "3");
  await page.click("#invest-submit");
  await page.locator("#invest-error").filter({ hasText: /./ }).waitFor();
  await page.click("#invest-submit");
  await page.locator("#invest-done").filter({ hasText: "3 shares" }).waitFor();
  await page.unroute("**/invest.v1.InvestmentService/CreateInvestment");
  networkErrorsExpected = false;
  await until("two investments, each shown once", async () => (await ids()).length === 2);
  await page.locator('#investments tbody tr[data-status="COMPLETED"]').nth(1).waitFor();

  step("0 shares: the field error from google.rpc.BadRequest next to the field");
  await page.fill("#shares", "0");
  await page.click("#invest-submit");
  await page.locator("#shares-error").filter({ hasText: /./ }).waitFor();
  if ((await page.getAttribute("#shares", "aria-invalid")) !== "true") throw new Error("shares not marked invalid");

  step("a paused subscription: the PreconditionFailure in words");
  await page.selectOption("#subscription", PAUSED);
  await page.fill("#shares", "1");
  await page.click("#invest-submit");
  await page.locator("#subscription-error").filter({ hasText: "This subscription is paused" }).waitFor();
  if ((await page.textContent("#shares-error")) !== "") throw new Error("the shares error stayed");

  step("the little-inventory deal: FAILED with its reason");
  await page.selectOption("#subscription", ACTIVE);
  await page.selectOption("#deal", SCARCE_DEAL);
  await page.fill("#shares", "10");
  await page.click("#invest-submit");
  await page.locator('#investments tbody tr[data-status="FAILED"] .details').filter({ hasText: /./ }).waitFor();
  const failed = await page.locator('#investments tbody tr[data-status="FAILED"]').getAttribute("data-id");

  step("allocation-svc restarts: the dashboard reconnects and catches up");
  networkErrorsExpected = true;
  await stopService("allocation-svc");
  await page.waitForSelector('#link[data-state="reconnecting"]');
  await page.selectOption("#deal", OPEN_DEAL);
  await page.fill("#shares", "2");
  await page.click("#invest-submit");
  await page.locator("#invest-done").filter({ hasText: "2 shares" }).waitFor();
  await startService("allocation-svc", allocPort);
  await live();
  networkErrorsExpected = false;
  await until("the investment made while allocation-svc was down COMPLETED", async () => {
    const statuses = await rows().evaluateAll((trs) => trs.map((tr) => tr.dataset.status));
    return statuses.length === 4 && statuses.filter((s) => s === "COMPLETED").length === 3;
  });

  step("and keeps updating: a new investment reaches COMPLETED live");
  await page.fill("#shares", "1");
  await page.click("#invest-submit");
  await until("five rows, four COMPLETED, none twice", async () => {
    const all = await rows().evaluateAll((trs) => trs.map((tr) => [tr.dataset.id, tr.dataset.status]));
    return (
      all.length === 5 &&
      new Set(all.map(([id]) => id)).size === 5 &&
      all.filter(([, s]) => s === "COMPLETED").length === 4
    );
  });

  step("at 390 px wide nothing overflows the page");
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  if (overflow > 390) throw new Error(`the page is ${overflow} px wide at 390 px`);
  await page.setViewportSize({ width: 1280, height: 900 });

  step("as admin: queue figures, the failed allocation, Retry from the keyboard");
  const admin = await context.newPage();
  admin.setDefaultTimeout(WAIT);
  watchConsole(admin);
  await admin.goto(signIn(adminToken));
  await admin.locator("#operator").waitFor();
  await admin.locator("#queue dd").first().waitFor();
  const retry = admin.locator(`#failed tbody tr[data-id="${failed}"] button`);
  await retry.waitFor();
  const before = Number(await row(failed).getAttribute("data-version"));
  await retry.focus();
  await admin.keyboard.press("Enter");
  // The retry reserves again and allocates again; the deal still has too little, so it fails
  // again, with a newer version: the user's page follows it live.
  await until("the retried investment FAILED again at a newer version", async () => {
    const version = Number(await row(failed).getAttribute("data-version"));
    return version > before && (await row(failed).getAttribute("data-status")) === "FAILED";
  });

  await admin.locator(`#failed tbody tr[data-id="${failed}"]`).waitFor();

  step(`screenshots in ${screenshots}`);
  mkdirSync(screenshots, { recursive: true });
  await admin.screenshot({ path: path.join(screenshots, "dashboard.png"), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: path.join(screenshots, "dashboard-390.png") });

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
