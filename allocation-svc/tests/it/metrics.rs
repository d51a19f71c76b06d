//! The Prometheus endpoints move with the work: a create and its allocation show in the
//! counters and histograms of both services.

use std::time::Duration;

use testkit::metrics::{scrape, value};

use crate::support::*;

#[tokio::test]
async fn a_create_and_its_allocation_move_the_counters_of_both_services() {
    let stack = stack_with(Options {
        metrics: true,
        ..Options::default()
    })
    .await;
    let investments = stack
        .investment_svc
        .metrics_addr
        .expect("investment-svc metrics");
    let allocations = stack.replicas[0]
        .metrics_addr
        .expect("allocation-svc metrics");
    let create = [
        ("grpc_service", "invest.v1.InvestmentService"),
        ("grpc_method", "CreateInvestment"),
    ];
    let created_ok = [create[0], create[1], ("grpc_code", "OK")];
    // Counters are process-wide and other tests run alongside: compare before and after.
    let before_inv = scrape(investments).await;
    let before_alloc = scrape(allocations).await;

    let investor = stack.investor("1200.00", "10.00", &[100]).await;
    let investment = stack.create(&investor, 3).await;
    let updates = collect(stack.watch(0, investor.user_id, &investment.id).await).await;
    assert_eq!(
        updates.last().map(|u| u.allocation_status()),
        Some(api::v1::AllocationStatus::Completed)
    );

    let moved = |before: &str, after: &str, name: &str, labels: &[(&str, &str)]| {
        value(after, name, labels) - value(before, name, labels)
    };
    let after_inv = testkit::eventually(Duration::from_secs(10), "the create counted", || async {
        let text = scrape(investments).await;
        (moved(&before_inv, &text, "grpc_server_handled_total", &created_ok) >= 1.0).then_some(text)
    })
    .await;
    for (name, labels) in [
        ("grpc_server_handling_seconds_count", &create[..]),
        ("investments_created_total", &[("outcome", "created")][..]),
        (
            "allocation_requests_published_total",
            &[("path", "create")][..],
        ),
    ] {
        assert!(
            moved(&before_inv, &after_inv, name, labels) >= 1.0,
            "{name} {labels:?} did not move:\n{after_inv}"
        );
    }
    let after_alloc = scrape(allocations).await;
    for (name, labels) in [
        ("allocations_total", &[("outcome", "completed")][..]),
        ("allocation_micro_batch_size_count", &[][..]),
        (
            "grpc_server_handled_total",
            &[("grpc_method", "WatchAllocation"), ("grpc_code", "OK")][..],
        ),
    ] {
        assert!(
            moved(&before_alloc, &after_alloc, name, labels) >= 1.0,
            "{name} {labels:?} did not move:\n{after_alloc}"
        );
    }
    for sampled in [
        "db_pool_connections_open",
        "allocation_db_pool_connections{pool=\"allocator\",state=\"open\"}",
        "allocation_db_pool_connections{pool=\"watch\",state=\"in_use\"}",
        "jetstream_consumer_pending",
        "watch_streams_open{",
    ] {
        assert!(
            after_alloc.contains(&format!("\n{sampled}")),
            "{sampled} missing:\n{after_alloc}"
        );
    }
}
