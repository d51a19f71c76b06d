// "Your portfolio": holdings per deal (shares, value at today's price, share of the total) as a
// table and a doughnut chart (Chart.js, drawn on a canvas: nothing inline for the CSP to refuse).

import { ArcElement, Chart, DoughnutController, Legend, Tooltip } from "chart.js";
import { cell, el, find, noteRow } from "../dom.js";
import type { Context } from "../context.js";
import { describe } from "../errors.js";
import { AllocationStatus, type Investment } from "../gen/invest/v1/investment_pb.js";
import { holdings } from "../holdings.js";
import { allPages } from "../util.js";

Chart.register(DoughnutController, ArcElement, Legend, Tooltip);

/** Colours with enough contrast against white, in order of the holdings. */
const COLOURS = ["#1f5fbf", "#1b6e35", "#a14b00", "#7b2fa3", "#0f6f78", "#b3261e", "#5b6475", "#8a6d00"];

export class Portfolio {
  private readonly body: HTMLElement;
  private readonly total: HTMLElement;
  private readonly error: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private chart: Chart<"doughnut"> | undefined;
  private completed: Investment[] = [];
  private loaded = false;
  /** Numbers each read: only the latest one's answer is shown. */
  private reads = 0;

  constructor(
    root: HTMLElement,
    private readonly ctx: Context,
  ) {
    this.body = find(root, "tbody");
    this.total = find(root, ".total");
    this.error = find(root, ".error");
    this.canvas = find<HTMLCanvasElement>(root, "canvas");
    this.body.replaceChildren(noteRow(4, "Loading your holdings…"));
    ctx.signal.addEventListener("abort", () => this.chart?.destroy(), { once: true });
  }

  /** Reads every completed investment (up to 10,000) and shows what they add up to. */
  async load() {
    const read = ++this.reads;
    try {
      const completed = await allPages<Investment>(async (pageToken) => {
        const r = await this.ctx.api.investments.listInvestments({
          pageSize: 500,
          pageToken,
          allocationStatus: AllocationStatus.COMPLETED,
        });
        return { items: r.investments, next: r.nextPageToken };
      });
      if (read !== this.reads) return; // a later read is under way
      this.completed = completed;
      this.loaded = true;
      this.error.textContent = "";
      await this.ctx.deals.ensure(this.completed.map((i) => i.dealId)).catch(() => {});
      this.render();
    } catch (err) {
      const problem = describe(err, this.ctx.format);
      this.ctx.failed(problem);
      this.error.textContent = problem.message;
    }
  }

  /** Again with what is known now (e.g. deal names just read). */
  render() {
    if (!this.loaded) return;
    const f = this.ctx.format;
    const { rows, total } = holdings(
      this.completed.map((i) => ({ dealId: i.dealId, shares: i.shares, pricePerShare: i.pricePerShare })),
      (id) => this.ctx.deals.get(id)?.pricePerShare,
    );
    if (rows.length === 0) {
      this.total.textContent = "You hold no shares yet.";
      this.body.replaceChildren(noteRow(4, "Shares appear here once an investment is completed."));
      this.canvas.hidden = true;
      return;
    }
    this.canvas.hidden = false;
    this.total.textContent = `Total value ${f.amount(total)} in ${rows.length} ${rows.length === 1 ? "deal" : "deals"}`;
    this.body.replaceChildren(
      ...rows.map((h, i) =>
        el(
          "tr",
          { "data-deal": h.dealId },
          cell("Deal", el("span", { class: `swatch swatch-${i % COLOURS.length}` }, this.ctx.deals.name(h.dealId))),
          cell("Shares", f.units(h.units), { class: "num", "data-term": "units" }),
          cell("Value", f.amount(h.value), { class: "num", "data-term": "value" }),
          cell("Share of total", `${h.share} %`, { class: "num", "data-term": "share" }),
        ),
      ),
    );
    const labels = rows.map((h) => this.ctx.deals.name(h.dealId));
    const data = rows.map((h) => Number(h.value)); // a drawing only: the figures are the table's
    const colours = rows.map((_, i) => COLOURS[i % COLOURS.length]);
    this.canvas.setAttribute("aria-label", `Chart of your holdings: ${rows.map((h, i) => `${labels[i]} ${h.share} %`).join(", ")}`);
    if (this.chart) {
      this.chart.data.labels = labels;
      this.chart.data.datasets[0].data = data;
      this.chart.data.datasets[0].backgroundColor = colours;
      this.chart.update();
      return;
    }
    this.chart = new Chart(this.canvas, {
      type: "doughnut",
      data: { labels, datasets: [{ data, backgroundColor: colours, borderWidth: 1 }] },
      options: {
        responsive: true,
        maintainAspectRatio: true,
        animation: false,
        plugins: {
          legend: { position: "bottom" },
          tooltip: { callbacks: { label: (item) => ` ${f.amount(rows[item.dataIndex]?.value ?? "0")}` } },
        },
      },
    });
  }
}
