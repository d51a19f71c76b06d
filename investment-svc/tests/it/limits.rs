//! Transport limits (service-kit's server, the same on both ports): what one client can make the
//! server hold is bounded, and refusals carry the conventional codes.

use std::time::Duration;

use api::v1 as pb;
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use service_kit::config::ServerArgs;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::support::{Options, create_request, investor, spawn_app_with};

const DEADLINE: Duration = Duration::from_secs(10);

async fn app_with(server: ServerArgs) -> crate::support::TestApp {
    spawn_app_with(Options {
        server: Some(server),
        ..Options::default()
    })
    .await
}

/// Reads until the server closes the connection; `false` if it is still open at the deadline.
async fn closed_by_server(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let read_to_end = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(DEADLINE, read_to_end).await.is_ok()
}

#[tokio::test]
async fn the_server_announces_its_cap_on_streams_per_connection() {
    let app = app_with(ServerArgs {
        http2_max_concurrent_streams: 3,
        ..ServerArgs::default()
    })
    .await;
    let tcp = TcpStream::connect(app.addr).await.expect("connect");
    let (_client, mut connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    // The server's SETTINGS arrive as the connection is driven.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while connection.max_concurrent_send_streams() != 3 && tokio::time::Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_millis(20), &mut connection).await;
    }
    assert_eq!(connection.max_concurrent_send_streams(), 3);
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_handshake_timeout() {
    let app = app_with(ServerArgs {
        connection_handshake_timeout: Duration::from_millis(200),
        ..ServerArgs::default()
    })
    .await;
    let mut silent = TcpStream::connect(app.addr).await.expect("connect");
    assert!(
        closed_by_server(&mut silent).await,
        "a silent connection is still open"
    );
    // A connection that speaks is served as usual.
    let mut health = HealthClient::new(app.channel().await);
    health
        .check(HealthCheckRequest::default())
        .await
        .expect("health answers");
}

#[tokio::test]
async fn a_client_that_stops_answering_keepalive_pings_is_disconnected() {
    let app = app_with(ServerArgs {
        http2_keepalive_interval: Duration::from_millis(200),
        http2_keepalive_timeout: Duration::from_millis(200),
        ..ServerArgs::default()
    })
    .await;
    // An HTTP/2 client that opens the connection and then never answers anything (a peer that
    // vanished without a FIN looks the same to the server).
    let mut mute = TcpStream::connect(app.addr).await.expect("connect");
    mute.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    mute.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .expect("empty SETTINGS frame");
    assert!(
        closed_by_server(&mut mute).await,
        "a connection that never acknowledges a ping is still open"
    );
}

#[tokio::test]
async fn a_request_over_the_message_size_limit_gets_resource_exhausted() {
    let app = app_with(ServerArgs {
        max_message_bytes: 64 * 1024,
        ..ServerArgs::default()
    })
    .await;
    let investor = investor(&app, "100.00", "10.00").await;
    let mut client = app.client(investor.user_id).await;
    let huge = "x".repeat(128 * 1024);
    let status = client
        .create_investment(create_request(&investor, 1, &huge))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(crate::support::investment_count(&app.db).await, 0);
}

#[tokio::test]
async fn requests_beyond_the_concurrency_cap_are_refused_at_once() {
    let app = app_with(ServerArgs {
        max_concurrent_requests: 1,
        ..ServerArgs::default()
    })
    .await;
    let investor = investor(&app, "100.00", "10.00").await;
    // Hold the subscription's row lock so that one create stays in progress.
    let blocker = app.db.begin().await.expect("begin");
    blocker
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 FROM subscriptions WHERE id = $1 FOR UPDATE",
            [investor.subscription.id.into()],
        ))
        .await
        .expect("lock the subscription");
    let mut client = app.client(investor.user_id).await;
    let held = tokio::spawn({
        let mut client = client.clone();
        let request = create_request(&investor, 1, "held");
        async move { client.create_investment(request).await }
    });
    app.test_db.lock_waiter().await;

    let refused = client
        .create_investment(create_request(&investor, 1, "refused"))
        .await
        .expect_err("over the cap");
    assert!(
        matches!(refused.code(), Code::ResourceExhausted | Code::Unavailable),
        "{refused:?}"
    );

    blocker.rollback().await.expect("release the lock");
    let accepted: pb::CreateInvestmentResponse = held
        .await
        .expect("task")
        .expect("the held create finishes")
        .into_inner();
    assert!(accepted.investment.is_some());
    assert_eq!(crate::support::investment_count(&app.db).await, 1);
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let app = app_with(ServerArgs {
        max_connections: 1,
        ..ServerArgs::default()
    })
    .await;
    let check = |channel| async move {
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
    };
    let first = app.channel().await;
    check(first.clone())
        .await
        .expect("the first connection is served");

    let second = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))
        .expect("uri")
        .timeout(Duration::from_millis(300))
        .connect_lazy();
    let refused = check(second.clone()).await.expect_err("no slot yet");
    assert!(
        matches!(
            refused.code(),
            Code::Cancelled | Code::Unavailable | Code::DeadlineExceeded
        ),
        "{refused:?}"
    );

    drop(first);
    testkit::eventually(DEADLINE, "the second connection to be served", || {
        let second = second.clone();
        async move { check(second).await.ok() }
    })
    .await;
}
