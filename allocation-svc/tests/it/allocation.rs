//! End to end: create -> watch -> COMPLETED or FAILED; redelivery; garbage on the subject.

use std::time::Duration;

use api::v1::{self as pb, AllocationStatus::*};
use async_nats::jetstream;
use entity::prelude::*;
use prost::Message;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use testkit::fixtures::dec;
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn create_watch_completed_with_exact_allocations() {
    let stack = stack().await;
    let investor = stack.investor("12000.00", "12.50", &[3, 5, 100]).await;

    let created = stack.create(&investor, 10).await;
    let updates = collect(stack.watch(0, investor.user_id, &created.id).await).await;

    // A watch starts with the current state: opened while the investment waited, it then
    // sees processing -> completed in order; opened once the allocator had already finished
    // (it can be that fast), its first and only update is the completed state.
    let tail: Vec<_> = steps(&updates)
        .into_iter()
        .skip_while(|s| s.0 == Pending)
        .collect();
    let expected: &[_] = if updates.len() == 1 {
        &[(Completed, 3, 0)]
    } else {
        &[(Processing, 2, 0), (Completed, 3, 0)]
    };
    assert_eq!(tail, expected, "{updates:?}");
    let versions: Vec<_> = updates.iter().map(|u| u.version).collect();
    assert!(
        versions.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap, no duplicate: {versions:?}"
    );
    let done = updates.last().expect("terminal update");
    let pieces: Vec<_> = done
        .allocations
        .iter()
        .map(|a| (a.bulk_purchase_id.clone(), a.units, a.value.clone()))
        .collect();
    assert_eq!(
        pieces,
        [
            (investor.batches[0].id.to_string(), 3, "37.50".to_owned()),
            (investor.batches[1].id.to_string(), 5, "62.50".to_owned()),
            (investor.batches[2].id.to_string(), 2, "25.00".to_owned()),
        ],
        "FIFO across batches, valued exactly"
    );
    let row = stack.investment(&created.id).await;
    assert_eq!(row.status, InvestmentStatus::Active);
    assert!(row.allocated_at.is_some());
    assert_eq!(row.total_amount, dec("125.00"));
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn insufficient_inventory_fails_at_once_without_retry() {
    let stack = stack().await;
    let investor = stack.investor("12000.00", "1.00", &[4]).await;

    let created = stack.create(&investor, 5).await;
    let updates = collect(stack.watch(0, investor.user_id, &created.id).await).await;

    let last = updates.last().expect("terminal");
    assert_eq!(last.allocation_status(), Failed);
    assert_eq!(last.attempt, 0, "no retry");
    assert!(
        last.error.contains("insufficient inventory"),
        "{}",
        last.error
    );
    assert!(
        !steps(&updates).iter().any(|s| s.0 == Pending && s.2 > 0),
        "never went back to pending: {updates:?}"
    );
    let batch = BulkPurchase::find_by_id(investor.batches[0].id)
        .one(&stack.db)
        .await
        .expect("q")
        .expect("batch");
    assert_eq!(batch.units_remaining, 4, "inventory untouched");
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn already_terminal_investment_gets_one_update_and_the_end() {
    let stack = stack().await;
    let investor = stack.investor("12000.00", "1.00", &[10]).await;
    let created = stack.create_finished(&investor, 1).await;

    let again = collect(stack.watch(0, investor.user_id, &created.id).await).await;

    assert_eq!(steps(&again), [(Completed, 3, 0)]);
    assert_eq!(again[0].allocations.len(), 1);
}

#[tokio::test]
async fn a_request_delivered_twice_is_allocated_once() {
    let stack = stack().await;
    let investor = stack.investor("12000.00", "1.00", &[100]).await;
    let created = stack.create_finished(&investor, 7).await;

    // The same request again, under another message id so NATS does not drop it.
    let js = jetstream::new(stack.nats.clone());
    let row = stack.investment(&created.id).await;
    let request = wire::allocation_request(&row);
    let subject = format!("{}.requests.{}", stack.names.prefix, investor.deal.id);
    for n in 0..3 {
        js.send_publish(
            subject.clone(),
            jetstream::message::PublishMessage::build()
                .payload(request.encode_to_vec().into())
                .message_id(format!("dup-{n}")),
        )
        .await
        .expect("publish")
        .await
        .expect("ack");
    }
    stack.create_finished(&investor, 1).await;

    let pieces = UserInvestment::find()
        .filter(user_investment::Column::InvestmentId.eq(row.id))
        .all(&stack.db)
        .await
        .expect("allocations");
    assert_eq!(pieces.iter().map(|p| p.units_allocated).sum::<i64>(), 7);
    assert_eq!(
        stack.investment(&created.id).await.status_version,
        3,
        "no status change either"
    );
    check_invariants(&stack.db).await;
}

#[tokio::test]
async fn garbage_on_the_request_subject_is_terminated_and_never_blocks_the_pool() {
    let stack = stack().await;
    let investor = stack.investor("12000.00", "1.00", &[100]).await;
    let other_deal = stack
        .fixtures
        .deal("1.00", DealStatus::Open)
        .await
        .expect("deal");
    let js = jetstream::new(stack.nats.clone());
    let prefix = &stack.names.prefix;
    let deal = investor.deal.id;
    let unknown = pb::AllocationRequest {
        investment_id: Uuid::new_v4().to_string(),
        ..Default::default()
    };
    let garbage: Vec<(String, Vec<u8>)> = vec![
        (
            format!("{prefix}.requests.{deal}"),
            vec![0xff, 0x00, 0x13, 0x37],
        ),
        (
            format!("{prefix}.requests.not-a-uuid"),
            unknown.encode_to_vec(),
        ),
        (format!("{prefix}.requests.{deal}"), unknown.encode_to_vec()),
        (
            format!("{prefix}.requests.{}", Uuid::new_v4()),
            unknown.encode_to_vec(),
        ),
    ];
    for (subject, payload) in garbage {
        js.publish(subject, payload.into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    // A real investment published on another deal's subject: rejected, not allocated there.
    let misrouted = stack.create(&investor, 1).await;
    let row = stack.investment(&misrouted.id).await;
    let request = wire::allocation_request(&row);
    js.publish(
        format!("{prefix}.requests.{}", other_deal.id),
        request.encode_to_vec().into(),
    )
    .await
    .expect("publish")
    .await
    .expect("ack");

    let created = stack.create(&investor, 2).await;
    let updates = collect(stack.watch(0, investor.user_id, &created.id).await).await;

    assert_eq!(
        updates.last().expect("terminal").allocation_status(),
        Completed
    );
    let stream = js.get_stream(&stack.names.stream).await.expect("stream");
    testkit::eventually(Duration::from_secs(10), "every request settled", || {
        let mut stream = stream.clone();
        async move { (stream.info().await.ok()?.state.messages == 0).then_some(()) }
    })
    .await;
    check_invariants(&stack.db).await;
}
