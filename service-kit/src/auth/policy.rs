//! What every token must satisfy besides its signature, whichever key verifies it: what
//! `keys` (one key) and `jwks` (a key set) both check against.

use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};

use crate::config::MAX_JWT_LEEWAY;

/// JWT_LEEWAY over [`MAX_JWT_LEEWAY`]: a longer leeway keeps expired tokens alive noticeably
/// longer.
#[derive(Debug, thiserror::Error)]
#[error("JWT_LEEWAY is at most 5m")]
pub struct LeewayTooLong;

/// What every token must satisfy besides its signature: the same for every key.
#[derive(Clone, Debug)]
pub(super) struct Policy {
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Duration,
}

impl Policy {
    pub(super) fn new(
        issuer: Option<String>,
        audience: Option<String>,
        leeway: Duration,
    ) -> Result<Self, LeewayTooLong> {
        if leeway > MAX_JWT_LEEWAY {
            return Err(LeewayTooLong);
        }
        Ok(Self {
            issuer,
            audience,
            leeway,
        })
    }

    /// The checks for tokens verified with a key of `algorithm`.
    pub(super) fn validation(&self, algorithm: Algorithm) -> Validation {
        // Exactly one algorithm: a token cannot pick a weaker one (or `none`) for itself.
        let mut validation = Validation::new(algorithm);
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        // Without an audience configured, a token naming any audience is refused (it was
        // meant for someone else); with one, the token must name it.
        if let Some(audience) = &self.audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        // A token is refused before its `nbf` as after its `exp`, each give or take the leeway
        // for clocks that disagree.
        validation.validate_nbf = true;
        validation.leeway = self.leeway.as_secs();
        validation
    }
}
