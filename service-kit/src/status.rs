//! How failures become gRPC statuses: bad input collected field by field and answered as
//! `INVALID_ARGUMENT` with `google.rpc.BadRequest` violations, and database failures.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use uuid::Uuid;

/// The longest string field we accept (ids, request ids, page tokens).
pub const MAX_STRING_LEN: usize = 128;

/// A request that failed validation: one `(field, description)` per problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid argument: {}", .0.iter().map(|(f, d)| format!("{f}: {d}")).collect::<Vec<_>>().join("; "))]
pub struct Invalid(pub Vec<(String, String)>);

impl Invalid {
    /// A single violation.
    pub fn field(field: &str, description: impl Into<String>) -> Self {
        Self(vec![(field.to_owned(), description.into())])
    }
}

impl From<Invalid> for Status {
    fn from(invalid: Invalid) -> Status {
        let mut details = ErrorDetails::new();
        for (field, description) in &invalid.0 {
            details.add_bad_request_violation(field.clone(), description.clone());
        }
        Status::with_error_details(Code::InvalidArgument, invalid.to_string(), details)
    }
}

/// The `google.rpc.ErrorInfo` domain of every reason the services give.
pub const ERROR_DOMAIN: &str = "invest.v1";

/// `FAILED_PRECONDITION` with a `google.rpc.PreconditionFailure` naming what failed (`kind`,
/// e.g. `INSUFFICIENT_BALANCE`) and on what (`subject`, a request field), and a
/// `google.rpc.ErrorInfo` with `kind` as its reason and the figures behind it as metadata
/// (e.g. `required`, `available`), so a client words it without parsing the message.
pub fn precondition(
    kind: &str,
    subject: &str,
    message: String,
    metadata: &[(&str, String)],
) -> Status {
    let mut details = ErrorDetails::new();
    details.add_precondition_failure_violation(kind, subject, message.clone());
    let metadata: std::collections::HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    details.set_error_info(kind, ERROR_DOMAIN, metadata);
    Status::with_error_details(Code::FailedPrecondition, message, details)
}

/// Collects violations while a handler parses its request.
///
/// Parsers return a placeholder (nil UUID, zero) when a field is bad; [`Violations::finish`]
/// then fails, so a placeholder is never used.
#[derive(Debug, Default)]
pub struct Violations(Vec<(String, String)>);

impl Violations {
    /// Records a violation.
    pub fn add(&mut self, field: &str, description: impl Into<String>) {
        self.0.push((field.to_owned(), description.into()));
    }

    /// A required UUID field.
    pub fn uuid(&mut self, field: &str, value: &str) -> Uuid {
        if value.is_empty() {
            self.add(field, "required");
        } else if value.len() > MAX_STRING_LEN {
            self.add(field, "too long");
        } else {
            match Uuid::try_parse(value) {
                Ok(id) if !id.is_nil() => return id,
                _ => self.add(field, "must be a UUID"),
            }
        }
        Uuid::nil()
    }

    /// An optional idempotency key (AIP-155): `None` when empty; at most [`MAX_STRING_LEN`]
    /// characters, no control characters.
    pub fn request_id(&mut self, field: &str, value: String) -> Option<String> {
        if value.chars().count() > MAX_STRING_LEN {
            self.add(
                field,
                format!("must be at most {MAX_STRING_LEN} characters"),
            );
        } else if value.chars().any(char::is_control) {
            self.add(field, "must not contain control characters");
        } else if !value.is_empty() {
            return Some(value);
        }
        None
    }

    /// A typed id (anything built from a `Uuid`, such as the domain's ids) from a UUID field, as
    /// [`Violations::uuid`].
    pub fn id<T: From<Uuid>>(&mut self, field: &str, value: &str) -> T {
        T::from(self.uuid(field, value))
    }

    /// `Ok` when nothing was recorded.
    pub fn finish(self) -> Result<(), Invalid> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Invalid(self.0))
        }
    }
}

/// A database failure as a status: `UNAVAILABLE` when the database cannot be reached (the
/// client may retry), else an opaque `INTERNAL` with the cause logged here.
pub fn database_status(error: &sea_orm::DbErr) -> Status {
    use sea_orm::DbErr;
    match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
            tracing::warn!(%error, "database unavailable");
            Status::unavailable("database unavailable, retry later")
        }
        _ if is_unavailable(error) => {
            tracing::warn!(%error, "database connection lost");
            Status::unavailable("database unavailable, retry later")
        }
        _ if is_contention(error) => {
            tracing::warn!(%error, "transaction lost a race");
            Status::aborted("concurrent update, retry")
        }
        _ => {
            tracing::error!(%error, "database error");
            Status::internal("internal error")
        }
    }
}

/// Serialization failure, deadlock or lock timeout: the transaction lost a race and may
/// simply be run again.
pub fn is_contention(error: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = error
    else {
        return false;
    };
    let Some(db) = e.as_database_error() else {
        return false;
    };
    matches!(db.code().as_deref(), Some("40001" | "40P01" | "55P03"))
}

/// A connection lost mid-query, a server shutting down or out of connections, or a server that
/// answers read-only (SQLSTATE 25006: a primary demoted by a failover, or the endpoint still
/// pointing at a standby): the database is (for now) out of reach rather than wrong.
pub fn is_unavailable(error: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = error
    else {
        return false;
    };
    match e.as_ref() {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || code.starts_with("57P0")
                || code.starts_with("53")
                || code == "25006"
        }),
        _ => false,
    }
}
