//! Per-pool lanes: the dispatcher routes each request to the lane of its pool (deal). A lane
//! handles its requests in arrival order, taking up to `MICRO_BATCH` queued ones per
//! transaction; lanes of different pools run in parallel, at most `MAX_LANES` at a time.
//!
//! A lane idle for `LANE_IDLE` closes its queue, finishes what is left and ends. A request
//! arriving for its pool after that starts a new lane that first waits for the old one, so a
//! pool is never worked on by two lanes at once and arrival order holds.

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_nats::jetstream::{AckKind, Message};
use entity::prelude::DealId;
use futures::FutureExt as _;
use opentelemetry::trace::TraceContextExt as _;
use tokio::{
    sync::{Semaphore, mpsc},
    task::{JoinError, JoinHandle},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::metrics::Alive;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::worker::{Allocator, Job, Verdict};

/// A request waiting in a lane.
pub struct Delivery {
    /// The NATS message, to acknowledge once done.
    pub message: Message,
    /// What to allocate.
    pub job: Job,
    /// When it was pulled: a request is on its ack-wait clock from then on.
    pub received: Instant,
    /// The trace context the request carries (the create's, or the admin retry's).
    pub trace: opentelemetry::Context,
}

/// Lane settings.
#[derive(Clone, Debug)]
pub struct LaneArgs {
    /// Requests per transaction at most.
    pub micro_batch: usize,
    /// Idle time before a lane ends.
    pub idle: Duration,
    /// The consumer's ack wait: requests queued for a third of it get a progress ack.
    pub ack_wait: Duration,
}

struct Lane {
    queue: mpsc::UnboundedSender<Delivery>,
    task: JoinHandle<()>,
}

/// Routes requests to lanes. Owned by the consumer loop.
pub struct Dispatcher {
    lanes: HashMap<DealId, Lane>,
    allocator: Allocator,
    permits: Arc<Semaphore>,
    args: LaneArgs,
    shutdown: CancellationToken,
    dispatched: u64,
}

impl Dispatcher {
    /// A dispatcher running at most `max_lanes` pools at once.
    pub fn new(
        allocator: Allocator,
        max_lanes: usize,
        args: LaneArgs,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            lanes: HashMap::new(),
            allocator,
            permits: Arc::new(Semaphore::new(max_lanes.max(1))),
            args,
            shutdown,
            dispatched: 0,
        }
    }

    /// Queues `delivery` on the lane of `deal_id`, starting the lane if needed.
    pub fn dispatch(&mut self, deal_id: DealId, delivery: Delivery) {
        self.dispatched += 1;
        if self.dispatched.is_multiple_of(1024) {
            self.lanes
                .retain(|deal_id, lane| match (&mut lane.task).now_or_never() {
                    Some(ended) => {
                        reap(*deal_id, ended);
                        false
                    }
                    None => true,
                });
        }
        let delivery = match self.lanes.get(&deal_id) {
            Some(lane) => match lane.queue.send(delivery) {
                Ok(()) => return,
                // The lane went idle and closed its queue: take over after it.
                Err(mpsc::error::SendError(delivery)) => delivery,
            },
            None => delivery,
        };
        let previous = self.lanes.remove(&deal_id).map(|lane| lane.task);
        let (queue, receiver) = mpsc::unbounded_channel();
        // The receiver is alive: this send cannot fail.
        let _ = queue.send(delivery);
        let task = tokio::spawn(run_lane(
            deal_id,
            receiver,
            previous,
            self.allocator.clone(),
            self.permits.clone(),
            self.args.clone(),
            self.shutdown.clone(),
        ));
        self.lanes.insert(deal_id, Lane { queue, task });
    }

    /// Lanes currently alive (for tests and stats).
    pub fn live_lanes(&self) -> usize {
        self.lanes
            .values()
            .filter(|l| !l.task.is_finished())
            .count()
    }

    /// Waits for every lane to end. Call after cancelling the shutdown token: lanes finish the
    /// batch in hand and hand the rest back to NATS.
    pub async fn drain(self) {
        for (deal_id, lane) in self.lanes {
            drop(lane.queue);
            reap(deal_id, lane.task.await);
        }
    }
}

