//! NATS over TLS: `service_kit::messaging::connect` with the NATS_TLS_* and credentials
//! settings against a TLS-only nats-server.

use std::time::Duration;

use async_nats::ConnectErrorKind;
use clap::Parser;
use investment_svc::{App, Config};
use service_kit::{
    messaging::{self, ConnectError},
    nats_options::SettingsError,
    server::Connections,
};
use testkit::{
    db::TestDb,
    fixtures::Fixtures,
    nats::{Names, NatsServer},
    stack::Running,
    tls_certs::TestCa,
    tls_nats::{Demands, TlsNatsServer},
};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{TcpListener, TcpStream},
};

use crate::support::{Investor, create_request};

/// investment-svc's configuration for `url` and `names`, plus `extra` flags.
fn config(url: &str, names: &Names, extra: &[String]) -> Config {
    let mut args = vec!["investment-svc".to_owned()];
    args.extend(testkit::nats::service_args(names, url));
    args.push(format!("--database-url={}", testkit::db::admin_url()));
    args.extend(extra.iter().cloned());
    Config::try_parse_from(args).expect("test config")
}

/// Connects the way the services do, with `extra` flags.
async fn connect(url: &str, extra: &[String]) -> Result<async_nats::Client, ConnectError> {
    let config = config(url, &Names::unique(), extra);
    messaging::connect(&config.common.nats, "tls-test").await
}

fn flag(name: &str, path: &std::path::Path) -> String {
    format!("--{name}={}", path.display())
}

/// Asserts the server refused the client with one of `kinds`, and returns what the error says
/// (async-nats reports a failed certificate check as `Io`, with rustls' reason as its text).
fn refused_with(
    result: Result<async_nats::Client, ConnectError>,
    kinds: &[ConnectErrorKind],
) -> String {
    match result {
        Err(ConnectError::Connect(e)) => {
            assert!(
                kinds.contains(&e.kind()),
                "refused, but with {:?} ({e}) rather than one of {kinds:?}",
                e.kind()
            );
            e.to_string()
        }
        Err(other) => panic!("refused before connecting: {other}"),
        Ok(_) => panic!("the server accepted a client it must refuse"),
    }
}

#[tokio::test]
async fn an_investment_created_over_tls_nats_reaches_its_stream() {
    let ca = TestCa::new("nats test CA");
    let server = TlsNatsServer::start(&ca, Demands::default()).await;
    let names = Names::unique();
    let config = config(
        &server.url(),
        &names,
        &[flag("nats-tls-ca-file", ca.ca_file())],
    );
    let nats = messaging::connect(&config.common.nats, "investment-svc")
        .await
        .expect("TLS connection with the test CA");
    assert!(nats.server_info().tls_required, "the server requires TLS");

    let test_db = TestDb::create().await.expect("test database");
    let db = test_db.connect().await;
    let (user_id, subscription, deal) = Fixtures::new(db.clone())
        .investor("100.00", "12.50")
        .await
        .expect("investor");
    let investor = Investor {
        user_id,
        subscription,
        deal,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("port");
    let app = App::from_parts(config, db, nats.clone(), listener)
        .await
        .expect("investment-svc builds on TLS NATS");
    let addr = app.local_addr().expect("bound address");
    let service = Running::start(addr, |shutdown| app.run_until_stopped(shutdown));
    let mut client = api::v1::investment_service_client::InvestmentServiceClient::with_interceptor(
        service.channel().await,
        testkit::Bearer(Some(testkit::token(investor.user_id))),
    );

    let investment = client
        .create_investment(create_request(&investor, 2, "tls-1"))
        .await
        .expect("created")
        .into_inner()
        .investment
        .expect("investment");

    // The create answers after the stream acknowledged the request: it is there now.
    let js = async_nats::jetstream::new(nats);
    let mut stream = js.get_stream(&names.stream).await.expect("stream");
    let state = stream.info().await.expect("stream info").state.clone();
    assert_eq!(state.messages, 1, "one allocation request on the stream");
    let stored = stream
        .get_raw_message(state.last_sequence)
        .await
        .expect("the request");
    let msg_id = stored
        .headers
        .get("Nats-Msg-Id")
        .map(|v| v.as_str().to_owned());
    assert_eq!(msg_id.as_deref(), Some(investment.id.as_str()));
}

/// Speaks the NATS protocol in plaintext: true when the server answers PING with PONG.
async fn plaintext_ping_answered(url: &str) -> bool {
    let addr = url.trim_start_matches("nats://");
    let probe = async {
        let mut socket = BufReader::new(TcpStream::connect(addr).await.expect("tcp"));
        let mut info = String::new();
        socket.read_line(&mut info).await.expect("INFO line");
        assert!(info.starts_with("INFO "), "a NATS server: {info}");
        socket
            .get_mut()
            .write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n")
            .await
            .expect("write");
        let mut reply = Vec::new();
        // Until the server answers or closes the connection.
        let mut chunk = [0u8; 512];
        loop {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&chunk[..n]),
            }
            if reply.windows(4).any(|w| w == b"PONG") {
                break;
            }
        }
        reply.windows(4).any(|w| w == b"PONG")
    };
    tokio::time::timeout(Duration::from_secs(15), probe)
        .await
        .expect("the server answers or closes within 15 s")
}

