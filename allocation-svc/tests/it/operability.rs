//! Health, reflection, `--help`, graceful shutdown.

use std::time::Duration;

use clap::CommandFactory;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::support::*;

#[tokio::test]
async fn health_answers_serving_without_a_token() {
    let stack = stack().await;
    let channel = stack.replicas[0].channel().await;
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "invest.v1.AllocationService".into(),
        })
        .await
        .expect("health")
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
}

#[tokio::test]
async fn investment_calls_on_this_port_are_sent_to_investment_svc() {
    let stack = stack().await;
    let channel = stack.replicas[0].channel().await;
    let status = api::v1::investment_service_client::InvestmentServiceClient::new(channel)
        .list_deals(api::v1::ListDealsRequest::default())
        .await
        .expect_err("not served here");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert!(
        status
            .message()
            .contains("invest.v1.InvestmentService is served by investment-svc"),
        "{status:?}"
    );
}

#[test]
fn help_lists_every_setting() {
    let help = allocation_svc::Config::command().render_help().to_string();
    for var in [
        "LISTEN_ADDR",
        "SHUTDOWN_GRACE",
        "DATABASE_URL",
        "NATS_URL",
        "NATS_STREAM",
        "NATS_SUBJECT_PREFIX",
        "JWT_SECRET",
        "LOG_FORMAT",
        "RUST_LOG",
        "ALLOCATE",
        "CONSUMER_NAME",
        "ACK_WAIT",
        "MAX_ACK_PENDING",
        "FETCH_BATCH",
        "MAX_ATTEMPTS",
        "RETRY_BACKOFF",
        "MAX_LANES",
        "MICRO_BATCH",
        "LANE_IDLE",
        "LOCK_TIMEOUT",
        "WATCH_RESYNC",
        "WATCH_BUFFER",
    ] {
        assert!(help.contains(var), "--help does not mention {var}");
    }
}

#[tokio::test]
async fn shutdown_ends_open_watches_and_stops_within_the_grace_period() {
    let mut stack = stack().await;
    let investor = stack.investor("12000.00", "1.00", &[10]).await;
    // Keep an investment from finishing so its watch stays open (the lock the allocator takes).
    let lock = hold(&stack, &investor, Hold::Deal).await;
    let created = stack.create(&investor, 1).await;
    let watch = stack.watch(0, investor.user_id, &created.id).await;

    let mut replica = stack.replicas.remove(0);
    replica.shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), &mut replica.task)
        .await
        .expect("stops within its grace")
        .expect("task");
    stopped.expect("clean stop");
    drop(lock);

    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        use futures::StreamExt;
        let mut watch = watch;
        let mut last = None;
        while let Some(item) = watch.next().await {
            last = Some(item);
        }
        last
    })
    .await
    .expect("the watch ended");
    let status = ended
        .expect("something was sent")
        .expect_err("ended with a status");
    assert_eq!(status.code(), tonic::Code::Unavailable);
}
