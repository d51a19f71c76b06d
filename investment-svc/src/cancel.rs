//! CancelInvestment: the owner takes back an investment that has not been allocated.
//!
//! One transaction locks the investment row (`FOR NO KEY UPDATE`, the lock the allocator takes
//! on it too), so a cancel and an allocation of the same investment are serialized and exactly
//! one wins: the allocator finds it `cancelled` and acknowledges its request without work, or
//! the cancel finds it `completed` (or `failed`) and refuses. The status change goes through
//! [`events::change_status`] (bumped version, event logged); the `committed_amount` trigger
//! releases the reservation in the same transaction. Lock order investment -> subscription,
//! the allocator's.

use entity::prelude::*;
use ledger::events;
use sea_orm::{DatabaseConnection, QuerySelect, TransactionTrait, sea_query::LockType};

use crate::{Error, Result};

/// Whether [`cancel`] cancelled the investment now or found it cancelled already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// Cancelled by this call: announce it.
    Now,
    /// Cancelled before; nothing changed.
    Already,
}

/// Cancels `user_id`'s investment `id` if it is `pending`.
pub async fn cancel(
    db: &DatabaseConnection,
    user_id: UserId,
    id: InvestmentId,
) -> Result<(investment::Model, Cancelled)> {
    let txn = db.begin().await?;
    let row = investment::find_owned(user_id, id)
        .lock(LockType::NoKeyUpdate)
        .one(&txn)
        .await?
        .ok_or(Error::NotFound("investment"))?;
    match row.allocation_status {
        AllocationStatus::Pending => {}
        AllocationStatus::Cancelled => return Ok((row, Cancelled::Already)),
        status => return Err(Error::NotCancellable(status)),
    }
    let cancelled = events::change_status(&txn, &[id], AllocationStatus::Cancelled, Vec::new())
        .await?
        .pop()
        .ok_or(Error::NotFound("investment"))?;
    txn.commit().await?;
    Ok((cancelled, Cancelled::Now))
}
