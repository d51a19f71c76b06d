// Statuses in the words the page uses.

import { AllocationFailure, AllocationStatus, SubscriptionStatus } from "../gen/invest/v1/investment_pb.js";

export function subscriptionWord(status: SubscriptionStatus): string {
  return (SubscriptionStatus[status] ?? "unknown").toLowerCase();
}

/** What an investor reads for an allocation status. */
export function allocationWords(status: AllocationStatus): string {
  switch (status) {
    case AllocationStatus.PENDING:
      return "Waiting";
    case AllocationStatus.PROCESSING:
      return "Allocating";
    case AllocationStatus.COMPLETED:
      return "Completed";
    case AllocationStatus.FAILED:
      return "Failed";
    default:
      return "Unknown";
  }
}

/** Why an allocation failed, as an investor reads it: from the reason the API sends, not its
 * error text (whose wording is for people and may change). */
export function failureInWords(failure: AllocationFailure): string {
  switch (failure) {
    case AllocationFailure.INSUFFICIENT_INVENTORY:
      return "Not enough shares were left in this deal; nothing was charged.";
    case AllocationFailure.ATTEMPTS_EXHAUSTED:
      return "The allocation kept failing; nothing was charged. Support can retry it.";
    default:
      return "The shares could not be allocated; nothing was charged.";
  }
}
