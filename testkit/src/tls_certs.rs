//! Certificates for TLS tests: a CA made at run time (devtls) and the PEM files it issues, in
//! a directory of their own removed on drop. No key is ever checked in.

use std::path::{Path, PathBuf};

use uuid::Uuid;

/// A test CA and the directory its files are written to.
pub struct TestCa {
    authority: devtls::Authority,
    dir: PathBuf,
    ca_file: PathBuf,
}

impl TestCa {
    /// A fresh CA named `name`; its certificate is written to `<dir>/ca.pem`.
    pub fn new(name: &str) -> TestCa {
        let dir = std::env::temp_dir().join(format!("invest-tls-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("certificate directory");
        let authority = devtls::Authority::new(name).expect("test CA");
        let ca_file = dir.join("ca.pem");
        authority
            .write_cert(&ca_file)
            .expect("write the CA certificate");
        TestCa {
            authority,
            dir,
            ca_file,
        }
    }

    /// The CA certificate (PEM), what a client trusts.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The CA itself, to issue certificates into other directories.
    pub fn authority(&self) -> &devtls::Authority {
        &self.authority
    }

    /// A server certificate for `names`, written as `<stem>.pem` and `<stem>-key.pem`.
    pub fn server(&self, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        self.authority
            .server(names)
            .and_then(|issued| issued.write(&self.dir, stem))
            .expect("server certificate")
    }

    /// A client certificate named `name`, written as `<stem>.pem` and `<stem>-key.pem`.
    pub fn client(&self, stem: &str, name: &str) -> (PathBuf, PathBuf) {
        self.authority
            .client(name)
            .and_then(|issued| issued.write(&self.dir, stem))
            .expect("client certificate")
    }

    /// A path in the CA's directory, for other files of the test (a `.creds` file, ...).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
