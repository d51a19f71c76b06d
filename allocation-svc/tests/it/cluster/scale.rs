//! Replica counts: a stream made with one replica is scaled to `NATS_STREAM_REPLICAS` when
//! the services start, and the durable consumer has as many.

use allocation_bus::Topology;
use async_nats::jetstream::{self, consumer::PullConsumer};

use super::*;

#[tokio::test]
async fn an_r1_stream_is_scaled_to_3_replicas_at_start_and_the_consumer_has_3() {
    within(BUDGET, async {
        let cluster = Cluster::start().await;
        let infra = cluster.infra(3).await.expect("database and cluster");
        let js = jetstream::new(infra.nats.clone());
        let r1 = Topology {
            stream: infra.names.stream.clone(),
            prefix: infra.names.prefix.clone(),
            replicas: 1,
            duplicate_window: secs(120),
            publish_retry: secs(1),
        };
        let made = allocation_bus::ensure_stream(&js, &r1)
            .await
            .expect("R1 stream");
        assert_eq!(made.config.num_replicas, 1);

        let cs = ClusterStack {
            stack: stack_on(infra, Options::default()).await,
            cluster,
        };
        let stream = js.get_stream(&cs.names.stream).await.expect("stream");
        let info = stream.get_info().await.expect("info");
        assert_eq!(info.config.num_replicas, 3, "scaled at start");
        testkit::eventually(secs(60), "two followers caught up", || async {
            let mut stream = js.get_stream(&cs.names.stream).await.ok()?;
            let cluster = stream.info().await.ok()?.cluster.clone()?;
            (cluster.replicas.len() == 2 && cluster.replicas.iter().all(|p| p.current))
                .then_some(())
        })
        .await;
        // The replica ensures its consumer once it runs; then its group elects a leader.
        let info = testkit::eventually(secs(60), "the consumer led, with 2 followers", || async {
            let mut consumer: PullConsumer = stream.get_consumer(CONSUMER).await.ok()?;
            let info = consumer.info().await.ok()?.clone();
            let cluster = info.cluster.as_ref()?;
            (cluster.leader.is_some() && cluster.replicas.len() == 2).then_some(info)
        })
        .await;
        assert_eq!(info.config.num_replicas, 3);

        // And it allocates.
        let investor = cs.investor("12000.00", "1.00", &[100]).await;
        let created = cs.create(&investor, 2).await;
        collect(cs.watch(0, investor.user_id, &created.id).await).await;
        check_invariants(&cs.db).await;
    })
    .await;
}
