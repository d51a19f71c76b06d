//! How the NATS connection is secured, from the settings: TLS (the CA to trust, a client
//! certificate for servers that verify clients) and credentials (a `.creds` file, or a user
//! and password). Every file is read here, before connecting, so a bad one is a start-up error
//! naming its setting and path, not a TLS failure deep inside the first connection attempt.
//!
//! TLS is rustls with ring, the one crypto provider linked into the process: async-nats builds
//! its `ClientConfig` from the process default, which rustls picks from its single enabled
//! provider, so no `CryptoProvider::install_default` is needed.

use std::{fs, io, path::Path};

use async_nats::{
    ConnectOptions,
    rustls::pki_types::{
        CertificateDer, PrivateKeyDer,
        pem::{self, PemObject},
    },
};

use crate::config::NatsArgs;

/// Why the NATS security settings cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A file named by a setting is unreadable or does not hold what it should.
    #[error("{setting}: cannot use {}", path.display())]
    File {
        /// The setting, e.g. `NATS_TLS_CA_FILE`.
        setting: &'static str,
        /// The file it names.
        path: std::path::PathBuf,
        /// What is wrong with it.
        #[source]
        problem: FileProblem,
    },
    /// One of a pair of settings without the other (`NATS_TLS_CERT_FILE` without its key).
    #[error("{0} is set without {1}")]
    Incomplete(&'static str, &'static str),
}

/// What is wrong with a file named by a setting.
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    /// It cannot be read (missing, no permission, not UTF-8 for a `.creds` file).
    #[error("cannot read the file")]
    Read(#[source] io::Error),
    /// It is not PEM.
    #[error("not valid PEM")]
    Pem(#[source] pem::Error),
    /// It holds no certificate.
    #[error("no PEM certificate in the file")]
    NoCertificate,
    /// It holds no private key.
    #[error("no PEM private key in the file")]
    NoKey,
    /// It is not a NATS credentials file (user JWT and nkey seed).
    #[error("not a valid NATS credentials file")]
    Creds(#[source] io::Error),
}

/// Connect options carrying the TLS and authentication settings of `args` (none set: a
/// plaintext connection without credentials, as before these settings existed).
pub fn options(args: &NatsArgs) -> Result<ConnectOptions, SettingsError> {
    let mut options = ConnectOptions::new();
    if let Some(ca) = &args.nats_tls_ca_file {
        certificates("NATS_TLS_CA_FILE", ca)?;
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    match (&args.nats_tls_cert_file, &args.nats_tls_key_file) {
        (Some(cert), Some(key)) => {
            certificates("NATS_TLS_CERT_FILE", cert)?;
            private_key("NATS_TLS_KEY_FILE", key)?;
            options = options
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        (Some(_), None) => {
            return Err(SettingsError::Incomplete(
                "NATS_TLS_CERT_FILE",
                "NATS_TLS_KEY_FILE",
            ));
        }
        (None, Some(_)) => {
            return Err(SettingsError::Incomplete(
                "NATS_TLS_KEY_FILE",
                "NATS_TLS_CERT_FILE",
            ));
        }
        (None, None) => {}
    }
    if let Some(path) = &args.nats_creds_file {
        const SETTING: &str = "NATS_CREDS_FILE";
        let creds =
            fs::read_to_string(path).map_err(|e| bad(SETTING, path, FileProblem::Read(e)))?;
        options = options
            .credentials(&creds)
            .map_err(|e| bad(SETTING, path, FileProblem::Creds(e)))?;
    }
    match (&args.nats_user, &args.nats_password) {
        (Some(user), Some(password)) => {
            options = options.user_and_password(user.clone(), password.expose().to_owned());
        }
        (Some(_), None) => return Err(SettingsError::Incomplete("NATS_USER", "NATS_PASSWORD")),
        (None, Some(_)) => return Err(SettingsError::Incomplete("NATS_PASSWORD", "NATS_USER")),
        (None, None) => {}
    }
    Ok(options)
}

/// Checks that `path` holds at least one PEM certificate (async-nats reads it again itself).
fn certificates(setting: &'static str, path: &Path) -> Result<(), SettingsError> {
    let pem = fs::read(path).map_err(|e| bad(setting, path, FileProblem::Read(e)))?;
    let mut found = false;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| bad(setting, path, FileProblem::Pem(e)))?;
        found = true;
    }
    if found {
        Ok(())
    } else {
        Err(bad(setting, path, FileProblem::NoCertificate))
    }
}

/// Checks that `path` holds a PEM private key.
fn private_key(setting: &'static str, path: &Path) -> Result<(), SettingsError> {
    let pem = fs::read(path).map_err(|e| bad(setting, path, FileProblem::Read(e)))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map(|_| ())
        .map_err(|e| match e {
            pem::Error::NoItemsFound => bad(setting, path, FileProblem::NoKey),
            e => bad(setting, path, FileProblem::Pem(e)),
        })
}

fn bad(setting: &'static str, path: &Path, problem: FileProblem) -> SettingsError {
    SettingsError::File {
        setting,
        path: path.to_owned(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser};

    use super::*;

    #[derive(Parser)]
    struct Only {
        #[command(flatten)]
        nats: NatsArgs,
    }

    #[test]
    fn the_nats_password_is_never_shown() {
        let args = Only::try_parse_from(["t", "--nats-user=svc", "--nats-password=hunter2-secret"])
            .expect("parse");
        assert!(!format!("{:?}", args.nats).contains("hunter2-secret"));
        let command = Only::command();
        let password = command
            .get_arguments()
            .find(|a| a.get_id() == "nats_password")
            .expect("the NATS_PASSWORD argument");
        // `--help` must not print the value of NATS_PASSWORD from the environment.
        assert!(password.is_hide_env_values_set());
    }

    #[test]
    fn a_user_needs_a_password_and_a_certificate_its_key() {
        for args in [
            &["t", "--nats-user=svc"][..],
            &["t", "--nats-tls-cert-file=c.pem"][..],
            &[
                "t",
                "--nats-creds-file=x.creds",
                "--nats-user=svc",
                "--nats-password=p",
            ][..],
        ] {
            assert!(Only::try_parse_from(args).is_err(), "{args:?} accepted");
        }
    }

    #[test]
    fn no_settings_means_plaintext_without_credentials() {
        let args = Only::try_parse_from(["t"]).expect("parse");
        options(&args.nats).expect("no file to read");
    }
}
