//! The authenticated caller as a domain user: `service-kit` knows only the token's subject, and
//! both services read it as a [`UserId`] the same way.

use entity::prelude::UserId;
use service_kit::auth::Caller;

/// The user a [`Caller`] acts as.
pub trait CallerUser {
    /// The token's subject as the domain's user id.
    fn user_id(&self) -> UserId;
}

impl CallerUser for Caller {
    fn user_id(&self) -> UserId {
        UserId(self.subject)
    }
}
