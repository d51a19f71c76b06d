// What to tell the user about a failed call: field errors from google.rpc.BadRequest next to
// their fields, PreconditionFailure reasons in words, and a sentence for the rest.

import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, PreconditionFailureSchema } from "./gen/google/rpc/error_details_pb.js";

export interface Problem {
  /** A sentence for the form or the page. */
  message: string;
  /** Request field name (e.g. `shares`) to what is wrong with it. */
  fields: Record<string, string>;
}

/** A PreconditionFailure violation (`type` as the services name them) in words. */
export function preconditionInWords(type: string, description: string): string {
  switch (type) {
    case "SUBSCRIPTION_STATUS": {
      const status = /subscription is (\w+)/.exec(description)?.[1];
      return status
        ? `This subscription is ${status}: only an active subscription can invest.`
        : "This subscription cannot invest now.";
    }
    case "DEAL_STATUS":
      return "This deal is closed: it no longer takes investments.";
    case "INSUFFICIENT_BALANCE": {
      const m = /([\d.]+) required, ([\d.]+) available/.exec(description);
      return m
        ? `Not enough balance: this investment costs ${m[1]}, the subscription has ${m[2]} available.`
        : "Not enough balance on this subscription.";
    }
    default:
      return description;
  }
}

export function describe(err: unknown): Problem {
  const e = ConnectError.from(err);
  const fields: Record<string, string> = {};
  for (const bad of e.findDetails(BadRequestSchema)) {
    for (const v of bad.fieldViolations) fields[v.field] = v.description;
  }
  const reasons: string[] = [];
  for (const failure of e.findDetails(PreconditionFailureSchema)) {
    for (const v of failure.violations) {
      const words = preconditionInWords(v.type, v.description);
      reasons.push(words);
      if (v.subject) fields[v.subject] = words;
    }
  }
  let message: string;
  if (reasons.length > 0) message = reasons.join(" ");
  else if (Object.keys(fields).length > 0) message = "Please correct the fields marked below.";
  else {
    switch (e.code) {
      case Code.Unavailable:
      case Code.Unknown:
        message = "The service cannot be reached; try again in a moment.";
        break;
      case Code.DeadlineExceeded:
        message = "The service did not answer in time; try again.";
        break;
      case Code.ResourceExhausted:
        message = "The service is busy; try again in a moment.";
        break;
      case Code.Unauthenticated:
        message = "Your token was refused (invalid or expired): sign in again.";
        break;
      case Code.PermissionDenied:
        message = "This needs an admin token.";
        break;
      default:
        message = e.rawMessage || Code[e.code];
    }
  }
  return { message, fields };
}