/// Logs a lane that panicked rather than dropping its result unseen: NATS redelivers its
/// requests after `ACK_WAIT`, but the bug behind the panic must show in the logs.
fn reap(deal_id: DealId, ended: Result<(), JoinError>) {
    if let Err(e) = ended {
        tracing::error!(%deal_id, error = %e, "allocation lane panicked; NATS will redeliver its requests");
    }
}

async fn run_lane(
    deal_id: DealId,
    mut queue: mpsc::UnboundedReceiver<Delivery>,
    previous: Option<JoinHandle<()>>,
    allocator: Allocator,
    permits: Arc<Semaphore>,
    args: LaneArgs,
    shutdown: CancellationToken,
) {
    if let Some(previous) = previous {
        reap(deal_id, previous.await);
    }
    // In `allocation_lanes_active` for as long as it lives (a panic included).
    let _active = Alive::new(allocator.metrics().lanes_active.clone());
    loop {
        let first = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            next = tokio::time::timeout(args.idle, queue.recv()) => match next {
                Ok(Some(delivery)) => delivery,
                Ok(None) => break,
                Err(_idle) => {
                    // No new request can arrive now; finish the ones already queued.
                    queue.close();
                    continue;
                }
            },
        };
        let mut batch = vec![first];
        while batch.len() < args.micro_batch {
            match queue.try_recv() {
                Ok(delivery) => batch.push(delivery),
                Err(_) => break,
            }
        }
        let Ok(_permit) = permits.acquire().await else {
            break;
        };
        for delivery in &batch {
            if delivery.received.elapsed() > args.ack_wait / 3 {
                let _ = delivery.message.ack_with(AckKind::Progress).await;
            }
        }
        let jobs: Vec<Job> = batch.iter().map(|d| d.job).collect();
        let ids: Vec<String> = jobs.iter().map(|j| j.investment_id.to_string()).collect();
        let span = tracing::info_span!(
            "allocation",
            %deal_id,
            investment_ids = ?ids,
            trace_id = tracing::field::Empty
        );
        // One transaction serves many requests, each with its own trace: link them all.
        for delivery in &batch {
            span.add_link(delivery.trace.span().span_context().clone());
        }
        span.record(
            "trace_id",
            tracing::field::display(service_kit::tracing_context::trace_id(&span)),
        );
        let work = allocator.run_batch(deal_id, &jobs).instrument(span.clone());
        tokio::pin!(work);
        // A batch slowed down by faults (lock waits, retries) keeps its requests' leases.
        let period = (args.ack_wait / 3).max(Duration::from_millis(100));
        let mut keepalive = tokio::time::interval_at(Instant::now() + period, period);
        let verdicts = loop {
            tokio::select! {
                verdicts = &mut work => break verdicts,
                _ = keepalive.tick() => {
                    for delivery in &batch {
                        let _ = delivery.message.ack_with(AckKind::Progress).await;
                    }
                }
            }
        };
        for (delivery, verdict) in batch.iter().zip(verdicts) {
            // Each request's own trace gets the outcome of its allocation.
            let request = tracing::info_span!(
                "allocate",
                investment_id = %delivery.job.investment_id,
                ?verdict,
            );
            let _ = request.set_parent(delivery.trace.clone());
            request.follows_from(&span);
            settle(&delivery.message, verdict).instrument(request).await;
        }
    }
    // Shutting down: hand queued requests back to NATS at once, for another replica.
    queue.close();
    while let Ok(delivery) = queue.try_recv() {
        let _ = delivery.message.ack_with(AckKind::Nak(None)).await;
    }
}

/// Tells NATS what became of a request.
pub async fn settle(message: &Message, verdict: Verdict) {
    let kind = match verdict {
        Verdict::Ack => AckKind::Ack,
        // An explicit delay: a plain NAK would redeliver at once.
        Verdict::Retry(delay) => AckKind::Nak(Some(delay)),
        Verdict::Reject => AckKind::Term,
    };
    if let Err(e) = message.ack_with(kind).await {
        // The request comes back after ack-wait; the worker is idempotent.
        tracing::warn!(error = %e, ?verdict, "acknowledgement not sent");
    }
}
