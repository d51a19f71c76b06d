//! `balances`: ListSubscriptionBalances once PostgreSQL uses its generic plan (issue 18).
//!
//! investment-svc in process on a pool of **one** connection, so after the warm-up (100 calls)
//! the balance statement has run far more than five times on that connection and PostgreSQL
//! plans it generically. Measured against two references taken in the same run on the same
//! data: the same user with one subscription, and one hand-written statement with the same
//! aggregates and every filter value a constant. Exits non-zero when a ratio is broken.

use std::time::Instant;

use anyhow::Context as _;
use api::v1 as pb;
use bench::{histogram, investments, micros};
use clap::Parser;
use hdrhistogram::Histogram;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use testkit::stack::Infra;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(about = "ListSubscriptionBalances for 1 and 100 subscriptions under a generic plan.")]
struct Args {
    /// Calls of each kind before measuring (PostgreSQL goes generic after five).
    #[arg(long, default_value_t = 100)]
    warm_up: usize,
    /// Measured calls of each kind, interleaved.
    #[arg(long, default_value_t = 300)]
    calls: usize,
    /// Most p50(100 subscriptions) / p50(1 subscription).
    #[arg(long, default_value_t = 3.0)]
    max_vs_one: f64,
    /// Most p50(100 subscriptions) / p50(hand-written statement).
    #[arg(long, default_value_t = 1.5)]
    max_vs_hand: f64,
}

/// The balance aggregates of a user's page, written by hand: constants inline, the user bound.
const HAND_WRITTEN: &str = r#"
SELECT s.id, coalesce(s.amount, p.monthly_amount) AS monthly_amount,
       coalesce(p.duration_months, 12) AS duration_months,
       (SELECT count(*) FROM payments WHERE subscription_id = s.id AND status = 'paid') AS paid,
       (SELECT coalesce(sum(amount), 0) FROM payments
        WHERE subscription_id = s.id AND status = 'paid') AS total_paid,
       (SELECT coalesce(sum(value_allocated), 0) FROM user_investments
        WHERE subscription_id = s.id AND NOT is_reversed) AS total_invested,
       (SELECT coalesce(sum(total_amount), 0) FROM investments
        WHERE subscription_id = s.id AND allocation_status IN ('pending', 'processing'))
           AS reserved_amount
FROM subscriptions s JOIN plans p ON p.id = s.plan_id
WHERE s.user_id = $1 AND s.status IN ('active', 'paused')
ORDER BY s.created_at, s.id LIMIT 101
"#;

/// `subscriptions` subscriptions for `user`, each with 12 payments (10 paid), 20 investments
/// (2 pending, 18 completed and allocated, one of those reversed).
const HISTORY: &str = r#"
WITH subs AS (
    INSERT INTO subscriptions (id, user_id, plan_id, status)
    SELECT gen_random_uuid(), $1, (SELECT id FROM plans LIMIT 1), 'active'
    FROM generate_series(1, $2::int)
    RETURNING id
), paid AS (
    INSERT INTO payments (id, subscription_id, user_id, amount, status, paid_at)
    SELECT gen_random_uuid(), subs.id, $1, 100,
           (CASE WHEN g <= 10 THEN 'paid' ELSE 'pending' END)::payment_status,
           CASE WHEN g <= 10 THEN now() END
    FROM subs, generate_series(1, 12) g
), made AS (
    INSERT INTO investments (id, user_id, subscription_id, deal_id, shares, price_per_share,
                             total_amount, status, allocation_status, allocated_at)
    SELECT gen_random_uuid(), $1, subs.id, (SELECT id FROM deals LIMIT 1), 1, 10, 10,
           (CASE WHEN g <= 2 THEN 'pending' ELSE 'active' END)::investment_status,
           (CASE WHEN g <= 2 THEN 'pending' ELSE 'completed' END)::allocation_status,
           CASE WHEN g > 2 THEN now() END
    FROM subs, generate_series(1, 20) g
    RETURNING id, subscription_id, deal_id, allocation_status
)
INSERT INTO user_investments (id, user_id, subscription_id, investment_id, deal_id,
                              bulk_purchase_id, units_allocated, value_allocated, is_reversed)
SELECT gen_random_uuid(), $1, subscription_id, id, deal_id,
       (SELECT id FROM bulk_purchases LIMIT 1), 1, 10, false
FROM made WHERE allocation_status = 'completed'
"#;

async fn user_with(infra: &Infra, subscriptions: i32) -> anyhow::Result<Uuid> {
    let user = Uuid::new_v4();
    infra
        .db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            HISTORY,
            [user.into(), subscriptions.into()],
        ))
        .await?;
    Ok(user)
}

