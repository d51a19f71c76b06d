//! Health, reflection (v1 and v1alpha), `--help`, graceful shutdown.

use std::time::Duration;

use clap::CommandFactory;
use investment_svc::Config;
use tokio_stream::StreamExt;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::support::*;

#[tokio::test]
async fn health_answers_serving_without_a_token() {
    let app = spawn_app().await;
    let mut health = HealthClient::new(app.channel().await);
    for service in ["", "invest.v1.InvestmentService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
}

#[tokio::test]
async fn readiness_follows_the_database_and_nats_while_liveness_stays_up() {
    let mut app = spawn_app_with(Options {
        own_nats_server: true,
        server: Some(service_kit::config::ServerArgs {
            readiness_interval: Duration::from_millis(100),
            ..Default::default()
        }),
        ..Options::default()
    })
    .await;
    let health = HealthClient::new(app.channel().await);
    let becomes = |service: &'static str, wanted: ServingStatus| {
        let mut health = health.clone();
        async move {
            testkit::eventually(Duration::from_secs(10), service, || {
                let mut health = health.clone();
                async move {
                    let status = health
                        .check(HealthCheckRequest {
                            service: service.into(),
                        })
                        .await
                        .ok()?
                        .into_inner()
                        .status();
                    (status == wanted).then_some(())
                }
            })
            .await;
            // Liveness, meanwhile.
            health
                .check(HealthCheckRequest::default())
                .await
                .map(|r| r.into_inner().status())
                .ok()
        }
    };
    let ready = "invest.v1.InvestmentService";
    let live = Some(ServingStatus::Serving);
    assert_eq!(becomes(ready, ServingStatus::Serving).await, live);

    app.test_db.set_reachable(false, None).await;
    assert_eq!(becomes(ready, ServingStatus::NotServing).await, live);
    app.test_db.set_reachable(true, None).await;
    assert_eq!(becomes(ready, ServingStatus::Serving).await, live);

    app.nats_server.as_mut().expect("own NATS").stop();
    assert_eq!(becomes(ready, ServingStatus::NotServing).await, live);
    app.nats_server.as_mut().expect("own NATS").resume().await;
    assert_eq!(becomes(ready, ServingStatus::Serving).await, live);
}

/// The first answer of `$client` to one reflection request for `$message`: a macro, because v1
/// and v1alpha make the same calls on types of their own.
macro_rules! first_answer {
    ($client:expr, $message:expr, $version:literal) => {{
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some($message),
        };
        let mut responses = $client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect($version)
            .into_inner();
        let Some(Ok(response)) = responses.next().await else {
            panic!(concat!("no ", $version, " response"))
        };
        response
    }};
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_the_services() {
    let app = spawn_app().await;
    {
        use tonic_reflection::pb::v1::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let mut client = ServerReflectionClient::new(app.channel().await);
        let response = first_answer!(client, MessageRequest::ListServices(String::new()), "v1");
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("not a list")
        };
        let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
        names.sort();
        // This port's API only: AllocationService is served by allocation-svc.
        assert_eq!(
            names,
            [
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
                "invest.v1.InvestmentService",
            ],
        );
        // Error details resolve too, so grpcurl prints BadRequest violations readably.
        let response = first_answer!(
            client,
            MessageRequest::FileContainingSymbol("google.rpc.BadRequest".into()),
            "v1"
        );
        assert!(
            matches!(
                response.message_response,
                Some(MessageResponse::FileDescriptorResponse(_))
            ),
            "google.rpc.BadRequest not served: {response:?}"
        );
    }
    {
        use tonic_reflection::pb::v1alpha::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let mut client = ServerReflectionClient::new(app.channel().await);
        let response = first_answer!(
            client,
            MessageRequest::ListServices(String::new()),
            "v1alpha"
        );
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("not a list")
        };
        assert!(
            list.service
                .iter()
                .any(|s| s.name == "invest.v1.InvestmentService")
        );
    }
}

