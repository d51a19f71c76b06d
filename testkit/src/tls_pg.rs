//! A private PostgreSQL that accepts TLS connections only: a throwaway cluster (initdb into a
//! temporary directory) started with `ssl=on` and a server certificate of a test CA, whose
//! `pg_hba.conf` trusts `hostssl` from 127.0.0.1 and rejects plaintext `host` connections.
//! Stopped (fast shutdown) and removed on drop.
//!
//! initdb and postgres refuse to run as root: as root they run as the OS user `invest-pg`
//! (`INVEST_PG_OS_USER`, which `scripts/lib/infra.sh` creates) through `runuser`, and the
//! cluster's files belong to it. Binaries are found as infra.sh finds them.

use std::{
    net::TcpListener,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use uuid::Uuid;

use crate::tls_certs::TestCa;

/// A TLS-only PostgreSQL cluster with the trusted superuser `postgres`.
pub struct TlsPostgres {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl TlsPostgres {
    /// Makes and starts a cluster on a free port whose server certificate (issued by `ca`)
    /// names only `names`, and waits until it accepts a TLS connection.
    pub async fn start(ca: &TestCa, names: &[&str]) -> TlsPostgres {
        let bin = bin_dir();
        let owner = OsUser::for_postgres();
        let dir = std::env::temp_dir().join(format!("invest-tlspg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        owner.give(&dir);
        let data = dir.join("data");
        let initdb = owner
            .command(&bin.join("initdb"))
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
        // Plaintext from 127.0.0.1 is refused; only TLS is trusted.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 reject\n",
        )
        .expect("write pg_hba.conf");
        let (cert, key) = ca
            .authority()
            .server(names)
            .and_then(|issued| issued.write(&dir, "server"))
            .expect("server certificate");
        // The server wants its key private to the user it runs as (mode 0600 from devtls).
        owner.give(&cert);
        owner.give(&key);

        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(dir.join("postgres.log")).expect("log file");
        let setting = |name: &str, value: &Path| format!("{name}={}", value.display());
        let child = owner
            .command(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "ssl=on",
                "-c",
                "fsync=off",
            ])
            .args(["-c", &setting("ssl_cert_file", &cert)])
            .args(["-c", &setting("ssl_key_file", &key)])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting postgres");
        let mut server = TlsPostgres { child, port, dir };
        server.wait_ready().await;
        server
    }

    /// `postgres://postgres@<host>:<port>/<database>?<query>`.
    pub fn url(&self, host: &str, database: &str, query: &str) -> String {
        format!(
            "postgres://postgres@{host}:{}/{database}?{query}",
            self.port
        )
    }

    /// The server's log so far, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self) {
        // TLS without verification: readiness only, the tests check verification.
        let url = self.url("127.0.0.1", "postgres", "sslmode=require");
        let log = self.dir.join("postgres.log");
        let child = &mut self.child;
        crate::eventually(
            Duration::from_secs(30),
            "the TLS PostgreSQL to accept connections",
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

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        // Fast shutdown (SIGINT to the postmaster), then wait for it with a deadline.
        let pid = self.postmaster_pid();
        if let Some(pid) = &pid {
            let _ = Command::new("kill").args(["-INT", pid]).status();
        }
        let give_up = Instant::now() + Duration::from_secs(20);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Some(pid) = &pid {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
