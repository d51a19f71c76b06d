/// <reference types="vitest/config" />
// Serving the dashboard (`vite preview`, and `vite` in development) is where its configuration
// lives, read from the environment when the server starts:
//   DASHBOARD_INVESTMENT_URL, DASHBOARD_ALLOCATION_URL  the services (scheme://host:port;
//       defaults http://127.0.0.1:50051 and :50052), served to the page as /config.json and
//       named in the Content-Security-Policy's connect-src, so the page can call them and
//       nothing else;
//   DASHBOARD_TLS_CERT_FILE, DASHBOARD_TLS_KEY_FILE     PEM files: serve the page over HTTPS.
// The CSP is an HTTP header of `vite preview` (a <meta> one cannot forbid framing). `vite` in
// development sends none: its hot reload injects inline styles.
import { readFileSync } from "node:fs";
import { defineConfig, type Plugin } from "vite";
import { configJson, contentSecurityPolicy, DEFAULTS, serviceOrigin, type Config } from "./src/config.js";

function fromEnv(env: NodeJS.ProcessEnv): Config {
  const pick = (name: string, fallback: string) => {
    const value = env[name];
    return value === undefined || value === "" ? fallback : serviceOrigin(name, value);
  };
  return {
    investmentUrl: pick("DASHBOARD_INVESTMENT_URL", DEFAULTS.investmentUrl),
    allocationUrl: pick("DASHBOARD_ALLOCATION_URL", DEFAULTS.allocationUrl),
  };
}

function tlsFromEnv(env: NodeJS.ProcessEnv): { cert: Buffer; key: Buffer } | undefined {
  const cert = env.DASHBOARD_TLS_CERT_FILE;
  const key = env.DASHBOARD_TLS_KEY_FILE;
  if (!cert && !key) return undefined;
  if (!cert || !key) throw new Error("DASHBOARD_TLS_CERT_FILE and DASHBOARD_TLS_KEY_FILE go together");
  return { cert: readFileSync(cert), key: readFileSync(key) };
}

/** GET /config.json: the configuration, never cached (it changes with the server, not the build). */
function serveConfig(config: Config): Plugin {
  const body = configJson(config);
  const handler = (_req: unknown, res: import("node:http").ServerResponse) => {
    res.setHeader("Content-Type", "application/json");
    res.setHeader("Cache-Control", "no-store");
    res.end(body);
  };
  return {
    name: "invest-dashboard-config",
    configureServer: (server) => void server.middlewares.use("/config.json", handler),
    configurePreviewServer: (server) => void server.middlewares.use("/config.json", handler),
  };
}

export default defineConfig(({ command }) => {
  // Only a server needs (and checks) the configuration; `vite build` does not.
  const config = command === "serve" ? fromEnv(process.env) : DEFAULTS;
  const https = command === "serve" ? tlsFromEnv(process.env) : undefined;
  return {
    build: { target: "es2022" },
    plugins: [serveConfig(config)],
    server: { https },
    preview: {
      https,
      headers: {
        "Content-Security-Policy": contentSecurityPolicy(config),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
      },
    },
    test: { environment: "node", include: ["test/**/*.test.ts"] },
  };
});
