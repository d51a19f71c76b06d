//! The Prometheus endpoints move with the work: one create and its allocation show in the
//! counters and histograms of both services by exactly one, and the sampled gauges show what
//! the database, the pools and the consumer hold. A test binary of its own: the metric
//! families are process-wide, and here no other test adds to them.

use std::{net::SocketAddr, time::Duration};

use testkit::metrics::{scrape, value};

#[path = "it/support/mod.rs"]
// The whole support module, of which a target uses a part (its re-exports included).
#[allow(dead_code, unused_imports)]
mod support;

use support::*;

/// Waits until a scrape of `addr` satisfies `done`; returns that scrape.
async fn scrape_until(addr: SocketAddr, what: &str, done: impl Fn(&str) -> bool) -> String {
    // Sampled gauges change every METRICS_SAMPLE_INTERVAL (5 s).
    testkit::eventually(Duration::from_secs(20), what, || async {
        let text = scrape(addr).await;
        done(&text).then_some(text)
    })
    .await
}

#[tokio::test]
async fn a_create_and_its_allocation_move_the_figures_of_both_services_by_exactly_one() {
    let stack = stack_with(Options {
        metrics: true,
        // The test's lock holds the allocation transaction; it must wait, not retry.
        lock_timeout: secs(60),
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
    let watched_ok = [
        ("grpc_service", "invest.v1.AllocationService"),
        ("grpc_method", "WatchAllocation"),
        ("grpc_code", "OK"),
    ];
    let before_inv = scrape(investments).await;
    let before_alloc = scrape(allocations).await;

    // The allocation is held inside its transaction by the test's lock on the deal.
    let investor = stack.investor("1200.00", "10.00", &[100]).await;
    let lock = hold(&stack, &investor, Hold::Deal).await;
    let investment = stack.create(&investor, 3).await;
    stack.test_db.lock_waiter().await;
    let watch = stack.watch(0, investor.user_id, &investment.id).await;
    let pending = [("status", "pending")];
    let allocator_in_use = [("pool", "allocator"), ("state", "in_use")];
    let rpc = [("rpc", "WatchAllocation")];
    let held = scrape_until(allocations, "the held work sampled", |text| {
        value(text, "investments_unfinished", &pending) == 1.0
            && value(text, "jetstream_consumer_ack_pending", &[]) == 1.0
    })
    .await;
    for (name, labels, expected) in [
        ("jetstream_consumer_pending", &[][..], 0.0),
        ("allocation_db_pool_connections", &allocator_in_use[..], 1.0),
        ("watch_streams_open", &rpc[..], 1.0),
        ("allocation_lanes_active", &[][..], 1.0),
    ] {
        assert_eq!(
            value(&held, name, labels),
            expected,
            "{name} {labels:?}:\n{held}"
        );
    }
    assert!(
        value(&held, "investments_oldest_unfinished_seconds", &[]) >= 0.0
            && value(&held, "db_pool_connections_open", &[]) >= 1.0,
        "{held}"
    );

    lock.rollback().await.expect("release the deal");
    let updates = collect(watch).await;
    assert_eq!(
        updates.last().map(|u| u.allocation_status()),
        Some(api::v1::AllocationStatus::Completed)
    );

    let moved = |before: &str, after: &str, name: &str, labels: &[(&str, &str)]| {
        value(after, name, labels) - value(before, name, labels)
    };
    let after_inv = scrape_until(investments, "the create counted", |text| {
        moved(&before_inv, text, "grpc_server_handled_total", &created_ok) >= 1.0
    })
    .await;
    for (name, labels) in [
        ("grpc_server_handled_total", &created_ok[..]),
        ("grpc_server_handling_seconds_count", &create[..]),
        ("investments_created_total", &[("outcome", "created")][..]),
        (
            "allocation_requests_published_total",
            &[("path", "create")][..],
        ),
    ] {
        assert_eq!(
            moved(&before_inv, &after_inv, name, labels),
            1.0,
            "{name} {labels:?}:\n{after_inv}"
        );
    }
    let after_alloc = scrape_until(allocations, "the allocation sampled", |text| {
        moved(
            &before_alloc,
            text,
            "grpc_server_handled_total",
            &watched_ok,
        ) >= 1.0
            && value(text, "investments_unfinished", &pending) == 0.0
            && value(text, "jetstream_consumer_ack_pending", &[]) == 0.0
            && value(text, "allocation_db_pool_connections", &allocator_in_use) == 0.0
    })
    .await;
    for (name, labels, expected) in [
        ("allocations_total", &[("outcome", "completed")][..], 1.0),
        ("allocations_total", &[("outcome", "failed")][..], 0.0),
        ("allocation_micro_batch_size_count", &[][..], 1.0),
        ("allocation_micro_batch_size_sum", &[][..], 1.0),
        ("allocation_retries_total", &[][..], 0.0),
        ("grpc_server_handled_total", &watched_ok[..], 1.0),
        ("watch_streams_open", &rpc[..], 0.0),
    ] {
        assert_eq!(
            moved(&before_alloc, &after_alloc, name, labels),
            expected,
            "{name} {labels:?}:\n{after_alloc}"
        );
    }
}
