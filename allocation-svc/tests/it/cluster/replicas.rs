//! Two investment-svc and two allocation-svc replicas on the cluster: the NATS node the
//! survivors are connected to SIGKILLed and restarted, then one replica of each service
//! SIGKILLed, while watchers on the surviving allocation-svc see every change of every
//! investment.

use std::collections::HashMap;

use api::v1::investment_service_client::InvestmentServiceClient;
use futures::StreamExt;
use tokio::time::Instant;

use super::*;

/// The investment-svc binary, built next to allocation-svc's by `cargo test --workspace`
/// (scripts/test).
fn investment_svc_bin() -> std::path::PathBuf {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_allocation-svc"))
        .with_file_name(format!("investment-svc{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} missing: build it first (cargo build -p investment-svc)",
        bin.display()
    );
    bin
}

/// Every update a user's WatchAllocations stream delivered, by investment: `(version, status)`.
type Seen = Arc<std::sync::Mutex<HashMap<String, Vec<(i64, pb::AllocationStatus)>>>>;

#[tokio::test]
async fn one_of_two_replicas_of_each_service_sigkilled_and_watchers_on_the_survivor_see_every_change()
 {
    within(BUDGET, async {
        let mut cs = cluster_stack(Options {
            // A create whose process dies between its commit and its publish is stamped as
            // published: the survivor's sweeper re-publishes it after SWEEP_STUCK_AGE (15 min
            // by default, scaled down here).
            sweep_stuck_age: secs(15),
            ..Options::default()
        })
        .await;
        let (investors, survivor_clients, pairs) = load_on(&cs, 2, 2).await;

        // The second replica of each service is a process, to be SIGKILLed.
        let allocator = cs.spawn_process().await;
        let addr = testkit::process::free_addr();
        let mut args = cs.service_args("investment-svc");
        args.retain(|a| !a.starts_with("--listen-addr"));
        args.extend([
            format!("--listen-addr={addr}"),
            format!("--database-url={}", cs.test_db.url),
            "--sweep-interval=300ms".into(),
            "--sweep-min-age=1s".into(),
        ]);
        let bin = investment_svc_bin();
        let creator =
            testkit::process::Process::spawn(&bin.to_string_lossy(), &args[1..], addr).await;
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        let victim_clients: Vec<Investments> = investors
            .iter()
            .map(|i| {
                InvestmentServiceClient::with_interceptor(
                    channel.clone(),
                    testkit::Bearer(Some(testkit::token(i.user_id))),
                )
            })
            .collect();

        // Watchers of every investor on the surviving allocation-svc (in process, replica 0).
        let mut seen = Vec::new();
        for investor in &investors {
            let mut stream = cs
                .allocations(0, Some(testkit::token(investor.user_id)))
                .await
                .watch_allocations(pb::WatchAllocationsRequest {})
                .await
                .expect("watch all")
                .into_inner();
            let log: Seen = Seen::default();
            let writer = log.clone();
            tokio::spawn(async move {
                while let Some(Ok(item)) = stream.next().await {
                    if let Some(update) = item.update {
                        let mut log = writer.lock().expect("log");
                        log.entry(update.investment_id.clone())
                            .or_default()
                            .push((update.version, update.allocation_status()));
                    }
                }
            });
            seen.push((investor.user_id, log));
        }

        let survivors = Load::start(&survivor_clients, &pairs);
        let victims = Load::start(&victim_clients, &pairs);
        survivors.wait_for(20).await;
        victims.wait_for(20).await;

        // First the node the survivors' NATS client is on: their subscriptions move elsewhere,
        // while the allocator process (on another node, most runs) goes on publishing status
        // events they miss and read from the log after the reconnect.
        let node = cs
            .cluster
            .index_of(&cs.nats.server_info().server_name)
            .expect("connected to a node of the cluster");
        cs.cluster.kill(node);
        let fault = Instant::now();
        survivors.wait_for(20).await;
        cs.cluster.restart(node).await;
        survivors.wait_for(10).await;

        allocator.signal("KILL");
        creator.signal("KILL");
        drop((allocator, creator));
        let lost_with_victims = victims.stop().await;
        survivors.wait_for(20).await;
        let mut report = survivors.stop().await;
        report.absorb(lost_with_victims);
        check_outcome(&cs, &report, fault, "2+2 replicas, one of each SIGKILLed").await;

        // Every version of every investment, in order, on the survivor's watchers.
        let all = Investment::find().all(&cs.db).await.expect("investments");
        for (user, log) in &seen {
            let mine: Vec<_> = all.iter().filter(|i| i.user_id == *user).collect();
            testkit::eventually(secs(30), "watchers to see every final version", || async {
                let log = log.lock().expect("log");
                mine.iter()
                    .all(|i| {
                        log.get(&i.id.to_string())
                            .and_then(|v| v.last())
                            .is_some_and(|&(version, _)| version == i.status_version)
                    })
                    .then_some(())
            })
            .await;
            let log = log.lock().expect("log");
            for investment in &mine {
                let versions: Vec<i64> = log[&investment.id.to_string()]
                    .iter()
                    .map(|&(v, _)| v)
                    .collect();
                assert_eq!(
                    versions,
                    (1..=investment.status_version).collect::<Vec<_>>(),
                    "{}: every change, in order",
                    investment.id
                );
            }
        }
    })
    .await;
}
