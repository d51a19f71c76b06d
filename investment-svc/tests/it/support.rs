//! `spawn_app()`: a running investment-svc with its own database and stream.

use std::{net::SocketAddr, time::Duration};

use api::v1::{self as pb, investment_service_client::InvestmentServiceClient};
use async_nats::jetstream;
use clap::Parser;
use entity::prelude::*;
use investment_svc::{App, Config};
use prost::Message;
use sea_orm::DatabaseConnection;
use service_kit::config::ServerArgs;
use testkit::{
    Bearer,
    db::{StatementCounter, TestDb},
    fixtures::Fixtures,
    nats::{Names, NatsServer},
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
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
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// A separate pool for the test's own reads and writes.
    pub db: DatabaseConnection,
    /// Counts the statements the service sends.
    pub statements: StatementCounter,
    pub fixtures: Fixtures,
    pub js: jetstream::Context,
    pub names: Names,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<anyhow::Result<()>>,
    pub nats_server: Option<NatsServer>,
    // Dropped last: the database outlives the service using it.
    pub test_db: TestDb,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    testkit::init_logging();
    let test_db = TestDb::create().await.expect("test database");
    let (service_db, statements) = test_db.connect_counting().await;
    let db = test_db.connect().await;
    let nats_server = if options.own_nats_server {
        Some(NatsServer::start().await)
    } else {
        None
    };
    let nats_url = nats_server
        .as_ref()
        .map_or_else(testkit::nats::url, NatsServer::url);
    let names = Names::unique();
    let (interval, min_age) = options
        .sweeper
        .unwrap_or((Duration::from_secs(3600), Duration::from_secs(3600)));
    let mut args = vec!["investment-svc".to_owned()];
    args.extend(testkit::nats::service_args(&names, &nats_url));
    args.push(format!("--sweep-interval={}ms", interval.as_millis()));
    args.push(format!("--sweep-min-age={}ms", min_age.as_millis()));
    let mut config = Config::try_parse_from(args).expect("test config");
    if let Some(server) = options.server {
        config.common.server = server;
    }
    let nats = async_nats::ConnectOptions::new()
        .max_reconnects(None)
        .connect(&nats_url)
        .await
        .expect("NATS (run the tests with scripts/test)");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("port");
    let app = App::from_parts(config, service_db, nats.clone(), listener)
        .await
        .expect("app builds");
    let addr = app.local_addr().expect("bound address");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let js = jetstream::new(nats);
    TestApp {
        addr,
        fixtures: Fixtures::new(db.clone()),
        db,
        statements,
        js,
        names,
        shutdown,
        server,
        nats_server,
        test_db,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestApp {
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect to the service")
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
