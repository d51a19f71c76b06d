// Checks the end-to-end walk applies to every view: an accessibility audit (axe-core, run in
// the page through the DevTools protocol, which the page's CSP does not govern, so nothing
// inline is added to the page), the narrow layout, and screenshots.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

/** Runs axe-core on the page as it is; fails on any critical or serious violation. Returns the
 * counts by impact, for the log. */
export async function audit(page, what) {
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return { passed: r.passes.length, violations: r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
    })) };
  });
  // A run that checked nothing proves nothing.
  if (result.passed < 10) throw new Error(`accessibility (${what}): axe passed only ${result.passed} rules`);
  const bad = result.violations.filter((v) => v.impact === "critical" || v.impact === "serious");
  if (bad.length > 0) {
    throw new Error(`accessibility (${what}): ${bad.map((v) => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.join(", ")}`).join("; ")}`);
  }
  const counts = { rulesPassed: result.passed };
  for (const v of result.violations) counts[v.impact] = (counts[v.impact] ?? 0) + 1;
  return counts;
}

/** At the page's current (narrow) width: nothing wider than the viewport, no table that scrolls
 * sideways, and every cell named in `important` fully on screen. */
export async function fitsWidth(page, important) {
  const problems = await page.evaluate((selectors) => {
    const width = document.documentElement.clientWidth;
    const out = [];
    if (document.documentElement.scrollWidth > width) out.push(`page ${document.documentElement.scrollWidth} px wide`);
    // A sideways scroller inside the page hides columns as well as a wide page would.
    for (const e of document.querySelectorAll("main *")) {
      if (e.offsetParent === null || e.scrollWidth <= e.clientWidth + 1) continue;
      const overflow = getComputedStyle(e).overflowX;
      if (overflow === "auto" || overflow === "scroll") out.push(`${e.tagName.toLowerCase()}#${e.id} scrolls sideways`);
    }
    for (const selector of selectors) {
      const cells = [...document.querySelectorAll(selector)].filter((e) => e.offsetParent !== null);
      if (cells.length === 0) out.push(`no ${selector} shown`);
      for (const e of cells) {
        const r = e.getBoundingClientRect();
        if (r.left < 0 || r.right > width + 0.5) out.push(`${selector} at ${Math.round(r.left)}..${Math.round(r.right)} px`);
      }
    }
    return out;
  }, important);
  if (problems.length > 0) throw new Error(`at ${page.viewportSize().width} px: ${problems.join("; ")}`);
}

/** A full-page screenshot at 1280 px and one at 390 px, each audited and (narrow) checked. */
export async function walkView(page, dir, name, important) {
  const shots = [];
  for (const [width, height, suffix] of [
    [1280, 900, ""],
    [390, 844, "-390"],
  ]) {
    await page.setViewportSize({ width, height });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    if (width === 390) await fitsWidth(page, important);
    const counts = await audit(page, `${name} at ${width} px`);
    const file = path.join(dir, `${name}${suffix}.png`);
    await page.screenshot({ path: file, fullPage: true });
    shots.push(`${file} (axe: ${JSON.stringify(counts)})`);
  }
  await page.setViewportSize({ width: 1280, height: 900 });
  return shots;
}
