//! `investctl health` as a process against the health service the services serve: service-kit's
//! own gRPC server (`base_routes` + `serve`: the same TLS acceptor, mutual TLS and health
//! reporter), on port 0, with a run-time CA. Only the reporter is driven by the test.

use std::{net::SocketAddr, time::Duration};

use service_kit::{
    config::{ServerArgs, TlsArgs},
    server::{Port, base_routes, serve},
};
use testkit::{
    process::{Finished, free_addr, run_to_end},
    tls_certs::TestCa,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic_health::{ServingStatus, server::HealthReporter};

const READY: &str = "invest.v1.InvestmentService";

/// A running health endpoint, stopped on drop.
struct Server {
    addr: SocketAddr,
    health: HealthReporter,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Serves health (liveness SERVING, readiness as `ready`) with `tls`, on a port of its own.
async fn server(tls: Option<TlsArgs>, ready: ServingStatus) -> Server {
    service_kit::tls::install_crypto_provider();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    let port = Port {
        serves: READY,
        elsewhere: &[],
        // Only health is called: no API to describe.
        descriptors: &[],
    };
    let (routes, health) = base_routes(&port).expect("routes");
    health.set_service_status(READY, ready).await;
    let shutdown = CancellationToken::new();
    let metrics = service_kit::metrics::Common::default();
    let args = ServerArgs {
        tls: tls.unwrap_or(ServerArgs::default().tls),
        ..ServerArgs::default()
    };
    let (reporter, stop) = (health.clone(), shutdown.clone());
    tokio::spawn(async move {
        if let Err(e) = serve(listener, &port, routes, reporter, stop, &args, metrics).await {
            panic!("health server: {e}");
        }
    });
    Server {
        addr,
        health,
        shutdown,
    }
}

/// Server files of `ca` for `localhost`/`127.0.0.1`; client certificates of `client_ca`
/// required when given.
fn tls(ca: &TestCa, client_ca: Option<&TestCa>) -> TlsArgs {
    let mut args = testkit::grpc_tls::server_files(ca.authority(), &ca.path(""));
    args.tls_client_ca_file = client_ca.map(|ca| ca.ca_file().to_owned());
    args
}

async fn health(args: &[&str]) -> Finished {
    health_with_env(args, &[]).await
}

async fn health_with_env(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let mut all = vec!["health"];
    all.extend_from_slice(args);
    run_to_end(
        env!("CARGO_BIN_EXE_investctl"),
        &all,
        env,
        Duration::from_secs(30),
    )
    .await
}

#[track_caller]
fn assert_serving(run: &Finished) {
    assert!(run.status.success(), "expected exit 0: {}", run.output);
    assert!(run.output.contains("SERVING"), "{}", run.output);
}

#[track_caller]
fn assert_fails(run: &Finished, reason: &str) {
    assert_eq!(
        run.status.code(),
        Some(1),
        "expected exit 1: {}",
        run.output
    );
    assert!(
        run.output.contains(reason),
        "expected {reason:?}: {}",
        run.output
    );
    assert_eq!(
        run.output.trim().lines().count(),
        1,
        "one line: {}",
        run.output
    );
}

#[tokio::test]
async fn serving_exits_0_and_not_serving_exits_1() {
    let server = server(None, ServingStatus::NotServing).await;
    let addr = server.addr.to_string();

    assert_serving(&health(&["--addr", &addr]).await);
    let not_ready = health(&["--addr", &addr, "--service", READY]).await;
    assert_fails(&not_ready, "NOT_SERVING");

    server
        .health
        .set_service_status(READY, ServingStatus::Serving)
        .await;
    let url = format!("http://{addr}");
    assert_serving(&health(&["--addr", &url, "--service", READY]).await);

    // A container's HEALTHCHECK: no flags; the port of the service's LISTEN_ADDR on loopback.
    let listen = format!("0.0.0.0:{}", server.addr.port());
    let env = [("LISTEN_ADDR", listen.as_str()), ("HEALTH_SERVICE", READY)];
    assert_serving(&health_with_env(&[], &env).await);

    // Shutdown begins: liveness turns NOT_SERVING too.
    server
        .health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    assert_fails(&health(&["--addr", &addr]).await, "NOT_SERVING");
}

#[tokio::test]
async fn an_unknown_service_exits_1() {
    let server = server(None, ServingStatus::Serving).await;
    let run = health(&[
        "--addr",
        &server.addr.to_string(),
        "--service",
        "invest.v1.Nothing",
    ])
    .await;
    assert_fails(&run, "NotFound");
}

#[tokio::test]
async fn nothing_listening_exits_1() {
    let run = health(&["--addr", &free_addr().to_string()]).await;
    assert_fails(&run, "unreachable");
}

#[tokio::test]
async fn a_port_that_never_answers_exits_1_at_the_timeout() {
    // Connections complete in the backlog but nobody ever speaks HTTP/2 on them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("local address").to_string();
    let run = health(&["--addr", &addr, "--timeout", "300ms"]).await;
    assert_fails(&run, "no answer within 300ms");
}

#[tokio::test]
async fn tls_with_the_servers_ca_exits_0_and_with_another_exits_1() {
    let ca = TestCa::new("health test CA");
    let other = TestCa::new("another CA");
    let server = server(Some(tls(&ca, None)), ServingStatus::Serving).await;
    let ca_file = ca.ca_file().to_str().expect("UTF-8 path");
    let url = format!("https://{}", server.addr);

    assert_serving(&health(&["--addr", &url, "--ca-file", ca_file, "--service", READY]).await);
    // host:port with a CA is TLS; the certificate names `localhost`, dialled as 127.0.0.1.
    let port = format!("127.0.0.1:{}", server.addr.port());
    let named = [
        "--addr",
        &port,
        "--ca-file",
        ca_file,
        "--server-name",
        "localhost",
    ];
    assert_serving(&health(&named).await);

    let wrong = health(&[
        "--addr",
        &url,
        "--ca-file",
        other.ca_file().to_str().expect("UTF-8 path"),
    ])
    .await;
    assert_fails(&wrong, "unreachable");
    let wrong_name = [
        "--addr",
        &url,
        "--ca-file",
        ca_file,
        "--server-name",
        "db.internal",
    ];
    assert_fails(&health(&wrong_name).await, "unreachable");
    // Plaintext to a TLS port gets no answer.
    let plain = format!("http://{}", server.addr);
    assert_fails(&health(&["--addr", &plain, "--timeout", "2s"]).await, "");
    // https with no CA is refused before dialling.
    assert_fails(&health(&["--addr", &url]).await, "--ca-file");
}

#[tokio::test]
async fn mutual_tls_needs_a_client_certificate_of_the_client_ca() {
    let ca = TestCa::new("health test CA");
    let clients = TestCa::new("client CA");
    let server = server(Some(tls(&ca, Some(&clients))), ServingStatus::Serving).await;
    let url = format!("https://{}", server.addr);
    let ca_file = ca.ca_file().to_str().expect("UTF-8 path");
    let (cert, key) = clients.client("probe", "kubelet-probe");
    let (cert, key) = (
        cert.to_str().expect("UTF-8 path"),
        key.to_str().expect("UTF-8 path"),
    );

    let with_cert = [
        "--addr",
        &url,
        "--ca-file",
        ca_file,
        "--cert-file",
        cert,
        "--key-file",
        key,
    ];
    assert_serving(&health(&with_cert).await);

    let without = health(&["--addr", &url, "--ca-file", ca_file, "--timeout", "2s"]).await;
    assert_fails(&without, "--cert-file");

    // A certificate of another CA (the server's own, say) is refused too.
    let (stranger, stranger_key) = ca.client("stranger", "stranger");
    let (stranger, stranger_key) = (
        stranger.to_str().expect("UTF-8 path"),
        stranger_key.to_str().expect("UTF-8 path"),
    );
    let refused = [
        "--addr",
        &url,
        "--ca-file",
        ca_file,
        "--cert-file",
        stranger,
        "--key-file",
        stranger_key,
        "--timeout",
        "2s",
    ];
    let refused = health(&refused).await;
    assert_eq!(refused.status.code(), Some(1), "{}", refused.output);
}
