//! `investctl keygen`: an Ed25519 key pair for tokens (`private.pem`, `public.pem`,
//! `jwks.json`), never overwriting a key.

use std::{fs, io::Write as _, path::Path};

use anyhow::Context as _;

/// Writes a new key pair into `dir`; the private key readable by its owner only.
pub fn keygen(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let private = dir.join("private.pem");
    anyhow::ensure!(
        !private.exists(),
        "{} exists: keygen never replaces a key (pick another --dir to rotate)",
        private.display()
    );
    let pair = service_kit::auth::generate_ed25519()?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(&private)
        .and_then(|mut f| f.write_all(pair.private_pem.as_bytes()))
        .with_context(|| format!("writing {}", private.display()))?;
    for (name, contents) in [
        ("public.pem", pair.public_pem.clone()),
        ("jwks.json", pair.jwks_json()),
    ] {
        let path = dir.join(name);
        fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "key {} (EdDSA) written to {}: private.pem, public.pem, jwks.json",
        pair.kid(),
        dir.display()
    );
    Ok(())
}
