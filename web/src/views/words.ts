// Statuses in the words the page uses.

import { AllocationStatus, SubscriptionStatus } from "../gen/invest/v1/investment_pb.js";

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
