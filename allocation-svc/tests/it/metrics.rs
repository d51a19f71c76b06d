//! The Prometheus endpoints: each App (investment-svc, every allocation-svc replica) counts in
//! families of its own, so a test reads exact figures of its own stack whatever else runs in
//! this process; one create and its allocation show in the counters and histograms of both
//! services exactly once, the sampled gauges show what the database, the pools and the
//! consumer hold, and client paths never become labels.

use std::{net::SocketAddr, time::Duration};

use testkit::metrics::{scrape, value};

use crate::support::*;

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
async fn a_create_and_its_allocation_show_in_the_figures_of_both_services_exactly() {
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
    // The allocation is held inside its transaction by the test's lock on the deal.
    let investor = stack.investor("1200.00", "10.00", &[100]).await;
    let lock = hold(&stack, &investor, Hold::Deal).await;
    let investment = stack.create(&investor, 3).await;
    stack.test_db.lock_waiter().await;
    let watch = stack.watch(0, investor.user_id, &investment.id).await;
    let pending = [("status", "pending")];
    let allocator_in_use = [("pool", "allocator"), ("state", "in_use")];
    let rpc = [("rpc", "WatchAllocation")];
    // Two samplers (the queue, the pools) with ticks of their own: a tick of one may fall
    // before the lane took its connection, so both are waited for; the work is held meanwhile.
    let held = scrape_until(allocations, "the held work sampled", |text| {
        value(text, "investments_unfinished", &pending) == 1.0
            && value(text, "jetstream_consumer_ack_pending", &[]) == 1.0
            && value(text, "allocation_db_pool_connections", &allocator_in_use) == 1.0
    })
    .await;
    for (name, labels, expected) in [
        ("jetstream_consumer_pending", &[][..], 0.0),
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

    let after_inv = scrape_until(investments, "the create counted", |text| {
        value(text, "grpc_server_handled_total", &created_ok) >= 1.0
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
            value(&after_inv, name, labels),
            1.0,
            "{name} {labels:?}:\n{after_inv}"
        );
    }
    let after_alloc = scrape_until(allocations, "the allocation sampled", |text| {
        value(text, "grpc_server_handled_total", &watched_ok) >= 1.0
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
            value(&after_alloc, name, labels),
            expected,
            "{name} {labels:?}:\n{after_alloc}"
        );
    }
}

/// The `grpc_method` label values in a scrape.
fn method_labels(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.split_once("grpc_method=\"")?.1;
            Some(rest.split_once('"')?.0.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn calls_to_paths_the_port_does_not_serve_share_one_unknown_label() {
    let stack = stack_with(Options {
        metrics: true,
        ..Options::default()
    })
    .await;
    let metrics = stack.replicas[0].metrics_addr.expect("metrics");
    let before_text = scrape(metrics).await;
    let before = method_labels(&before_text);
    // 3,000 calls without a token to distinct paths: unknown services, unknown methods of the
    // served service, and garbage.
    let (mut send, _driven) = testkit::raw_h2::connect(stack.replicas[0].addr).await;
    let mut answers = Vec::new();
    for i in 0..3000 {
        let path = match i % 3 {
            0 => format!("/x{i}.Y/Z"),
            1 => format!("/invest.v1.AllocationService/Nope{i}"),
            _ => format!("/{i}"),
        };
        answers.push(testkit::raw_h2::call(&mut send, &path).await);
        if answers.len() == 50 {
            for answer in answers.drain(..) {
                answer.await.expect("answered");
            }
        }
    }
    for answer in answers {
        answer.await.expect("answered");
    }
    let text = testkit::eventually(Duration::from_secs(10), "the calls counted", || async {
        let text = scrape(metrics).await;
        let unknown = [("grpc_service", "unknown"), ("grpc_method", "unknown")];
        (value(&text, "grpc_server_handled_total", &unknown) >= 3000.0).then_some(text)
    })
    .await;
    let added: Vec<_> = method_labels(&text).difference(&before).cloned().collect();
    println!(
        "/metrics: {} bytes before, {} after 3,000 calls to unknown paths; labels added: {added:?}",
        before_text.len(),
        text.len()
    );
    assert_eq!(added, ["unknown"], "client paths became labels");
    let unknown = [("grpc_service", "unknown"), ("grpc_method", "unknown")];
    assert_eq!(value(&text, "grpc_server_handled_total", &unknown), 3000.0);
    assert!(
        !text.contains("x1.Y") && !text.contains("Nope1"),
        "a client path is in the metrics"
    );
}

/// Sends `n` calls without a token to a path `addr` does not serve; returns once all are
/// answered.
async fn unknown_calls(addr: SocketAddr, n: usize) {
    let (mut send, _driven) = testkit::raw_h2::connect(addr).await;
    let mut answers = Vec::new();
    for _ in 0..n {
        answers.push(testkit::raw_h2::call(&mut send, "/x.Y/Z").await);
    }
    for answer in answers {
        answer.await.expect("answered");
    }
}

#[tokio::test]
async fn two_apps_in_one_process_count_apart() {
    let stack = stack_with(Options {
        replicas: 2,
        metrics: true,
        ..Options::default()
    })
    .await;
    let [busy, idle] = [0, 1].map(|i| stack.replicas[i].metrics_addr.expect("metrics"));
    let investments = stack.investment_svc.metrics_addr.expect("metrics");
    unknown_calls(stack.replicas[0].addr, 7).await;
    let unknown = [("grpc_service", "unknown"), ("grpc_method", "unknown")];
    let counted = testkit::eventually(Duration::from_secs(10), "the calls counted", || async {
        let text = scrape(busy).await;
        (value(&text, "grpc_server_handled_total", &unknown) >= 7.0).then_some(text)
    })
    .await;
    assert_eq!(
        value(&counted, "grpc_server_handled_total", &unknown),
        7.0,
        "{counted}"
    );
    // Counted: were the families shared, the other Apps' endpoints would show the same count
    // already.
    for other in [idle, investments] {
        let text = scrape(other).await;
        assert_eq!(
            value(&text, "grpc_server_handled_total", &unknown),
            0.0,
            "{text}"
        );
    }
}
