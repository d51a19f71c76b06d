// Statuses, and what an investor reads about each investment, in the words the page uses.

import type { Row } from "../book.js";
import type { Format } from "../format.js";
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
    case AllocationStatus.CANCELLED:
      return "Cancelled";
    case AllocationStatus.REVERSED:
      return "Reversed";
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

/** A row's details: a sentence on where its money stands, and one line per allocated batch. */
export function detailsInWords(row: Row, f: Format): { text: string; allocations: string[] } {
  const allocations = row.allocations.map((a) => {
    const line = `${f.units(a.units)} ${a.units === 1n ? "share" : "shares"} allocated, ${f.amount(a.value)}`;
    return a.reversed ? `${line} (returned)` : line;
  });
  const amount = row.totalAmount === undefined ? "The amount" : f.amount(row.totalAmount);
  let text = "";
  switch (row.status) {
    case AllocationStatus.PENDING:
    case AllocationStatus.PROCESSING:
      text =
        row.attempt > 0
          ? "The amount is held until the shares are allocated; the last try failed and is being repeated."
          : "The amount is held until the shares are allocated.";
      break;
    case AllocationStatus.FAILED:
      text = failureInWords(row.failure);
      break;
    case AllocationStatus.CANCELLED:
      text = `You cancelled it before its shares were allocated: ${amount} is back in your plan.`;
      break;
    case AllocationStatus.REVERSED:
      text =
        row.reversalReason === undefined
          ? `Reversed by an operator: ${amount} is back in your plan.`
          : `Reversed by an operator (${quoted(row.reversalReason)}): ${amount} is back in your plan.`;
      break;
  }
  return { text, allocations };
}

/** An operator's free text, as a quotation that ends where it should. */
function quoted(reason: string): string {
  return `“${reason.trim().replace(/[.\s]+$/, "")}”`;
}
