//! The service's errors and their one mapping to gRPC status codes (README, API).

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
    /// Unknown, or someone else's: `NOT_FOUND` either way.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The investment is not in a state the RPC applies to, or its subscription, deal or
    /// balance no longer allows it.
    #[error("{message}")]
    FailedPrecondition {
        /// What failed, e.g. `ALLOCATION_STATUS` (PreconditionFailure type).
        kind: &'static str,
        /// The request field concerned.
        subject: &'static str,
        /// For people.
        message: String,
    },
    /// The subscription, deal or balance does not allow the money to be reserved again.
    #[error(transparent)]
    Refused(#[from] ledger::rules::Refusal),
    /// The request id was used before for another investment.
    #[error("request_id was already used for another reversal")]
    RequestIdReused,
    /// PostgreSQL failed.
    #[error("database error")]
    Db(#[from] DbErr),
    /// The user holds `WATCH_MAX_PER_USER` watch streams on this replica already.
    #[error(
        "too many open watch streams: at most {0} per user; close one (or wait for one to end) \
         before opening another"
    )]
    TooManyWatches(usize),
    /// NATS failed; the client may retry. The cause is kept as the source (logged, never sent).
    #[error("NATS unavailable")]
    Nats(#[source] async_nats::Error),
}

impl Error {
    /// A NATS failure, its cause kept.
    pub fn nats(cause: impl Into<async_nats::Error>) -> Error {
        Error::Nats(cause.into())
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        match error {
            Error::Invalid(invalid) => invalid.into(),
            Error::NotFound(_) => Status::not_found(error.to_string()),
            Error::FailedPrecondition {
                kind,
                subject,
                message,
            } => service_kit::status::precondition(kind, subject, message, &[]),
            Error::Refused(refusal) => wire::refusal::status(refusal),
            Error::RequestIdReused => Status::already_exists(error.to_string()),
            Error::TooManyWatches(_) => Status::resource_exhausted(error.to_string()),
            Error::Db(e) => service_kit::status::database_status(&e),
            Error::Nats(e) => {
                tracing::warn!(error = %e, cause = ?e, "NATS unavailable");
                Status::unavailable("NATS unavailable, retry later")
            }
        }
    }
}
