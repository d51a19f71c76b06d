import { create } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { Book, isCancellable, isFinished, statusName } from "../src/book.js";
import { AllocationSchema } from "../src/gen/invest/v1/allocation_part_pb.js";
import { AllocationUpdateSchema } from "../src/gen/invest/v1/allocation_pb.js";
import { AllocationFailure, AllocationStatus, InvestmentSchema } from "../src/gen/invest/v1/investment_pb.js";

const ID = "6f1c7e0a-0000-4000-8000-000000000001";
const update = (version: number, status: AllocationStatus, extra = {}) =>
  create(AllocationUpdateSchema, {
    investmentId: ID,
    dealId: "d1",
    version: BigInt(version),
    allocationStatus: status,
    ...extra,
  });
const listed = (version: number, status: AllocationStatus, extra = {}) =>
  create(InvestmentSchema, {
    id: ID,
    dealId: "d1",
    shares: 4n,
    totalAmount: "100.00",
    statusVersion: BigInt(version),
    allocationStatus: status,
    ...extra,
  });
const allocations = [create(AllocationSchema, { bulkPurchaseId: "b1", units: 4n, value: "100.00" })];
const returned = [create(AllocationSchema, { bulkPurchaseId: "b1", units: 4n, value: "100.00", reversed: true })];

