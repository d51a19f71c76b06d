// The investments the dashboard shows, merged from every source (the list, creates, the
// WatchAllocations stream, catch-up reads) by status version: an update older than or equal to
// what a row shows changes nothing, so one seen twice (a reconnect's snapshot, a catch-up read
// racing the stream) is shown once, and one seen late never moves a row backwards.

import type { AllocationUpdate } from "./gen/invest/v1/allocation_pb.js";
import { AllocationStatus, type Investment } from "./gen/invest/v1/investment_pb.js";

/** One allocated batch of a completed investment. */
export interface BatchAllocation {
  batchId: string;
  units: bigint;
  value: string;
}

/** One investment as the dashboard shows it. */
export interface Row {
  id: string;
  dealId: string;
  shares?: bigint;
  totalAmount?: string;
  status: AllocationStatus;
  version: bigint;
  attempt: number;
  error: string;
  allocations: BatchAllocation[];
  /** When it was made (or, for a row known only from the stream, its first update). */
  since: number;
}

/** COMPLETED and FAILED are final until an operator retries. */
export function isFinished(status: AllocationStatus): boolean {
  return status === AllocationStatus.COMPLETED || status === AllocationStatus.FAILED;
}

/** The status as a word, for text and `data-status`. */
export function statusName(status: AllocationStatus): string {
  return AllocationStatus[status] ?? "UNKNOWN";
}

function millis(t: { seconds: bigint; nanos: number } | undefined): number | undefined {
  return t === undefined ? undefined : Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6);
}

export class Book {
  private readonly rows = new Map<string, Row>();

  /** Merges a stream update; true if the row changed. */
  applyUpdate(u: AllocationUpdate): boolean {
    const row = this.rows.get(u.investmentId);
    const allocations = u.allocations.map((a) => ({
      batchId: a.bulkPurchaseId,
      units: a.units,
      value: a.value,
    }));
    if (row === undefined) {
      this.rows.set(u.investmentId, {
        id: u.investmentId,
        dealId: u.dealId,
        status: u.allocationStatus,
        version: u.version,
        attempt: u.attempt,
        error: u.error,
        allocations,
        since: millis(u.updatedAt) ?? Date.now(),
      });
      return true;
    }
    if (u.version < row.version) return false;
    if (u.version === row.version) {
      // The same change again; it may carry the allocations a list row lacks.
      if (row.allocations.length > 0 || allocations.length === 0) return false;
      row.allocations = allocations;
      return true;
    }
    Object.assign(row, {
      status: u.allocationStatus,
      version: u.version,
      attempt: u.attempt,
      error: u.error,
      allocations,
    });
    if (row.dealId === "") row.dealId = u.dealId;
    return true;
  }

  /** Merges an investment read by a unary call; true if the row changed. */
  applyInvestment(i: Investment): boolean {
    const since = millis(i.createdAt) ?? Date.now();
    const row = this.rows.get(i.id);
    if (row === undefined) {
      this.rows.set(i.id, {
        id: i.id,
        dealId: i.dealId,
        shares: i.shares,
        totalAmount: i.totalAmount,
        status: i.allocationStatus,
        version: i.statusVersion,
        attempt: i.allocationAttempts,
        error: i.allocationError,
        allocations: [],
        since,
      });
      return true;
    }
    let changed = false;
    if (row.shares === undefined) {
      Object.assign(row, { shares: i.shares, totalAmount: i.totalAmount, since });
      changed = true;
    }
    if (i.statusVersion > row.version) {
      Object.assign(row, {
        status: i.allocationStatus,
        version: i.statusVersion,
        attempt: i.allocationAttempts,
        error: i.allocationError,
        allocations: [],
      });
      changed = true;
    }
    return changed;
  }

  get(id: string): Row | undefined {
    return this.rows.get(id);
  }

  /** Newest first. */
  list(): Row[] {
    return [...this.rows.values()].sort((a, b) => b.since - a.since || a.id.localeCompare(b.id));
  }

  /** Rows not yet COMPLETED or FAILED: what a reconnect must catch up on. */
  unfinished(): string[] {
    return this.list()
      .filter((r) => !isFinished(r.status))
      .map((r) => r.id);
  }

  /** Completed rows whose allocations are not known yet (read from the list). */
  missingAllocations(): string[] {
    return this.list()
      .filter((r) => r.status === AllocationStatus.COMPLETED && r.allocations.length === 0)
      .map((r) => r.id);
  }
}
