//! After each commit: the status events of what the transaction changed, on NATS, and the
//! finished allocations counted. A lost event only delays watchers until they repair from the
//! event log.

use std::{collections::HashMap, sync::Arc};

use allocation_bus::Topology;
use api::v1 as pb;
use entity::prelude::*;
use ledger::outcomes::Changed;
use sea_orm::DatabaseConnection;

use crate::metrics::{Metrics, Outcome};

/// Publishes status events; cheap to clone.
#[derive(Clone)]
pub(super) struct Announcer {
    /// Where the allocations of re-announced completed investments are read.
    db: DatabaseConnection,
    nats: async_nats::Client,
    topology: Topology,
    /// Where finished allocations are counted.
    metrics: Arc<Metrics>,
}

impl Announcer {
    pub(super) fn new(
        db: DatabaseConnection,
        nats: async_nats::Client,
        topology: Topology,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            db,
            nats,
            topology,
            metrics,
        }
    }

    /// Publishes the status events of `changed` (`processing` first where the row passed
    /// through it), each the complete update (allocations included once completed).
    pub(super) async fn announce(
        &self,
        changed: &[Changed],
        allocations: Vec<user_investment::Model>,
    ) {
        let mut allocations = wire::allocations(allocations);
        for Changed { via, row } in changed {
            count(&self.metrics, row);
            if let Some(processing) = via {
                self.publish(processing, Vec::new()).await;
            }
            self.publish(row, allocations.remove(&row.id).unwrap_or_default())
                .await;
        }
    }

    /// Publishes the status events of `rows` again, reading the allocations of completed ones.
    pub(super) async fn settle(&self, rows: &[investment::Model]) {
        if rows.is_empty() {
            return;
        }
        let completed = rows
            .iter()
            .filter(|r| r.allocation_status == AllocationStatus::Completed)
            .map(investment::Model::investment_id);
        let mut allocations = match ledger::events::allocations(&self.db, completed).await {
            Ok(rows) => wire::allocations(rows),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read allocations for status events");
                HashMap::new()
            }
        };
        for row in rows {
            self.publish(row, allocations.remove(&row.id).unwrap_or_default())
                .await;
        }
    }

    async fn publish(&self, row: &investment::Model, allocations: Vec<pb::Allocation>) {
        let event: pb::AllocationStatusEvent = wire::status_event(row, allocations);
        allocation_bus::announce_status(
            &self.nats,
            &self.topology,
            row.owner(),
            row.investment_id(),
            &event,
        )
        .await;
    }
}

/// Counts a finished allocation in `allocations_total`.
fn count(metrics: &Metrics, row: &investment::Model) {
    let outcome = match row.allocation_status {
        AllocationStatus::Completed => "completed",
        AllocationStatus::Failed => "failed",
        AllocationStatus::Pending
        | AllocationStatus::Processing
        | AllocationStatus::Cancelled
        | AllocationStatus::Reversed => return,
    };
    metrics
        .allocations
        .get_or_create(&Outcome { outcome })
        .inc();
}
