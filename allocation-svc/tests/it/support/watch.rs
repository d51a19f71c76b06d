//! Watch streams: opening them as a user, and reading what they send.

use std::time::Duration;

use api::v1 as pb;
use futures::StreamExt;
use tonic::Streaming;
use uuid::Uuid;

use super::{Investor, Stack};

impl Stack {
    /// Opens WatchAllocation on `replica` as the investment's owner.
    pub async fn watch(
        &self,
        replica: usize,
        user_id: Uuid,
        investment_id: &str,
    ) -> Streaming<pb::WatchAllocationResponse> {
        self.allocations(replica, Some(testkit::token(user_id)))
            .await
            .watch_allocation(pb::WatchAllocationRequest {
                investment_id: investment_id.to_owned(),
            })
            .await
            .expect("watch")
            .into_inner()
    }

    /// Creates an investment and waits, watching it, until its allocation has ended.
    pub async fn create_finished(&self, investor: &Investor, shares: i64) -> pb::Investment {
        let created = self.create(investor, shares).await;
        collect(self.watch(0, investor.user_id, &created.id).await).await;
        created
    }

    /// Opens WatchAllocations on `replica` as `user_id`, before anything happens: what it
    /// sends is live.
    pub async fn watch_all(
        &self,
        replica: usize,
        user_id: Uuid,
    ) -> Streaming<pb::WatchAllocationsResponse> {
        self.allocations(replica, Some(testkit::token(user_id)))
            .await
            .watch_allocations(pb::WatchAllocationsRequest {})
            .await
            .expect("watch all")
            .into_inner()
    }
}

/// Every update of a watch until the stream ends (with a deadline).
pub async fn collect(
    mut stream: Streaming<pb::WatchAllocationResponse>,
) -> Vec<pb::AllocationUpdate> {
    let mut updates = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(item) = stream.next().await {
            updates.push(item.expect("stream item").update.expect("update"));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("watch did not end; got {updates:?}"));
    updates
}

/// `(status, version, attempt)` of each update.
pub fn steps(updates: &[pb::AllocationUpdate]) -> Vec<(pb::AllocationStatus, i64, i32)> {
    updates
        .iter()
        .map(|u| (u.allocation_status(), u.version, u.attempt))
        .collect()
}
