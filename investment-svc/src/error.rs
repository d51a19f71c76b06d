//! The service's errors and their one mapping to gRPC status codes (DESIGN.md §4).

use rust_decimal::Decimal;
use sea_orm::DbErr;
use service_kit::status::Invalid;
use tonic::Status;

/// `Result` with this service's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed request: `INVALID_ARGUMENT` with field violations.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// Unknown, or someone else's: `NOT_FOUND` either way, so existence never leaks.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Only `active` subscriptions may invest.
    #[error("subscription is {0}, not active")]
    SubscriptionNotActive(&'static str),
    /// The deal no longer takes investments.
    #[error("deal is closed")]
    DealClosed,
    /// Not enough balance left once pending investments are reserved.
    #[error("insufficient available balance: {required} required, {available} available")]
    InsufficientBalance {
        /// What the investment costs.
        required: Decimal,
        /// What the subscription can still spend.
        available: Decimal,
    },
    /// The request id was used before with a different payload.
    #[error("request_id was already used for a different investment")]
    RequestIdReused,
    /// PostgreSQL failed: `UNAVAILABLE` if out of reach, else an opaque `INTERNAL`.
    #[error("database error")]
    Db(#[from] DbErr),
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        let message = error.to_string();
        match error {
            Error::Invalid(invalid) => invalid.into(),
            Error::NotFound(_) => Status::not_found(message),
            Error::SubscriptionNotActive(_) => {
                service_kit::status::precondition("SUBSCRIPTION_STATUS", "subscription_id", message)
            }
            Error::DealClosed => {
                service_kit::status::precondition("DEAL_STATUS", "deal_id", message)
            }
            Error::InsufficientBalance { .. } => service_kit::status::precondition(
                "INSUFFICIENT_BALANCE",
                "subscription_id",
                message,
            ),
            Error::RequestIdReused => Status::already_exists(message),
            Error::Db(e) => service_kit::status::database_status(&e),
        }
    }
}
