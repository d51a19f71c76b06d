//! A refused reservation on the wire: `FAILED_PRECONDITION` with a `google.rpc.PreconditionFailure`
//! naming the rule and a `google.rpc.ErrorInfo` carrying its figures, so a client words it
//! without parsing the message. Here rather than in `ledger`, which knows the rules but not gRPC.

use ledger::rules::{Refusal, subscription_word};
use tonic::Status;

/// The status a refusal is answered with, by a create and by an admin retry alike.
pub fn status(refusal: Refusal) -> Status {
    let (kind, subject, metadata) = match refusal {
        Refusal::SubscriptionNotActive(status) => (
            "SUBSCRIPTION_STATUS",
            "subscription_id",
            vec![("subscription_status", subscription_word(status).to_owned())],
        ),
        Refusal::DealClosed => ("DEAL_STATUS", "deal_id", vec![]),
        Refusal::InsufficientBalance {
            required,
            available,
        } => (
            "INSUFFICIENT_BALANCE",
            "subscription_id",
            vec![
                ("required", required.to_string()),
                ("available", available.to_string()),
            ],
        ),
    };
    service_kit::status::precondition(kind, subject, refusal.to_string(), &metadata)
}
