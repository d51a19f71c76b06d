//! A certificate authority made at run time with `rcgen`, so that tests and `investctl
//! dev-certs` never need a checked-in key or an `openssl` command: a CA, server certificates
//! for the names a client dials, and client certificates for mutual TLS.
//!
//! For development and tests only: keys are ECDSA P-256, written as unencrypted PEM.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// Why a certificate could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// rcgen refused the parameters (e.g. a name that is not a DNS name or an IP address).
    #[error("cannot make the certificate")]
    Certificate(#[from] rcgen::Error),
    /// The file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// A certificate and its private key, PEM encoded.
#[derive(Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl Issued {
    /// Writes `<dir>/<stem>.pem` and `<dir>/<stem>-key.pem` (the key readable by its owner only)
    /// and returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), Error> {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}-key.pem"));
        write(&cert, &self.cert_pem, 0o644)?;
        write(&key, &self.key_pem, 0o600)?;
        Ok((cert, key))
    }
}

/// A self-signed certificate authority that issues server and client certificates.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl Authority {
    /// A new CA whose certificate is named `common_name`.
    pub fn new(common_name: &str) -> Result<Self, Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
        })
    }

    /// The CA certificate, for clients' and servers' trust stores.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes the CA certificate to `path`.
    pub fn write_cert(&self, path: &Path) -> Result<(), Error> {
        write(path, &self.cert_pem, 0o644)
    }

    /// A server certificate valid for `names` (DNS names or IP addresses, e.g. `localhost`,
    /// `127.0.0.1`).
    pub fn server(&self, names: &[&str]) -> Result<Issued, Error> {
        let common_name = names.first().copied().unwrap_or("server");
        self.issue(names, common_name, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate for mutual TLS, named `common_name`.
    pub fn client(&self, common_name: &str) -> Result<Issued, Error> {
        self.issue(&[], common_name, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(
        &self,
        names: &[&str],
        common_name: &str,
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<Issued, Error> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name = name(common_name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "invest development CA");
    dn
}

fn write(path: &Path, contents: &str, mode: u32) -> Result<(), Error> {
    let failed = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    fs::write(path, contents).map_err(failed)?;
    set_mode(path, mode).map_err(failed)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_pem_certificates_and_keys() {
        let ca = Authority::new("test CA").expect("ca");
        let server = ca.server(&["localhost", "127.0.0.1"]).expect("server");
        let client = ca.client("a client").expect("client");
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        for issued in [&server, &client] {
            assert!(issued.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
            assert!(issued.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        }
    }
}
