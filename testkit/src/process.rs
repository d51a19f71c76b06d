//! Service binaries as real processes, for tests that kill or signal them.

use std::{
    net::SocketAddr,
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

/// A running service process, killed on drop.
pub struct Process {
    child: Child,
    addr: SocketAddr,
}

impl Process {
    /// Starts `bin` with `args` (quiet) and waits until it accepts connections on `addr`.
    pub async fn spawn(bin: &str, args: &[String], addr: SocketAddr) -> Process {
        let child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
        crate::eventually(
            Duration::from_secs(20),
            "the service to listen",
            || async move { tokio::net::TcpStream::connect(addr).await.ok().map(|_| ()) },
        )
        .await;
        Process { child, addr }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `signal` (`KILL`, `TERM`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit, at most `deadline`.
    pub async fn wait(&mut self, deadline: Duration) -> ExitStatus {
        crate::eventually(deadline, "the process to exit", || {
            let status = self.child.try_wait().expect("try_wait");
            async move { status }
        })
        .await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on the loopback interface.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// What a process that ran to its end printed.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// Standard output and standard error, one after the other.
    pub output: String,
}

/// Runs `bin` with `args` and only the environment `env` (plus `PATH`), waits at most
/// `deadline` for it to exit, and returns what it printed: for checking a binary's `--help`
/// and start-up failures, e.g. that no secret appears in them.
pub async fn run_to_end(
    bin: &str,
    args: &[&str],
    env: &[(&str, &str)],
    deadline: Duration,
) -> Finished {
    let dir = std::env::temp_dir().join(format!("invest-run-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    // Files rather than pipes: a chatty process can never block on a full pipe.
    let out = std::fs::File::create(dir.join("out")).expect("stdout file");
    let err = std::fs::File::create(dir.join("err")).expect("stderr file");
    let mut child = Command::new(bin)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
    let status = crate::eventually(deadline, "the process to exit", || {
        let status = child.try_wait().expect("try_wait");
        async move { status }
    })
    .await;
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let output = format!("{}{}", read("out"), read("err"));
    let _ = std::fs::remove_dir_all(&dir);
    Finished { status, output }
}
