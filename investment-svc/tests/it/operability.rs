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
async fn reflection_v1_and_v1alpha_list_the_services() {
    let app = spawn_app().await;
    {
        use tonic_reflection::pb::v1::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let mut client = ServerReflectionClient::new(app.channel().await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("v1")
            .into_inner();
        let Some(Ok(response)) = responses.next().await else {
            panic!("no v1 response")
        };
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("not a list")
        };
        let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
        assert!(
            names.contains(&"invest.v1.InvestmentService".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(&"grpc.health.v1.Health".to_owned()),
            "{names:?}"
        );
        // Error details resolve too, so grpcurl prints BadRequest violations readably.
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "google.rpc.BadRequest".into(),
            )),
        };
        let mut responses = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("v1")
            .into_inner();
        let Some(Ok(response)) = responses.next().await else {
            panic!("no v1 response")
        };
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
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("v1alpha")
            .into_inner();
        let Some(Ok(response)) = responses.next().await else {
            panic!("no v1alpha response")
        };
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
        "LOG_FORMAT",
        "RUST_LOG",
        "SWEEP_INTERVAL",
        "SWEEP_MIN_AGE",
        "SWEEP_BATCH",
    ] {
        assert!(help.contains(var), "--help does not mention {var}:\n{help}");
    }
}

#[tokio::test]
async fn shutdown_stops_the_server_and_the_sweeper() {
    let mut app = spawn_app().await;
    app.shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), &mut app.server)
        .await
        .expect("stops within its grace period")
        .expect("task");
    stopped.expect("clean stop");
    assert!(
        tokio::net::TcpStream::connect(app.addr).await.is_err(),
        "no longer listening"
    );
}
