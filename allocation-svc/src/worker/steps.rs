//! The allocation transaction of the unit of work ([`worker`](super)): lock, allocate and
//! persist; the worker commits it and then announces ([`announce`](super::announce)). Lock
//! order in every transaction: deal -> investments (by id) -> batches (FIFO) -> subscriptions
//! of failing investments (by id).
//!
//! Every statement covers the whole micro-batch (arrays, `unnest`, `= ANY`), so a batch of N
//! requests sends the same statements as a batch of one, and each is one prepared statement
//! whatever N is. Filter constants a partial index predicate must prove are written inline,
//! so the statements keep their index access under a generic plan.

use std::collections::{BTreeSet, HashMap};

use entity::prelude::*;
use ledger::outcomes::{self, Change, Changed};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait, Statement};
use uuid::Uuid;

use super::job::Verdict;
use crate::allocate::{self, Outcome};

/// Verdicts by investment, while a batch is worked on.
pub(super) type Verdicts = HashMap<InvestmentId, Verdict>;

/// What an allocation transaction did.
#[derive(Default)]
pub(super) struct Done {
    /// Verdicts of requests settled without allocating: unknown or misrouted requests
    /// (rejected), finished ones (acked).
    pub verdicts: Verdicts,
    /// Investments allocated or failed in this transaction, to announce after its commit.
    pub changed: Vec<Changed>,
    /// Their new allocations.
    pub allocations: Vec<user_investment::Model>,
    /// Those finished before (a redelivery): their last status is announced again.
    pub finished: Vec<investment::Model>,
}

const LOCK_DEAL: &str = "SELECT id FROM deals WHERE id = $1 FOR NO KEY UPDATE";
const LOCK_INVESTMENTS: &str =
    "SELECT * FROM investments WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE";
/// `units_remaining > 0` inline: it proves `bulk_purchases_fifo_idx`'s predicate.
const LOCK_BATCHES: &str = "SELECT id, units_remaining FROM bulk_purchases \
     WHERE deal_id = $1 AND units_remaining > 0 \
     ORDER BY purchased_at, id FOR NO KEY UPDATE";
const LOCK_SUBSCRIPTIONS: &str =
    "SELECT id FROM subscriptions WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE";
const UPDATE_REMAINING: &str = "UPDATE bulk_purchases b SET units_remaining = v.remaining \
     FROM unnest($1::uuid[], $2::bigint[]) AS v(id, remaining) \
     WHERE b.id = ANY($1::uuid[]) AND b.id = v.id";
const INSERT_ALLOCATIONS: &str = "INSERT INTO user_investments (id, user_id, subscription_id, \
     investment_id, deal_id, bulk_purchase_id, units_allocated, value_allocated) \
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], \
     $6::uuid[], $7::bigint[], $8::numeric[]) RETURNING *";

fn statement(sql: &str, values: Vec<sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

impl Done {
    /// Locks the deal and the investments, settles what is not to be allocated, takes the
    /// deal's batches FIFO for the `pending` and `processing` ones and writes the outcome.
    /// `None` if the deal does not exist.
    pub(super) async fn allocate_batch(
        txn: &DatabaseTransaction,
        deal_id: DealId,
        ids: &[InvestmentId],
    ) -> Result<Option<Done>, DbErr> {
        let Some(rows) = lock(txn, deal_id, ids).await? else {
            return Ok(None);
        };
        let mut done = Done::default();
        let mut active: Vec<&investment::Model> = Vec::new();
        for id in ids {
            match rows.get(id) {
                None => {
                    tracing::warn!(investment_id = %id, "request for an unknown investment rejected");
                    done.verdicts.insert(*id, Verdict::Reject);
                }
                Some(row) if row.deal() != deal_id => {
                    tracing::warn!(investment_id = %id, %deal_id, "request on another deal's subject rejected");
                    done.verdicts.insert(*id, Verdict::Reject);
                }
                // Cancelled by its owner before it got here: nothing to do or announce.
                Some(row) if row.allocation_status == AllocationStatus::Cancelled => {
                    tracing::info!(investment_id = %id, "cancelled; request acknowledged without work");
                    done.verdicts.insert(*id, Verdict::Ack);
                }
                Some(row) if row.allocation_status.is_terminal() => {
                    tracing::info!(investment_id = %id, "already allocated; redelivery ignored");
                    done.verdicts.insert(*id, Verdict::Ack);
                    done.finished.push(row.clone());
                }
                Some(row) => {
                    if !active.iter().any(|a| a.id == row.id) {
                        active.push(row);
                    }
                }
            }
        }
        if active.is_empty() {
            return Ok(Some(done));
        }
        let requests: Vec<_> = active
            .iter()
            .map(|row| allocate::Request {
                investment_id: row.id,
                shares: row.shares,
                price_per_share: row.price_per_share,
            })
            .collect();
        let stored: Vec<(Uuid, i64)> = txn
            .query_all_raw(statement(LOCK_BATCHES, vec![deal_id.uuid().into()]))
            .await?
            .iter()
            .map(|r| Ok((r.try_get("", "id")?, r.try_get("", "units_remaining")?)))
            .collect::<Result<_, DbErr>>()?;
        let mut batches: Vec<_> = stored
            .iter()
            .map(|&(id, remaining)| allocate::Batch { id, remaining })
            .collect();
        let outcomes = allocate::allocate(&mut batches, &requests);
        let failing = active
            .iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| matches!(outcome, Outcome::Insufficient { .. }))
            .map(|(row, _)| row.subscription_id);
        lock_subscriptions(txn, failing.collect()).await?;

        let changed_batches: Vec<_> = batches
            .iter()
            .zip(&stored)
            .filter(|(now, before)| now.remaining != before.1)
            .map(|(now, _)| now)
            .collect();
        update_remaining(txn, &changed_batches).await?;

        let mut pieces = Pieces::default();
        let mut changes = Vec::with_capacity(active.len());
        for (row, outcome) in active.iter().zip(outcomes) {
            let (status, error, failure) = match outcome {
                Outcome::Allocated(allocated) => {
                    for piece in allocated {
                        pieces.push(row, piece);
                    }
                    (AllocationStatus::Completed, None, None)
                }
                Outcome::Insufficient {
                    requested,
                    available,
                } => {
                    let error = format!(
                        "insufficient inventory: {requested} shares requested, {available} units left in the pool"
                    );
                    tracing::info!(investment_id = %row.id, %error, "allocation failed");
                    (
                        AllocationStatus::Failed,
                        Some(error),
                        Some(AllocationFailure::InsufficientInventory),
                    )
                }
            };
            changes.push(Change {
                row: (*row).clone(),
                status,
                error,
                failure,
                attempts: row.allocation_attempts,
            });
        }
        done.allocations = pieces.insert(txn).await?;
        done.changed = outcomes::apply(txn, &changes).await?;
        Ok(Some(done))
    }
}

