//! A re-publish after the duplicate window is stored again (NATS only de-duplicates within the
//! window) and is harmless: the allocator skips an investment that is already finished.

use async_nats::jetstream;
use clap::Parser as _;
use testkit::stack::Infra;

use super::*;

/// Messages stored in the test's stream.
async fn stored(js: &jetstream::Context, stream: &str) -> Option<u64> {
    let mut stream = js.get_stream(stream).await.ok()?;
    Some(stream.info().await.ok()?.state.messages)
}

#[tokio::test]
async fn a_sweeper_republish_after_the_duplicate_window_is_stored_again_and_allocates_once() {
    within(BUDGET, async {
        let mut infra = Infra::start(false).await.expect("database and NATS");
        // A 2 s window; the retry deadline fits inside it with NATS_TIMEOUT (1 s).
        infra.extra_args.extend([
            "--nats-duplicate-window=2s".to_owned(),
            "--nats-publish-retry=500ms".to_owned(),
        ]);
        let mut stack = stack_on(
            infra,
            Options {
                // No allocator yet: the first copy waits in the stream.
                replicas: 0,
                // The sweeper re-publishes a pending request 3 s after it was acknowledged,
                // after the window.
                sweeper: (ms(200), ms(200)),
                sweep_stuck_age: secs(3),
                ..Options::default()
            },
        )
        .await;
        let js = jetstream::new(stack.nats.clone());
        let stream = stack.names.stream.clone();
        let investor = stack.investor("12000.00", "1.00", &[100]).await;
        let created = stack.create(&investor, 3).await;
        testkit::eventually(
            secs(30),
            "the sweeper's copy stored next to the first",
            || async { (stored(&js, &stream).await? >= 2).then_some(()) },
        )
        .await;

        stack.add_replica(true).await;
        stack.all_terminal(secs(60)).await;
        testkit::eventually(secs(30), "every copy consumed", || async {
            (stored(&js, &stream).await? == 0).then_some(())
        })
        .await;
        let done = stack.investment(&created.id).await;
        assert_eq!(done.allocation_status, AllocationStatus::Completed);
        let events = AllocationEvent::find()
            .all(&stack.db)
            .await
            .expect("events");
        assert_eq!(
            events
                .iter()
                .filter(|e| e.allocation_status == AllocationStatus::Completed)
                .count(),
            1,
            "allocated once"
        );
        check_invariants(&stack.db).await;
    })
    .await;
}

#[tokio::test]
async fn a_publish_retry_that_could_outlive_the_duplicate_window_is_refused_at_start() {
    let mut infra = Infra::start(false).await.expect("database and NATS");
    infra.extra_args.extend([
        "--nats-duplicate-window=2s".to_owned(),
        "--nats-publish-retry=1500ms".to_owned(),
    ]);
    let config = investment_svc::Config::try_parse_from(infra.service_args("investment-svc"))
        .expect("config parses");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("port");
    let refused = investment_svc::App::from_parts(
        config,
        infra.test_db.connect().await,
        infra.nats.clone(),
        listener,
    )
    .await
    .err()
    .expect("refused");
    let message = format!("{refused:#}");
    assert!(
        message.contains("NATS_PUBLISH_RETRY") && message.contains("NATS_DUPLICATE_WINDOW"),
        "{message}"
    );
}
