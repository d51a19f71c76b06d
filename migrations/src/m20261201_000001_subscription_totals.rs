//! Each subscription carries `committed_amount`, what it has invested or reserved
//! (`total_invested + reserved_amount` of docs/data-model.md), so a create checks its balance by
//! reading one row instead of summing the subscription's whole history.
//!
//! It is the total amount of the subscription's investments that have not failed: a pending or
//! processing one is reserved, and a completed one is invested exactly its total (invariant 2).
//! So allocating an investment changes nothing here and never touches the subscription row;
//! only a create, a failure and an admin retry do.
//!
//! Triggers, not application code, keep it: every writer (both services, fixtures, an
//! operator's SQL) changes it in the same transaction, and by the same statement, as the
//! investment rows it sums. `investctl audit` proves it equals the two sums (invariant 8).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub(crate) const UP: &str = r#"
-- No writes to investments while the total is computed and the triggers created.
LOCK TABLE investments IN SHARE ROW EXCLUSIVE MODE;

ALTER TABLE subscriptions ADD COLUMN committed_amount numeric NOT NULL DEFAULT 0;

UPDATE subscriptions s SET committed_amount = coalesce((
    SELECT sum(i.total_amount) FROM investments i
    WHERE i.subscription_id = s.id AND i.allocation_status <> 'failed'), 0);

-- Inserts and deletes: one UPDATE per subscription a statement touches, however many rows.
CREATE FUNCTION subscriptions_committed_amount_rows() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER investments_committed_amount_insert AFTER INSERT ON investments
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION subscriptions_committed_amount_rows();
CREATE TRIGGER investments_committed_amount_delete AFTER DELETE ON investments
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION subscriptions_committed_amount_rows();

-- Updates: only those that change what counts (failing, a retry of a failed one, an edited
-- amount or subscription) run anything; allocating one does not.
CREATE FUNCTION subscriptions_committed_amount_change() RETURNS trigger LANGUAGE plpgsql AS $$
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
"#;

const DOWN: &str = r#"
DROP FUNCTION subscriptions_committed_amount_change() CASCADE;
DROP FUNCTION subscriptions_committed_amount_rows() CASCADE;
ALTER TABLE subscriptions DROP COLUMN committed_amount;
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
