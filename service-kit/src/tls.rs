//! Server TLS for the gRPC port (gRPC and grpc-web alike), with mutual TLS for service callers
//! when a client CA is configured, and certificates re-read when their files change, so a
//! rotated certificate takes effect without a restart (tonic's `ServerTlsConfig` is fixed at
//! start, hence an acceptor of our own).
//!
//! rustls with the *ring* provider only: [`install_crypto_provider`] makes it the process's
//! default, so the NATS and PostgreSQL clients use the same one.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use rustls::{
    RootCertStore, ServerConfig,
    server::{VerifierBuilderError, WebPkiClientVerifier},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
use tokio::{net::TcpStream, sync::watch};
use tokio_util::sync::CancellationToken;

/// Makes *ring* the process-wide rustls provider (idempotent). Call before any TLS is used.
pub fn install_crypto_provider() {
    // Err means a provider is installed already: ours, by an earlier call.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or parsed as PEM.
    #[error("cannot read {setting} file {path}")]
    Read {
        /// The setting that names the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The file holds no certificate.
    #[error("{setting} file {path} holds no certificate")]
    NoCertificate {
        /// The setting that names the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The client CA cannot verify anything.
    #[error("TLS_CLIENT_CA_FILE {path} cannot be used to verify clients")]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: VerifierBuilderError,
    },
    /// rustls refused the certificate and key (e.g. a key that is not the certificate's).
    #[error("TLS_CERT_FILE and TLS_KEY_FILE cannot be used together")]
    Config(#[source] rustls::Error),
}

/// The files of a TLS listener.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// CA whose client certificates are required (mutual TLS); `None`: no client certificate.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// Reads the files into a rustls configuration offering HTTP/2 and HTTP/1.1 (grpc-web).
    pub fn load(&self) -> Result<ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates("TLS_CLIENT_CA_FILE", path)? {
                    roots.add(cert).map_err(TlsError::Config)?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|source| TlsError::ClientCa {
                            path: path.clone(),
                            source,
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|source| TlsError::Read {
            setting: "TLS_KEY_FILE",
            path: self.key.clone(),
            source,
        })?;
        let mut config = builder
            .with_single_cert(certificates("TLS_CERT_FILE", &self.cert)?, key)
            .map_err(TlsError::Config)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// What changes when any file is rewritten (modification time and length of each).
    fn fingerprint(&self) -> Vec<Option<(SystemTime, u64)>> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(|path| {
                fs::metadata(path)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())))
            })
            .collect()
    }
}

fn certificates(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |source| TlsError::Read {
        setting,
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            setting,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Accepts TLS with the newest configuration that loaded.
#[derive(Clone)]
pub struct Acceptor {
    config: watch::Receiver<Arc<ServerConfig>>,
}

impl Acceptor {
    /// Loads `files` (a start-up error if they are unusable) and re-reads them every `interval`
    /// when they changed, until `shutdown`. A change that does not load (a half-written file)
    /// is logged and the previous configuration kept until the next good one.
    pub fn start(
        files: TlsFiles,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> Result<Self, TlsError> {
        let (tx, config) = watch::channel(Arc::new(files.load()?));
        tokio::spawn(async move {
            let mut seen = files.fingerprint();
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let now = files.fingerprint();
                if now == seen {
                    continue;
                }
                match files.load() {
                    Ok(config) => {
                        seen = now;
                        tx.send_replace(Arc::new(config));
                        tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS files changed but do not load; keeping the previous certificate");
                    }
                }
            }
        });
        Ok(Self { config })
    }

    /// The TLS handshake on `stream`.
    pub fn accept(&self, stream: TcpStream) -> tokio_rustls::Accept<TcpStream> {
        let config = Arc::clone(&self.config.borrow());
        tokio_rustls::TlsAcceptor::from(config).accept(stream)
    }
}
