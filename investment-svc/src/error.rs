//! The service's errors and their one mapping to gRPC status codes (README, API).

use ledger::rules::Refusal;
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
    /// The subscription, deal or balance does not allow the investment.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Only a `pending` investment can be cancelled.
    #[error(
        "only ALLOCATION_STATUS_PENDING investments can be cancelled; this one is {}",
        wire::allocation_status(*.0).as_str_name()
    )]
    NotCancellable(entity::prelude::AllocationStatus),
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
            Error::Refused(refusal) => wire::refusal::status(refusal),
            Error::NotCancellable(status) => service_kit::status::precondition(
                "ALLOCATION_STATUS",
                "investment_id",
                message,
                &[(
                    "allocation_status",
                    wire::allocation_status(status).as_str_name().to_owned(),
                )],
            ),
            Error::RequestIdReused => Status::already_exists(message),
            Error::Db(e) => service_kit::status::database_status(&e),
        }
    }
}
