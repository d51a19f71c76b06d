//! Admin operations on the queue: stats, failed allocations, retry (reversal: `reverse`).

use allocation_bus::{PublishMetrics, PublishPath, Topology};
use api::v1 as pb;
use async_nats::jetstream;
use entity::prelude::*;
use ledger::{events, rules, sql};
use sea_orm::{
    DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter, QuerySelect, TransactionTrait,
    sea_query::{Expr, ExprTrait, LockType},
};
use uuid::Uuid;

use crate::{Error, Result, config::AllocatorArgs, metrics::Metrics};

#[derive(Debug, FromQueryResult)]
struct StatusCount {
    allocation_status: AllocationStatus,
    count: i64,
}

/// Queue depth from NATS and investment counts by allocation status from PostgreSQL.
pub async fn queue_stats(
    db: &DatabaseConnection,
    js: &jetstream::Context,
    topology: &Topology,
    args: &AllocatorArgs,
) -> Result<pb::GetQueueStatsResponse> {
    let mut stream = js.get_stream(&topology.stream).await.map_err(Error::nats)?;
    let stream_messages = stream.info().await.map_err(Error::nats)?.state.messages;
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .get_consumer(&args.consumer_name)
        .await
        .map_err(Error::nats)?;
    let info = consumer.info().await.map_err(Error::nats)?;
    let mut stats = pb::GetQueueStatsResponse {
        stream_messages,
        consumer_pending: info.num_pending,
        consumer_in_flight: info.num_ack_pending as u64,
        consumer_redelivered: info.num_redelivered as u64,
        ..Default::default()
    };
    let counts = Investment::find()
        .select_only()
        .column(investment::Column::AllocationStatus)
        .column_as(Expr::cust("count(*)"), "count")
        .group_by(investment::Column::AllocationStatus)
        .into_model::<StatusCount>()
        .all(db)
        .await?;
    for c in counts {
        match c.allocation_status {
            AllocationStatus::Pending => stats.pending_count = c.count,
            AllocationStatus::Processing => stats.processing_count = c.count,
            AllocationStatus::Completed => stats.completed_count = c.count,
            AllocationStatus::Failed => stats.failed_count = c.count,
            AllocationStatus::Cancelled => stats.cancelled_count = c.count,
            AllocationStatus::Reversed => stats.reversed_count = c.count,
        }
    }
    Ok(stats)
}

/// Refreshes the sampled gauges (consumer state, unfinished investments) every `every` until
/// `shutdown`, into `m`; a sample that fails leaves the previous values.
pub async fn sample(
    m: std::sync::Arc<Metrics>,
    db: DatabaseConnection,
    js: jetstream::Context,
    topology: Topology,
    args: AllocatorArgs,
    every: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use crate::metrics::Unfinished;
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match queue_stats(&db, &js, &topology, &args).await {
            Ok(stats) => {
                let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                m.consumer_pending.set(gauge(stats.consumer_pending));
                m.consumer_ack_pending.set(gauge(stats.consumer_in_flight));
                m.consumer_redelivered
                    .set(gauge(stats.consumer_redelivered));
                let unfinished = |status| m.unfinished.get_or_create(&Unfinished { status });
                unfinished("pending").set(stats.pending_count);
                unfinished("processing").set(stats.processing_count);
            }
            Err(e) => tracing::debug!(error = %e, "queue sample failed"),
        }
        match oldest_unfinished_seconds(&db).await {
            Ok(age) => {
                m.oldest_unfinished_seconds.set(age);
            }
            Err(e) => tracing::debug!(error = %e, "oldest unfinished sample failed"),
        }
    }
}

#[derive(Debug, FromQueryResult)]
struct Age {
    seconds: Option<i64>,
}

/// Seconds since the oldest unfinished investment last changed (0 if there is none).
pub async fn oldest_unfinished_seconds(db: &DatabaseConnection) -> Result<i64> {
    let age = Investment::find()
        .select_only()
        .column_as(
            Expr::cust("extract(epoch from now() - min(updated_at))::bigint"),
            "seconds",
        )
        // Constants, so a generic plan still sees how few rows are unfinished (ledger::sql).
        .filter(
            Expr::col(investment::Column::AllocationStatus).is_in(sql::constants([
                AllocationStatus::Pending,
                AllocationStatus::Processing,
            ])),
        )
        .into_model::<Age>()
        .one(db)
        .await?;
    Ok(age.and_then(|a| a.seconds).unwrap_or(0))
}

/// Puts a `FAILED` investment back to `pending` with its attempts, error and failure reason
/// cleared, and queues it again.
///
/// Its amount is reserved again, so the subscription's balance is checked as at creation,
/// under the subscription's row lock. Locks are taken investment first, then subscription:
/// the order of the allocator, which settles investments and so changes their subscriptions'
/// totals.
pub async fn retry(
    db: &DatabaseConnection,
    js: &jetstream::Context,
    nats: &async_nats::Client,
    topology: &Topology,
    publishes: &PublishMetrics,
    investment_id: Uuid,
) -> Result<investment::Model> {
    let txn = db.begin().await?;
    let row = Investment::find_by_id(investment_id)
        .lock(LockType::NoKeyUpdate)
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("investment"))?;
    if row.allocation_status != AllocationStatus::Failed {
        return Err(Error::FailedPrecondition {
            kind: "ALLOCATION_STATUS",
            subject: "investment_id",
            message: format!(
                "only FAILED allocations can be retried; this one is {:?}",
                row.allocation_status
            ),
        });
    }
    // The same rules as a create, from the same facts: the money is reserved again.
    let facts = rules::read(
        &txn,
        row.owner(),
        SubscriptionId(row.subscription_id),
        DealId(row.deal_id),
        row.total_amount,
    )
    .await?
    .ok_or(Error::NotFound("subscription"))?;
    if facts.deal_status.is_none() {
        return Err(Error::NotFound("deal"));
    }
    facts.check()?;
    let extra = vec![
        (investment::Column::AllocationAttempts, Expr::val(0)),
        (
            investment::Column::AllocationError,
            Expr::val(Option::<String>::None),
        ),
        (
            investment::Column::AllocationFailure,
            Expr::val(Option::<String>::None),
        ),
    ];
    let updated = events::change_status(
        &txn,
        &[row.investment_id()],
        AllocationStatus::Pending,
        extra,
    )
    .await?
    .pop()
    .ok_or(Error::NotFound("investment"))?;
    txn.commit().await?;

    let event = wire::status_event(&updated, Vec::new());
    allocation_bus::announce_status(
        nats,
        topology,
        updated.owner(),
        updated.investment_id(),
        &event,
    )
    .await;
    let retried = [wire::retry_request(&updated)];
    if let (_, Some(e)) =
        allocation_bus::publish_committed(db, js, topology, publishes, PublishPath::Retry, &retried)
            .await
    {
        // Pending and durable: investment-svc's sweeper publishes it soon.
        tracing::warn!(investment_id = %updated.id, error = %e, "retry queued in the database; publish left to the sweeper");
    }
    tracing::info!(investment_id = %updated.id, "allocation retried by an admin");
    Ok(updated)
}
