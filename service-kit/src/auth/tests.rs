//! The pure parts of verification: claims, key sources, JWKS selection and rotation, no
//! algorithm confusion.

use std::{path::PathBuf, time::Duration};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use uuid::Uuid;

use super::*;
use crate::config::Secret;

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

/// Settings with no key source, no issuer or audience, the default leeway.
fn args() -> AuthArgs {
    AuthArgs {
        jwt_secret: None,
        jwt_public_key_file: None,
        jwt_algorithm: Algorithm::RS256,
        jwt_jwks_file: None,
        jwt_issuer: None,
        jwt_audience: None,
        jwt_leeway: Duration::from_secs(30),
    }
}

fn hs256_args() -> AuthArgs {
    AuthArgs {
        jwt_secret: Some(Secret::from(String::from_utf8_lossy(SECRET).into_owned())),
        ..args()
    }
}

/// A file in the temporary directory holding `contents`, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> Self {
        let path = std::env::temp_dir().join(format!("auth-test-{}", Uuid::new_v4()));
        std::fs::write(&path, contents).expect("write");
        Self(path)
    }

    fn rewrite(&self, contents: &str) {
        std::fs::write(&self.0, contents).expect("rewrite");
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn grant() -> Grant {
    Grant::new(Uuid::new_v4(), Duration::from_secs(60))
}

/// The refusal's message, or `ok`.
fn outcome(auth: &Authenticator, token: &str) -> String {
    match auth.verify(&format!("Bearer {token}")) {
        Ok(_) => "ok".to_owned(),
        Err(status) => {
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
            status.message().to_owned()
        }
    }
}

fn keygen() -> KeyPair {
    generate_ed25519().expect("key pair")
}

#[test]
fn issuer_and_audience_must_match_when_configured() {
    let auth = Authenticator::from_args(&AuthArgs {
        jwt_issuer: Some("https://idp.example".into()),
        jwt_audience: Some("invest".into()),
        ..hs256_args()
    })
    .expect("auth");
    let signer = Signer::hs256(SECRET);
    let sign = |issuer: Option<&str>, audience: Option<Audience>| {
        let mut grant = grant();
        grant.issuer = issuer.map(str::to_owned);
        grant.audience = audience;
        signer.sign(&grant).expect("sign")
    };
    let one = |a: &str| Some(Audience::One(a.to_owned()));
    let idp = Some("https://idp.example");
    assert_eq!(outcome(&auth, &sign(idp, one("invest"))), "ok");
    let many = Audience::Many(vec!["other".into(), "invest".into()]);
    assert_eq!(outcome(&auth, &sign(idp, Some(many))), "ok", "aud array");
    assert_eq!(
        outcome(&auth, &sign(Some("https://evil.example"), one("invest"))),
        "token issuer not accepted"
    );
    assert_eq!(
        outcome(&auth, &sign(idp, one("billing"))),
        "token audience not accepted"
    );
    let others = Audience::Many(vec!["billing".into(), "crm".into()]);
    assert_eq!(
        outcome(&auth, &sign(idp, Some(others))),
        "token audience not accepted"
    );
    assert_eq!(
        outcome(&auth, &sign(None, one("invest"))),
        "token has no issuer (iss)"
    );
    assert_eq!(
        outcome(&auth, &sign(idp, None)),
        "token has no audience (aud)"
    );
}

#[test]
fn without_an_audience_configured_a_token_for_another_audience_is_refused() {
    let auth = Authenticator::from_args(&hs256_args()).expect("auth");
    let signer = Signer::hs256(SECRET);
    assert_eq!(outcome(&auth, &signer.sign(&grant()).expect("sign")), "ok");
    let mut grant = grant();
    grant.audience = Some(Audience::One("billing".into()));
    assert_eq!(
        outcome(&auth, &signer.sign(&grant).expect("sign")),
        "token audience not accepted"
    );
}

#[test]
fn exactly_one_key_source_and_a_capped_leeway_are_required() {
    let jwks = TempFile::new(&keygen().jwks_json());
    let pem = TempFile::new(&keygen().public_pem);
    let error = |args: AuthArgs| {
        Authenticator::from_args(&args)
            .expect_err("refused")
            .to_string()
    };
    assert!(
        error(args()).contains("no JWT key configured"),
        "{}",
        error(args())
    );
    let both = AuthArgs {
        jwt_jwks_file: Some(jwks.0.clone()),
        ..hs256_args()
    };
    let message = error(both);
    assert!(
        message.contains("set only one JWT key source, found JWT_SECRET and JWT_JWKS_FILE"),
        "{message}"
    );
    assert!(
        !message.contains(std::str::from_utf8(SECRET).expect("utf8")),
        "{message}"
    );
    let all = AuthArgs {
        jwt_jwks_file: Some(jwks.0.clone()),
        jwt_public_key_file: Some(pem.0.clone()),
        ..hs256_args()
    };
    assert!(error(all).contains("found JWT_SECRET and JWT_PUBLIC_KEY_FILE and JWT_JWKS_FILE"));
    let long = AuthArgs {
        jwt_leeway: Duration::from_secs(301),
        ..hs256_args()
    };
    assert!(error(long).contains("JWT_LEEWAY"));
    assert!(crate::config::parse_leeway("6m").is_err());
    assert_eq!(
        crate::config::parse_leeway("5m"),
        Ok(Duration::from_secs(300))
    );
}

#[test]
fn a_public_key_verifies_only_its_own_algorithm() {
    let pair = keygen();
    let pem = TempFile::new(&pair.public_pem);
    let auth = Authenticator::from_args(&AuthArgs {
        jwt_public_key_file: Some(pem.0.clone()),
        jwt_algorithm: Algorithm::EdDSA,
        ..args()
    })
    .expect("auth");
    let signer = pair.signer().expect("signer");
    assert_eq!(outcome(&auth, &signer.sign(&grant()).expect("sign")), "ok");
    // The public key's own bytes as an HMAC secret: the classic algorithm confusion.
    let forged = Signer::hs256(pair.public_pem.as_bytes())
        .sign(&grant())
        .expect("sign");
    assert_eq!(outcome(&auth, &forged), "token algorithm not accepted");
    let other = keygen().signer().expect("signer");
    assert_eq!(
        outcome(&auth, &other.sign(&grant()).expect("sign")),
        "token signature does not verify"
    );
    let hs = Authenticator::from_args(&AuthArgs {
        jwt_public_key_file: Some(pem.0.clone()),
        jwt_algorithm: Algorithm::HS256,
        ..args()
    });
    assert!(matches!(hs, Err(KeyError::NotAsymmetric(_))));
}

fn jwks_auth(file: &TempFile) -> Authenticator {
    Authenticator::from_args(&AuthArgs {
        jwt_jwks_file: Some(file.0.clone()),
        ..args()
    })
    .expect("auth")
}

#[test]
fn jwks_keys_are_chosen_by_kid() {
    let (a, b) = (keygen(), keygen());
    let file = TempFile::new(&jwks_json(&[a.jwk.clone(), b.jwk.clone()]));
    let auth = jwks_auth(&file);
    for pair in [&a, &b] {
        let signer = pair.signer().expect("signer");
        assert_eq!(signer.kid(), Some(pair.kid()));
        assert_eq!(outcome(&auth, &signer.sign(&grant()).expect("sign")), "ok");
    }
    // a's key under b's kid: the kid picks the key, and b's key does not verify a's signature.
    let swapped = a
        .signer()
        .expect("signer")
        .with_kid(Some(b.kid().to_owned()));
    assert_eq!(
        outcome(&auth, &swapped.sign(&grant()).expect("sign")),
        "token signature does not verify"
    );
    let unknown = a.signer().expect("signer").with_kid(Some("nope".into()));
    assert_eq!(
        outcome(&auth, &unknown.sign(&grant()).expect("sign")),
        "token key id (kid) not known"
    );
    let none = a.signer().expect("signer").with_kid(None);
    assert_eq!(
        outcome(&auth, &none.sign(&grant()).expect("sign")),
        "token has no key id (kid)"
    );
    let forged = Signer::hs256(a.public_pem.as_bytes())
        .with_kid(Some(a.kid().to_owned()))
        .sign(&grant())
        .expect("sign");
    assert_eq!(outcome(&auth, &forged), "token algorithm not accepted");
}

#[test]
fn a_key_added_to_the_jwks_file_is_accepted_once_it_is_read_again() {
    let (old, new) = (keygen(), keygen());
    let file = TempFile::new(&old.jwks_json());
    let auth = jwks_auth(&file);
    let Verifier::Jwks(jwks) = &*auth.inner else {
        panic!("a JWKS verifier");
    };
    let token = new.signer().expect("signer").sign(&grant()).expect("sign");
    assert_eq!(outcome(&auth, &token), "token key id (kid) not known");

    file.rewrite(&jwks_json(&[old.jwk.clone(), new.jwk.clone()]));
    jwks.recheck_now();
    assert_eq!(outcome(&auth, &token), "ok");

    // A broken rewrite (half-written, or no usable key) keeps the keys in use.
    file.rewrite("{\"keys\": [");
    jwks.recheck_now();
    assert_eq!(outcome(&auth, &token), "ok");
    file.rewrite(r#"{"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}"#);
    jwks.recheck_now();
    assert_eq!(outcome(&auth, &token), "ok");

    // Dropping a key from the file retires it.
    file.rewrite(&old.jwks_json());
    jwks.recheck_now();
    assert_eq!(outcome(&auth, &token), "token key id (kid) not known");
}

#[test]
fn a_jwks_file_without_a_usable_signing_key_is_refused_at_start_up() {
    let symmetric = TempFile::new(r#"{"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}"#);
    let result = Authenticator::from_args(&AuthArgs {
        jwt_jwks_file: Some(symmetric.0.clone()),
        ..args()
    });
    assert!(
        matches!(result, Err(KeyError::Jwks(JwksError::NoUsableKey { .. }))),
        "{result:?}"
    );
    let mut encryption = keygen().jwk;
    encryption.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Encryption);
    let file = TempFile::new(&jwks_json(&[encryption]));
    let result = Authenticator::from_args(&AuthArgs {
        jwt_jwks_file: Some(file.0.clone()),
        ..args()
    });
    assert!(result.is_err(), "an encryption key verifies nothing");
}
