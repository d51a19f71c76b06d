//! Signing tokens and making key pairs, for `investctl` (local use) and tests. The services
//! only verify.

use std::time::Duration;

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use jsonwebtoken::{
    Algorithm, AlgorithmFamily, EncodingKey, Header,
    jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash},
};
use serde::Serialize;
use uuid::Uuid;

use super::Claims;

/// Why a token or a key pair could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The key is not a PEM private key of a supported kind, or does not fit the algorithm.
    #[error("invalid signing key")]
    Key(#[source] jsonwebtoken::errors::Error),
    /// Encoding or signing failed.
    #[error("signing the token")]
    Sign(#[source] jsonwebtoken::errors::Error),
    /// The system's random source failed.
    #[error("no randomness for a new key")]
    Random(#[source] getrandom::Error),
}

/// A token's `aud`: one audience (a string) or several (an array), as identity providers send.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud": "x"`.
    One(String),
    /// `"aud": ["x", "y"]`.
    Many(Vec<String>),
}

/// What a token says: its subject, roles, lifetime, and optionally issuer and audience.
#[derive(Clone, Debug)]
pub struct Grant {
    /// `sub`.
    pub user: Uuid,
    /// `roles`.
    pub roles: Vec<String>,
    /// `exp` is this long after `iat` (now).
    pub ttl: Duration,
    /// `iss`, if any.
    pub issuer: Option<String>,
    /// `aud`, if any.
    pub audience: Option<Audience>,
}

impl Grant {
    /// A token for `user`, no roles, no issuer or audience.
    pub fn new(user: Uuid, ttl: Duration) -> Self {
        Self {
            user,
            roles: Vec::new(),
            ttl,
            issuer: None,
            audience: None,
        }
    }
}

/// The claims of a signed token: ours, plus `iss` and `aud` when given.
#[derive(Serialize)]
struct Issued<'a> {
    #[serde(flatten)]
    claims: Claims,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a Audience>,
}

/// A signing key with its algorithm and key id (`kid` in the token header).
pub struct Signer {
    key: EncodingKey,
    algorithm: Algorithm,
    kid: Option<String>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// HS256 with a shared secret; no `kid`.
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            key: EncodingKey::from_secret(secret),
            algorithm: Algorithm::HS256,
            kid: None,
        }
    }

    /// A PEM (PKCS#8, or PKCS#1 for RSA) private key. Without `algorithm`, it follows from the
    /// key: EdDSA, ES256 or RS256. The `kid` is the key's RFC 7638 thumbprint, as
    /// [`generate_ed25519`] writes into the JWKS.
    pub fn from_pem(pem: &[u8], algorithm: Option<Algorithm>) -> Result<Self, SignError> {
        let (key, algorithm) = match algorithm.map(Algorithm::family) {
            Some(AlgorithmFamily::Ed) => (EncodingKey::from_ed_pem(pem), Algorithm::EdDSA),
            Some(AlgorithmFamily::Ec) => (
                EncodingKey::from_ec_pem(pem),
                algorithm.unwrap_or(Algorithm::ES256),
            ),
            Some(AlgorithmFamily::Rsa) => (
                EncodingKey::from_rsa_pem(pem),
                algorithm.unwrap_or(Algorithm::RS256),
            ),
            Some(AlgorithmFamily::Hmac) => (
                Err(jsonwebtoken::errors::ErrorKind::InvalidAlgorithm.into()),
                Algorithm::HS256,
            ),
            None => [
                (EncodingKey::from_ed_pem(pem), Algorithm::EdDSA),
                (EncodingKey::from_ec_pem(pem), Algorithm::ES256),
                (EncodingKey::from_rsa_pem(pem), Algorithm::RS256),
            ]
            .into_iter()
            .find(|(key, _)| key.is_ok())
            .unwrap_or((
                Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into()),
                Algorithm::EdDSA,
            )),
        };
        let key = key.map_err(SignError::Key)?;
        let kid = Jwk::from_encoding_key(&key, algorithm)
            .and_then(|jwk| jwk.thumbprint(ThumbprintHash::SHA256))
            .map_err(SignError::Key)?;
        Ok(Self {
            key,
            algorithm,
            kid: Some(kid),
        })
    }

    /// The same key under another `kid` (or none).
    pub fn with_kid(mut self, kid: Option<String>) -> Self {
        self.kid = kid;
        self
    }

    /// The `kid` put in token headers.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithm tokens are signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// A signed token for `grant`, issued now.
    pub fn sign(&self, grant: &Grant) -> Result<String, SignError> {
        let now = jsonwebtoken::get_current_timestamp();
        let issued = Issued {
            claims: Claims {
                sub: grant.user.to_string(),
                roles: grant.roles.clone(),
                iat: now,
                exp: now + grant.ttl.as_secs(),
                nbf: None,
            },
            iss: grant.issuer.as_deref(),
            aud: grant.audience.as_ref(),
        };
        let mut header = Header::new(self.algorithm);
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, &issued, &self.key).map_err(SignError::Sign)
    }
}

