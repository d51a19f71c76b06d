//! Bearer-token identity (README, API): the caller is the token's `sub`, never a request field.
//!
//! [`Authenticator`] is a tonic interceptor, so one value guards every RPC of a service; health
//! and reflection are simply not wrapped by it. On success it stores the [`Caller`] in the
//! request's extensions, where handlers pick it up with [`Caller::of`].
//!
//! Keys come from exactly one source (`keys`): an HS256 secret, a PEM public key, or a JWKS
//! file that is re-read when it changes (`jwks`). The algorithm always comes from the key or
//! the configuration, never from the token. Signing, for `investctl` and tests, is in `mint`.

mod jwks;
mod keys;
mod mint;
mod policy;

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use tonic::{Request, Status, service::Interceptor};
use uuid::Uuid;

pub use self::{
    jwks::JwksError,
    keys::KeyError,
    mint::{Audience, Grant, KeyPair, SignError, Signer, generate_ed25519, jwks_json, mint_hs256},
};
use self::{keys::Verifier, policy::Policy};
use crate::config::AuthArgs;

/// The role that unlocks admin RPCs.
pub const ADMIN_ROLE: &str = "admin";

/// Claims we issue and accept.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id (UUID).
    pub sub: String,
    /// Roles such as [`ADMIN_ROLE`].
    #[serde(default)]
    pub roles: Vec<String>,
    /// Expiry, seconds since the epoch: required, so no token lives forever.
    pub exp: u64,
    /// Issued at, seconds since the epoch (optional).
    #[serde(default)]
    pub iat: u64,
    /// Not before, seconds since the epoch (optional): refused until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// The authenticated user behind a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// From the token's `sub`: the services read it as their own user id type.
    pub subject: Uuid,
    /// From the token's `roles`.
    pub roles: Vec<String>,
}

impl Caller {
    /// The caller that [`Authenticator`] attached to this request.
    ///
    /// Fails only if a service was wired without the interceptor: a bug, but answered as
    /// `UNAUTHENTICATED` rather than trusting anyone.
    pub fn of<T>(request: &Request<T>) -> Result<Caller, Status> {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("missing bearer token"))
    }

    /// Whether the token carries the admin role.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == ADMIN_ROLE)
    }

    /// `PERMISSION_DENIED` unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), Status> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Status::permission_denied("this RPC needs the admin role"))
        }
    }
}

/// Verifies bearer tokens; cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Verifier>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("keys", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// From configuration: the one key source set, the issuer, audience and leeway.
    pub fn from_args(args: &AuthArgs) -> Result<Self, KeyError> {
        Ok(Self {
            inner: Arc::new(Verifier::from_args(args)?),
        })
    }

    /// HS256 with a shared secret of at least 32 bytes, no issuer or audience required.
    pub fn hs256(secret: &[u8], leeway: Duration) -> Result<Self, KeyError> {
        let policy = Policy::new(None, None, leeway)?;
        Ok(Self {
            inner: Arc::new(Verifier::hs256(secret, &policy)?),
        })
    }

    /// The caller named by an `authorization` header value.
    ///
    /// A refusal says why (expired, issuer or audience not accepted, unknown key id, ...):
    /// nothing in it comes from the configuration.
    pub fn verify(&self, header: &str) -> Result<Caller, Status> {
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
        let claims = self.inner.decode(token).map_err(|refusal| {
            tracing::debug!(error = %refusal, "rejected token");
            Status::unauthenticated(refusal.reason())
        })?;
        let subject = Uuid::parse_str(&claims.sub)
            .map_err(|_| Status::unauthenticated("token subject is not a user id"))?;
        Ok(Caller {
            subject,
            roles: claims.roles,
        })
    }
}

impl Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing bearer token"))?
            .to_str()
            .map_err(|_| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
        let caller = self.verify(header)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

#[cfg(test)]
mod tests;
