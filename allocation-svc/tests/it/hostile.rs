//! Hostile callers and input on allocation-svc: every RPC refuses bad tokens, and arbitrary
//! fields get only documented codes. (No secret in the logs: `tests/logs.rs`.)

use api::v1 as pb;
use proptest::{prelude::*, test_runner::TestRunner};
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn every_rpc_refuses_missing_and_invalid_tokens() {
    let stack = stack().await;
    for (case, token) in testkit::hostile_tokens() {
        let mut client = stack.allocations(0, token).await;
        let id = Uuid::new_v4().to_string();
        let codes = [
            client
                .watch_allocation(pb::WatchAllocationRequest {
                    investment_id: id.clone(),
                })
                .await
                .map(|_| ()),
            client
                .watch_allocations(pb::WatchAllocationsRequest {})
                .await
                .map(|_| ()),
            client
                .get_queue_stats(pb::GetQueueStatsRequest {})
                .await
                .map(|_| ()),
            client
                .list_failed_allocations(pb::ListFailedAllocationsRequest::default())
                .await
                .map(|_| ()),
            client
                .retry_allocation(pb::RetryAllocationRequest {
                    investment_id: id.clone(),
                })
                .await
                .map(|_| ()),
            client
                .reverse_allocation(pb::ReverseAllocationRequest {
                    investment_id: id,
                    reason: "why".into(),
                    request_id: String::new(),
                })
                .await
                .map(|_| ()),
        ]
        .map(|r| r.expect_err(case).code());
        assert_eq!(codes, [Code::Unauthenticated; 6], "{case}");
    }
}

#[test]
fn arbitrary_ids_and_pages_get_documented_codes() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (stack, alice, user, admin) = rt.block_on(async {
        let stack = stack().await;
        let alice = stack.investor("12000.00", "1.00", &[100]).await;
        let done = stack.create_finished(&alice, 1).await;
        let user = stack
            .allocations(0, Some(testkit::token(Uuid::new_v4())))
            .await;
        let admin = stack.admin().await;
        (stack, done, user, admin)
    });
    let ids = prop_oneof![
        Just(alice.id.clone()),
        Just(Uuid::nil().to_string()),
        Just("y".repeat(5000)),
        any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
        "\\PC{0,80}",
    ];
    let text = prop_oneof![
        Just(String::new()),
        "\\PC{0,200}",
        Just("é".repeat(1001)),
        Just("\u{0}".to_owned()),
    ];
    let strategy = (ids, any::<i32>(), "\\PC{0,100}", text.clone(), text);
    let runner_config = ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    TestRunner::new(runner_config)
        .run(
            &strategy,
            |(investment_id, page_size, page_token, reason, request_id)| {
                rt.block_on(async {
                    let (mut user, mut admin) = (user.clone(), admin.clone());
                    let watch = user
                        .watch_allocation(pb::WatchAllocationRequest {
                            investment_id: investment_id.clone(),
                        })
                        .await;
                    if let Err(status) = watch {
                        prop_assert!(
                            matches!(status.code(), Code::InvalidArgument | Code::NotFound),
                            "{status:?}"
                        );
                    } else {
                        prop_assert!(false, "someone else's or unknown investment was watchable");
                    }
                    let list = admin
                        .list_failed_allocations(pb::ListFailedAllocationsRequest {
                            page_size,
                            page_token,
                        })
                        .await;
                    if let Err(status) = list {
                        prop_assert_eq!(status.code(), Code::InvalidArgument);
                    }
                    let reverse = admin
                        .reverse_allocation(pb::ReverseAllocationRequest {
                            investment_id: investment_id.clone(),
                            reason,
                            request_id,
                        })
                        .await;
                    // Alice's completed investment may be reversed once; then it is REVERSED.
                    match reverse {
                        Ok(r) => prop_assert_eq!(
                            r.into_inner().investment.map(|i| i.id),
                            Some(alice.id.clone())
                        ),
                        Err(status) => prop_assert!(
                            matches!(
                                status.code(),
                                Code::InvalidArgument
                                    | Code::NotFound
                                    | Code::FailedPrecondition
                                    | Code::AlreadyExists
                            ),
                            "{status:?}"
                        ),
                    }
                    let retry = admin
                        .retry_allocation(pb::RetryAllocationRequest { investment_id })
                        .await;
                    let status = retry.expect_err("nothing here is retryable");
                    prop_assert!(
                        matches!(
                            status.code(),
                            Code::InvalidArgument | Code::NotFound | Code::FailedPrecondition
                        ),
                        "{status:?}"
                    );
                    Ok(())
                })
            },
        )
        .expect("documented codes only");
    rt.block_on(async move { drop(stack) });
}
