// The investments the dashboard shows, merged from every source (the list, creates, the
// WatchAllocations stream, catch-up reads) by status version: an update older than or equal to
// what a row shows changes nothing, so one seen twice (a reconnect's snapshot, a catch-up read
// racing the stream) is shown once, and one seen late never moves a row backwards. A read at the
// row's version still fills what the stream does not carry (shares, amount, a reversal's reason).
//
// Rows stay in order (newest first) as they come: each is put in its place, nothing is sorted
// again; and there are at most `limit` of them: past that the oldest goes.

import type { Allocation } from "./gen/invest/v1/allocation_part_pb.js";
import type { AllocationUpdate } from "./gen/invest/v1/allocation_pb.js";
import { type AllocationFailure, AllocationStatus, type Investment } from "./gen/invest/v1/investment_pb.js";

/** One allocated batch of a completed (or reversed) investment. */
export interface BatchAllocation {
  batchId: string;
  units: bigint;
  value: string;
  /** Its units went back to the batch when an operator reversed the investment. */
  reversed: boolean;
}

/** One investment as the dashboard shows it. */
export interface Row {
  id: string;
  dealId: string;
  /** Unknown (undefined) for a row known only from the stream, until it is read. */
  shares?: bigint;
  totalAmount?: string;
  status: AllocationStatus;
  version: bigint;
  attempt: number;
  /** Why it failed: set exactly when `status` is FAILED. */
  failure: AllocationFailure;
  allocations: BatchAllocation[];
  /** Why an operator reversed it; undefined until read (the stream does not carry it). */
  reversalReason?: string;
  /** When it was made (or, for a row known only from the stream, its first update). */
  since: number;
}

/** Done with allocation: COMPLETED (until an operator reverses it), FAILED (until an
 * operator retries it), and the terminal CANCELLED and REVERSED. */
export function isFinished(status: AllocationStatus): boolean {
  return (
    status === AllocationStatus.COMPLETED ||
    status === AllocationStatus.FAILED ||
    status === AllocationStatus.CANCELLED ||
    status === AllocationStatus.REVERSED
  );
}

/** Only a PENDING investment can be cancelled by its owner. */
export function isCancellable(row: Row): boolean {
  return row.status === AllocationStatus.PENDING;
}

function batches(allocations: Allocation[]): BatchAllocation[] {
  return allocations.map((a) => ({ batchId: a.bulkPurchaseId, units: a.units, value: a.value, reversed: a.reversed }));
}

/** A REVERSED row read before its reason (from the stream) still needs a read. */
function lacksReversal(row: Row): boolean {
  return row.status === AllocationStatus.REVERSED && row.reversalReason === undefined;
}

/** The status as a word, for `data-status`. */
export function statusName(status: AllocationStatus): string {
  return AllocationStatus[status] ?? "UNKNOWN";
}

function millis(t: { seconds: bigint; nanos: number } | undefined): number | undefined {
  return t === undefined ? undefined : Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6);
}

/** Whether `a` is shown before `b`: newer first, then by id. */
function before(a: Row, b: Row): boolean {
  return a.since !== b.since ? a.since > b.since : a.id < b.id;
}

export class Book {
  private readonly rows = new Map<string, Row>();
  /** The rows newest first. */
  private readonly order: Row[] = [];

  constructor(private readonly limit = 1000) {}

  /** Merges a stream update; true if the row changed. */
  applyUpdate(u: AllocationUpdate): boolean {
    const row = this.rows.get(u.investmentId);
    const allocations = batches(u.allocations);
    if (row === undefined) {
      return this.insert({
        id: u.investmentId,
        dealId: u.dealId,
        status: u.allocationStatus,
        version: u.version,
        attempt: u.attempt,
        failure: u.failure,
        allocations,
        since: millis(u.updatedAt) ?? Date.now(),
      });
    }
    if (u.version <= row.version) return false;
    // A reversal's update carries no allocations: the ones shown went back.
    const reversed = u.allocationStatus === AllocationStatus.REVERSED;
    Object.assign(row, {
      status: u.allocationStatus,
      version: u.version,
      attempt: u.attempt,
      failure: u.failure,
      allocations: reversed ? row.allocations.map((a) => ({ ...a, reversed: true })) : allocations,
      reversalReason: undefined,
    });
    if (row.dealId === "") row.dealId = u.dealId;
    return true;
  }

  /** Merges an investment read by a unary call; true if the row changed. */
  applyInvestment(i: Investment): boolean {
    const since = millis(i.createdAt) ?? Date.now();
    const row = this.rows.get(i.id);
    if (row === undefined) {
      return this.insert({
        id: i.id,
        dealId: i.dealId,
        shares: i.shares,
        totalAmount: i.totalAmount,
        status: i.allocationStatus,
        version: i.statusVersion,
        attempt: i.allocationAttempts,
        failure: i.allocationFailure,
        allocations: batches(i.allocations),
        reversalReason: i.reversal?.reason,
        since,
      });
    }
    let changed = false;
    if (row.shares === undefined) {
      row.shares = i.shares;
      row.totalAmount = i.totalAmount;
      if (row.since !== since) {
        this.order.splice(this.order.indexOf(row), 1);
        row.since = since;
        this.place(row);
      }
      changed = true;
    }
    if (i.statusVersion > row.version || (i.statusVersion === row.version && lacksReversal(row))) {
      Object.assign(row, {
        status: i.allocationStatus,
        version: i.statusVersion,
        attempt: i.allocationAttempts,
        failure: i.allocationFailure,
        allocations: batches(i.allocations),
        reversalReason: i.reversal?.reason,
      });
      changed = true;
    }
    return changed;
  }

  get(id: string): Row | undefined {
    return this.rows.get(id);
  }

  /** Newest first. */
  list(): readonly Row[] {
    return this.order;
  }

  get size(): number {
    return this.order.length;
  }

  /** Rows not yet finished: what a reconnect must catch up on. */
  unfinished(): string[] {
    return this.order.filter((r) => !isFinished(r.status)).map((r) => r.id);
  }

  /** Rows whose details the stream does not carry, to be read: the shares and amount of one
   * made in another tab or client, the reason of a reversal. */
  missingDetails(): string[] {
    return this.order.filter((r) => r.shares === undefined || lacksReversal(r)).map((r) => r.id);
  }

  private insert(row: Row): boolean {
    this.rows.set(row.id, row);
    this.place(row);
    while (this.order.length > this.limit) {
      const oldest = this.order.pop()!;
      this.rows.delete(oldest.id);
    }
    return this.rows.has(row.id);
  }

  /** Puts `row` in its place by binary search. */
  private place(row: Row) {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (before(this.order[mid], row)) lo = mid + 1;
      else hi = mid;
    }
    this.order.splice(lo, 0, row);
  }
}
