//! TLS on the gRPC port, against the real server with certificates made at run time: who is
//! served and who is refused, mutual TLS, and a certificate rotated without a restart.

use std::time::Duration;

use devtls::Authority;
use service_kit::config::ServerArgs;
use testkit::grpc_tls::{channel, server_files};
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::support::{Options, TestApp, spawn_app_with};

const DEADLINE: Duration = Duration::from_secs(10);

async fn tls_app(server: ServerArgs) -> TestApp {
    spawn_app_with(Options {
        server: Some(server),
        ..Options::default()
    })
    .await
}

async fn healthy(channel: Result<Channel, tonic::transport::Error>) -> Result<(), String> {
    let channel = channel.map_err(|e| format!("connect: {e:?}"))?;
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(drop)
        .map_err(|e| format!("check: {e:?}"))
}

#[tokio::test]
async fn with_tls_a_client_trusting_the_ca_is_served_and_plaintext_or_another_ca_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("test CA").expect("ca");
    let other = Authority::new("another CA").expect("ca");
    let app = tls_app(ServerArgs {
        tls: server_files(&ca, dir.path()),
        ..ServerArgs::default()
    })
    .await;

    healthy(channel(app.addr, ca.cert_pem(), None).await)
        .await
        .expect("a client trusting the CA is served");
    let mut client = api::v1::investment_service_client::InvestmentServiceClient::with_interceptor(
        channel(app.addr, ca.cert_pem(), None).await.expect("tls"),
        testkit::Bearer(Some(testkit::token(uuid::Uuid::new_v4()))),
    );
    client
        .list_subscription_balances(api::v1::ListSubscriptionBalancesRequest::default())
        .await
        .expect("an authenticated call over TLS");

    let plaintext = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))
        .expect("uri")
        .timeout(Duration::from_secs(2))
        .connect()
        .await;
    assert!(
        healthy(plaintext).await.is_err(),
        "a plaintext client was served"
    );
    assert!(
        healthy(channel(app.addr, other.cert_pem(), None).await)
            .await
            .is_err(),
        "a client trusting another CA was served"
    );
}

#[tokio::test]
async fn under_mutual_tls_a_caller_needs_a_certificate_from_the_client_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("test CA").expect("ca");
    let clients = Authority::new("client CA").expect("ca");
    let strangers = Authority::new("another CA").expect("ca");
    let client_ca = dir.path().join("client-ca.pem");
    clients.write_cert(&client_ca).expect("write");
    let mut tls = server_files(&ca, dir.path());
    tls.tls_client_ca_file = Some(client_ca);
    let app = tls_app(ServerArgs {
        tls,
        ..ServerArgs::default()
    })
    .await;

    let caller = clients.client("allocation-svc").expect("client cert");
    healthy(channel(app.addr, ca.cert_pem(), Some(&caller)).await)
        .await
        .expect("a caller with a certificate of the client CA is served");
    assert!(
        healthy(channel(app.addr, ca.cert_pem(), None).await)
            .await
            .is_err(),
        "a caller without a certificate was served"
    );
    let stranger = strangers.client("someone").expect("client cert");
    assert!(
        healthy(channel(app.addr, ca.cert_pem(), Some(&stranger)).await)
            .await
            .is_err(),
        "a caller with a certificate of another CA was served"
    );
}

#[tokio::test]
async fn a_rotated_certificate_is_served_to_new_connections_without_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let old = Authority::new("old CA").expect("ca");
    let new = Authority::new("new CA").expect("ca");
    let app = tls_app(ServerArgs {
        tls: server_files(&old, dir.path()),
        ..ServerArgs::default()
    })
    .await;
    healthy(channel(app.addr, old.cert_pem(), None).await)
        .await
        .expect("served with the first certificate");

    // Rotate: the same files, now a certificate of another CA.
    server_files(&new, dir.path());
    testkit::eventually(DEADLINE, "the new certificate to be served", || async {
        healthy(channel(app.addr, new.cert_pem(), None).await)
            .await
            .ok()
    })
    .await;
    assert!(
        healthy(channel(app.addr, old.cert_pem(), None).await)
            .await
            .is_err(),
        "new connections still get the old certificate"
    );
}

#[tokio::test]
async fn a_connection_that_never_starts_tls_is_closed_at_the_handshake_deadline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new("test CA").expect("ca");
    let app = tls_app(ServerArgs {
        tls: server_files(&ca, dir.path()),
        connection_handshake_timeout: Duration::from_millis(300),
        ..ServerArgs::default()
    })
    .await;
    let mut silent = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(DEADLINE, async {
        use tokio::io::AsyncReadExt as _;
        loop {
            match silent.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a connection without a TLS handshake is still open"
    );
}
