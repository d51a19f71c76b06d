//! `spawn_app()`: a running investment-svc with its own database and stream.

use std::{net::SocketAddr, time::Duration};

use api::v1::{self as pb, investment_service_client::InvestmentServiceClient};
use async_nats::jetstream;
use clap::Parser;
use entity::prelude::*;
use investment_svc::{App, Config};
use prost::Message;
use sea_orm::DatabaseConnection;
use service_kit::config::{AuthArgs, ServerArgs};
use testkit::{
    Bearer,
    db::StatementCounter,
    stack::{Infra, Running},
};
use tokio::net::TcpListener;
use tonic::{service::interceptor::InterceptedService, transport::Channel};
use uuid::Uuid;

pub type Client = InvestmentServiceClient<InterceptedService<Channel, Bearer>>;

/// Options for [`spawn_app_with`].
#[derive(Default)]
pub struct Options {
    /// Run against a private nats-server the test can stop.
    pub own_nats_server: bool,
    /// Sweeper settings (interval, min age); by default it effectively never runs.
    pub sweeper: Option<(Duration, Duration)>,
    /// Server settings (transport limits) in place of the defaults.
    pub server: Option<ServerArgs>,
    /// Token settings in place of the test secret (from `testkit::keys::auth_args()`).
    pub auth: Option<AuthArgs>,
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// Counts the statements the service sends.
    pub statements: StatementCounter,
    pub js: jetstream::Context,
    /// Stopped first when the app is dropped.
    pub service: Running,
    /// Database, NATS and names (`app.db`, `app.fixtures`, ... through `Deref`).
    pub infra: Infra,
}

impl std::ops::Deref for TestApp {
    type Target = Infra;
    fn deref(&self) -> &Infra {
        &self.infra
    }
}

impl std::ops::DerefMut for TestApp {
    fn deref_mut(&mut self) -> &mut Infra {
        &mut self.infra
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    try_spawn_app_with(options).await.expect("app builds")
}

/// As [`spawn_app_with`], but a service that refuses to start is an error to look at.
pub async fn try_spawn_app_with(options: Options) -> anyhow::Result<TestApp> {
    let infra = Infra::start(options.own_nats_server)
        .await
        .expect("database and NATS (run the tests with scripts/test)");
    let (service_db, statements) = infra.test_db.connect_counting().await;
    let mut config =
        Config::try_parse_from(infra.service_args("investment-svc")).expect("test config");
    let never = Duration::from_secs(3600);
    let (interval, min_age) = options.sweeper.unwrap_or((never, never));
    config.sweeper.sweep_interval = interval;
    config.sweeper.sweep_min_age = min_age;
    if let Some(server) = options.server {
        config.common.server = server;
    }
    if let Some(auth) = options.auth {
        config.common.auth = auth;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("port");
    let app = App::from_parts(config, service_db, infra.nats.clone(), listener).await?;
    let addr = app.local_addr().expect("bound address");
    let service = Running::start(addr, |shutdown| app.run_until_stopped(shutdown));
    Ok(TestApp {
        addr,
        statements,
        js: jetstream::new(infra.nats.clone()),
        service,
        infra,
    })
}

impl TestApp {
    pub async fn channel(&self) -> Channel {
        self.service.channel().await
    }

    /// A client calling as `user_id`.
    pub async fn client(&self, user_id: Uuid) -> Client {
        self.client_with_token(Some(testkit::token(user_id))).await
    }

    /// A client sending this token (or none).
    pub async fn client_with_token(&self, token: Option<String>) -> Client {
        InvestmentServiceClient::with_interceptor(self.channel().await, Bearer(token))
    }

    /// The messages on the test's stream, in order.
    pub async fn published(&self) -> Vec<(String, Option<String>, pb::AllocationRequest)> {
        let mut stream = self
            .js
            .get_stream(&self.names.stream)
            .await
            .expect("stream");
        let last = stream
            .info()
            .await
            .expect("stream info")
            .state
            .last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            let Ok(message) = stream.get_raw_message(seq).await else {
                continue;
            };
            let msg_id = message
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_owned());
            let request =
                pb::AllocationRequest::decode(message.payload).expect("AllocationRequest");
            out.push((message.subject.to_string(), msg_id, request));
        }
        out
    }
}

/// A user with one active subscription worth `monthly x 12` and an open deal at `price`.
pub struct Investor {
    pub user_id: Uuid,
    pub subscription: subscription::Model,
    pub deal: deal::Model,
}

pub async fn investor(app: &TestApp, monthly: &str, price: &str) -> Investor {
    let (user_id, subscription, deal) = app
        .fixtures
        .investor(monthly, price)
        .await
        .expect("investor");
    Investor {
        user_id,
        subscription,
        deal,
    }
}

pub fn create_request(
    investor: &Investor,
    shares: i64,
    request_id: &str,
) -> pb::CreateInvestmentRequest {
    pb::CreateInvestmentRequest {
        subscription_id: investor.subscription.id.to_string(),
        deal_id: investor.deal.id.to_string(),
        shares,
        request_id: request_id.to_owned(),
    }
}

/// CreateInvestment through `client`, which must accept it.
pub async fn create(
    client: &mut Client,
    investor: &Investor,
    shares: i64,
    request_id: &str,
) -> pb::Investment {
    client
        .create_investment(create_request(investor, shares, request_id))
        .await
        .expect("created")
        .into_inner()
        .investment
        .expect("investment")
}

/// A user worth 12 x 10.00 = 120.00 on a deal at 10.00 a share, and a paused subscription of
/// theirs on a plan of its own: the set-up of the create refusals and their reasons.
pub async fn investor_with_paused(app: &TestApp) -> (Investor, plan::Model, subscription::Model) {
    let investor = investor(app, "10.00", "10.00").await;
    let plan = app.fixtures.plan("100.00", None).await.expect("plan");
    let paused = app
        .fixtures
        .subscription(investor.user_id, plan.id, None, SubscriptionStatus::Paused)
        .await
        .expect("paused");
    (investor, plan, paused)
}

/// A closed deal at `price`: one no create may use, next to the investor's open one.
pub async fn closed_deal(app: &TestApp, price: &str) -> deal::Model {
    app.fixtures
        .deal(price, DealStatus::Closed)
        .await
        .expect("closed deal")
}

/// Sets what allocation-svc writes on an investment it allocates (COMPLETED, allocated now)
/// and, given a reason, what a later reversal writes: for tests that allocate by hand.
pub fn allocated_by_hand(row: &mut investment::ActiveModel, reversal: Option<&str>) {
    use sea_orm::ActiveValue::Set;
    row.allocated_at = Set(Some(chrono::Utc::now()));
    let Some(reason) = reversal else {
        row.allocation_status = Set(AllocationStatus::Completed);
        row.status = Set(InvestmentStatus::Active);
        return;
    };
    row.allocation_status = Set(AllocationStatus::Reversed);
    row.status = Set(InvestmentStatus::Reversed);
    row.reversed_at = Set(Some(chrono::Utc::now()));
    row.reversed_by = Set(Some(Uuid::new_v4()));
    row.reversal_reason = Set(Some(reason.into()));
}

/// The field names of a status's `google.rpc.BadRequest` violations.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Investments in the database.
pub async fn investment_count(db: &DatabaseConnection) -> u64 {
    use sea_orm::{EntityTrait, PaginatorTrait};
    Investment::find().count(db).await.expect("count")
}
