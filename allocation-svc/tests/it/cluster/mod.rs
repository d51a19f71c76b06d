//! Against a real 3-node JetStream cluster (stream and consumer replicas 3): nodes SIGKILLed,
//! restarted and stepped down under load. Each scenario runs within a time budget and ends
//! with every accepted investment present and terminal, none allocated twice, and the audit
//! clean; what it prints (`--nocapture`) is for the issue note, never asserted.

mod faults;
mod publish;
mod replicas;
mod scale;
mod window;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use api::v1 as pb;
use entity::prelude::*;
use sea_orm::EntityTrait;
use testkit::cluster::Cluster;
use tokio::{task::JoinHandle, time::Instant};
use tonic::Code;
use uuid::Uuid;

use crate::support::*;

/// The consumer's name when tests leave it to the default.
pub const CONSUMER: &str = "allocator";

/// A stack on its own cluster; the services stop before the cluster goes.
pub struct ClusterStack {
    pub stack: Stack,
    pub cluster: Cluster,
}

impl std::ops::Deref for ClusterStack {
    type Target = Stack;
    fn deref(&self) -> &Stack {
        &self.stack
    }
}

/// A cluster, then investment-svc and `options.replicas` allocation-svc replicas on it with
/// replicas 3; the sweeper re-publishes what a publish left behind after a second.
pub async fn cluster_stack(options: Options) -> ClusterStack {
    let cluster = Cluster::start().await;
    let infra = cluster.infra(3).await.expect("database and cluster");
    let stack = stack_on(
        infra,
        Options {
            sweeper: (ms(300), secs(1)),
            ..options
        },
    )
    .await;
    ClusterStack { stack, cluster }
}

impl ClusterStack {
    /// A JetStream context on the cluster.
    pub fn js(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.nats.clone())
    }
}

/// Fails the test if `run` takes longer than `budget`: a scenario that hangs is a failure, not
/// a stuck CI job.
pub async fn within<T>(budget: Duration, run: impl Future<Output = T>) -> T {
    tokio::time::timeout(budget, run)
        .await
        .unwrap_or_else(|_| panic!("scenario over its budget of {budget:?}"))
}

/// At most one create per worker this often: load that leaves the shared cores to the
/// services.
const PACE: Duration = Duration::from_millis(20);

/// Creates that keep arriving, from `workers` clients in a loop, until stopped; every
/// investment the service accepted is remembered.
pub struct Load {
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    workers: Vec<JoinHandle<LoadReport>>,
}

/// What one load worker saw.
#[derive(Default)]
pub struct LoadReport {
    /// Investments accepted (OK answers).
    pub accepted: Vec<Uuid>,
    /// Creates refused or failed, by status code (`OK`: answered without an investment).
    pub refused: HashMap<Code, usize>,
    /// The longest a single create took.
    pub longest: Duration,
}

impl LoadReport {
    /// Creates refused or failed.
    pub fn errors(&self) -> usize {
        self.refused.values().sum()
    }

    /// Adds what another worker saw.
    pub fn absorb(&mut self, other: LoadReport) {
        self.accepted.extend(other.accepted);
        for (code, n) in other.refused {
            *self.refused.entry(code).or_default() += n;
        }
        self.longest = self.longest.max(other.longest);
    }
}

