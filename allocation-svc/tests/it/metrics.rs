//! The metrics endpoint keeps client paths out of its labels. (A create and its allocation
//! moving the figures is `tests/metrics.rs`, a process of its own.)

use std::time::Duration;

use testkit::metrics::{scrape, value};

use crate::support::*;

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
