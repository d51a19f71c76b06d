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
    // Other tests in this process may add methods the port serves (names without digits);
    // never a client's path.
    assert!(
        added
            .iter()
            .all(|m| m == "unknown" || !m.chars().any(|c| c.is_ascii_digit())),
        "client paths became labels: {added:?}"
    );
    assert!(
        !text.contains("x1.Y") && !text.contains("Nope1"),
        "a client path is in the metrics"
    );
}
