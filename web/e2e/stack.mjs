// The system under test: a database of its own (migrated and seeded), NATS subjects of its own,
// both services, the built dashboard served as a deployment would serve it (vite preview with
// DASHBOARD_*, see vite.config.ts), a decoy for the sign-in link's addresses, and Chromium; over
// HTTPS throughout with E2E_TLS=1.

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { preview } from "vite";
import { sql } from "./db.mjs";
import { startDecoy } from "./decoy.mjs";
import { devCa } from "./devca.mjs";
import { elsewhere } from "./elsewhere.mjs";
import { DEMO_USER } from "./seed.mjs";
import { services } from "./services.mjs";
import { step } from "./wait.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const bin = process.env.INVEST_BIN_DIR ?? path.join(root, "target/debug");

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

/** Everything before the services start: the database migrated and seeded, the tokens, the
 * certificates (HTTPS) and the decoy listening. */
export async function prepare() {
  const tls = process.env.E2E_TLS === "1";
  const scheme = tls ? "https" : "http";
  const run = `${process.pid}${randomBytes(3).toString("hex")}`;
  const dbUrl = new URL(process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:55432/postgres");
  dbUrl.pathname = `/web_e2e_${run}`;
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
    JWT_SECRET: randomBytes(32).toString("hex"),
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

  const certs = tls ? devCa(path.join(bin, "investctl"), env, scratch) : undefined;
  if (certs) Object.assign(env, { TLS_CERT_FILE: certs.certFile, TLS_KEY_FILE: certs.keyFile });
  const ca = certs?.ca;
  const decoy = await startDecoy(
    certs ? { cert: readFileSync(certs.certFile), key: readFileSync(certs.keyFile) } : undefined,
  );

  const stack = {
    tls,
    origin,
    investOrigin,
    allocOrigin,
    allocPort,
    decoy,
    token,
    adminToken,
    dbName: dbUrl.pathname.slice(1),
    services: services(bin, env),
    ...elsewhere({ origin, investOrigin, allocOrigin, ca }),
    /** A statement on the test's database (a deal closed, as an operator would). */
    sql: (statement) => sql(dbUrl.toString(), statement),
    dbUrl: dbUrl.toString(),
    /** The services' own check of the database: nothing stuck, nothing inconsistent. */
    audit: () => execFileSync(path.join(bin, "investctl"), ["audit", "--stuck-after", "0s"], { env, stdio: "inherit" }),

    /** Starts both services, the page's server and Chromium; resolves to the browser. */
    async start() {
      await stack.services.start("investment-svc", investPort);
      await stack.services.start("allocation-svc", allocPort);
      // The dashboard's configuration, as scripts/up or a deployment gives it (vite.config.ts).
      Object.assign(process.env, {
        DASHBOARD_INVESTMENT_URL: investOrigin,
        DASHBOARD_ALLOCATION_URL: allocOrigin,
        ...(certs ? { DASHBOARD_TLS_CERT_FILE: certs.certFile, DASHBOARD_TLS_KEY_FILE: certs.keyFile } : {}),
      });
      stack.server = await preview({
        root: path.resolve(here, ".."),
        logLevel: "warn",
        preview: { host: "127.0.0.1", port: webPort, strictPort: true },
      });
      stack.browser = await chromium.launch({
        executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
        args: ["--no-sandbox"],
        // The development CA is trusted through this HOME's NSS database, and only there.
        env: certs ? { ...process.env, HOME: certs.browserHome } : process.env,
      });
      return stack.browser;
    },

    /** Stops whatever started, and removes the scratch directory. */
    async stop() {
      await stack.browser?.close().catch(() => {});
      await stack.server?.close().catch(() => {});
      decoy.close();
      await stack.services.stopAll();
      rmSync(scratch, { recursive: true, force: true });
    },
  };
  return stack;
}
