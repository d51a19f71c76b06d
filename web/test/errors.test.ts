import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe as group, expect, it } from "vitest";
import { describe } from "../src/errors.js";
import {
  BadRequestSchema,
  PreconditionFailureSchema,
} from "../src/gen/google/rpc/error_details_pb.js";

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

  it("says precondition failures in words, with the amounts, on the field concerned", () => {
    const cases: [string, string, string, string][] = [
      ["SUBSCRIPTION_STATUS", "subscription_id", "subscription is paused, not active", "This subscription is paused: only an active subscription can invest."],
      ["DEAL_STATUS", "deal_id", "deal is closed", "This deal is closed: it no longer takes investments."],
      ["INSUFFICIENT_BALANCE", "subscription_id", "insufficient available balance: 2500.00 required, 1400.00 available", "Not enough balance: this investment costs 2500.00, the subscription has 1400.00 available."],
    ];
    for (const [type, subject, description, words] of cases) {
      const detail = create(PreconditionFailureSchema, { violations: [{ type, subject, description }] });
      const p = describe(
        withDetail(Code.FailedPrecondition, description, "google.rpc.PreconditionFailure", toBinary(PreconditionFailureSchema, detail)),
      );
      expect(p.message).toBe(words);
      expect(p.fields).toEqual({ [subject]: words });
    }
  });

  it("has a sentence for transport and auth failures", () => {
    expect(describe(new ConnectError("fetch failed", Code.Unavailable)).message).toMatch(/cannot be reached/);
    expect(describe(new ConnectError("x", Code.Unauthenticated)).message).toMatch(/sign in again/);
    expect(describe(new ConnectError("overloaded", Code.ResourceExhausted)).message).toMatch(/busy/);
    expect(describe(new ConnectError("investment not found", Code.NotFound)).message).toBe("investment not found");
  });
});
