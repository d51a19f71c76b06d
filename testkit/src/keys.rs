//! Asymmetric keys, issuers and audiences for tests of token verification: key pairs, JWKS
//! and PEM files the services read, and tokens signed with them. The HS256 [`crate::token`]
//! stays the default for every other test.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

pub use service_kit::auth::{Audience, Grant, KeyPair};
use service_kit::config::AuthArgs;
use uuid::Uuid;

/// Token settings with no key source, issuer or audience and a 30 s leeway, for a test to
/// fill in (a service under test gets them in place of the HS256 test secret).
pub fn auth_args() -> AuthArgs {
    AuthArgs {
        jwt_secret: None,
        jwt_public_key_file: None,
        jwt_algorithm: jsonwebtoken::Algorithm::RS256,
        jwt_jwks_file: None,
        jwt_issuer: None,
        jwt_audience: None,
        jwt_leeway: Duration::from_secs(30),
    }
}

/// A new Ed25519 key pair, its `kid` the key's thumbprint.
pub fn key_pair() -> KeyPair {
    service_kit::auth::generate_ed25519().expect("an Ed25519 key pair")
}

/// A grant for `user_id`, valid an hour, no roles, issuer or audience.
pub fn grant(user_id: Uuid) -> Grant {
    Grant::new(user_id, Duration::from_secs(3600))
}

/// `grant` with this issuer and a single audience.
pub fn grant_for(user_id: Uuid, issuer: &str, audience: &str) -> Grant {
    let mut grant = grant(user_id);
    grant.issuer = Some(issuer.to_owned());
    grant.audience = Some(Audience::One(audience.to_owned()));
    grant
}

/// A token signed by `key`, its `kid` in the header.
pub fn sign(key: &KeyPair, grant: &Grant) -> String {
    key.signer()
        .and_then(|signer| signer.sign(grant))
        .expect("signing with a generated key")
}

/// A file in the temporary directory, removed on drop: a JWKS or a PEM for the service.
pub struct KeyFile {
    path: PathBuf,
}

impl KeyFile {
    /// A JWKS file holding the public keys of `keys`.
    pub fn jwks(keys: &[&KeyPair]) -> KeyFile {
        let file = KeyFile::named("jwks.json");
        file.write_jwks(keys);
        file
    }

    /// A PEM file holding `key`'s public key.
    pub fn public_pem(key: &KeyPair) -> KeyFile {
        let file = KeyFile::named("public.pem");
        file.replace(&key.public_pem);
        file
    }

    fn named(name: &str) -> KeyFile {
        KeyFile {
            path: std::env::temp_dir().join(format!("invest-{}-{name}", Uuid::new_v4().simple())),
        }
    }

    /// Replaces the JWKS with `keys`, as a deployment would (write aside, then rename).
    pub fn write_jwks(&self, keys: &[&KeyPair]) {
        let jwks: Vec<_> = keys.iter().map(|k| k.jwk.clone()).collect();
        self.replace(&service_kit::auth::jwks_json(&jwks));
    }

    fn replace(&self, contents: &str) {
        let aside = self.path.with_extension("tmp");
        std::fs::write(&aside, contents).expect("write key file");
        std::fs::rename(&aside, &self.path).expect("rename key file");
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