#[tokio::test]
async fn a_tls_only_nats_server_refuses_plaintext_clients() {
    let ca = TestCa::new("nats test CA");
    let server = TlsNatsServer::start(&ca, Demands::default()).await;
    // Control: the probe does see a plaintext server answer.
    let plain = NatsServer::start().await;
    assert!(plaintext_ping_answered(&plain.url()).await);

    assert!(
        !plaintext_ping_answered(&server.url()).await,
        "the TLS server answered a plaintext client"
    );
    // The services' client without NATS_TLS_CA_FILE does not get in either: it cannot verify
    // the server against the system's roots.
    let error = refused_with(
        connect(&server.url(), &[]).await,
        &[ConnectErrorKind::Tls, ConnectErrorKind::Io],
    );
    assert!(error.contains("UnknownIssuer"), "{error}");
}

#[tokio::test]
async fn a_nats_client_trusting_another_ca_is_refused() {
    let ca = TestCa::new("nats test CA");
    let other = TestCa::new("another CA");
    let server = TlsNatsServer::start(&ca, Demands::default()).await;

    let error = refused_with(
        connect(&server.url(), &[flag("nats-tls-ca-file", other.ca_file())]).await,
        &[ConnectErrorKind::Tls, ConnectErrorKind::Io],
    );
    assert!(error.contains("UnknownIssuer"), "{error}");
    // Control: the same client with the server's CA connects.
    connect(&server.url(), &[flag("nats-tls-ca-file", ca.ca_file())])
        .await
        .expect("the right CA is accepted");
}

#[tokio::test]
async fn a_verifying_nats_server_accepts_only_clients_with_a_certificate_of_its_ca() {
    let ca = TestCa::new("nats test CA");
    let other = TestCa::new("another CA");
    let server = TlsNatsServer::start(
        &ca,
        Demands {
            client_certificate: true,
            ..Demands::default()
        },
    )
    .await;
    let trust = flag("nats-tls-ca-file", ca.ca_file());

    let error = refused_with(
        connect(&server.url(), std::slice::from_ref(&trust)).await,
        &[ConnectErrorKind::Tls, ConnectErrorKind::Io],
    );
    assert!(error.contains("CertificateRequired"), "{error}");
    let (foreign_cert, foreign_key) = other.client("foreign", "investment-svc");
    let error = refused_with(
        connect(
            &server.url(),
            &[
                trust.clone(),
                flag("nats-tls-cert-file", &foreign_cert),
                flag("nats-tls-key-file", &foreign_key),
            ],
        )
        .await,
        &[ConnectErrorKind::Tls, ConnectErrorKind::Io],
    );
    assert!(error.contains("UnknownCA"), "{error}");

    let (cert, key) = ca.client("svc", "investment-svc");
    let client = connect(
        &server.url(),
        &[
            trust,
            flag("nats-tls-cert-file", &cert),
            flag("nats-tls-key-file", &key),
        ],
    )
    .await
    .expect("a client certificate of the CA is accepted");
    client
        .request("$JS.API.INFO", "".into())
        .await
        .expect("JetStream answers the verified client");
}

#[tokio::test]
async fn nats_user_and_password_are_checked() {
    let ca = TestCa::new("nats test CA");
    let password = "right-horse-battery-staple";
    let server = TlsNatsServer::start(
        &ca,
        Demands {
            user: Some(("investment-svc".into(), password.into())),
            ..Demands::default()
        },
    )
    .await;
    let trust = flag("nats-tls-ca-file", ca.ca_file());
    let user = "--nats-user=investment-svc".to_owned();

    let wrong = connect(
        &server.url(),
        &[
            trust.clone(),
            user.clone(),
            "--nats-password=wrong-guess".into(),
        ],
    )
    .await;
    if let Err(e) = &wrong {
        assert!(
            !format!("{e} {e:?}").contains("wrong-guess"),
            "the password is in the error: {e:?}"
        );
    }
    refused_with(wrong, &[ConnectErrorKind::AuthorizationViolation]);
    refused_with(
        connect(&server.url(), std::slice::from_ref(&trust)).await,
        &[ConnectErrorKind::AuthorizationViolation],
    );

    connect(
        &server.url(),
        &[trust, user, format!("--nats-password={password}")],
    )
    .await
    .expect("the right password is accepted");
}

#[tokio::test]
async fn unusable_nats_files_are_start_up_errors_naming_setting_and_path() {
    let ca = TestCa::new("nats test CA");
    let missing = ca.path("no-such.creds");
    let not_creds = ca.ca_file().to_owned();
    let cases = [
        (
            "NATS_CREDS_FILE",
            flag("nats-creds-file", &missing),
            &missing,
        ),
        (
            "NATS_TLS_CA_FILE",
            flag("nats-tls-ca-file", &missing),
            &missing,
        ),
        (
            "NATS_CREDS_FILE",
            flag("nats-creds-file", &not_creds),
            &not_creds,
        ),
    ];
    for (setting, arg, path) in cases {
        // No server needed: the files are read before any connection is tried.
        let config = config("nats://127.0.0.1:1", &Names::unique(), &[arg]);
        match messaging::connect(&config.common.nats, "tls-test").await {
            Err(ConnectError::Settings(SettingsError::File {
                setting: named,
                path: p,
                ..
            })) => {
                assert_eq!(named, setting);
                assert_eq!(&p, path);
            }
            Err(other) => panic!("{setting}: not a settings error: {other:?}"),
            Ok(_) => panic!("{setting}: connected"),
        }
        // What the operator reads when a service does not start.
        let opened = Connections::open(&config.common, "127.0.0.1:0".parse().expect("addr"), "t");
        let error = format!("{:#}", opened.await.err().expect("start-up fails"));
        assert!(
            error.contains(setting) && error.contains(&path.display().to_string()),
            "{error}"
        );
    }
}