impl Load {
    /// Starts a creator per client, each for its own `(subscription, deal)`.
    pub fn start(investments: &[Investments], investors: &[(Uuid, Uuid)]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let workers = investments
            .iter()
            .enumerate()
            .map(|(w, client)| {
                let (stop, accepted, refused) = (stop.clone(), accepted.clone(), refused.clone());
                let client = client.clone();
                // Each worker creates for its own investor (its token's user).
                let (subscription, deal) = investors[w % investors.len()];
                tokio::spawn(async move {
                    let mut report = LoadReport::default();
                    let mut pace = tokio::time::interval(PACE);
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        pace.tick().await;
                        i += 1;
                        let started = Instant::now();
                        let created = client
                            .clone()
                            .create_investment(pb::CreateInvestmentRequest {
                                subscription_id: subscription.to_string(),
                                deal_id: deal.to_string(),
                                shares: (i % 3) as i64 + 1,
                                request_id: String::new(),
                            })
                            .await;
                        report.longest = report.longest.max(started.elapsed());
                        let id = created.map(|r| {
                            r.into_inner()
                                .investment
                                .and_then(|i| Uuid::try_parse(&i.id).ok())
                        });
                        match id {
                            Ok(Some(id)) => {
                                report.accepted.push(id);
                                accepted.fetch_add(1, Ordering::Relaxed);
                            }
                            failed => {
                                let code = failed.map_or_else(|s| s.code(), |_| Code::Ok);
                                *report.refused.entry(code).or_default() += 1;
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    report
                })
            })
            .collect();
        Load {
            stop,
            accepted,
            refused,
            workers,
        }
    }

    /// Waits until `more` investments beyond those accepted so far are accepted.
    pub async fn wait_for(&self, more: usize) {
        until(&self.accepted, more, "creates to be accepted").await;
    }

    /// Waits until `more` creates beyond those refused so far are refused.
    pub async fn wait_for_refusals(&self, more: usize) {
        until(&self.refused, more, "creates to be refused").await;
    }

    /// Stops the creators and merges what they saw.
    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = LoadReport::default();
        for worker in self.workers {
            all.absorb(worker.await.expect("load worker"));
        }
        all
    }
}

/// Waits until `counter` has grown by `more`.
async fn until(counter: &AtomicUsize, more: usize, what: &str) {
    let target = counter.load(Ordering::Relaxed) + more;
    testkit::eventually(secs(120), what, || async {
        (counter.load(Ordering::Relaxed) >= target).then_some(())
    })
    .await;
}

/// Investors with deep inventory on a stack, as `(subscription, deal)` for [`Load`], and one
/// create client per worker.
pub async fn load_on(
    stack: &Stack,
    investors: usize,
    workers: usize,
) -> (Vec<Investor>, Vec<Investments>, Vec<(Uuid, Uuid)>) {
    let mut all = Vec::new();
    for _ in 0..investors {
        all.push(stack.investor("1200000.00", "1.00", &[100_000]).await);
    }
    let mut clients = Vec::new();
    for w in 0..workers {
        clients.push(stack.investments(all[w % all.len()].user_id).await);
    }
    let pairs = (0..workers)
        .map(|w| {
            let investor = &all[w % all.len()];
            (investor.subscription.id, investor.deal.id)
        })
        .collect();
    (all, clients, pairs)
}

/// The checks of every scenario: each accepted investment is in the database (0 lost), every
/// investment is terminal (0 stranded) within `deadline`, exactly allocated or not at all (0
/// allocated twice) and the audit is clean. Prints what it found and how long the backlog
/// took to finish after `since` (the fault).
pub async fn check_outcome(stack: &Stack, report: &LoadReport, since: Instant, what: &str) {
    let all = stack.all_terminal(secs(120)).await;
    let recovered = since.elapsed();
    let ids: HashSet<Uuid> = all.iter().map(|i| i.id).collect();
    let lost = report
        .accepted
        .iter()
        .filter(|id| !ids.contains(id))
        .count();
    assert_eq!(lost, 0, "{what}: accepted investments missing");
    let completed = all
        .iter()
        .filter(|i| i.allocation_status == AllocationStatus::Completed)
        .count();
    // One COMPLETED event per completed investment: none allocated twice.
    let events = AllocationEvent::find()
        .all(&stack.db)
        .await
        .expect("events");
    let completions = events
        .iter()
        .filter(|e| e.allocation_status == AllocationStatus::Completed)
        .count();
    assert_eq!(
        completions, completed,
        "{what}: an investment completed twice"
    );
    check_invariants(&stack.db).await;
    eprintln!(
        "[cluster] {what}: {} accepted, {} create errors, 0 lost, 0 double, 0 stranded; \
         {completed} completed; longest create {:?}; all terminal {:?} after the fault",
        report.accepted.len(),
        report.errors(),
        report.longest,
        recovered,
    );
}

/// Ends the scenario's load and checks it.
pub async fn finish(stack: &Stack, load: Load, since: Instant, what: &str) {
    let report = load.stop().await;
    check_outcome(stack, &report, since, what).await;
}

/// The budget of one scenario on 2 shared cores.
pub const BUDGET: Duration = Duration::from_secs(180);
