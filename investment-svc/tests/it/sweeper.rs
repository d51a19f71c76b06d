//! NATS down at create time: the create still succeeds and the sweeper publishes later.

use std::time::Duration;

use api::v1 as pb;

use crate::support::*;

#[tokio::test]
async fn sweeper_republishes_investments_created_while_nats_was_down() {
    let mut app = spawn_app_with(Options {
        own_nats_server: true,
        sweeper: Some((Duration::from_millis(100), Duration::from_millis(200))),
        ..Options::default()
    })
    .await;
    let investor = investor(&app, "100.00", "10.00").await;
    let mut client = app.client(investor.user_id).await;
    app.nats_server.as_mut().expect("own server").stop();

    // Accepted while NATS is down.
    let investment = create(&mut client, &investor, 2, "during-outage").await;
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

#[tokio::test]
async fn a_request_the_stream_acknowledged_waits_for_the_stuck_age_before_republishing() {
    use entity::prelude::*;
    use investment_svc::{
        config::SweeperArgs,
        sweeper::{Pass, Sweeper},
    };
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};

    let app = spawn_app().await;
    let investor = investor(&app, "100.00", "10.00").await;
    let created = create(&mut app.client(investor.user_id).await, &investor, 1, "").await;
    let id: uuid::Uuid = created.id.parse().expect("uuid");
    testkit::eventually(
        Duration::from_secs(10),
        "the investment to be stamped as published",
        || async {
            let row = Investment::find_by_id(id).one(&app.db).await.ok()??;
            row.last_published_at.map(|_| ())
        },
    )
    .await;
    let nats = async_nats::connect(testkit::nats::url())
        .await
        .expect("nats");
    let topology = allocation_bus::Topology {
        stream: app.names.stream.clone(),
        prefix: app.names.prefix.clone(),
        replicas: 1,
        duplicate_window: Duration::from_secs(120),
        publish_retry: Duration::from_secs(1),
    };
    let sweeper = |min_age: u64, stuck_age: u64| {
        let args = SweeperArgs {
            sweep_interval: Duration::from_secs(3600),
            sweep_min_age: Duration::from_millis(min_age),
            sweep_stuck_age: Duration::from_millis(stuck_age),
            sweep_batch: 100,
        };
        Sweeper::new(
            app.db.clone(),
            nats.clone(),
            app.js.clone(),
            topology.clone(),
            args,
            Default::default(),
        )
    };

    let acknowledged = sweeper(0, 3_600_000).sweep_once().await.expect("pass");
    assert_eq!(
        acknowledged,
        Pass::default(),
        "queued, not stranded: left alone"
    );

    investment::ActiveModel {
        id: Set(id),
        last_published_at: Set(None),
        ..Default::default()
    }
    .update(&app.db)
    .await
    .expect("as if the publish had failed");
    let unacknowledged = sweeper(0, 3_600_000).sweep_once().await.expect("pass");
    assert_eq!(
        unacknowledged.published, 1,
        "never acknowledged: re-published"
    );

    let stuck = sweeper(3_600_000, 0).sweep_once().await.expect("pass");
    assert_eq!(stuck.published, 1, "acknowledged long ago: re-published");
}
