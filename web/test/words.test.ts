import { describe, expect, it } from "vitest";
import type { Row } from "../src/book.js";
import { Format } from "../src/format.js";
import { AllocationFailure, AllocationStatus } from "../src/gen/invest/v1/investment_pb.js";
import { allocationWords, detailsInWords, failureInWords } from "../src/views/words.js";

const row = (status: AllocationStatus, extra: Partial<Row> = {}): Row => ({
  id: "i1",
  dealId: "d1",
  shares: 4n,
  totalAmount: "100.00",
  status,
  version: 1n,
  attempt: 0,
  failure: AllocationFailure.UNSPECIFIED,
  allocations: [],
  since: 0,
  ...extra,
});
const f = new Format("USD", "en-US");
const batch = { batchId: "b1", units: 4n, value: "100.00", reversed: false };

describe("an investment's details in words", () => {
  it("names every status, the new terminal ones included", () => {
    expect(allocationWords(AllocationStatus.CANCELLED)).toBe("Cancelled");
    expect(allocationWords(AllocationStatus.REVERSED)).toBe("Reversed");
  });

  it("says where the money went for a cancelled and a reversed investment, with the operator's reason", () => {
    expect(detailsInWords(row(AllocationStatus.CANCELLED), f).text).toBe(
      "You cancelled it before its shares were allocated: $100.00 is back in your plan.",
    );
    const reversed = row(AllocationStatus.REVERSED, { reversalReason: "Refund requested. ", allocations: [{ ...batch, reversed: true }] });
    expect(detailsInWords(reversed, f)).toEqual({
      text: "Reversed by an operator (“Refund requested”): $100.00 is back in your plan.",
      allocations: ["4 shares allocated, $100.00 (returned)"],
    });
    // Before its reason is read, still a sentence.
    expect(detailsInWords(row(AllocationStatus.REVERSED), f).text).toBe("Reversed by an operator: $100.00 is back in your plan.");
  });

  it("lists a completed investment's allocations, and a waiting one's held amount", () => {
    expect(detailsInWords(row(AllocationStatus.COMPLETED, { allocations: [batch] }), f)).toEqual({
      text: "",
      allocations: ["4 shares allocated, $100.00"],
    });
    expect(detailsInWords(row(AllocationStatus.PENDING), f).text).toBe("The amount is held until the shares are allocated.");
    // A waiting row after a failed try is not told it failed.
    expect(detailsInWords(row(AllocationStatus.PENDING, { attempt: 1 }), f).text).toMatch(/being repeated/);
  });
});

describe("failureInWords", () => {
  it("words the reason the API sends, whatever its error text says", () => {
    expect(failureInWords(AllocationFailure.INSUFFICIENT_INVENTORY)).toBe(
      "Not enough shares were left in this deal; nothing was charged.",
    );
    expect(failureInWords(AllocationFailure.ATTEMPTS_EXHAUSTED)).toBe(
      "The allocation kept failing; nothing was charged. Support can retry it.",
    );
  });

  it("has general words for a failure without a reason (an older server, a new value)", () => {
    const general = "The shares could not be allocated; nothing was charged.";
    expect(failureInWords(AllocationFailure.UNSPECIFIED)).toBe(general);
    expect(failureInWords(99 as AllocationFailure)).toBe(general);
  });
});
