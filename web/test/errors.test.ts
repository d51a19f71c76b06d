import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe as group, expect, it } from "vitest";
import { describe } from "../src/errors.js";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  PreconditionFailureSchema,
} from "../src/gen/google/rpc/error_details_pb.js";
import { Format } from "../src/format.js";

/** An error as connect-web decodes it from `grpc-status-details-bin` (details as Any). */
function withDetail(code: Code, message: string, typeName: string, value: Uint8Array) {
  const e = new ConnectError(message, code);
  e.details.push({ type: typeName, value });
  return e;
}

group("describe", () => {
  it("puts BadRequest field violations next to their fields", () => {
    const detail = create(BadRequestSchema, {
      fieldViolations: [{ field: "shares", description: "must be at least 1" }],
    });
    const p = describe(
      withDetail(Code.InvalidArgument, "invalid request", "google.rpc.BadRequest", toBinary(BadRequestSchema, detail)),
    );
    expect(p.fields).toEqual({ shares: "must be at least 1" });
    expect(p.message).toBe("Please correct the fields marked below.");
  });

  it("words a refusal from its ErrorInfo figures, never from the message text", () => {
    const format = new Format("EUR", "en-US");
    const cases: [string, string, Record<string, string>, string][] = [
      ["SUBSCRIPTION_STATUS", "subscription_id", { subscription_status: "paused" }, "This plan is paused: only an active plan can invest."],
      ["DEAL_STATUS", "deal_id", {}, "This deal is closed: it no longer takes investments."],
      ["INSUFFICIENT_BALANCE", "subscription_id", { required: "2500.00", available: "1400.5" }, "Not enough money in this plan: this investment costs €2,500.00, the plan has €1,400.50 available."],
    ];
    for (const [type, subject, metadata, words] of cases) {
      // The description says something else: only the details count.
      const description = "subscription is cancelled; 1.00 required, 2.00 available";
      const e = new ConnectError(description, Code.FailedPrecondition);
      const failure = create(PreconditionFailureSchema, { violations: [{ type, subject, description }] });
      const info = create(ErrorInfoSchema, { reason: type, domain: "invest.v1", metadata });
      e.details.push({ type: "google.rpc.PreconditionFailure", value: toBinary(PreconditionFailureSchema, failure) });
      e.details.push({ type: "google.rpc.ErrorInfo", value: toBinary(ErrorInfoSchema, info) });
      const p = describe(e, format);
      expect(p.message).toBe(words);
      expect(p.fields).toEqual({ [subject]: words });
      expect(p.signedOut).toBe(false);
    }
  });

  it("words a refused cancel by the status the service names, and a refused retry as a retry", () => {
    const refused = (metadata: Record<string, string>) => {
      const description = "only ALLOCATION_STATUS_PENDING investments can be cancelled";
      const e = new ConnectError(description, Code.FailedPrecondition);
      const failure = create(PreconditionFailureSchema, {
        violations: [{ type: "ALLOCATION_STATUS", subject: "investment_id", description }],
      });
      const info = create(ErrorInfoSchema, { reason: "ALLOCATION_STATUS", domain: "invest.v1", metadata });
      e.details.push({ type: "google.rpc.PreconditionFailure", value: toBinary(PreconditionFailureSchema, failure) });
      e.details.push({ type: "google.rpc.ErrorInfo", value: toBinary(ErrorInfoSchema, info) });
      return e;
    };
    const format = new Format();
    expect(describe(refused({ allocation_status: "ALLOCATION_STATUS_COMPLETED" }), format, "cancel").message).toBe(
      "This investment can no longer be cancelled: its shares were already allocated.",
    );
    expect(describe(refused({ allocation_status: "ALLOCATION_STATUS_PROCESSING" }), format, "cancel").message).toBe(
      "This investment can no longer be cancelled: its shares are being allocated right now.",
    );
    // A status this page does not know yet still reads as a sentence, never as the enum name.
    const unknown = describe(refused({ allocation_status: "ALLOCATION_STATUS_ON_HOLD" }), format, "cancel").message;
    expect(unknown).toBe("This investment can no longer be cancelled: only one still waiting for its shares can be.");
    expect(describe(refused({}), format, "retry").message).toMatch(/nothing to retry/);
    expect(describe(refused({}), format).message).not.toMatch(/ALLOCATION_STATUS|retry|cancel/);
  });

  it("has a sentence for transport and auth failures", () => {
    expect(describe(new ConnectError("fetch failed", Code.Unavailable)).message).toMatch(/cannot be reached/);
    expect(describe(new ConnectError("x", Code.Unauthenticated)).message).toMatch(/sign in again/);
    expect(describe(new ConnectError("x", Code.Unauthenticated)).signedOut).toBe(true);
    expect(describe(new ConnectError("overloaded", Code.ResourceExhausted)).message).toMatch(/busy/);
    // Never the server's own text.
    expect(describe(new ConnectError("investment not found", Code.NotFound)).message).not.toMatch(/investment not found/);
    expect(describe(new ConnectError("internal error", Code.Internal)).message).toBe("The service failed; try again later.");
  });
});