#[tokio::test]
async fn a_call_on_the_wrong_port_is_told_which_service_serves_it() {
    use api::v1::allocation_service_client::AllocationServiceClient;
    let app = spawn_app().await;
    let mut wrong = AllocationServiceClient::new(app.channel().await);
    let status = wrong
        .get_queue_stats(api::v1::GetQueueStatsRequest::default())
        .await
        .expect_err("not served here");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert!(
        status
            .message()
            .contains("invest.v1.AllocationService is served by allocation-svc"),
        "{status:?}"
    );
    let unknown = app.channel().await;
    let mut grpc = tonic::client::Grpc::new(unknown);
    grpc.ready().await.expect("ready");
    let status = grpc
        .unary::<_, (), _>(
            tonic::Request::new(()),
            http::uri::PathAndQuery::from_static("/invest.v1.NoSuchService/Call"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("no such service");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert!(
        status
            .message()
            .contains("this port serves invest.v1.InvestmentService"),
        "{status:?}"
    );
}

#[test]
fn help_lists_every_setting() {
    let help = Config::command().render_help().to_string();
    for var in [
        "LISTEN_ADDR",
        "SHUTDOWN_GRACE",
        "DATABASE_URL",
        "DATABASE_MAX_CONNECTIONS",
        "DATABASE_ACQUIRE_TIMEOUT",
        "NATS_URL",
        "NATS_STREAM",
        "NATS_SUBJECT_PREFIX",
        "NATS_STREAM_REPLICAS",
        "NATS_DUPLICATE_WINDOW",
        "NATS_TIMEOUT",
        "JWT_SECRET",
        "JWT_PUBLIC_KEY_FILE",
        "JWT_ALGORITHM",
        "JWT_LEEWAY",
        "CORS_ALLOWED_ORIGINS",
        "MAX_CONNECTIONS",
        "HTTP2_MAX_CONCURRENT_STREAMS",
        "HTTP2_KEEPALIVE_INTERVAL",
        "HTTP2_KEEPALIVE_TIMEOUT",
        "CONNECTION_HANDSHAKE_TIMEOUT",
        "MAX_CONCURRENT_REQUESTS",
        "MAX_MESSAGE_BYTES",
        "MAX_HANDSHAKING_CONNECTIONS",
        "MAX_CONNECTIONS_PER_ADDRESS",
        "CONNECTION_IDLE_TIMEOUT",
        "MAX_CONNECTION_AGE",
        "MAX_CONNECTION_AGE_GRACE",
        "TLS_CERT_FILE",
        "TLS_KEY_FILE",
        "TLS_CLIENT_CA_FILE",
        "TLS_RELOAD_INTERVAL",
        "READINESS_INTERVAL",
        "METRICS_ADDR",
        "METRICS_SAMPLE_INTERVAL",
        "LOG_FORMAT",
        "RUST_LOG",
        "SWEEP_INTERVAL",
        "SWEEP_MIN_AGE",
        "SWEEP_STUCK_AGE",
        "SWEEP_BATCH",
        "CURRENCY",
    ] {
        assert!(help.contains(var), "--help does not mention {var}:\n{help}");
    }
}

#[tokio::test]
async fn shutdown_stops_the_server_and_the_sweeper() {
    let mut app = spawn_app().await;
    app.service.shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), &mut app.service.task)
        .await
        .expect("stops within its grace period")
        .expect("task");
    stopped.expect("clean stop");
    assert!(
        tokio::net::TcpStream::connect(app.addr).await.is_err(),
        "no longer listening"
    );
}

/// SIGTERM while creates are inside their statement (held there by the test's lock on the
/// subscription row, and seen waiting): the process stops taking calls but finishes those
/// before it exits, within its grace; no accepted investment is lost and no refused one
/// stored.
#[tokio::test]
async fn sigterm_under_load_exits_within_its_grace_and_loses_no_accepted_investment() {
    use api::v1 as pb;
    use entity::prelude::*;
    use futures::future::join_all;
    use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait, TransactionTrait};

    // The database and stream of a test app; the service under test is the real binary.
    let app = spawn_app().await;
    let investor = investor(&app, "100000.00", "1.00").await;
    let addr = testkit::process::free_addr();
    let mut args = testkit::nats::service_args(&app.names, &testkit::nats::url());
    args.retain(|a| !a.starts_with("--listen-addr"));
    args.push(format!("--listen-addr={addr}"));
    args.push(format!("--database-url={}", app.test_db.url));
    let mut process =
        testkit::process::Process::spawn(env!("CARGO_BIN_EXE_investment-svc"), &args, addr).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let health = HealthClient::new(channel.clone());
    let serving = || {
        let mut health = health.clone();
        async move {
            let answer = health.check(HealthCheckRequest::default()).await;
            answer.is_ok_and(|a| a.into_inner().status() == ServingStatus::Serving)
        }
    };
    let client = pb::investment_service_client::InvestmentServiceClient::with_interceptor(
        channel,
        testkit::Bearer(Some(testkit::token(investor.user_id))),
    );
    // Creates lock their subscription row first: the test holds it.
    let lock = app.db.begin().await.expect("begin");
    lock.execute_unprepared(&format!(
        "SELECT 1 FROM subscriptions WHERE id = '{}' FOR UPDATE",
        investor.subscription.id
    ))
    .await
    .expect("lock the subscription");

    let creates = join_all((0..200).map(|_| {
        let mut client = client.clone();
        let request = create_request(&investor, 1, "");
        async move { client.create_investment(request).await }
    }));
    let (results, status) = tokio::join!(creates, async {
        // Creates in flight: waiting on the test's lock, inside the process.
        app.test_db.lock_waiter().await;
        process.signal("TERM");
        // The drain has begun (health no longer SERVING) while they still wait.
        testkit::eventually(Duration::from_secs(10), "the drain to begin", || async {
            (!serving().await).then_some(())
        })
        .await;
        lock.rollback().await.expect("release the subscription");
        process.wait(Duration::from_secs(15)).await
    });

    assert!(status.success(), "clean exit: {status:?}");
    let accepted = results.iter().filter(|r| r.is_ok()).count() as u64;
    assert!(
        accepted > 0,
        "the creates in flight at the signal were finished"
    );
    let stored = Investment::find().count(&app.db).await.expect("count");
    assert_eq!(
        stored, accepted,
        "every accepted investment is stored, and only those"
    );
}

#[tokio::test]
async fn nats_url_may_list_several_servers() {
    use clap::Parser as _;
    #[derive(clap::Parser)]
    struct Nats {
        #[command(flatten)]
        nats: service_kit::config::NatsArgs,
    }
    // Nothing listens on the first; the client goes on to the next.
    let urls = format!("nats://127.0.0.1:1,{}", testkit::nats::url());
    let args = Nats::try_parse_from(["test", &format!("--nats-url={urls}")])
        .expect("settings")
        .nats;
    let client = service_kit::messaging::connect(&args, "list-test")
        .await
        .expect("connects through the list");
    client.flush().await.expect("a round trip to the server");
}
