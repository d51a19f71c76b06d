//! Hostile input: arbitrary values in every field of every RPC get only documented codes,
//! never a panic, and a refused request changes nothing.

use api::v1 as pb;
use entity::prelude::*;
use proptest::{prelude::*, test_runner::TestRunner};
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

/// Rows a refused request must not have touched.
async fn footprint(db: &DatabaseConnection) -> (u64, u64, u64) {
    (
        Investment::find().count(db).await.expect("count"),
        AllocationEvent::find().count(db).await.expect("count"),
        UserInvestment::find().count(db).await.expect("count"),
    )
}

/// Ids: the caller's own, someone else's, unknown, nil, malformed, huge, odd unicode.
fn id(own: String, foreign: String) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(own),
        Just(foreign),
        Just(Uuid::nil().to_string()),
        Just(String::new()),
        Just("x".repeat(10_000)),
        any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
        "\\PC{0,64}",
        "[0-9a-f-]{30,40}",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "\\PC{0,200}",
        "[a-zA-Z0-9_-]{1,40}",
        Just("é".repeat(129)),
        Just("\u{0}".into())
    ]
}

fn runner() -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}

#[test]
fn arbitrary_requests_get_documented_codes_and_refusals_change_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (app, alice, bob, client) = rt.block_on(async {
        let app = spawn_app().await;
        let alice = investor(&app, "100.00", "1.00").await;
        let bob = investor(&app, "100.00", "1.00").await;
        let client = app.client(alice.user_id).await;
        (app, alice, bob, client)
    });

    let create = (
        id(
            alice.subscription.id.to_string(),
            bob.subscription.id.to_string(),
        ),
        id(alice.deal.id.to_string(), bob.deal.id.to_string()),
        prop_oneof![any::<i64>(), -3i64..3, 1i64..5],
        text(),
    );
    runner()
        .run(&create, |(subscription_id, deal_id, shares, request_id)| {
            rt.block_on(async {
                let before = footprint(&app.db).await;
                let request = pb::CreateInvestmentRequest {
                    subscription_id,
                    deal_id,
                    shares,
                    request_id,
                };
                let result = client.clone().create_investment(request).await;
                match result {
                    Ok(_) => {}
                    Err(status) => {
                        prop_assert!(
                            matches!(
                                status.code(),
                                Code::InvalidArgument
                                    | Code::NotFound
                                    | Code::FailedPrecondition
                                    | Code::AlreadyExists
                            ),
                            "undocumented {status:?}"
                        );
                        prop_assert_eq!(
                            footprint(&app.db).await,
                            before,
                            "a refused create changed the database"
                        );
                    }
                }
                Ok(())
            })
        })
        .expect("create");

    let reads = (
        id(alice.subscription.id.to_string(), bob.deal.id.to_string()),
        any::<i32>(),
        prop_oneof![text(), "[A-Za-z0-9_-]{0,120}"],
        any::<i32>(),
        text(),
    );
    runner()
        .run(
            &reads,
            |(investment_id, page_size, page_token, status, request_id)| {
                rt.block_on(async {
                    let before = footprint(&app.db).await;
                    let mut client = client.clone();
                    let codes = [
                        // None of these ids is an investment of alice's: nothing to cancel.
                        client
                            .cancel_investment(pb::CancelInvestmentRequest {
                                investment_id: investment_id.clone(),
                                request_id,
                            })
                            .await
                            .err()
                            .map(|s| s.code()),
                        client
                            .get_investment(pb::GetInvestmentRequest { investment_id })
                            .await
                            .err()
                            .map(|s| s.code()),
                        client
                            .list_investments(pb::ListInvestmentsRequest {
                                page_size,
                                page_token: page_token.clone(),
                                allocation_status: status,
                            })
                            .await
                            .err()
                            .map(|s| s.code()),
                        client
                            .list_subscription_balances(pb::ListSubscriptionBalancesRequest {
                                page_size,
                                page_token: page_token.clone(),
                            })
                            .await
                            .err()
                            .map(|s| s.code()),
                        client
                            .list_deals(pb::ListDealsRequest {
                                page_size,
                                page_token,
                            })
                            .await
                            .err()
                            .map(|s| s.code()),
                    ];
                    for code in codes.into_iter().flatten() {
                        prop_assert!(
                            matches!(code, Code::InvalidArgument | Code::NotFound),
                            "undocumented {code:?}"
                        );
                    }
                    prop_assert_eq!(
                        footprint(&app.db).await,
                        before,
                        "a read or a refused cancel changed the database"
                    );
                    Ok(())
                })
            },
        )
        .expect("reads");
    rt.block_on(async move { drop(app) });
}
