//! Tables, enums, constraints and indexes of docs/data-model.md.
//!
//! The indexes follow the queries: the three balance aggregates are partial, covering indexes
//! keyed by subscription (so a balance page reads only the rows that count), FIFO inventory is
//! an index in consumption order, and the allocation queue is indexed by status.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub(crate) const UP: &str = r#"
CREATE TYPE subscription_status AS ENUM ('active', 'paused', 'cancelled', 'completed');
CREATE TYPE payment_status AS ENUM ('pending', 'paid', 'failed', 'refunded');
CREATE TYPE deal_status AS ENUM ('open', 'closed');
CREATE TYPE investment_status AS ENUM ('pending', 'active', 'cancelled');
CREATE TYPE allocation_status AS ENUM ('pending', 'processing', 'completed', 'failed');

CREATE TABLE plans (
    id              uuid PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    monthly_amount  numeric(20, 2) NOT NULL CHECK (monthly_amount > 0),
    duration_months integer CHECK (duration_months > 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subscriptions (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL,
    plan_id    uuid NOT NULL REFERENCES plans (id),
    amount     numeric(20, 2) CHECK (amount > 0),
    status     subscription_status NOT NULL DEFAULT 'active',
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Balance listing: a user's subscriptions in page order.
CREATE INDEX subscriptions_user_page_idx ON subscriptions (user_id, created_at, id);

CREATE TABLE payments (
    id              uuid PRIMARY KEY,
    subscription_id uuid NOT NULL REFERENCES subscriptions (id),
    user_id         uuid NOT NULL,
    amount          numeric(20, 2) NOT NULL CHECK (amount >= 0),
    status          payment_status NOT NULL DEFAULT 'pending',
    paid_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'paid' OR paid_at IS NOT NULL)
);
-- months_completed / total_paid aggregates.
CREATE INDEX payments_paid_idx ON payments (subscription_id) INCLUDE (amount) WHERE status = 'paid';

CREATE TABLE deals (
    id              uuid PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    price_per_share numeric(20, 2) NOT NULL CHECK (price_per_share > 0),
    status          deal_status NOT NULL DEFAULT 'open',
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bulk_purchases (
    id              uuid PRIMARY KEY,
    deal_id         uuid NOT NULL REFERENCES deals (id),
    units_total     bigint NOT NULL CHECK (units_total >= 0),
    units_remaining bigint NOT NULL,
    purchased_at    timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bulk_purchases_units_remaining_check
        CHECK (units_remaining >= 0 AND units_remaining <= units_total)
);
-- FIFO consumption: a deal's batches that still hold units, oldest first.
CREATE INDEX bulk_purchases_fifo_idx ON bulk_purchases (deal_id, purchased_at, id)
    WHERE units_remaining > 0;

CREATE TABLE investments (
    id                  uuid PRIMARY KEY,
    user_id             uuid NOT NULL,
    subscription_id     uuid NOT NULL REFERENCES subscriptions (id),
    deal_id             uuid NOT NULL REFERENCES deals (id),
    shares              bigint NOT NULL CHECK (shares > 0),
    price_per_share     numeric(20, 2) NOT NULL CHECK (price_per_share > 0),
    total_amount        numeric(20, 2) NOT NULL,
    status              investment_status NOT NULL DEFAULT 'pending',
    allocation_status   allocation_status NOT NULL DEFAULT 'pending',
    allocation_attempts integer NOT NULL DEFAULT 0 CHECK (allocation_attempts >= 0),
    allocated_at        timestamptz,
    allocation_error    text,
    request_id          text CHECK (length(request_id) BETWEEN 1 AND 128),
    status_version      bigint NOT NULL DEFAULT 1 CHECK (status_version >= 1),
    -- When the sweeper last re-published the request (NULL: only the create published it).
    last_published_at   timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT investments_total_amount_check CHECK (total_amount = shares * price_per_share),
    CONSTRAINT investments_allocated_at_check
        CHECK ((allocation_status = 'completed') = (allocated_at IS NOT NULL)),
    -- Idempotency: one investment per (user, request_id); NULL request ids never collide.
    CONSTRAINT investments_user_request_id_key UNIQUE (user_id, request_id)
);
-- Queue views and the sweeper: investments by allocation status, oldest first.
CREATE INDEX investments_allocation_status_idx ON investments (allocation_status, created_at);
-- ListInvestments: a user's investments, newest first.
CREATE INDEX investments_user_page_idx ON investments (user_id, created_at DESC, id DESC);
-- reserved_amount aggregate.
CREATE INDEX investments_reserved_idx ON investments (subscription_id) INCLUDE (total_amount)
    WHERE allocation_status IN ('pending', 'processing');

CREATE TABLE user_investments (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL,
    subscription_id  uuid NOT NULL REFERENCES subscriptions (id),
    investment_id    uuid NOT NULL REFERENCES investments (id),
    deal_id          uuid NOT NULL REFERENCES deals (id),
    bulk_purchase_id uuid NOT NULL REFERENCES bulk_purchases (id),
    units_allocated  bigint NOT NULL CHECK (units_allocated > 0),
    value_allocated  numeric(20, 2) NOT NULL CHECK (value_allocated >= 0),
    is_reversed      boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now()
);
-- total_invested aggregate.
CREATE INDEX user_investments_invested_idx ON user_investments (subscription_id)
    INCLUDE (value_allocated) WHERE NOT is_reversed;
CREATE INDEX user_investments_investment_idx ON user_investments (investment_id);
CREATE INDEX user_investments_bulk_purchase_idx ON user_investments (bulk_purchase_id);

-- Every allocation status an investment has had, written in the transaction that changed it
-- (one row per status_version). Watchers read it, so they see every change with no gap
-- whatever NATS delivered; NATS status events only wake them up.
CREATE TABLE allocation_events (
    investment_id     uuid NOT NULL REFERENCES investments (id),
    version           bigint NOT NULL CHECK (version >= 1),
    user_id           uuid NOT NULL,
    deal_id           uuid NOT NULL,
    allocation_status allocation_status NOT NULL,
    attempt           integer NOT NULL,
    error             text,
    -- The clock at insert, just before commit (not the transaction's start, which may be
    -- long before): watchers that read "events since T" rely on it.
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (investment_id, version)
);
CREATE INDEX allocation_events_user_idx ON allocation_events (user_id, created_at);
"#;

const DOWN: &str = r#"
DROP TABLE allocation_events;
DROP TABLE user_investments;
DROP TABLE investments;
DROP TABLE bulk_purchases;
DROP TABLE deals;
DROP TABLE payments;
DROP TABLE subscriptions;
DROP TABLE plans;
DROP TYPE allocation_status;
DROP TYPE investment_status;
DROP TYPE deal_status;
DROP TYPE payment_status;
DROP TYPE subscription_status;
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
