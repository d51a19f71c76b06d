//! Settings that must never be printed: a secret, and a URL that may carry a password.
//!
//! Both print a redacted form through `Debug` and `Display`, so a setting reaching a log line,
//! an error or `--help` cannot show what it protects; the value itself is only reachable with
//! `expose()`, in the one place that connects or signs with it.

use std::{fmt, str::FromStr};

/// A secret (e.g. `JWT_SECRET`): printed as `[redacted]`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// A URL, or a comma-separated list of them (`NATS_URL`), that may hold credentials: printed
/// with its password, token and password-like query parameters replaced by `***`
/// (`postgres://user:***@host/db`), so the host and user stay visible for diagnosis.
#[derive(Clone)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL itself, credentials included, for the connection that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The printable form (what `Display` writes).
    pub fn redacted(&self) -> String {
        self.0
            .split(',')
            .map(redact_one)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SecretUrl").field(&self.redacted()).finish()
    }
}

impl FromStr for SecretUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl From<String> for SecretUrl {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// Schemes whose user name alone (`scheme://user@host`) is a name, not a credential. For
/// others (NATS: `nats://<token>@host`) a lone user part is a token and is hidden.
const USER_IS_A_NAME: &[&str] = &["postgres", "postgresql"];

/// Query parameters whose values are hidden: any name containing one of these.
const SECRET_PARAMS: &[&str] = &["pass", "secret", "token"];

/// A URL cut around its user part.
struct Parts<'a> {
    /// `scheme://`, or nothing.
    prefix: &'a str,
    scheme: String,
    /// What comes before the `@`, if there is one.
    userinfo: Option<&'a str>,
    /// Host, port and path (from the `@` on, `@` excluded).
    rest: &'a str,
    /// `?...` and `#...`, or nothing.
    query: &'a str,
}

fn parts(url: &str) -> Parts<'_> {
    let (prefix, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let scheme = prefix.trim_end_matches("://").to_ascii_lowercase();
    let query_at = rest.find(['?', '#']).unwrap_or(rest.len());
    let (before_query, query) = rest.split_at(query_at);
    // The last `@` before the query ends the user part: a password may hold `/` or `@`, and a
    // database name holding `@` only hides more than needed.
    let (userinfo, rest) = match before_query.rfind('@') {
        Some(at) => (Some(&before_query[..at]), &before_query[at + 1..]),
        None => (None, before_query),
    };
    Parts {
        prefix,
        scheme,
        userinfo,
        rest,
        query,
    }
}

fn redact_one(url: &str) -> String {
    let p = parts(url);
    let user = match p.userinfo {
        Some(userinfo) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@"),
            None if USER_IS_A_NAME.contains(&p.scheme.as_str()) => format!("{userinfo}@"),
            None => "***@".to_owned(),
        },
        None => String::new(),
    };
    format!("{}{user}{}{}", p.prefix, p.rest, redact_query(p.query))
}

/// Credentials taken out of a URL's user part (percent-decoded).
#[derive(Clone, PartialEq, Eq)]
pub enum UrlCredentials {
    /// `user:password@`.
    UserPassword {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// `token@`.
    Token(String),
}

impl fmt::Debug for UrlCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .finish_non_exhaustive(),
            Self::Token(_) => f.write_str("Token([redacted])"),
        }
    }
}

impl SecretUrl {
    /// The URL(s) without their user parts, and the first credentials found in them: for a
    /// client that takes credentials apart, so that the URLs it logs hold none (async-nats logs
    /// its server addresses at debug level).
    pub fn split_credentials(&self) -> (String, Option<UrlCredentials>) {
        let mut credentials = None;
        let urls: Vec<String> = self
            .0
            .split(',')
            .map(|url| {
                let p = parts(url);
                if let (Some(userinfo), None) = (p.userinfo, &credentials) {
                    credentials = Some(match userinfo.split_once(':') {
                        Some((user, password)) => UrlCredentials::UserPassword {
                            user: percent_decode(user),
                            password: percent_decode(password),
                        },
                        None => UrlCredentials::Token(percent_decode(userinfo)),
                    });
                }
                format!("{}{}{}", p.prefix, p.rest, p.query)
            })
            .collect();
        (urls.join(","), credentials)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn redact_query(query: &str) -> String {
    let Some(params) = query.strip_prefix('?') else {
        return query.to_owned();
    };
    let (params, fragment) = match params.find('#') {
        Some(i) => params.split_at(i),
        None => (params, ""),
    };
    let params = params
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, _))
                if SECRET_PARAMS
                    .iter()
                    .any(|s| name.to_ascii_lowercase().contains(s)) =>
            {
                format!("{name}=***")
            }
            _ => param.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("?{params}{fragment}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(url: &str) -> String {
        SecretUrl::from(url.to_owned()).to_string()
    }

    #[test]
    fn passwords_are_replaced_and_hosts_and_users_kept() {
        assert_eq!(
            shown("postgres://app:hunter2@db:5432/invest"),
            "postgres://app:***@db:5432/invest"
        );
        assert_eq!(
            shown("postgres://postgres@127.0.0.1:5432/invest"),
            "postgres://postgres@127.0.0.1:5432/invest"
        );
        assert_eq!(shown("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }

    #[test]
    fn awkward_passwords_tokens_lists_and_query_parameters_are_hidden() {
        assert_eq!(
            shown("postgres://app:p/a@ss@db/invest?sslmode=require&password=x1&sslpassword=x2"),
            "postgres://app:***@db/invest?sslmode=require&password=***&sslpassword=***"
        );
        assert_eq!(
            shown("nats://s3cret-token@n1:4222,nats://u:pw@n2:4222"),
            "nats://***@n1:4222,nats://u:***@n2:4222"
        );
        assert_eq!(shown("u:pw@n3:4222"), "u:***@n3:4222");
        let debug = format!("{:?}", SecretUrl::from("nats://u:pw@n".to_owned()));
        assert!(!debug.contains("pw"), "{debug}");
    }

    #[test]
    fn credentials_are_taken_out_of_urls() {
        let url = SecretUrl::from("nats://u:p%40ss@n1:4222,nats://n2:4222".to_owned());
        assert_eq!(
            url.split_credentials(),
            (
                "nats://n1:4222,nats://n2:4222".to_owned(),
                Some(UrlCredentials::UserPassword {
                    user: "u".into(),
                    password: "p@ss".into()
                })
            )
        );
        let token = SecretUrl::from("nats://t0ken@n1".to_owned());
        assert_eq!(
            token.split_credentials(),
            (
                "nats://n1".to_owned(),
                Some(UrlCredentials::Token("t0ken".into()))
            )
        );
        let plain = SecretUrl::from("nats://n1:4222".to_owned());
        assert_eq!(
            plain.split_credentials(),
            ("nats://n1:4222".to_owned(), None)
        );
    }

    #[test]
    fn a_secret_prints_as_redacted() {
        let secret = Secret::from("do-not-print".to_owned());
        assert_eq!(secret.to_string(), "[redacted]");
        assert!(!format!("{secret:?}").contains("do-not-print"));
    }
}
