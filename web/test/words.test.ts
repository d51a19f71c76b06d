import { describe, expect, it } from "vitest";
import { AllocationFailure } from "../src/gen/invest/v1/investment_pb.js";
import { failureInWords } from "../src/views/words.js";

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
