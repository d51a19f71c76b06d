//! A 3-node JetStream cluster of real nats-server processes (`NATS_SERVER_BIN`) on free
//! loopback ports, one store per node and explicit routes, for tests and the bench that kill,
//! restart and step down its members.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use async_nats::jetstream;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use uuid::Uuid;

use crate::{db::TestDb, fixtures::Fixtures, nats::Names, stack::Infra};

/// Nodes of a [`Cluster`].
pub const NODES: usize = 3;

/// How long a node may take to start, or the cluster to elect and catch up.
const READY: Duration = Duration::from_secs(60);

/// Lines of a node's log shown when the cluster is not ready in time.
const LOG_TAIL: usize = 15;

/// How the nodes flush to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    /// The server's default: every 2 minutes, not before it acknowledges.
    Default,
    /// `sync_interval: always`: before every acknowledgement.
    Always,
}

/// One nats-server of the cluster.
struct Node {
    name: String,
    client_port: u16,
    route_port: u16,
    http_port: u16,
    config: PathBuf,
    child: Option<Child>,
}

/// Nodes' ports: below Linux's ephemeral range (32768-60999), which port-0 listeners and outgoing
/// connections take from; a port-0 pick was taken before nats-server bound it ("address in use").
const NODE_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port of [`NODE_PORTS`] that is free now, picked at random so concurrent clusters do not
/// try the same ones.
fn node_port() -> u16 {
    let span = u128::from(NODE_PORTS.end - NODE_PORTS.start);
    loop {
        let offset = u16::try_from(Uuid::new_v4().as_u128() % span).unwrap_or(0);
        let port = NODE_PORTS.start + offset;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// What the running nodes said while not ready, shown with each one's log tail (read on failure).
struct NotReady<'a> {
    dir: &'a std::path::Path,
    seen: Vec<(&'a Node, Result<String, String>)>,
}

impl std::fmt::Display for NotReady<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (node, said) in &self.seen {
            match said {
                Ok(leader) => writeln!(f, "{}: healthy, meta leader {leader}", node.name)?,
                Err(why) => writeln!(f, "{}: {why}", node.name)?,
            }
            writeln!(f, "{}", node.log_tail(self.dir))?;
        }
        Ok(())
    }
}

/// Three nats-server processes routed to each other, killed (and their stores removed) on drop.
pub struct Cluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

impl Cluster {
    /// Starts the three nodes with the server's default flushing and waits until the cluster
    /// has a meta leader and every node is healthy.
    pub async fn start() -> Cluster {
        Cluster::start_with(Sync::Default).await
    }

