//! `investctl dev-certs`: a development CA and the certificates `scripts/up --tls` serves with,
//! made once (an existing CA is kept, so browsers and NSS databases that trust it stay valid).

use std::{fs, path::Path};

use anyhow::Context as _;

/// The names a local client dials: the services, the dashboard and NATS/PostgreSQL on loopback.
const SERVER_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Writes `ca.pem`, `server.pem` / `server-key.pem` (for `SERVER_NAMES`) and `client.pem` /
/// `client-key.pem` (mutual TLS) into `dir`, unless `ca.pem` is already there.
pub fn make(dir: &Path) -> anyhow::Result<()> {
    let ca_file = dir.join("ca.pem");
    if ca_file.exists() {
        eprintln!("{} exists; keeping the development CA", ca_file.display());
        return Ok(());
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca = devtls::Authority::new("invest development CA")?;
    ca.server(SERVER_NAMES)?.write(dir, "server")?;
    ca.client("invest-dev-client")?.write(dir, "client")?;
    // The CA last: its presence says the set is complete.
    ca.write_cert(&ca_file)?;
    eprintln!(
        "wrote a development CA and certificates for {} in {}",
        SERVER_NAMES.join(", "),
        dir.display()
    );
    Ok(())
}
