//! Where verification keys come from (exactly one source) and what a token must satisfy.

use std::{fmt, fs, path::Path};

use jsonwebtoken::{
    Algorithm, AlgorithmFamily, DecodingKey, Validation, decode, decode_header,
    errors::{Error as JwtError, ErrorKind},
};

use super::{
    Claims,
    jwks::JwksFile,
    policy::{LeewayTooLong, Policy},
};
use crate::config::AuthArgs;

/// Why the token settings cannot be used (a start-up error).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No key source was configured.
    #[error(
        "no JWT key configured: set one of JWT_SECRET (HS256), JWT_PUBLIC_KEY_FILE (with \
         JWT_ALGORITHM) or JWT_JWKS_FILE"
    )]
    Missing,
    /// More than one key source was configured: which one wins would be a guess.
    #[error("set only one JWT key source, found {}", .0.join(" and "))]
    Several(Vec<&'static str>),
    /// HS256 secrets shorter than 32 bytes are brute-forceable.
    #[error("JWT_SECRET must be at least 32 bytes")]
    WeakSecret,
    /// A longer leeway keeps expired tokens alive noticeably longer.
    #[error(transparent)]
    Leeway(#[from] LeewayTooLong),
    /// The public key file could not be read.
    #[error("reading JWT public key {path}")]
    Read {
        /// The configured file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// JWT_ALGORITHM names a symmetric algorithm, which a public key cannot verify.
    #[error("JWT_ALGORITHM {0:?} cannot be used with JWT_PUBLIC_KEY_FILE")]
    NotAsymmetric(Algorithm),
    /// The key does not parse as the algorithm's kind of key.
    #[error("invalid JWT key")]
    Invalid(#[from] JwtError),
    /// The JWKS file cannot be used.
    #[error(transparent)]
    Jwks(#[from] super::JwksError),
}

/// The configured key source.
pub(super) enum Verifier {
    /// One key, one algorithm (JWT_SECRET or JWT_PUBLIC_KEY_FILE).
    Single {
        key: DecodingKey,
        validation: Validation,
    },
    /// Keys picked by `kid` (JWT_JWKS_FILE).
    Jwks(JwksFile),
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Single { validation, .. } => f
                .debug_struct("Single")
                .field("algorithms", &validation.algorithms)
                .finish_non_exhaustive(),
            Self::Jwks(file) => f.debug_tuple("Jwks").field(file).finish(),
        }
    }
}

impl Verifier {
    pub(super) fn from_args(args: &AuthArgs) -> Result<Self, KeyError> {
        let policy = Policy::new(
            args.jwt_issuer.clone(),
            args.jwt_audience.clone(),
            args.jwt_leeway,
        )?;
        let set: Vec<&'static str> = [
            (args.jwt_secret.is_some(), "JWT_SECRET"),
            (args.jwt_public_key_file.is_some(), "JWT_PUBLIC_KEY_FILE"),
            (args.jwt_jwks_file.is_some(), "JWT_JWKS_FILE"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        match (
            &args.jwt_secret,
            &args.jwt_public_key_file,
            &args.jwt_jwks_file,
        ) {
            _ if set.len() > 1 => Err(KeyError::Several(set)),
            (Some(secret), None, None) => Self::hs256(secret.expose().as_bytes(), &policy),
            (None, Some(path), None) => Self::public_key(path, args.jwt_algorithm, &policy),
            (None, None, Some(path)) => Ok(Self::Jwks(JwksFile::open(path, policy)?)),
            _ => Err(KeyError::Missing),
        }
    }

    pub(super) fn hs256(secret: &[u8], policy: &Policy) -> Result<Self, KeyError> {
        if secret.len() < 32 {
            return Err(KeyError::WeakSecret);
        }
        Ok(Self::Single {
            key: DecodingKey::from_secret(secret),
            validation: policy.validation(Algorithm::HS256),
        })
    }

    fn public_key(path: &Path, algorithm: Algorithm, policy: &Policy) -> Result<Self, KeyError> {
        let pem = fs::read(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let key = match algorithm.family() {
            AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(&pem)?,
            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(&pem)?,
            AlgorithmFamily::Ed => DecodingKey::from_ed_pem(&pem)?,
            AlgorithmFamily::Hmac => return Err(KeyError::NotAsymmetric(algorithm)),
        };
        Ok(Self::Single {
            key,
            validation: policy.validation(algorithm),
        })
    }

    /// The claims of a token whose signature and claims pass.
    pub(super) fn decode(&self, token: &str) -> Result<Claims, Refusal> {
        let data = match self {
            Self::Single { key, validation } => decode::<Claims>(token, key, validation)?,
            Self::Jwks(file) => {
                let kid = decode_header(token)?.kid.ok_or(Refusal::NoKeyId)?;
                let key = file.key(&kid).ok_or(Refusal::UnknownKeyId)?;
                decode::<Claims>(token, &key.decoding, &key.validation)?
            }
        };
        Ok(data.claims)
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refusal {
    #[error("token refused")]
    Token(#[from] JwtError),
    #[error("token has no key id")]
    NoKeyId,
    #[error("token key id not known")]
    UnknownKeyId,
}

impl Refusal {
    /// The reason given to the client: about the token only, never about the configuration.
    pub(super) fn reason(&self) -> &'static str {
        let e = match self {
            Self::NoKeyId => return "token has no key id (kid)",
            Self::UnknownKeyId => return "token key id (kid) not known",
            Self::Token(e) => e,
        };
        match e.kind() {
            ErrorKind::ExpiredSignature => "token expired",
            ErrorKind::ImmatureSignature => "token not valid yet (nbf)",
            ErrorKind::InvalidIssuer => "token issuer not accepted",
            ErrorKind::InvalidAudience => "token audience not accepted",
            ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                "iss" => "token has no issuer (iss)",
                "aud" => "token has no audience (aud)",
                "exp" => "token has no expiry (exp)",
                _ => "token has no subject (sub)",
            },
            ErrorKind::InvalidAlgorithm => "token algorithm not accepted",
            ErrorKind::InvalidSignature => "token signature does not verify",
            _ => "invalid token",
        }
    }
}
