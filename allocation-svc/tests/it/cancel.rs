//! Clients that go away mid-create: whatever the client does, a committed create is published
//! at once and no connection goes back to the pool inside a transaction.

use std::time::Duration;

use api::v1 as pb;
use entity::prelude::*;
use futures::future::join_all;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::support::*;

/// PostgreSQL's complaints about a connection reused in an unknown transaction state.
const TRANSACTION_STATE_WARNINGS: [&str; 2] = [
    "there is no transaction in progress",
    "there is already a transaction in progress",
];

/// The private PostgreSQL's log (exported by scripts/test), from `offset` on, only the lines
/// of database `name`; `None` when the tests run against a server whose log we cannot read.
fn log_lines_since(offset: u64, name: &str) -> Option<Vec<String>> {
    use std::io::{Read, Seek, SeekFrom};
    let path = std::env::var_os("INVEST_PG_LOG")?;
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    let tag = format!("db={name} ");
    Some(
        text.lines()
            .filter(|l| l.contains(&tag))
            .map(str::to_owned)
            .collect(),
    )
}

fn log_len() -> u64 {
    std::env::var_os("INVEST_PG_LOG")
        .and_then(|p| std::fs::metadata(p).ok())
        .map_or(0, |m| m.len())
}

#[tokio::test]
async fn creates_whose_clients_go_away_are_all_published_and_allocated() {
    // Given a pair whose sweeper never runs: only the create itself can publish
    let stack = stack().await;
    let mut investors = Vec::new();
    for _ in 0..20 {
        investors.push(stack.investor("1000000.00", "1.00", &[100_000]).await);
    }
    let mut clients = Vec::new();
    for investor in &investors {
        clients.push(stack.investments(investor.user_id).await);
    }
    let log_start = log_len();

    // When 500 creates are abandoned at spread-out moments (20 clients, 25 creates each, one
    // after the other): half by a deadline the server enforces, half by the client dropping
    // the call, 0 to 20 ms after it started
    let clients = investors
        .iter()
        .zip(clients)
        .enumerate()
        .map(|(c, (investor, client))| {
            let request = pb::CreateInvestmentRequest {
                subscription_id: investor.subscription.id.to_string(),
                deal_id: investor.deal.id.to_string(),
                shares: 1,
                request_id: String::new(),
            };
            async move {
                let mut answered = 0;
                for i in 0..25u64 {
                    let mut client = client.clone();
                    let mut call = tonic::Request::new(request.clone());
                    let after = Duration::from_millis((c as u64 * 25 + i) * 7 % 21);
                    let ok = if i % 2 == 0 {
                        call.set_timeout(after);
                        client.create_investment(call).await.is_ok()
                    } else {
                        matches!(
                            tokio::time::timeout(after, client.create_investment(call)).await,
                            Ok(Ok(_))
                        )
                    };
                    answered += usize::from(ok);
                }
                answered
            }
        });
    let answered: usize = join_all(clients).await.into_iter().sum();

    // Then every investment that was committed, answered or not, is published and allocated
    let all = stack.all_terminal(Duration::from_secs(60)).await;
    assert!(
        all.len() >= answered,
        "{answered} answered, {} stored",
        all.len()
    );
    assert!(
        all.iter()
            .all(|i| i.allocation_status == AllocationStatus::Completed),
        "every committed create is allocated"
    );
    // ... none half-done: each has the first entry of its event log
    let logged = AllocationEvent::find()
        .filter(allocation_event::Column::Version.eq(1))
        .count(&stack.db)
        .await
        .expect("events");
    assert_eq!(logged as usize, all.len());
    check_invariants(&stack.db).await;
    // ... and PostgreSQL never saw a connection reused in the middle of a transaction
    match log_lines_since(log_start, &stack.test_db.name) {
        Some(lines) => {
            let bad: Vec<_> = lines
                .iter()
                .filter(|l| TRANSACTION_STATE_WARNINGS.iter().any(|w| l.contains(w)))
                .collect();
            assert!(bad.is_empty(), "PostgreSQL warned: {bad:#?}");
        }
        None => eprintln!("INVEST_PG_LOG unset: PostgreSQL's log not checked"),
    }
    eprintln!(
        "{answered} of 500 abandoned creates answered; {} stored",
        all.len()
    );
}
