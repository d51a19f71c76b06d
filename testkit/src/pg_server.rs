//! A private PostgreSQL: a throwaway cluster (initdb into a temporary directory) on a free
//! port, for tests that must do to the server what the shared one cannot suffer: accept TLS
//! only (`ssl=on` with a server certificate of a test CA; `pg_hba.conf` trusts `hostssl` from
//! 127.0.0.1 and rejects plaintext `host`), or be crashed and started again. Stopped (fast
//! shutdown) and removed on drop.
//!
//! initdb and postgres refuse to run as root: as root they run as the OS user `invest-pg`
//! (`INVEST_PG_OS_USER`, which `scripts/lib/infra.sh` creates) through `runuser`, and the
//! cluster's files belong to it. Binaries are found as infra.sh finds them.

use std::{
    net::TcpListener,
    os::unix::{fs::MetadataExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use uuid::Uuid;

use crate::tls_certs::TestCa;

/// A private cluster with the trusted superuser `postgres`.
pub struct PgServer {
    /// The server's process (or `runuser`'s, as root) while it runs.
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    owner: OsUser,
    /// `-c name=value` settings, the same on every start.
    settings: Vec<String>,
    tls: bool,
}

/// How [`PgServer::stop`] ends the server.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// `pg_ctl stop -m fast`: SIGINT to the postmaster, which ends its sessions and shuts down
    /// cleanly.
    Fast,
    /// A crash: SIGKILL to the postmaster and every process of the server at once, as when
    /// its host dies; the next start runs crash recovery.
    Crash,
}

impl PgServer {
    /// A cluster that accepts TLS only, whose server certificate (issued by `ca`) names only
    /// `names`; started and accepting a TLS connection.
    pub async fn tls(ca: &TestCa, names: &[&str]) -> PgServer {
        PgServer::start(Some((ca, names))).await
    }

    /// A cluster that accepts plaintext connections from 127.0.0.1; started and accepting.
    pub async fn plaintext() -> PgServer {
        PgServer::start(None).await
    }

    async fn start(tls: Option<(&TestCa, &[&str])>) -> PgServer {
        let owner = OsUser::for_postgres();
        let dir = std::env::temp_dir().join(format!("invest-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        owner.give(&dir);
        let data = dir.join("data");
        let initdb = owner
            .command(&bin_dir().join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "--encoding=UTF8",
                "-N",
            ])
            .stdout(Stdio::null())
            .output()
            .expect("running initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let mut settings = vec![
            "listen_addresses=127.0.0.1".to_owned(),
            "fsync=off".to_owned(),
        ];
        let hba = match tls {
            // Plaintext from 127.0.0.1 is refused; only TLS is trusted.
            Some((ca, names)) => {
                let (cert, key) = ca
                    .authority()
                    .server(names)
                    .and_then(|issued| issued.write(&dir, "server"))
                    .expect("server certificate");
                // The server wants its key private to the user it runs as (mode 0600).
                owner.give(&cert);
                owner.give(&key);
                settings.push("ssl=on".to_owned());
                settings.push(format!("ssl_cert_file={}", cert.display()));
                settings.push(format!("ssl_key_file={}", key.display()));
                "local all all trust\n\
                 hostssl all all 127.0.0.1/32 trust\n\
                 host all all 127.0.0.1/32 reject\n"
            }
            None => "local all all trust\nhost all all 127.0.0.1/32 trust\n",
        };
        std::fs::write(data.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = PgServer {
            child: None,
            port,
            dir,
            owner,
            settings,
            tls: tls.is_some(),
        };
        server.start_again().await;
        server
    }

    /// Starts the stopped server again on its port and data directory, and waits until it
    /// accepts connections (after crash recovery, if it crashed).
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        // Appended to: the log of every run, for a failing test's message.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .expect("log file");
        let mut command = self.owner.command(&bin_dir().join("postgres"));
        command
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir);
        for setting in &self.settings {
            command.args(["-c", setting]);
        }
        // A process group of its own: a crash kills every process of the server at once.
        command.process_group(0);
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting postgres");
        self.child = Some(child);
        self.wait_ready().await;
    }

    /// Stops the server (see [`Stop`]) and waits, with a deadline, until every process of it
    /// has gone. Blocks the thread meanwhile (tens of milliseconds; it also runs in `drop`).
    pub fn stop(&mut self, how: Stop) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = child.id();
        let signal = match how {
            Stop::Fast => self.postmaster_pid().map(|pid| ("-INT", pid)),
            Stop::Crash => Some(("-KILL", format!("-{group}"))),
        };
        if let Some((signal, target)) = signal {
            let _ = Command::new("kill").args([signal, "--", &target]).status();
        }
        let give_up = Instant::now() + Duration::from_secs(20);
        while (matches!(child.try_wait(), Ok(None)) || group_alive(group))
            && Instant::now() < give_up
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(child.try_wait(), Ok(None)) || group_alive(group) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `postgres://postgres@<host>:<port>/<database>?<query>`.
    pub fn url(&self, host: &str, database: &str, query: &str) -> String {
        format!(
            "postgres://postgres@{host}:{}/{database}?{query}",
            self.port
        )
    }

    /// The superuser's URL to the `postgres` database on 127.0.0.1 (TLS without verification
    /// if the server wants TLS).
    pub fn admin_url(&self) -> String {
        let mode = if self.tls { "require" } else { "disable" };
        self.url("127.0.0.1", "postgres", &format!("sslmode={mode}"))
    }

    /// The server's log so far, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self) {
        // Readiness only: the TLS tests check verification themselves.
        let url = self.admin_url();
        let log = self.dir.join("postgres.log");
        let child = self.child.as_mut().expect("started");
        crate::eventually(
            Duration::from_secs(30),
            "the private PostgreSQL to accept connections",
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = std::fs::read_to_string(&log).unwrap_or_default();
                    panic!("postgres exited ({status}); its log:\n{log}");
                }
                let url = url.clone();
                async move {
                    let db = sea_orm::Database::connect(url).await.ok()?;
                    db.close().await.ok()
                }
            },
        )
        .await;
    }

    /// The postmaster's pid (runuser, our child, is not the postmaster when run as root).
    fn postmaster_pid(&self) -> Option<String> {
        let pid = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).ok()?;
        pid.lines().next().map(str::to_owned)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop(Stop::Fast);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a process of group `group` is still alive (not a zombie awaiting its reaper).
