//! Bearer-token identity (README, API): the caller is the token's `sub`, never a request field.
//!
//! [`Authenticator`] is a tonic interceptor, so one value guards every RPC of a service; health
//! and reflection are simply not wrapped by it. On success it stores the [`Caller`] in the
//! request's extensions, where handlers pick it up with [`Caller::of`].

use std::{fs, sync::Arc, time::Duration};

use entity::prelude::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status, service::Interceptor};
use uuid::Uuid;

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
    /// From the token's `sub`.
    pub user_id: UserId,
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

/// Why a key could not be loaded at start-up.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Neither a secret nor a public key was configured.
    #[error("no JWT key configured: set JWT_SECRET (HS256) or JWT_PUBLIC_KEY_FILE")]
    Missing,
    /// HS256 secrets shorter than 32 bytes are brute-forceable.
    #[error("JWT_SECRET must be at least 32 bytes")]
    WeakSecret,
    /// The public key file could not be read.
    #[error("reading JWT public key {path}")]
    Read {
        /// The configured file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The key or algorithm is not usable.
    #[error("invalid JWT key")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// Verifies bearer tokens; cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<(DecodingKey, Validation)>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("algorithms", &self.inner.1.algorithms)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// From configuration: a public key (asymmetric) when given, else the HS256 secret.
    pub fn from_args(args: &AuthArgs) -> Result<Self, KeyError> {
        if let Some(path) = &args.jwt_public_key_file {
            let pem = fs::read(path).map_err(|source| KeyError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let key = match args.jwt_algorithm {
                Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
                    DecodingKey::from_rsa_pem(&pem)?
                }
                Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem)?,
                Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem)?,
                _ => {
                    return Err(KeyError::Invalid(
                        jsonwebtoken::errors::ErrorKind::InvalidAlgorithm.into(),
                    ));
                }
            };
            return Ok(Self::new(key, args.jwt_algorithm, args.jwt_leeway));
        }
        let secret = args.jwt_secret.as_ref().ok_or(KeyError::Missing)?;
        Self::hs256(secret.expose().as_bytes(), args.jwt_leeway)
    }

    /// HS256 with a shared secret of at least 32 bytes.
    pub fn hs256(secret: &[u8], leeway: Duration) -> Result<Self, KeyError> {
        if secret.len() < 32 {
            return Err(KeyError::WeakSecret);
        }
        Ok(Self::new(
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
            leeway,
        ))
    }

    fn new(key: DecodingKey, algorithm: Algorithm, leeway: Duration) -> Self {
        // Exactly one algorithm: a token cannot pick a weaker one (or `none`) for itself.
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // A token is refused before its `nbf` as after its `exp`, each give or take the leeway
        // for clocks that disagree.
        validation.validate_nbf = true;
        validation.leeway = leeway.as_secs();
        Self {
            inner: Arc::new((key, validation)),
        }
    }

    /// The caller named by an `authorization` header value.
    pub fn verify(&self, header: &str) -> Result<Caller, Status> {
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?;
        let (key, validation) = &*self.inner;
        let data = jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| {
            tracing::debug!(error = %e, "rejected token");
            Status::unauthenticated("invalid or expired token")
        })?;
        let user_id = Uuid::parse_str(&data.claims.sub)
            .map(UserId)
            .map_err(|_| Status::unauthenticated("token subject is not a user id"))?;
        Ok(Caller {
            user_id,
            roles: data.claims.roles,
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

/// Signs HS256 tokens: for the `investctl token` command and for tests.
pub fn mint_hs256(
    secret: &[u8],
    user_id: UserId,
    roles: &[&str],
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: user_id.to_string(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        iat: now,
        exp: now + ttl.as_secs(),
        nbf: None,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// A token whose `exp` and `nbf` are `exp` and `nbf` seconds from now.
    fn token(exp: i64, nbf: Option<i64>) -> String {
        let at = |delta: i64| get_current_timestamp().saturating_add_signed(delta);
        let claims = Claims {
            sub: Uuid::new_v4().to_string(),
            roles: Vec::new(),
            iat: at(0),
            exp: at(exp),
            nbf: nbf.map(at),
        };
        let token = encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET),
        );
        format!("Bearer {}", token.expect("encode"))
    }

    fn accepts(leeway: u64, header: &str) -> bool {
        Authenticator::hs256(SECRET, Duration::from_secs(leeway))
            .expect("key")
            .verify(header)
            .is_ok()
    }

    #[test]
    fn a_token_is_refused_before_its_nbf_and_after_its_exp_beyond_the_leeway() {
        assert!(accepts(0, &token(60, Some(-1))));
        assert!(!accepts(30, &token(3600, Some(3600))), "nbf an hour ahead");
        assert!(accepts(30, &token(3600, Some(10))), "nbf within the leeway");
        assert!(!accepts(0, &token(3600, Some(10))), "nbf ahead, no leeway");
        assert!(accepts(30, &token(-10, None)), "expired within the leeway");
        assert!(!accepts(0, &token(-10, None)), "expired, no leeway");
    }
}
