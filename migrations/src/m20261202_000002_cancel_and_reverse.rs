//! Cancel and reverse in the schema: who reversed an investment, why, when and under which
//! request id; the status CHECKs for the new states; and `committed_amount` counting only
//! what is reserved or invested.
//!
//! - `committed_amount` is the total of the investments that are `pending`, `processing` or
//!   `completed`: a cancelled one released its reservation and a reversed one gave its value
//!   back (its allocation rows are `is_reversed`), so the total still equals
//!   `total_invested + reserved_amount`, and the create's check agrees with the listing's
//!   `available_balance` in every state (issue 21). The triggers fire on any change into or out
//!   of those states, not only to and from `failed`.
//! - An allocation row is stamped when it is inserted (`clock_timestamp()`, after the
//!   allocator holds the pool's deal lock), not when its transaction began: the order of the
//!   stamps is then the order in which the pool's units were taken, which is what the audit
//!   replays to judge FIFO order as it was when each piece was made (a reversal, stamped the
//!   same way, gives units back to older batches later).
//! - `cancelled` and `reversed` are terminal in the schema too: a trigger refuses any change
//!   of `allocation_status` out of them, whoever writes it.
//! - `allocated_at` stays set on a reversed investment (it was allocated then); the investment
//!   status follows the allocation status in one CHECK (`active` when completed, `pending`
//!   until then, otherwise the same word).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub(crate) const UP: &str = r#"
-- No writes to investments while the totals are recomputed and the triggers replaced.
LOCK TABLE investments IN SHARE ROW EXCLUSIVE MODE;

ALTER TABLE investments
    ADD COLUMN reversed_at         timestamptz,
    ADD COLUMN reversed_by         uuid,
    ADD COLUMN reversal_reason     text CHECK (length(reversal_reason) BETWEEN 1 AND 1000),
    ADD COLUMN reversal_request_id text CHECK (length(reversal_request_id) BETWEEN 1 AND 128);

ALTER TABLE investments DROP CONSTRAINT investments_allocated_at_check;
ALTER TABLE investments ADD CONSTRAINT investments_allocated_at_check
    CHECK ((allocation_status IN ('completed', 'reversed')) = (allocated_at IS NOT NULL));
ALTER TABLE investments DROP CONSTRAINT investments_failed_status_check;
ALTER TABLE investments ADD CONSTRAINT investments_status_check
    CHECK (status = CASE allocation_status
        WHEN 'pending' THEN 'pending'::investment_status
        WHEN 'processing' THEN 'pending'::investment_status
        WHEN 'completed' THEN 'active'::investment_status
        WHEN 'failed' THEN 'failed'::investment_status
        WHEN 'cancelled' THEN 'cancelled'::investment_status
        WHEN 'reversed' THEN 'reversed'::investment_status
    END);
-- A reversal records when, by whom and why; nothing else carries those columns.
ALTER TABLE investments ADD CONSTRAINT investments_reversal_check
    CHECK ((allocation_status = 'reversed')
           = (reversed_at IS NOT NULL AND reversed_by IS NOT NULL AND reversal_reason IS NOT NULL)
           AND (reversal_request_id IS NULL OR allocation_status = 'reversed'));
-- Cancelled and reversed are terminal for every writer, operators' SQL included: an
-- allocation of a cancelled investment (a cancel the allocator did not see) is refused here
-- rather than leaving it allocated.
CREATE FUNCTION investments_terminal_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'investment % is % and cannot become %',
        OLD.id, OLD.allocation_status, NEW.allocation_status
        USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER investments_terminal_guard
    BEFORE UPDATE OF allocation_status ON investments
    FOR EACH ROW
    WHEN (OLD.allocation_status IN ('cancelled', 'reversed')
          AND NEW.allocation_status IS DISTINCT FROM OLD.allocation_status)
    EXECUTE FUNCTION investments_terminal_guard();

-- ReverseAllocation is idempotent by request id: one reversal per id.
CREATE UNIQUE INDEX investments_reversal_request_id_key ON investments (reversal_request_id)
    WHERE reversal_request_id IS NOT NULL;

ALTER TABLE user_investments ALTER COLUMN created_at SET DEFAULT clock_timestamp();

