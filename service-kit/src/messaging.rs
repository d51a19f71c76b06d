//! The NATS connection both services open (docs/messaging.md): the server list, TLS and
//! credentials, and a JetStream context with a timeout. What travels on it (the allocation
//! stream, its subjects and publishes) is the `allocation-bus` crate's.

use std::time::Duration;

use async_nats::jetstream;

use crate::{config::NatsArgs, secret::UrlCredentials};

/// Why [`connect`] gave no client.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A TLS or credentials setting is unusable (it names the setting and the file).
    #[error(transparent)]
    Settings(#[from] crate::nats_options::SettingsError),
    /// An entry of NATS_URL is not a server address (shown without its credentials).
    #[error("NATS_URL: {url:?} is not a NATS server address")]
    Url {
        /// The entry, credentials removed.
        url: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server is unreachable or refused the connection (TLS, authentication).
    #[error(transparent)]
    Connect(#[from] async_nats::ConnectError),
}

/// The comma-separated list of NATS_URL as server addresses (async-nats takes one string as
/// one address). The list only seeds the client: it learns the cluster's other members from
/// the servers.
fn server_addrs(urls: &str) -> Result<Vec<async_nats::ServerAddr>, ConnectError> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| {
            url.parse().map_err(|source| ConnectError::Url {
                url: url.to_owned(),
                source,
            })
        })
        .collect()
}

/// Connects to NATS, over TLS and with credentials when the settings ask for them
/// ([`crate::nats_options`]); the client reconnects by itself for as long as the process lives.
///
/// Credentials in NATS_URL are handed to the client as options and the URLs it gets hold
/// none: it logs server addresses, and they must not carry a password.
pub async fn connect(args: &NatsArgs, name: &str) -> Result<async_nats::Client, ConnectError> {
    let (urls, credentials) = args.nats_url.split_credentials();
    let options = crate::nats_options::options(args)?
        .name(name)
        .connection_timeout(args.nats_timeout)
        .max_reconnects(None);
    let options = match credentials {
        Some(UrlCredentials::UserPassword { user, password }) => {
            options.user_and_password(user, password)
        }
        Some(UrlCredentials::Token(token)) => options.token(token),
        None => options,
    };
    Ok(options.connect(server_addrs(&urls)?).await?)
}

/// A JetStream context whose API calls and publish acks time out after `timeout`.
pub fn jetstream(client: async_nats::Client, timeout: Duration) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(timeout)
        .build(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_separated_nats_url_is_a_list_of_servers() {
        let addrs = server_addrs("nats://a:4222, nats://b:4223,,tls://c:4224").expect("list");
        let hosts: Vec<_> = addrs
            .iter()
            .map(|a| (a.host().to_owned(), a.port()))
            .collect();
        assert_eq!(
            hosts,
            [("a".into(), 4222), ("b".into(), 4223), ("c".into(), 4224)]
        );
        assert!(matches!(
            server_addrs("nats://a:4222,nats://b:notaport"),
            Err(ConnectError::Url { url, .. }) if url == "nats://b:notaport"
        ));
    }
}
