// HTTPS: a development CA, the services' and the page's certificate from it, and a HOME whose NSS
// database trusts that CA, for Chromium alone (nothing of the machine's trust changes).

import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { step } from "./wait.mjs";

/** Makes the CA and certificates in `scratch` with `investctl dev-certs` (run with `env`).
 * Returns the CA (for the test's own requests), the certificate and key files, and the HOME to
 * start Chromium with. */
export function devCa(investctlBin, env, scratch) {
  const certs = path.join(scratch, "certs");
  const browserHome = path.join(scratch, "home");
  step("HTTPS: development CA (investctl dev-certs), trusted by Chromium through its NSS database");
  execFileSync(investctlBin, ["dev-certs", "--dir", certs], { env, stdio: "ignore" });
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
  return {
    ca: readFileSync(path.join(certs, "ca.pem")),
    certFile: path.join(certs, "server.pem"),
    keyFile: path.join(certs, "server-key.pem"),
    browserHome,
  };
}
