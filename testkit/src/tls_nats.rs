//! A private nats-server that requires TLS, with a certificate of a test CA, optionally
//! verifying client certificates (`verify: true`) and requiring a user and password. Its
//! configuration file is written at run time; the server is killed on drop.

use std::{
    fmt::Write as _,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use uuid::Uuid;

use crate::tls_certs::TestCa;

/// What the server demands of its clients beyond TLS.
#[derive(Clone, Debug, Default)]
pub struct Demands {
    /// `verify: true`: a client must present a certificate of the CA.
    pub client_certificate: bool,
    /// `authorization { user, password }`.
    pub user: Option<(String, String)>,
}

/// A TLS-only nats-server with JetStream, killed on drop.
pub struct TlsNatsServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl TlsNatsServer {
    /// Starts one on a free port with a server certificate of `ca` for `localhost` and
    /// `127.0.0.1`, and waits until JetStream answers a client that meets `demands`. Needs
    /// `NATS_SERVER_BIN` or `nats-server` on the PATH.
    pub async fn start(ca: &TestCa, demands: Demands) -> TlsNatsServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("invest-tlsnats-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("server directory");
        let stem = format!("nats-server-{port}");
        let (cert, key) = ca.server(&stem, &["localhost", "127.0.0.1"]);
        let config = config_file(port, &dir, &cert, &key, ca, &demands);
        let config_path = dir.join("nats.conf");
        std::fs::write(&config_path, config).expect("write nats.conf");

        let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".to_owned());
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin} (set NATS_SERVER_BIN): {e}"));
        let mut server = TlsNatsServer { child, port, dir };
        server.wait_ready(ca, &demands).await;
        server
    }

    /// `nats://127.0.0.1:<port>` (the certificate names this address and `localhost`).
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Connects as a client that meets `demands`, until JetStream answers.
    async fn wait_ready(&mut self, ca: &TestCa, demands: &Demands) {
        let (cert, key) = ca.client(&format!("probe-{}", self.port), "readiness probe");
        let url = self.url();
        let log = self.dir.join("nats.log");
        let child = &mut self.child;
        crate::eventually(
            Duration::from_secs(15),
            "the TLS nats-server to accept JetStream calls",
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = std::fs::read_to_string(&log).unwrap_or_default();
                    panic!("nats-server exited ({status}); its log:\n{log}");
                }
                let mut options = async_nats::ConnectOptions::new()
                    .require_tls(true)
                    .add_root_certificates(ca.ca_file().to_owned());
                if demands.client_certificate {
                    options = options.add_client_certificate(cert.clone(), key.clone());
                }
                if let Some((user, password)) = &demands.user {
                    options = options.user_and_password(user.clone(), password.clone());
                }
                let url = url.clone();
                async move {
                    let client = options.connect(&url).await.ok()?;
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

/// The server's configuration: TLS always (with a handshake timeout generous enough for a
/// loaded test machine), client verification and authorization as demanded.
fn config_file(
    port: u16,
    dir: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
    ca: &TestCa,
    demands: &Demands,
) -> String {
    let quoted = |p: &std::path::Path| format!("{:?}", p.display().to_string());
    let mut config = format!(
        "listen: \"127.0.0.1:{port}\"\n\
         log_file: {log}\n\
         jetstream {{ store_dir: {store} }}\n\
         tls {{\n  cert_file: {cert}\n  key_file: {key}\n  ca_file: {ca}\n  verify: {verify}\n  timeout: 5\n}}\n",
        log = quoted(&dir.join("nats.log")),
        store = quoted(&dir.join("store")),
        cert = quoted(cert),
        key = quoted(key),
        ca = quoted(ca.ca_file()),
        verify = demands.client_certificate,
    );
    if let Some((user, password)) = &demands.user {
        let _ = writeln!(
            config,
            "authorization {{ user: {user:?}, password: {password:?} }}"
        );
    }
    config
}

impl Drop for TlsNatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
