// The portfolio: completed investments summed per deal, valued at the deal's price now (the
// price paid when the deal's price is not known), each with its share of the total. Exact
// cents throughout.

import { fromCents, percent, toCents } from "./decimal.js";

export interface Holding {
  dealId: string;
  units: bigint;
  /** Decimal string: units x price. */
  value: string;
  /** Percent of the portfolio's value, one decimal ("33.3"). */
  share: string;
}

export interface Held {
  dealId: string;
  shares: bigint;
  /** What was paid per share. */
  pricePerShare: string;
}

/** Holdings, largest value first, and the total value. */
export function holdings(held: Iterable<Held>, priceNow: (dealId: string) => string | undefined) {
  const units = new Map<string, { units: bigint; paid: string }>();
  for (const h of held) {
    const u = units.get(h.dealId);
    if (u) u.units += h.shares;
    else units.set(h.dealId, { units: h.shares, paid: h.pricePerShare });
  }
  const valued = [...units].map(([dealId, u]) => ({
    dealId,
    units: u.units,
    cents: (toCents(priceNow(dealId) ?? u.paid) ?? 0n) * u.units,
  }));
  const total = valued.reduce((sum, v) => sum + v.cents, 0n);
  valued.sort((a, b) => (b.cents > a.cents ? 1 : b.cents < a.cents ? -1 : a.dealId.localeCompare(b.dealId)));
  const rows: Holding[] = valued.map((v) => ({
    dealId: v.dealId,
    units: v.units,
    value: fromCents(v.cents),
    share: percent(v.cents, total),
  }));
  return { rows, total: fromCents(total) };
}