fn p50(h: &Histogram<u64>) -> f64 {
    h.value_at_quantile(0.5) as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let infra = Infra::start(false)
        .await
        .context("starting the stack (run with scripts/bench)")?;
    // Thousands of rows of other users in every table, so a sequential scan costs what it
    // would in production.
    testkit::plans::seed(&infra.db).await;
    let one = user_with(&infra, 1).await?;
    let hundred = user_with(&infra, 100).await?;
    infra.db.execute_unprepared("ANALYZE").await?;

    // investment-svc on one connection: every call reuses its prepared statement.
    let mut service_args = infra.service_args("investment-svc");
    service_args.push("--database-max-connections=1".into());
    let config = <investment_svc::Config as Parser>::try_parse_from(service_args)?;
    let pool = sea_orm::Database::connect(
        sea_orm::ConnectOptions::new(&infra.test_db.url)
            .max_connections(1)
            .sqlx_logging(false)
            .to_owned(),
    )
    .await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let app =
        investment_svc::App::from_parts(config, pool.clone(), infra.nats.clone(), listener).await?;
    let addr = app.local_addr()?;
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let mut client_one = investments(addr, one).await?;
    let mut client_hundred = investments(addr, hundred).await?;
    let hand = Statement::from_sql_and_values(DbBackend::Postgres, HAND_WRITTEN, [hundred.into()]);

    let list = |client: &mut bench::Investments| {
        let mut client = client.clone();
        async move {
            let page = client
                .list_subscription_balances(pb::ListSubscriptionBalancesRequest {
                    page_size: 100,
                    page_token: String::new(),
                })
                .await?
                .into_inner();
            anyhow::Ok(page.balances.len())
        }
    };
    for _ in 0..args.warm_up {
        anyhow::ensure!(list(&mut client_one).await? == 1, "expected 1 balance");
        anyhow::ensure!(
            list(&mut client_hundred).await? == 100,
            "expected 100 balances"
        );
        anyhow::ensure!(infra.db.query_all_raw(hand.clone()).await?.len() == 100);
    }
    let (mut h_one, mut h_hundred, mut h_hand) = (histogram(), histogram(), histogram());
    for _ in 0..args.calls {
        let t = Instant::now();
        list(&mut client_one).await?;
        h_one.record(micros(t.elapsed()).max(1))?;
        let t = Instant::now();
        list(&mut client_hundred).await?;
        h_hundred.record(micros(t.elapsed()).max(1))?;
        let t = Instant::now();
        infra.db.query_all_raw(hand.clone()).await?;
        h_hand.record(micros(t.elapsed()).max(1))?;
    }

    // The service's one connection really runs the balance statement with a generic plan.
    let row = pool
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT coalesce(max(generic_plans), 0) AS generic, \
                    coalesce(max(custom_plans), 0) AS custom \
             FROM pg_prepared_statements WHERE statement LIKE '%months_completed%'",
        ))
        .await?
        .context("plan counts")?;
    let (generic, custom): (i64, i64) = (row.try_get("", "generic")?, row.try_get("", "custom")?);

    let (one_ms, hundred_ms, hand_ms) = (p50(&h_one), p50(&h_hundred), p50(&h_hand));
    let (vs_one, vs_hand) = (hundred_ms / one_ms, hundred_ms / hand_ms);
    println!(
        "balances under a generic plan: {} warm-up + {} calls each, one connection",
        args.warm_up, args.calls
    );
    println!("  balance statement: {generic} generic plans, {custom} custom plans");
    println!("  ListSubscriptionBalances, 1 sub:     p50 {one_ms:8.2} ms");
    println!("  ListSubscriptionBalances, 100 subs:  p50 {hundred_ms:8.2} ms");
    println!("  hand-written statement, 100 subs:    p50 {hand_ms:8.2} ms (no gRPC)");
    println!(
        "  100 subs / 1 sub:  {vs_one:.2}x (max {})\n  100 subs / hand:   {vs_hand:.2}x (max {})",
        args.max_vs_one, args.max_vs_hand
    );
    shutdown.cancel();
    anyhow::ensure!(
        generic > 0,
        "the balance statement never ran a generic plan"
    );
    anyhow::ensure!(
        vs_one <= args.max_vs_one,
        "100 subscriptions cost {vs_one:.2}x one"
    );
    anyhow::ensure!(
        vs_hand <= args.max_vs_hand,
        "100 subscriptions cost {vs_hand:.2}x the hand-written statement"
    );
    Ok(())
}
