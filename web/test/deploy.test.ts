// The dashboard image (deploy/dashboard.Dockerfile) serves web/dist from nginx with its own
// copy of the Content-Security-Policy and of config.json (deploy/dashboard/default.conf.template,
// rendered by envsubst at start-up). They must say what the page's own code says.
import { describe, expect, it } from "vitest";
import dockerfile from "../../deploy/dashboard.Dockerfile?raw";
import template from "../../deploy/dashboard/default.conf.template?raw";
import { contentSecurityPolicy, parseConfig } from "../src/config.js";

const config = { investmentUrl: "https://invest.example.com:50051", allocationUrl: "https://alloc.example.com" };

/** What nginx's entrypoint makes of the template with these two variables (envsubst). */
const rendered = template
  .replaceAll("${DASHBOARD_INVESTMENT_URL}", config.investmentUrl)
  .replaceAll("${DASHBOARD_ALLOCATION_URL}", config.allocationUrl);

describe("the dashboard image's nginx configuration", () => {
  it("sends the page's Content-Security-Policy for the configured services", () => {
    const headers = [...rendered.matchAll(/add_header Content-Security-Policy "([^"]*)" always;/g)].map((m) => m[1]);
    // The first is the server's (every page and asset); the other is config.json's own.
    expect(headers[0]).toBe(contentSecurityPolicy(config));
  });

  it("serves a config.json the page reads as those services", () => {
    const body = /location = \/config\.json \{[^}]*return 200 '([^']*)';/s.exec(rendered)?.[1];
    expect(body).toBeDefined();
    expect(parseConfig(JSON.parse(body ?? ""))).toEqual(config);
  });

  it("substitutes only the DASHBOARD_ variables, leaving nginx's own ($uri) alone", () => {
    const variables = [...template.matchAll(/\$\{([A-Z_]+)\}/g)].map((m) => m[1]);
    expect(new Set(variables)).toEqual(new Set(["DASHBOARD_INVESTMENT_URL", "DASHBOARD_ALLOCATION_URL"]));
    expect(dockerfile).toContain("NGINX_ENVSUBST_FILTER=^DASHBOARD_");
  });
});
