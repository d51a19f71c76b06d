//! Browsers watch allocations over grpc-web (HTTP/1.1): the server stream works through the
//! same port as native gRPC.

use api::v1::{self as pb, allocation_service_client::AllocationServiceClient};
use testkit::{Bearer, grpc_web};
use tonic::service::interceptor::InterceptedService;

use crate::support::*;

#[tokio::test]
async fn a_watch_over_grpc_web_streams_every_status_to_completed() {
    let stack = stack().await;
    let investor = stack.investor("12000.00", "1.00", &[100]).await;
    let mut client = AllocationServiceClient::with_origin(
        InterceptedService::new(
            grpc_web::channel(),
            Bearer(Some(testkit::token(investor.user_id))),
        ),
        grpc_web::origin(stack.replicas[0].addr),
    );
    let created = stack.create(&investor, 5).await;

    let mut stream = client
        .watch_allocation(pb::WatchAllocationRequest {
            investment_id: created.id.clone(),
        })
        .await
        .expect("server stream over grpc-web")
        .into_inner();
    let mut updates = Vec::new();
    while let Some(item) =
        tokio::time::timeout(std::time::Duration::from_secs(30), stream.message())
            .await
            .expect("an update in time")
            .expect("stream item")
    {
        updates.push(item.update.expect("update"));
    }

    let last = updates.last().expect("updates");
    assert_eq!(last.allocation_status(), pb::AllocationStatus::Completed);
    assert_eq!(last.allocations.iter().map(|a| a.units).sum::<i64>(), 5);
    let versions: Vec<i64> = updates.iter().map(|u| u.version).collect();
    assert!(
        versions.windows(2).all(|w| w[1] == w[0] + 1),
        "gapless: {versions:?}"
    );
    check_invariants(&stack.db).await;
}