/// Signs HS256 tokens: for the `investctl token` command and for tests.
pub fn mint_hs256(
    secret: &[u8],
    user_id: Uuid,
    roles: &[&str],
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut grant = Grant::new(user_id, ttl);
    grant.roles = roles.iter().map(|r| r.to_string()).collect();
    Signer::hs256(secret).sign(&grant).map_err(|e| match e {
        SignError::Key(e) | SignError::Sign(e) => e,
        SignError::Random(_) => jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into(),
    })
}

/// A new signing key: the private key stays with whoever mints tokens, the public one (PEM or
/// JWKS) goes to the services.
pub struct KeyPair {
    /// PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub private_pem: String,
    /// SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`), for JWT_PUBLIC_KEY_FILE.
    pub public_pem: String,
    /// The public key as a JWK with `kid`, `alg` and `use: sig`.
    pub jwk: Jwk,
}

impl KeyPair {
    /// The key id (RFC 7638 thumbprint), as [`Signer::from_pem`] derives it.
    pub fn kid(&self) -> &str {
        self.jwk.common.key_id.as_deref().unwrap_or_default()
    }

    /// A JWKS document holding this key alone, for JWT_JWKS_FILE.
    pub fn jwks_json(&self) -> String {
        jwks_json(std::slice::from_ref(&self.jwk))
    }

    /// A signer with this key.
    pub fn signer(&self) -> Result<Signer, SignError> {
        Signer::from_pem(self.private_pem.as_bytes(), Some(Algorithm::EdDSA))
    }
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

/// A JWKS document (`{"keys": [...]}`) of `keys`.
pub fn jwks_json(keys: &[Jwk]) -> String {
    let set = JwkSet {
        keys: keys.to_vec(),
    };
    // Serializing plain strings and enums cannot fail; an empty document would be refused
    // by any reader rather than trusted.
    serde_json::to_string_pretty(&set).unwrap_or_default()
}

/// DER prefixes of an Ed25519 key (RFC 8410): PKCS#8 private key before the 32-byte seed, SPKI
/// public key before the 32-byte point.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A new Ed25519 key pair from the operating system's random source.
pub fn generate_ed25519() -> Result<KeyPair, SignError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(SignError::Random)?;
    let mut private_der = ED25519_PKCS8_PREFIX.to_vec();
    private_der.extend_from_slice(&seed);
    seed.fill(0);
    let key = EncodingKey::from_ed_der(&private_der);
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA).map_err(SignError::Key)?;
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(SignError::Key)?;
    jwk.common.key_id = Some(kid);
    jwk.common.key_algorithm = Some(KeyAlgorithm::EdDSA);
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let AlgorithmParameters::OctetKeyPair(okp) = &jwk.algorithm else {
        return Err(SignError::Key(
            jsonwebtoken::errors::ErrorKind::InvalidEddsaKey.into(),
        ));
    };
    let point = URL_SAFE_NO_PAD
        .decode(&okp.x)
        .map_err(|e| SignError::Key(e.into()))?;
    let mut public_der = ED25519_SPKI_PREFIX.to_vec();
    public_der.extend_from_slice(&point);
    let private_pem = pem("PRIVATE KEY", &private_der);
    private_der.fill(0);
    Ok(KeyPair {
        private_pem,
        public_pem: pem("PUBLIC KEY", &public_der),
        jwk,
    })
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
