//! No secret or token ever reaches the logs. A test binary of its own, because it installs
//! the process-wide log subscriber (a thread-local one misses events whose interest another
//! test thread cached).

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use api::v1 as pb;
use futures::StreamExt;
use uuid::Uuid;

#[path = "it/support/mod.rs"]
// The whole support module, of which a target uses a part (its re-exports included).
#[allow(dead_code, unused_imports)]
mod support;

use support::*;

/// Collects everything the services log, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_or_token_reaches_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // Process-wide: this binary holds this one test, so nothing else logs meanwhile.
    tracing::subscriber::set_global_default(subscriber).expect("first subscriber");

    let stack = stack().await;
    let investor = stack.investor("12000.00", "1.00", &[100]).await;
    let created = stack.create(&investor, 1).await;
    let mut watch = stack.watch(0, investor.user_id, &created.id).await;
    while watch.next().await.is_some() {}
    let mut tokens = vec![
        testkit::token(investor.user_id),
        testkit::admin_token(Uuid::new_v4()),
    ];
    for (_, token) in testkit::hostile_tokens() {
        let mut client = stack.allocations(0, token.clone()).await;
        let _ = client.get_queue_stats(pb::GetQueueStatsRequest {}).await;
        tokens.extend(token);
    }
    let mut admin = stack.allocations(0, Some(tokens[1].clone())).await;
    admin
        .get_queue_stats(pb::GetQueueStatsRequest {})
        .await
        .expect("stats");

    let logs = String::from_utf8_lossy(&captured.0.lock().expect("logs")).into_owned();
    // The capture saw the path where a token could leak: its rejection.
    assert!(logs.contains("rejected token"), "the capture works: {logs}");
    assert!(
        !logs.contains(testkit::JWT_SECRET),
        "the JWT secret was logged"
    );
    for token in &tokens {
        // The signature part is what makes a token usable.
        let signature = token.rsplit('.').next().unwrap_or(token);
        if signature.len() > 8 {
            assert!(!logs.contains(signature), "a token was logged");
        }
    }
}
