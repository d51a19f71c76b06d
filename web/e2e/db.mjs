// The test's own statements on its database, with psql from PATH or PostgreSQL's bin directory:
// one at a time (a deal closed, as an operator would), or a row lock held open.

import { execFileSync, spawn } from "node:child_process";

function psql() {
  const found = execFileSync("sh", ["-c", "command -v psql || ls /usr/lib/postgresql/*/bin/psql | tail -1"], { encoding: "utf8" }).trim();
  if (!found) throw new Error("no psql (apt-get install postgresql-client)");
  return found;
}

export function sql(url, statement) {
  execFileSync(psql(), [url, "-v", "ON_ERROR_STOP=1", "-qc", statement], { stdio: "inherit" });
}

/** Takes `lock` (e.g. FOR NO KEY UPDATE) on the row `select` finds, in a transaction left open
 * until `release()` commits it. Resolves once the lock is held. */
export async function holdRow(url, select, lock, deadline) {
  const child = spawn(psql(), [url, "-v", "ON_ERROR_STOP=1", "-qAt"], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  let out = "";
  const held = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no lock within ${deadline} ms: ${out}`)), deadline);
    child.stdout.on("data", (d) => {
      out += d;
      if (out.includes("held\n")) (clearTimeout(timer), resolve());
    });
    exited.then((code) => (clearTimeout(timer), reject(new Error(`psql exited with ${code} before the lock: ${out}`))));
  });
  child.stdin.write(`BEGIN;\n${select} ${lock};\n\\echo held\n`);
  await held;
  return {
    async release() {
      child.stdin.end("COMMIT;\n");
      const code = await exited;
      if (code !== 0) throw new Error(`psql holding the lock exited with ${code}`);
    },
  };
}
