// What to tell the user about a failed call, from the error's details and never from its
// text: google.rpc.BadRequest field errors next to their fields, a refusal's reason and figures
// from google.rpc.ErrorInfo (PreconditionFailure says on which field), and a sentence per code.

import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  PreconditionFailureSchema,
} from "./gen/google/rpc/error_details_pb.js";
import { Format } from "./format.js";

export interface Problem {
  /** A sentence for the form or the page. */
  message: string;
  /** Request field name (e.g. `shares`) to what is wrong with it. */
  fields: Record<string, string>;
  /** The token was refused: nothing works until the user signs in again. */
  signedOut: boolean;
}

/** What the refused call was for, where the same reason reads differently. */
export type Action = "cancel" | "retry";

/** Why a cancel came too late, by the status the service names (ErrorInfo allocation_status). */
const NOT_CANCELLABLE: Record<string, string> = {
  ALLOCATION_STATUS_PROCESSING: "its shares are being allocated right now",
  ALLOCATION_STATUS_COMPLETED: "its shares were already allocated",
  ALLOCATION_STATUS_FAILED: "its allocation failed (nothing was charged)",
  ALLOCATION_STATUS_REVERSED: "it was allocated and then reversed",
};

/** A refusal (`reason` as the services name them, ErrorInfo metadata) in words. */
export function refusalInWords(reason: string, metadata: Record<string, string>, format: Format, action?: Action): string {
  switch (reason) {
    case "SUBSCRIPTION_STATUS": {
      const status = metadata.subscription_status;
      return status
        ? `This plan is ${status}: only an active plan can invest.`
        : "This plan cannot invest now.";
    }
    case "DEAL_STATUS":
      return "This deal is closed: it no longer takes investments.";
    case "INSUFFICIENT_BALANCE": {
      const { required, available } = metadata;
      return required && available
        ? `Not enough money in this plan: this investment costs ${format.amount(required)}, the plan has ${format.amount(available)} available.`
        : "Not enough money available in this plan.";
    }
    case "ALLOCATION_STATUS": {
      if (action === "retry") return "This investment has not failed (it may have been retried already): there is nothing to retry.";
      if (action === "cancel") {
        const why = NOT_CANCELLABLE[metadata.allocation_status ?? ""];
        return why
          ? `This investment can no longer be cancelled: ${why}.`
          : "This investment can no longer be cancelled: only one still waiting for its shares can be.";
      }
      return "This investment's status does not allow that any more.";
    }
    default:
      return "The service refused this request.";
  }
}

const BY_CODE: Partial<Record<Code, string>> = {
  [Code.Unavailable]: "The service cannot be reached; try again in a moment.",
  [Code.Unknown]: "The service cannot be reached; try again in a moment.",
  [Code.DeadlineExceeded]: "The service did not answer in time; try again.",
  [Code.ResourceExhausted]: "The service is busy; try again in a moment.",
  [Code.Unauthenticated]: "You are signed out: your sign-in expired or was not accepted. Please sign in again.",
  [Code.PermissionDenied]: "This needs an operator's sign-in.",
  [Code.NotFound]: "That was not found: it may belong to someone else or no longer exist.",
  [Code.AlreadyExists]: "This request was already used for a different investment.",
  [Code.Aborted]: "Something changed at the same moment; try again.",
  [Code.Internal]: "The service failed; try again later.",
};

export function describe(err: unknown, format: Format = new Format(), action?: Action): Problem {
  const e = ConnectError.from(err);
  const fields: Record<string, string> = {};
  for (const bad of e.findDetails(BadRequestSchema)) {
    for (const v of bad.fieldViolations) fields[v.field] = v.description;
  }
  const infos = e.findDetails(ErrorInfoSchema);
  const reasons: string[] = [];
  for (const failure of e.findDetails(PreconditionFailureSchema)) {
    for (const v of failure.violations) {
      const info = infos.find((i) => i.reason === v.type);
      const words = refusalInWords(v.type, info?.metadata ?? {}, format, action);
      reasons.push(words);
      if (v.subject) fields[v.subject] = words;
    }
  }
  let message: string;
  if (reasons.length > 0) message = reasons.join(" ");
  else if (Object.keys(fields).length > 0) message = "Please correct the fields marked below.";
  else message = BY_CODE[e.code] ?? "Something went wrong; try again.";
  return { message, fields, signedOut: e.code === Code.Unauthenticated };
}
