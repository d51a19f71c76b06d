//! Keys from a JWKS file (JWT_JWKS_FILE), picked by a token's `kid`, re-read when the file
//! changes so keys rotate without a restart.
//!
//! The file is read again on use, at most once per [`RELOAD_INTERVAL`], and parsed only when
//! its bytes changed: a JWKS is a few kilobytes, so this is cheap enough to do inline in the
//! interceptor, with no task to stop at shutdown, and unlike a modification time it cannot
//! miss two writes within one clock tick. A file that cannot be read or holds no usable key
//! leaves the previous keys in place (a deployment rewriting it may be half-way through).

use std::{
    collections::HashMap,
    fmt, fs,
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, AlgorithmFamily, DecodingKey, Validation,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse},
};

use super::policy::Policy;

/// How often, at most, the file is looked at again.
pub(super) const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Why a JWKS file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The file could not be read.
    #[error("reading JWT_JWKS_FILE {path}")]
    Read {
        /// The configured file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a JWKS (`{"keys": [...]}`).
    #[error("JWT_JWKS_FILE {path} is not a JWK set")]
    Parse {
        /// The configured file.
        path: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// No key of the set can verify tokens (each one skipped is logged with its reason).
    #[error("JWT_JWKS_FILE {path} holds no usable signing key")]
    NoUsableKey {
        /// The configured file.
        path: String,
    },
}

/// Why one key of the set is skipped.
#[derive(Debug, thiserror::Error)]
enum Unusable {
    #[error("no kid")]
    NoKeyId,
    #[error("not a signing key (`use` is not `sig`)")]
    NotForSigning,
    #[error("a symmetric key: a JWKS file is public, so it is refused")]
    Symmetric,
    #[error("key type, curve or algorithm not supported")]
    Unsupported,
    #[error("its `alg` does not fit its key type")]
    AlgorithmMismatch,
    #[error("invalid key")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// A key of the set, with the checks for tokens it signed.
pub(super) struct Key {
    pub(super) decoding: DecodingKey,
    pub(super) validation: Validation,
}

type Keys = HashMap<String, Arc<Key>>;

struct State {
    checked: Instant,
    /// The file's bytes when `keys` were last taken from it, or last refused.
    read: Vec<u8>,
    keys: Arc<Keys>,
}

/// The JWKS file and the keys last read from it.
pub(super) struct JwksFile {
    path: PathBuf,
    policy: Policy,
    state: RwLock<State>,
}

impl fmt::Debug for JwksFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl JwksFile {
    /// Reads the file now: at start-up it must hold at least one usable key.
    pub(super) fn open(path: &Path, policy: Policy) -> Result<Self, JwksError> {
        let read = read(path)?;
        let keys = parse(path, &read, &policy)?;
        Ok(Self {
            path: path.to_owned(),
            policy,
            state: RwLock::new(State {
                checked: Instant::now(),
                read,
                keys: Arc::new(keys),
            }),
        })
    }

    /// The key named `kid`, after looking at the file again if it is due.
    pub(super) fn key(&self, kid: &str) -> Option<Arc<Key>> {
        self.current().get(kid).cloned()
    }

    fn current(&self) -> Arc<Keys> {
        {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            if state.checked.elapsed() < RELOAD_INTERVAL {
                return state.keys.clone();
            }
        }
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        // Another caller may have looked while this one waited for the lock.
        if state.checked.elapsed() < RELOAD_INTERVAL {
            return state.keys.clone();
        }
        state.checked = Instant::now();
        match read(&self.path) {
            Ok(bytes) if bytes == state.read => {}
            Ok(bytes) => {
                let parsed = parse(&self.path, &bytes, &self.policy);
                state.read = bytes;
                match parsed {
                    Ok(keys) => {
                        tracing::info!(path = %self.path.display(), keys = keys.len(), "JWKS file read again");
                        state.keys = Arc::new(keys);
                    }
                    Err(e) => tracing::warn!(
                        error = %e,
                        "JWKS file changed but cannot be used; keeping the previous keys"
                    ),
                }
            }
            Err(e) => tracing::warn!(error = %e, "keeping the previous JWKS keys"),
        }
        state.keys.clone()
    }

    /// Makes the next use look at the file again, as if a second had passed.
    #[cfg(test)]
    pub(super) fn recheck_now(&self) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.checked = Instant::now()
            .checked_sub(RELOAD_INTERVAL)
            .unwrap_or(state.checked);
    }
}

fn read(path: &Path) -> Result<Vec<u8>, JwksError> {
    fs::read(path).map_err(|source| JwksError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn parse(path: &Path, bytes: &[u8], policy: &Policy) -> Result<Keys, JwksError> {
    let shown = || path.display().to_string();
    let set: JwkSet = serde_json::from_slice(bytes).map_err(|source| JwksError::Parse {
        path: shown(),
        source,
    })?;
    let keys = parse_keys(&set, policy);
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey { path: shown() });
    }
    Ok(keys)
}

/// The usable keys of `set`; the others are logged and skipped (an identity provider's set
/// may hold encryption keys or types this build does not verify).
fn parse_keys(set: &JwkSet, policy: &Policy) -> Keys {
    let mut keys = Keys::new();
    for (index, jwk) in set.keys.iter().enumerate() {
        match key_of(jwk, policy) {
            Ok((kid, key)) => {
                keys.insert(kid, Arc::new(key));
            }
            Err(e) => tracing::warn!(
                index,
                kid = jwk.common.key_id.as_deref().unwrap_or(""),
                reason = %e,
                "JWKS key skipped"
            ),
        }
    }
    keys
}

fn key_of(jwk: &Jwk, policy: &Policy) -> Result<(String, Key), Unusable> {
    let kid = jwk.common.key_id.clone().ok_or(Unusable::NoKeyId)?;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return Err(Unusable::NotForSigning);
    }
    let algorithm = algorithm_of(jwk)?;
    let decoding = DecodingKey::from_jwk(jwk)?;
    Ok((
        kid,
        Key {
            decoding,
            validation: policy.validation(algorithm),
        },
    ))
}

/// The one algorithm a key verifies: fixed by its curve for EC and OKP keys, its `alg` (or
/// RS256) for RSA. Never symmetric, so a token's `alg: HS256` can never turn a public key into
/// an HMAC secret.
fn algorithm_of(jwk: &Jwk) -> Result<Algorithm, Unusable> {
    let stated = jwk
        .common
        .key_algorithm
        .map(|a| Algorithm::try_from(a).map_err(|_| Unusable::Unsupported))
        .transpose()?;
    let fixed = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => {
            let algorithm = stated.unwrap_or(Algorithm::RS256);
            if algorithm.family() != AlgorithmFamily::Rsa {
                return Err(Unusable::AlgorithmMismatch);
            }
            return Ok(algorithm);
        }
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return Err(Unusable::Unsupported),
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => Algorithm::EdDSA,
            _ => return Err(Unusable::Unsupported),
        },
        AlgorithmParameters::OctetKey(_) => return Err(Unusable::Symmetric),
        _ => return Err(Unusable::Unsupported),
    };
    match stated {
        Some(algorithm) if algorithm != fixed => Err(Unusable::AlgorithmMismatch),
        _ => Ok(fixed),
    }
}