/// The allocation rows of one batch, column by column.
#[derive(Default)]
struct Pieces {
    id: Vec<Uuid>,
    user: Vec<Uuid>,
    subscription: Vec<Uuid>,
    investment: Vec<Uuid>,
    deal: Vec<Uuid>,
    batch: Vec<Uuid>,
    units: Vec<i64>,
    value: Vec<rust_decimal::Decimal>,
}

impl Pieces {
    fn push(&mut self, row: &investment::Model, piece: allocate::Piece) {
        self.id.push(Uuid::now_v7());
        self.user.push(row.user_id);
        self.subscription.push(row.subscription_id);
        self.investment.push(row.id);
        self.deal.push(row.deal_id);
        self.batch.push(piece.batch_id);
        self.units.push(piece.units);
        self.value.push(piece.value);
    }

    /// Inserts them in one statement; returns the rows as stored.
    async fn insert(self, txn: &DatabaseTransaction) -> Result<Vec<user_investment::Model>, DbErr> {
        if self.id.is_empty() {
            return Ok(Vec::new());
        }
        let values = vec![
            self.id.into(),
            self.user.into(),
            self.subscription.into(),
            self.investment.into(),
            self.deal.into(),
            self.batch.into(),
            self.units.into(),
            self.value.into(),
        ];
        UserInvestment::find()
            .from_raw_sql(statement(INSERT_ALLOCATIONS, values))
            .all(txn)
            .await
    }
}

/// Locks the deal row (serializing its pool across replicas), then the investments by id:
/// the lock order of every allocation transaction. `None` if the deal does not exist.
async fn lock(
    txn: &DatabaseTransaction,
    deal_id: DealId,
    ids: &[InvestmentId],
) -> Result<Option<HashMap<InvestmentId, investment::Model>>, DbErr> {
    // NO KEY UPDATE, not UPDATE: it still serializes allocators, but does not wait for (or
    // deadlock with) creates, whose foreign keys take KEY SHARE locks on the deal row.
    if txn
        .query_one_raw(statement(LOCK_DEAL, vec![deal_id.uuid().into()]))
        .await?
        .is_none()
    {
        return Ok(None);
    }
    let ids: Vec<Uuid> = ids.iter().map(|id| id.uuid()).collect();
    let rows = Investment::find()
        .from_raw_sql(statement(LOCK_INVESTMENTS, vec![ids.into()]))
        .all(txn)
        .await?;
    Ok(Some(
        rows.into_iter().map(|r| (r.investment_id(), r)).collect(),
    ))
}

/// Locks the subscriptions of the investments about to fail, in id order. A failure gives the
/// amount back to its subscription's `committed_amount` (by trigger), which takes these row
/// locks anyway; taking them in one order first keeps two pools' transactions from
/// deadlocking on them. (Completing an investment does not touch its subscription.)
async fn lock_subscriptions(txn: &DatabaseTransaction, ids: BTreeSet<Uuid>) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = ids.into_iter().collect();
    txn.query_all_raw(statement(LOCK_SUBSCRIPTIONS, vec![ids.into()]))
        .await?;
    Ok(())
}

/// Writes the new `units_remaining` of the batches the step changed, in one statement.
async fn update_remaining(
    txn: &DatabaseTransaction,
    batches: &[&allocate::Batch],
) -> Result<(), DbErr> {
    if batches.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = batches.iter().map(|b| b.id).collect();
    let remaining: Vec<i64> = batches.iter().map(|b| b.remaining).collect();
    txn.execute_raw(statement(
        UPDATE_REMAINING,
        vec![ids.into(), remaining.into()],
    ))
    .await?;
    Ok(())
}
