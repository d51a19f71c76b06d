// The Rust services the test runs (investment-svc, allocation-svc): started from INVEST_BIN_DIR,
// waited for until they listen, stopped and started again by the restart scenario.

import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { until } from "./wait.mjs";

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

/** The services of `bin`, each run with `env`; their output is kept in `logs` for a failure's
 * report. */
export function services(bin, env) {
  const running = new Map();
  const logs = [];
  return {
    logs,
    /** Starts `name` on `port`; resolves once it listens. */
    async start(name, port) {
      const child = spawn(path.join(bin, name), [], {
        env: { ...env, LISTEN_ADDR: `127.0.0.1:${port}` },
        stdio: ["ignore", "pipe", "pipe"],
      });
      child.stdout.on("data", (d) => logs.push(`${name}: ${d}`));
      child.stderr.on("data", (d) => logs.push(`${name}: ${d}`));
      const exited = new Promise((resolve) => child.once("exit", resolve));
      running.set(name, { child, exited });
      await until(`${name} listening`, async () => {
        if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`);
        return portOpen(port);
      });
    },
    /** Stops `name` (SIGTERM); resolves once it exited. */
    async stop(name) {
      const s = running.get(name);
      s.child.kill("SIGTERM");
      await s.exited;
    },
    /** Stops whatever still runs. */
    async stopAll() {
      for (const { child } of running.values()) if (child.exitCode === null) child.kill("SIGTERM");
      await Promise.all([...running.values()].map((s) => s.exited));
    },
  };
}
