//! Holding a connection costs a client something (service-kit's listener; the same on both
//! ports): half-open sockets, connections per address, the handshake deadline up to the first
//! complete request, the idle timeout and the maximum age.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use service_kit::config::ServerArgs;
use testkit::raw_h2;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    task::JoinSet,
};
use tonic::{Code, transport::Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::support::{Options, TestApp, spawn_app_with};

const DEADLINE: Duration = Duration::from_secs(10);

async fn app_with(server: ServerArgs) -> TestApp {
    spawn_app_with(Options {
        server: Some(server),
        ..Options::default()
    })
    .await
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// A TCP connection to `addr` from the loopback address `from`.
async fn connect_from(from: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind");
    socket.connect(addr).await.expect("connect")
}

/// Waits until the server closes `tcp`; `false` if it is still open after `within`.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read_to_end = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_to_end).await.is_ok()
}

/// One health check on a new connection from `from`, within one second.
async fn health_check_from(from: IpAddr, addr: SocketAddr) -> Result<Duration, String> {
    let started = Instant::now();
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .local_address(Some(from))
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(1))
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map_err(|e| format!("check: {e}"))?;
    Ok(started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_sockets_from_many_addresses_neither_stop_health_checks_nor_outlive_the_handshake_deadline()
 {
    let app = app_with(ServerArgs::default()).await;
    // Given 1,100 sockets from 127.0.0.2-12 (100 each), each holding one byte of the preface,
    let mut opening = JoinSet::new();
    for last in 2..=12 {
        for _ in 0..100 {
            let addr = app.addr;
            opening.spawn(async move {
                let mut tcp = connect_from(loopback(last), addr).await;
                tcp.write_all(b"P").await.expect("one byte");
                (tcp, Instant::now())
            });
        }
    }
    let mut held = JoinSet::new();
    while let Some(opened) = opening.join_next().await {
        let (mut tcp, opened) = opened.expect("socket opened");
        // Held until the server closes it (or the test's 15 s are over).
        held.spawn(async move {
            let closed = closed_within(&mut tcp, Duration::from_secs(15)).await;
            closed.then(|| opened.elapsed())
        });
    }
    // when a well-behaved client checks health on a new connection throughout 15 s,
    // (Paced: back-to-back checks would pile up this client's closing connections against
    // its own per-address cap, which is not what this test is about.)
    let mut latencies = Vec::new();
    let until = Instant::now() + Duration::from_secs(15);
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    while Instant::now() < until {
        pace.tick().await;
        match health_check_from(loopback(1), app.addr).await {
            Ok(latency) => latencies.push(latency),
            Err(e) => panic!("a health check failed during the flood: {e}"),
        }
    }
    // then every check was answered, and the server closed every socket within the 15 s it
    // was held: by its 10 s handshake deadline, or sooner when evicted for a newer one.
    let mut open_for = Vec::new();
    while let Some(closed) = held.join_next().await {
        open_for.push(
            closed
                .expect("socket task")
                .expect("a socket outlived 15 s"),
        );
    }
    assert_eq!(open_for.len(), 1100);
    let longest = open_for.iter().max().copied().unwrap_or_default();
    latencies.sort();
    println!(
        "health checks during the flood: {} answered, p50 {:?}, max {:?}; sockets closed after at most {longest:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies.last().copied().unwrap_or_default(),
    );
}

#[tokio::test]
async fn connections_over_the_cap_for_one_address_are_closed_at_once_and_others_served() {
    let app = app_with(ServerArgs {
        max_connections_per_address: 2,
        ..ServerArgs::default()
    })
    .await;
    let crowded = loopback(20);
    let _first = connect_from(crowded, app.addr).await;
    let _second = connect_from(crowded, app.addr).await;
    let mut third = connect_from(crowded, app.addr).await;
    // Well before the 10 s handshake timeout: refused, not timed out.
    assert!(
        closed_within(&mut third, Duration::from_secs(3)).await,
        "a third connection from one address is still open"
    );
    health_check_from(loopback(21), app.addr)
        .await
        .expect("another address is served");
}

#[tokio::test]
async fn with_the_per_address_cap_off_one_address_may_hold_many_connections() {
    let app = app_with(ServerArgs {
        max_connections_per_address: 0,
        ..ServerArgs::default()
    })
    .await;
    let shared = loopback(22);
    let mut held = Vec::new();
    for _ in 0..300 {
        held.push(connect_from(shared, app.addr).await);
    }
    health_check_from(shared, app.addr)
        .await
        .expect("the 301st connection from one address is served");
}

#[tokio::test]
async fn the_handshake_deadline_holds_until_the_first_complete_request() {
    let handshake = Duration::from_millis(500);
    let app = app_with(ServerArgs {
        connection_handshake_timeout: handshake,
        ..ServerArgs::default()
    })
    .await;
    // A complete HTTP/2 preface and SETTINGS, pings answered, but no request: closed.
    let (_send, silent) = raw_h2::connect(app.addr).await;
    tokio::time::timeout(DEADLINE, silent)
        .await
        .expect("a connection that made no request is still open")
        .expect("driver");
    // A connection whose first request came in time stays open past the deadline.
    let (mut send, served) = raw_h2::connect(app.addr).await;
    let response = raw_h2::call(&mut send, "/grpc.health.v1.Health/Check")
        .await
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    // Let the handshake deadline pass (time is the behaviour here, not synchronisation).
    tokio::time::sleep(handshake * 3).await;
    assert!(!served.is_finished(), "a working connection was closed");
    let again = raw_h2::call(&mut send, "/grpc.health.v1.Health/Check")
        .await
        .await
        .expect("answered again");
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn an_idle_connection_is_closed_but_not_one_with_an_open_stream() {
    let idle = Duration::from_millis(500);
    let app = app_with(ServerArgs {
        connection_idle_timeout: idle,
        ..ServerArgs::default()
    })
    .await;
    // One call, then nothing: closed after the idle timeout.
    let (mut send, idle_connection) = raw_h2::connect(app.addr).await;
    raw_h2::call(&mut send, "/grpc.health.v1.Health/Check")
        .await
        .await
        .expect("answered");
    tokio::time::timeout(DEADLINE, idle_connection)
        .await
        .expect("an idle connection is still open")
        .expect("driver");
    // An open watch keeps its connection in use for longer than the idle timeout.
    let (mut send, watching) = raw_h2::connect(app.addr).await;
    let watch = raw_h2::call(&mut send, "/grpc.health.v1.Health/Watch")
        .await
        .await
        .expect("watching");
    tokio::time::sleep(idle * 3).await;
    assert!(
        !watching.is_finished(),
        "a connection with an open stream was closed as idle"
    );
    raw_h2::call(&mut send, "/grpc.health.v1.Health/Check")
        .await
        .await
        .expect("still served");
    // Once the stream is gone, the connection is idle again and closed.
    drop(watch);
    drop(send);
    tokio::time::timeout(DEADLINE, watching)
        .await
        .expect("the connection outlived its stream by more than the idle timeout")
        .expect("driver");
}

#[tokio::test]
async fn at_its_maximum_age_a_connection_ends_open_streams_with_unavailable_and_clients_resume() {
    let app = app_with(ServerArgs {
        max_connection_age: Some(Duration::from_millis(300)),
        max_connection_age_grace: Duration::from_millis(300),
        ..ServerArgs::default()
    })
    .await;
    let channel = app.channel().await;
    let mut health = HealthClient::new(channel);
    let mut watch = health
        .watch(HealthCheckRequest::default())
        .await
        .expect("watch")
        .into_inner();
    watch
        .message()
        .await
        .expect("first status")
        .expect("a status");
    let ended = tokio::time::timeout(DEADLINE, async {
        loop {
            match watch.message().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the stream ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the stream outlived the connection's age and grace");
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    assert!(ended.message().contains("maximum age"), "{ended:?}");
    // The client goes on over a new connection.
    health
        .check(HealthCheckRequest::default())
        .await
        .expect("served on a new connection");
}