fn group_alive(group: u32) -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .any(|stat| {
            // `pid (comm) state ppid pgrp ...`: comm may hold spaces and parentheses.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
            matches!(fields.as_slice(), [state, _, pgrp, ..]
                if *state != "Z" && pgrp.parse() == Ok(group))
        })
}

/// Who runs initdb and postgres: this process's user, or `invest-pg` when that is root.
enum OsUser {
    Current,
    Other { name: String, uid: u32, gid: u32 },
}

impl OsUser {
    fn for_postgres() -> OsUser {
        let me = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(1);
        if me != 0 {
            return OsUser::Current;
        }
        let name = std::env::var("INVEST_PG_OS_USER").unwrap_or_else(|_| "invest-pg".to_owned());
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .args([flag, &name])
                .output()
                .expect("running id");
            assert!(
                out.status.success(),
                "no OS user {name} to run PostgreSQL as (scripts/test creates it)"
            );
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("a numeric id")
        };
        let (uid, gid) = (id("-u"), id("-g"));
        OsUser::Other { name, uid, gid }
    }

    /// Makes `path` belong to this user.
    fn give(&self, path: &Path) {
        if let OsUser::Other { uid, gid, .. } = self {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid)).expect("chown");
        }
    }

    /// `program`, run as this user (from `/`, which every user can enter).
    fn command(&self, program: &Path) -> Command {
        let mut command = match self {
            OsUser::Current => Command::new(program),
            OsUser::Other { name, .. } => {
                let mut c = Command::new("runuser");
                c.args(["-u", name, "--"]).arg(program);
                c
            }
        };
        command.current_dir("/");
        command
    }
}

/// The directory of initdb and postgres: `INVEST_PG_BIN_DIR`, the system's
/// (`/usr/lib/postgresql/<newest>/bin`, `/usr/pgsql-<newest>/bin`, `pg_config --bindir`), or
/// the one `scripts/lib/infra.sh` recorded for the dev cluster (`.dev/pg/*/bindir`).
fn bin_dir() -> PathBuf {
    let ok = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Ok(dir) = std::env::var("INVEST_PG_BIN_DIR") {
        let dir = PathBuf::from(dir);
        assert!(
            ok(&dir),
            "INVEST_PG_BIN_DIR={} lacks initdb/postgres",
            dir.display()
        );
        return dir;
    }
    let newest_first = |parent: &str, prefix: &str| -> Vec<PathBuf> {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(parent)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let major = name.strip_prefix(prefix)?.split('.').next()?.parse().ok()?;
                Some((major, e.path().join("bin")))
            })
            .collect();
        found.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
        found.into_iter().map(|(_, p)| p).collect()
    };
    let mut candidates = newest_first("/usr/lib/postgresql", "");
    candidates.extend(newest_first("/usr", "pgsql-"));
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    let dev_pg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.dev/pg");
    for entry in std::fs::read_dir(dev_pg).into_iter().flatten().flatten() {
        if let Ok(recorded) = std::fs::read_to_string(entry.path().join("bindir")) {
            candidates.push(PathBuf::from(recorded.trim()));
        }
    }
    candidates
        .into_iter()
        .find(|d| ok(d))
        .expect("no PostgreSQL server binaries (set INVEST_PG_BIN_DIR, or run scripts/test)")
}