    /// [`Cluster::start`] with the given flushing.
    pub async fn start_with(sync: Sync) -> Cluster {
        let id = Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("invest-cluster-{id}"));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let ports: Vec<(u16, u16, u16)> = (0..NODES)
            .map(|_| (node_port(), node_port(), node_port()))
            .collect();
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, &(client_port, route_port, http_port))| {
                let name = format!("n{i}");
                let routes: Vec<String> = ports
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, &(_, route, _))| format!("\"nats-route://127.0.0.1:{route}\""))
                    .collect();
                let store = dir.join(&name);
                let sync_line = match sync {
                    Sync::Default => "",
                    Sync::Always => "sync_interval: always",
                };
                let text = format!(
                    "server_name: {name}\nlisten: 127.0.0.1:{client_port}\n\
                     http: 127.0.0.1:{http_port}\n\
                     jetstream {{ store_dir: {store:?}\n{sync_line} }}\n\
                     cluster {{ name: c{short}, listen: 127.0.0.1:{route_port}, routes: [{routes}] }}\n",
                    short = &id[..8],
                    routes = routes.join(", "),
                );
                let config = dir.join(format!("{name}.conf"));
                std::fs::write(&config, text).expect("node configuration");
                Node {
                    name,
                    client_port,
                    route_port,
                    http_port,
                    config,
                    child: None,
                }
            })
            .collect();
        let mut cluster = Cluster { nodes, dir };
        for node in &mut cluster.nodes {
            node.spawn(&cluster.dir);
        }
        cluster.wait_ready().await;
        cluster
    }

    /// `nats://127.0.0.1:<port>` of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].client_port)
    }

    /// Every node's URL, comma separated (what `NATS_URL` takes).
    pub fn urls(&self) -> String {
        (0..NODES)
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The route (cluster) port of node `i`.
    pub fn route_port(&self, i: usize) -> u16 {
        self.nodes[i].route_port
    }

    /// The index of the node called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Whether node `i` runs.
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// SIGKILLs node `i` (a crash: no clean shutdown, no leadership handed over) and waits for
    /// it to exit.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again on its store and waits until the whole cluster is healthy again
    /// (the node caught up on every stream and consumer).
    pub async fn restart(&mut self, i: usize) {
        assert!(!self.is_up(i), "node {i} already runs");
        self.nodes[i].spawn(&self.dir);
        self.wait_ready().await;
    }

    /// Waits until every running node answers `/healthz` with 200 (JetStream current,
    /// streams and consumers caught up) and reports the same meta leader. Past [`READY`] it
    /// fails with what each node last said and the end of its log.
    pub async fn wait_ready(&self) {
        let what = "the cluster to be healthy with one meta leader";
        crate::eventually_explained(READY, what, || async {
            let mut seen = Vec::new();
            for node in self.nodes.iter().filter(|n| n.child.is_some()) {
                seen.push((node, node.readiness().await));
            }
            let leaders: Vec<_> = seen.iter().map(|(_, r)| r.as_ref().ok()).collect();
            if let Some(Some(first)) = leaders.first()
                && leaders.iter().all(|l| *l == Some(*first))
            {
                return Ok(());
            }
            Err(NotReady {
                dir: &self.dir,
                seen,
            })
        })
        .await;
    }

    /// The node leading `stream` once it has a leader (waits for an election in progress).
    pub async fn stream_leader(&self, js: &jetstream::Context, stream: &str) -> usize {
        crate::eventually(READY, "the stream to have a leader", || async {
            let info = js.get_stream(stream).await.ok()?.info().await.ok()?.clone();
            let leader = info.cluster?.leader?;
            self.index_of(&leader)
        })
        .await
    }

    /// The node leading the durable `consumer` of `stream` once it has a leader.
    pub async fn consumer_leader(
        &self,
        js: &jetstream::Context,
        stream: &str,
        consumer: &str,
    ) -> usize {
        crate::eventually(READY, "the consumer to have a leader", || async {
            let mut consumer: jetstream::consumer::PullConsumer = js
                .get_stream(stream)
                .await
                .ok()?
                .get_consumer(consumer)
                .await
                .ok()?;
            let leader = consumer.info().await.ok()?.cluster.clone()?.leader?;
            self.index_of(&leader)
        })
        .await
    }

    /// Asks the leader of `stream` to step down (`$JS.API.STREAM.LEADER.STEPDOWN.<stream>`),
    /// then waits until another node leads it; returns the old and the new leader.
    pub async fn step_down(&self, js: &jetstream::Context, stream: &str) -> (usize, usize) {
        let old = self.stream_leader(js, stream).await;
        ask_step_down(js, format!("$JS.API.STREAM.LEADER.STEPDOWN.{stream}")).await;
        let new = crate::eventually(READY, "another node to lead the stream", || async {
            let leader = self.stream_leader(js, stream).await;
            (leader != old).then_some(leader)
        })
        .await;
        (old, new)
    }

    /// The same for the durable `consumer` of `stream`
    /// (`$JS.API.CONSUMER.LEADER.STEPDOWN.<stream>.<consumer>`).
    pub async fn step_down_consumer(
        &self,
        js: &jetstream::Context,
        stream: &str,
        consumer: &str,
    ) -> (usize, usize) {
        let old = self.consumer_leader(js, stream, consumer).await;
        ask_step_down(
            js,
            format!("$JS.API.CONSUMER.LEADER.STEPDOWN.{stream}.{consumer}"),
        )
        .await;
        let new = crate::eventually(READY, "another node to lead the consumer", || async {
            let leader = self.consumer_leader(js, stream, consumer).await;
            (leader != old).then_some(leader)
        })
        .await;
        (old, new)
    }

    /// A fresh database and this cluster, with stream and consumer replicas `replicas` for
    /// every service of the test.
    pub async fn infra(&self, replicas: usize) -> anyhow::Result<Infra> {
        crate::init_logging();
        let test_db = TestDb::create().await?;
        let db = test_db.connect().await;
        Ok(Infra {
            fixtures: Fixtures::new(db.clone()),
            db,
            names: Names::unique(),
            nats: self.client().await,
            nats_url: self.urls(),
            nats_server: None,
            extra_args: vec![format!("--nats-stream-replicas={replicas}")],
            test_db,
        })
    }

    /// A client of the whole cluster (seeded with every URL) that reconnects forever.
    pub async fn client(&self) -> async_nats::Client {
        let addrs: Vec<async_nats::ServerAddr> = (0..NODES)
            .map(|i| self.url(i).parse().expect("server address"))
            .collect();
        async_nats::ConnectOptions::new()
            .max_reconnects(None)
            .connect(addrs)
            .await
            .expect("connect to the cluster")
    }
}

impl Node {
    /// The meta leader this node names once its `/healthz` is 200, or what it said instead.
    async fn readiness(&self) -> Result<String, String> {
        match http_get(self.http_port, "/healthz").await {
            Some((200, _)) => {}
            Some((status, body)) => return Err(format!("/healthz {status}: {}", body.trim())),
            None => return Err("/healthz did not answer".into()),
        }
        let (_, body) = http_get(self.http_port, "/jsz")
            .await
            .ok_or("/jsz did not answer")?;
        let jsz: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("/jsz: {e}"))?;
        match jsz["meta_cluster"]["leader"].as_str() {
            Some(leader) if !leader.is_empty() => Ok(leader.to_owned()),
            _ => Err("no meta leader".into()),
        }
    }

    /// The node's log file in the cluster's directory.
    fn log(&self, dir: &std::path::Path) -> PathBuf {
        dir.join(format!("{}.log", self.name))
    }

    /// The last lines of the node's log, for a failure message.
    fn log_tail(&self, dir: &std::path::Path) -> String {
        let text = std::fs::read_to_string(self.log(dir)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
    }

    fn spawn(&mut self, dir: &std::path::Path) {
        let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".to_owned());
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&self.config)
            .arg("-l")
            .arg(self.log(dir))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin} (set NATS_SERVER_BIN): {e}"));
        self.child = Some(child);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..NODES {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends a step-down request and fails unless the leader accepted it.
async fn ask_step_down(js: &jetstream::Context, subject: String) {
    let reply = js
        .client()
        .request(subject, "".into())
        .await
        .expect("step-down answered");
    let reply: serde_json::Value =
        serde_json::from_slice(&reply.payload).expect("step-down reply is JSON");
    assert_eq!(reply["success"], true, "step-down refused: {reply}");
}

/// `GET path` on the monitoring port: the status code and the body, `None` if it does not
/// answer (yet).
async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let read = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .ok()
        .flatten()
}
