// Names (and prices) of deals for every row that mentions one: open deals come with ListDeals,
// any other is asked for once with GetDeals (ListDeals offers open deals only).

import type { Api } from "./api.js";
import { DealStatus, type Deal, type DealSummary } from "./gen/invest/v1/investment_pb.js";

export interface DealInfo {
  name: string;
  pricePerShare: string;
  status: DealStatus;
}

/** The most ids one GetDeals call takes. */
export const GET_DEALS_MAX = 100;

/** Ids among `ids` neither known nor already asked for, each once, in chunks GetDeals takes. */
export function toAsk(ids: Iterable<string>, known: (id: string) => boolean): string[][] {
  const wanted = [...new Set(ids)].filter((id) => id !== "" && !known(id));
  const chunks: string[][] = [];
  for (let i = 0; i < wanted.length; i += GET_DEALS_MAX) chunks.push(wanted.slice(i, i + GET_DEALS_MAX));
  return chunks;
}

export class DealNames {
  private readonly known = new Map<string, DealInfo>();
  private readonly asked = new Set<string>();

  constructor(
    private readonly api: Api,
    private readonly onLearned: () => void,
  ) {}

  /** Deals read by ListDeals or GetDeals. */
  learn(deals: (Deal | DealSummary)[]) {
    for (const d of deals) this.known.set(d.id, { name: d.name, pricePerShare: d.pricePerShare, status: d.status });
  }

  get(id: string): DealInfo | undefined {
    return this.known.get(id);
  }

  /** The deal's name, or a neutral placeholder while it is being read. */
  name(id: string): string {
    return this.known.get(id)?.name ?? "Deal";
  }

  /** Asks GetDeals for the deals among `ids` not known yet; calls `onLearned` if any came. */
  async ensure(ids: Iterable<string>): Promise<void> {
    const chunks = toAsk(ids, (id) => this.known.has(id) || this.asked.has(id));
    if (chunks.length === 0) return;
    for (const chunk of chunks) for (const id of chunk) this.asked.add(id);
    for (const chunk of chunks) {
      try {
        const r = await this.api.investments.getDeals({ dealIds: chunk });
        this.learn(r.deals);
      } catch (err) {
        for (const id of chunk) this.asked.delete(id); // asked again next time
        throw err;
      }
    }
    this.onLearned();
  }
}
