//! Publishing through an election: a publisher on a surviving node keeps publishing while the
//! stream leader is SIGKILLed; every publish is acknowledged in the end (retried with the same
//! `Nats-Msg-Id`) and each is stored exactly once.

use std::sync::atomic::AtomicU64;

use allocation_bus::Topology;
use async_nats::jetstream;
use service_kit::messaging;

use super::*;

#[tokio::test]
async fn publishes_through_a_stream_leader_sigkill_are_all_acknowledged_and_stored_once() {
    within(BUDGET, async {
        let mut cluster = Cluster::start().await;
        let names = testkit::nats::Names::unique();
        let topology = Topology {
            stream: names.stream.clone(),
            prefix: names.prefix.clone(),
            replicas: 3,
            duplicate_window: secs(120),
            publish_retry: secs(20),
        };
        let admin = jetstream::new(cluster.client().await);
        allocation_bus::ensure_stream(&admin, &topology)
            .await
            .expect("stream");
        let leader = cluster.stream_leader(&admin, &names.stream).await;
        // The publisher stays on a node that survives: what it sees is the election alone.
        let survivor = (leader + 1) % testkit::cluster::NODES;
        let client = async_nats::ConnectOptions::new()
            .max_reconnects(None)
            .connect(cluster.url(survivor))
            .await
            .expect("connect");
        let js = messaging::jetstream(client, secs(1));

        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let publisher = tokio::spawn({
            let (stop, acked, topology) = (stop.clone(), acked.clone(), topology.clone());
            async move {
                let (mut failed, mut retried_stored, mut longest) = (0, 0, Duration::ZERO);
                while !stop.load(Ordering::Relaxed) {
                    let id = Uuid::new_v4();
                    let request = pb::AllocationRequest {
                        investment_id: id.to_string(),
                        ..Default::default()
                    };
                    let started = Instant::now();
                    let sent = allocation_bus::publish_request(
                        &js,
                        &topology,
                        &request,
                        &id.to_string(),
                        DealId(Uuid::new_v4()),
                    )
                    .await;
                    longest = longest.max(started.elapsed());
                    match sent {
                        Ok(ack) => {
                            // A try stored after all makes the next one a duplicate: stored once.
                            retried_stored += usize::from(ack.duplicate);
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => failed += 1,
                    }
                }
                (failed, retried_stored, longest)
            }
        });
        let published = |n: u64| {
            let acked = acked.clone();
            async move {
                let target = acked.load(Ordering::Relaxed) + n;
                testkit::eventually(secs(60), "publishes acknowledged", || async {
                    (acked.load(Ordering::Relaxed) >= target).then_some(())
                })
                .await;
            }
        };
        published(50).await;
        cluster.kill(leader);
        testkit::eventually(secs(60), "another node to lead the stream", || async {
            (cluster.stream_leader(&admin, &names.stream).await != leader).then_some(())
        })
        .await;
        published(50).await;
        stop.store(true, Ordering::Relaxed);
        let (failed, retried_stored, longest) = publisher.await.expect("publisher");
        assert_eq!(failed, 0, "publishes given up");
        let stored = admin
            .get_stream(&names.stream)
            .await
            .expect("stream")
            .get_info()
            .await
            .expect("info")
            .state
            .messages;
        let acked = acked.load(Ordering::Relaxed);
        assert_eq!(
            stored, acked,
            "each acknowledged publish stored exactly once"
        );
        eprintln!(
            "[cluster] publishes through a stream leader SIGKILL: {acked} acknowledged, 0 failed, \
             {stored} stored ({retried_stored} retries found their first try stored); longest \
             publish {longest:?}"
        );
    })
    .await;
}
