//! NATS for tests: unique stream and subject names on the shared server (`NATS_URL`), or a
//! private nats-server process that a test may stop and start again.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use uuid::Uuid;

/// The shared server's URL.
pub fn url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// Stream and subject prefix no other test uses.
#[derive(Clone, Debug)]
pub struct Names {
    /// Stream name.
    pub stream: String,
    /// First subject token.
    pub prefix: String,
}

impl Names {
    /// Fresh names.
    pub fn unique() -> Self {
        let id = Uuid::new_v4().simple().to_string();
        Self {
            stream: format!("TEST_{id}"),
            prefix: format!("t{id}"),
        }
    }
}

/// A private nats-server with JetStream, killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
}

impl NatsServer {
    /// Starts one on a free port with an empty store. Needs `NATS_SERVER_BIN` or
    /// `nats-server` on the PATH.
    pub async fn start() -> NatsServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let store = std::env::temp_dir().join(format!("invest-nats-{}", Uuid::new_v4().simple()));
        let mut server = NatsServer {
            child: None,
            port,
            store,
        };
        server.resume().await;
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store, and waits until JetStream answers.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".to_owned());
        let child = Command::new(&bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin} (set NATS_SERVER_BIN): {e}"));
        self.child = Some(child);
        let url = self.url();
        crate::eventually(
            Duration::from_secs(10),
            "nats-server to accept JetStream calls",
            || {
                let url = url.clone();
                async move {
                    let client = async_nats::connect(&url).await.ok()?;
                    // Any JetStream API reply means JetStream is up (works on every server version).
                    client
                        .request("$JS.API.INFO", "".into())
                        .await
                        .ok()
                        .map(|_| ())
                }
            },
        )
        .await;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// The flags every service under test shares: the test secret, NATS and its names, short
/// timeouts. Each service's harness adds its own.
pub fn service_args(names: &Names, nats_url: &str) -> Vec<String> {
    vec![
        "--listen-addr=127.0.0.1:0".into(),
        format!("--jwt-secret={}", crate::JWT_SECRET),
        format!("--nats-url={nats_url}"),
        format!("--nats-stream={}", names.stream),
        format!("--nats-subject-prefix={}", names.prefix),
        "--nats-timeout=1s".into(),
        "--shutdown-grace=5s".into(),
        "--log-format=text".into(),
    ]
}