CREATE OR REPLACE FUNCTION subscriptions_committed_amount_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE subscriptions s SET committed_amount = s.committed_amount + d.amount
        FROM (SELECT subscription_id, sum(total_amount) AS amount FROM new_rows
              WHERE allocation_status IN ('pending', 'processing', 'completed')
              GROUP BY subscription_id) d
        WHERE s.id = d.subscription_id;
    ELSE
        UPDATE subscriptions s SET committed_amount = s.committed_amount - d.amount
        FROM (SELECT subscription_id, sum(total_amount) AS amount FROM old_rows
              WHERE allocation_status IN ('pending', 'processing', 'completed')
              GROUP BY subscription_id) d
        WHERE s.id = d.subscription_id;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION subscriptions_committed_amount_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.allocation_status IN ('pending', 'processing', 'completed') THEN
        UPDATE subscriptions SET committed_amount = committed_amount - OLD.total_amount
        WHERE id = OLD.subscription_id;
    END IF;
    IF NEW.allocation_status IN ('pending', 'processing', 'completed') THEN
        UPDATE subscriptions SET committed_amount = committed_amount + NEW.total_amount
        WHERE id = NEW.subscription_id;
    END IF;
    RETURN NULL;
END $$;

-- Only updates that change what counts run anything: failing, cancelling, reversing, a retry,
-- an edited amount or subscription. Allocating one (pending -> completed) does not.
DROP TRIGGER investments_committed_amount_update ON investments;
CREATE TRIGGER investments_committed_amount_update
    AFTER UPDATE OF allocation_status, total_amount, subscription_id ON investments
    FOR EACH ROW
    WHEN ((OLD.allocation_status IN ('pending', 'processing', 'completed'))
              IS DISTINCT FROM (NEW.allocation_status IN ('pending', 'processing', 'completed'))
          OR OLD.total_amount IS DISTINCT FROM NEW.total_amount
          OR OLD.subscription_id IS DISTINCT FROM NEW.subscription_id)
    EXECUTE FUNCTION subscriptions_committed_amount_change();

UPDATE subscriptions s SET committed_amount = coalesce((
    SELECT sum(i.total_amount) FROM investments i
    WHERE i.subscription_id = s.id
      AND i.allocation_status IN ('pending', 'processing', 'completed')), 0);
"#;

/// Refused while a row is cancelled or reversed: the old schema has no place for them.
const DOWN: &str = r#"
LOCK TABLE investments IN SHARE ROW EXCLUSIVE MODE;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM investments WHERE allocation_status IN ('cancelled', 'reversed')) THEN
        RAISE EXCEPTION 'cancelled or reversed investments exist: cannot go back';
    END IF;
END $$;
DROP TRIGGER investments_committed_amount_update ON investments;
DROP FUNCTION investments_terminal_guard() CASCADE;
ALTER TABLE user_investments ALTER COLUMN created_at SET DEFAULT now();
CREATE OR REPLACE FUNCTION subscriptions_committed_amount_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE subscriptions s SET committed_amount = s.committed_amount + d.amount
        FROM (SELECT subscription_id, sum(total_amount) AS amount FROM new_rows
              WHERE allocation_status <> 'failed' GROUP BY subscription_id) d
        WHERE s.id = d.subscription_id;
    ELSE
        UPDATE subscriptions s SET committed_amount = s.committed_amount - d.amount
        FROM (SELECT subscription_id, sum(total_amount) AS amount FROM old_rows
              WHERE allocation_status <> 'failed' GROUP BY subscription_id) d
        WHERE s.id = d.subscription_id;
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION subscriptions_committed_amount_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.allocation_status <> 'failed' THEN
        UPDATE subscriptions SET committed_amount = committed_amount - OLD.total_amount
        WHERE id = OLD.subscription_id;
    END IF;
    IF NEW.allocation_status <> 'failed' THEN
        UPDATE subscriptions SET committed_amount = committed_amount + NEW.total_amount
        WHERE id = NEW.subscription_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER investments_committed_amount_update
    AFTER UPDATE OF allocation_status, total_amount, subscription_id ON investments
    FOR EACH ROW
    WHEN ((OLD.allocation_status = 'failed') IS DISTINCT FROM (NEW.allocation_status = 'failed')
          OR OLD.total_amount IS DISTINCT FROM NEW.total_amount
          OR OLD.subscription_id IS DISTINCT FROM NEW.subscription_id)
    EXECUTE FUNCTION subscriptions_committed_amount_change();
DROP INDEX investments_reversal_request_id_key;
ALTER TABLE investments DROP CONSTRAINT investments_reversal_check;
ALTER TABLE investments DROP CONSTRAINT investments_status_check;
ALTER TABLE investments ADD CONSTRAINT investments_failed_status_check
    CHECK ((allocation_status = 'failed') = (status = 'failed'));
ALTER TABLE investments DROP CONSTRAINT investments_allocated_at_check;
ALTER TABLE investments ADD CONSTRAINT investments_allocated_at_check
    CHECK ((allocation_status = 'completed') = (allocated_at IS NOT NULL));
ALTER TABLE investments DROP COLUMN reversed_at, DROP COLUMN reversed_by,
    DROP COLUMN reversal_reason, DROP COLUMN reversal_request_id;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}
