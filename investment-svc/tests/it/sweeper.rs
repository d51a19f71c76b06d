//! NATS down at create time: the create still succeeds and the sweeper publishes later.

use std::time::Duration;

use api::v1 as pb;

use crate::support::*;

#[tokio::test]
async fn sweeper_republishes_investments_created_while_nats_was_down() {
    let mut app = spawn_app_with(Options {
        own_nats_server: true,
        sweeper: Some((Duration::from_millis(100), Duration::from_millis(200))),
    })
    .await;
    let investor = investor(&app, "100.00", "10.00").await;
    let mut client = app.client(investor.user_id).await;
    app.nats_server.as_mut().expect("own server").stop();

    let investment = client
        .create_investment(create_request(&investor, 2, "during-outage"))
        .await
        .expect("accepted while NATS is down")
        .into_inner()
        .investment
        .expect("investment");
    assert_eq!(
        investment.allocation_status(),
        pb::AllocationStatus::Pending
    );

    app.nats_server.as_mut().expect("own server").resume().await;
    let published = testkit::eventually(
        Duration::from_secs(30),
        "the sweeper to publish",
        || async {
            let published = app.published().await;
            (!published.is_empty()).then_some(published)
        },
    )
    .await;

    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0].1.as_deref(), Some(investment.id.as_str()));
    assert_eq!(published[0].2.investment_id, investment.id);
}
