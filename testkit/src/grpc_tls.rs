//! gRPC clients and servers' files for TLS tests: a CA made at run time (`devtls`), the
//! certificate files a service is configured with, and channels that trust a given CA.

use std::{net::SocketAddr, path::Path, time::Duration};

use devtls::{Authority, Issued};
use service_kit::config::TlsArgs;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Writes a server certificate for `localhost` and `127.0.0.1` signed by `ca` into `dir`, and
/// returns the TLS settings serving it (checked for changes every 100 ms).
pub fn server_files(ca: &Authority, dir: &Path) -> TlsArgs {
    let (cert, key) = ca
        .server(&["localhost", "127.0.0.1"])
        .expect("server certificate")
        .write(dir, "server")
        .expect("write the server certificate");
    TlsArgs {
        tls_cert_file: Some(cert),
        tls_key_file: Some(key),
        tls_client_ca_file: None,
        tls_reload_interval: Duration::from_millis(100),
    }
}

/// A TLS connection to `addr` trusting `ca`, presenting `identity` if given.
pub async fn channel(
    addr: SocketAddr,
    ca: &str,
    identity: Option<&Issued>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some(issued) = identity {
        tls = tls.identity(Identity::from_pem(&issued.cert_pem, &issued.key_pem));
    }
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
}