describe("Book", () => {
  it("moves a row forward through its statuses and never back", () => {
    const book = new Book();
    expect(book.applyUpdate(update(1, AllocationStatus.PENDING))).toBe(true);
    expect(book.applyUpdate(update(2, AllocationStatus.PROCESSING))).toBe(true);
    expect(book.applyUpdate(update(3, AllocationStatus.COMPLETED, { allocations }))).toBe(true);
    // A late or repeated update (a reconnect's snapshot, a catch-up read) changes nothing.
    expect(book.applyUpdate(update(2, AllocationStatus.PROCESSING))).toBe(false);
    expect(book.applyUpdate(update(3, AllocationStatus.COMPLETED, { allocations }))).toBe(false);
    expect(book.applyInvestment(listed(2, AllocationStatus.PROCESSING))).toBe(true); // fills shares only
    const row = book.get(ID)!;
    expect(statusName(row.status)).toBe("COMPLETED");
    expect(row.version).toBe(3n);
    expect(row.shares).toBe(4n);
    expect(row.allocations).toEqual([{ batchId: "b1", units: 4n, value: "100.00", reversed: false }]);
    expect(book.list()).toHaveLength(1);
  });

  it("takes a listed row's allocations from the read: nothing is left to ask a stream for", () => {
    const book = new Book();
    book.applyInvestment(listed(3, AllocationStatus.COMPLETED, { allocations }));
    expect(book.get(ID)!.allocations).toEqual([{ batchId: "b1", units: 4n, value: "100.00", reversed: false }]);
    expect(book.missingDetails()).toEqual([]);
    // The same version on the stream (a reconnect's snapshot) changes nothing.
    expect(book.applyUpdate(update(3, AllocationStatus.COMPLETED, { allocations }))).toBe(false);
  });

  it("shows a reversal from the stream at once, then its reason from one read", () => {
    const book = new Book();
    book.applyInvestment(listed(3, AllocationStatus.COMPLETED, { allocations }));
    // The stream's REVERSED update carries neither the allocations nor the reason.
    expect(book.applyUpdate(update(4, AllocationStatus.REVERSED))).toBe(true);
    const row = book.get(ID)!;
    expect(statusName(row.status)).toBe("REVERSED");
    expect(row.allocations.map((a) => a.reversed)).toEqual([true]);
    expect(row.reversalReason).toBeUndefined();
    expect(book.missingDetails()).toEqual([ID]);
    const read = listed(4, AllocationStatus.REVERSED, { allocations: returned, reversal: { reason: "Refund" } });
    expect(book.applyInvestment(read)).toBe(true);
    expect(book.get(ID)!.reversalReason).toBe("Refund");
    expect(book.missingDetails()).toEqual([]);
    expect(book.applyInvestment(read)).toBe(false);
  });

  it("offers Cancel on a waiting row only, and counts cancelled and reversed rows as finished", () => {
    const book = new Book();
    book.applyInvestment(listed(1, AllocationStatus.PENDING));
    expect(isCancellable(book.get(ID)!)).toBe(true);
    expect(book.unfinished()).toEqual([ID]);
    book.applyInvestment(listed(2, AllocationStatus.CANCELLED));
    expect(isCancellable(book.get(ID)!)).toBe(false);
    expect(book.unfinished()).toEqual([]);
    for (const s of [AllocationStatus.PROCESSING, AllocationStatus.COMPLETED, AllocationStatus.FAILED, AllocationStatus.REVERSED]) {
      expect(isCancellable({ ...book.get(ID)!, status: s })).toBe(false);
      expect(isFinished(s)).toBe(s !== AllocationStatus.PROCESSING);
    }
  });

  it("shows a retry: FAILED, then PENDING again with the attempts, then the outcome", () => {
    const book = new Book();
    const failure = AllocationFailure.INSUFFICIENT_INVENTORY;
    book.applyUpdate(update(3, AllocationStatus.FAILED, { attempt: 5, error: "not enough units", failure }));
    expect(book.unfinished()).toEqual([]);
    expect(book.get(ID)!.failure).toBe(failure);
    book.applyUpdate(update(4, AllocationStatus.PENDING, { attempt: 0 }));
    expect(book.unfinished()).toEqual([ID]);
    expect(book.get(ID)!.failure).toBe(AllocationFailure.UNSPECIFIED);
  });

  it("lists the newest first", () => {
    const book = new Book();
    const at = (id: string, seconds: number) =>
      create(InvestmentSchema, { id, createdAt: { seconds: BigInt(seconds), nanos: 0 } });
    book.applyInvestment(at("a", 10));
    book.applyInvestment(at("c", 30));
    book.applyInvestment(at("b", 20));
    expect(book.list().map((r) => r.id)).toEqual(["c", "b", "a"]);
  });

  it("asks for the shares and amount of a row that arrived over the stream, and moves it to when it was made", () => {
    const book = new Book();
    const made = create(TimestampSchema, { seconds: 100n });
    book.applyUpdate(update(1, AllocationStatus.PENDING, { updatedAt: { seconds: 200n, nanos: 0 } }));
    book.applyInvestment(create(InvestmentSchema, { id: "older", createdAt: { seconds: 150n, nanos: 0 } }));
    expect(book.list().map((r) => r.id)).toEqual([ID, "older"]);
    expect(book.missingDetails()).toEqual([ID]);
    const read = listed(1, AllocationStatus.PENDING);
    read.createdAt = made;
    expect(book.applyInvestment(read)).toBe(true);
    expect(book.missingDetails()).toEqual([]);
    expect(book.get(ID)!.shares).toBe(4n);
    expect(book.get(ID)!.totalAmount).toBe("100.00");
    expect(book.list().map((r) => r.id)).toEqual(["older", ID]);
  });

  it("keeps at most its limit of rows, dropping the oldest, in order without sorting again", () => {
    const book = new Book(3);
    const at = (id: string, seconds: number) =>
      create(InvestmentSchema, { id, createdAt: { seconds: BigInt(seconds), nanos: 0 } });
    for (const [id, s] of [["a", 1], ["e", 5], ["c", 3], ["d", 4], ["b", 2]] as const) book.applyInvestment(at(id, s));
    expect(book.list().map((r) => r.id)).toEqual(["e", "d", "c"]);
    expect(book.size).toBe(3);
    expect(book.get("a")).toBeUndefined();
    // An older row than all kept ones is not kept either.
    expect(book.applyInvestment(at("z", 0))).toBe(false);
    expect(book.size).toBe(3);
  });
});
