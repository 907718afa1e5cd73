//! Test certificates, made at test time with rcgen (no private key is ever checked in): a CA
//! with `CA:TRUE`, and leaf certificates it issues for `127.0.0.1` and `localhost` with both
//! server and client key purposes, written as PEM files into a private temporary directory
//! removed on drop.
//!
//! Not every test file uses every helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use ltprotocol::tls::{ClientAuth, ClientTls, ServerTls};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, date_time_ymd,
};

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub(crate) struct CertFiles {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// What a leaf certificate carries.
#[derive(Debug, Clone)]
pub(crate) struct Leaf<'a> {
    /// The subject's common name, also the file names' stem.
    pub(crate) name: &'a str,
    /// Subject alternative names: IP addresses and DNS names.
    pub(crate) sans: Vec<String>,
    /// Issued long expired (2000 to 2001).
    pub(crate) expired: bool,
}

impl<'a> Leaf<'a> {
    /// A certificate for `127.0.0.1` and `localhost`, valid now, usable by a server and a
    /// client alike.
    pub(crate) fn local(name: &'a str) -> Self {
        Self {
            name,
            sans: vec!["127.0.0.1".into(), "localhost".into()],
            expired: false,
        }
    }

    /// The same, expired.
    pub(crate) fn expired(name: &'a str) -> Self {
        Self {
            expired: true,
            ..Self::local(name)
        }
    }
}

/// A CA and a directory for the files it issues.
pub(crate) struct Pki {
    dir: PathBuf,
    /// Whether the directory is ours to remove.
    owns_dir: bool,
    name: String,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    /// A new CA named `name`, writing into a fresh temporary directory.
    pub(crate) fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ltp-tls-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        Self::create(name, dir, true)
    }

    /// A new CA named `name`, writing into `dir`, which it leaves in place.
    pub(crate) fn new_in(name: &str, dir: &Path) -> Self {
        Self::create(name, dir.to_path_buf(), false)
    }

    fn create(name: &str, dir: PathBuf, owns_dir: bool) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, "ltprotocol tests");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let pki = Self {
            dir,
            owns_dir,
            name: name.to_owned(),
            ca,
        };
        std::fs::write(pki.ca_file(), pki.ca.pem()).expect("write CA");
        pki
    }

    /// The CA certificate's PEM file.
    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// The directory the files are in.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Issues a leaf certificate (EKU serverAuth and clientAuth) and writes it and its key.
    pub(crate) fn issue(&self, leaf: &Leaf<'_>) -> CertFiles {
        let mut params = CertificateParams::new(leaf.sans.clone()).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, leaf.name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "ltprotocol tests");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if leaf.expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf certificate");
        let files = CertFiles {
            cert: self.dir.join(format!("{}-{}.pem", self.name, leaf.name)),
            key: self.dir.join(format!("{}-{}.key", self.name, leaf.name)),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        files
    }

    /// Server TLS with a fresh certificate for `127.0.0.1`/`localhost`.
    pub(crate) fn server_tls(&self) -> ServerTls {
        let files = self.issue(&Leaf::local("server"));
        ServerTls::from_pem_files(&files.cert, &files.key).expect("server TLS")
    }

    /// Server TLS that also verifies client certificates against this CA.
    pub(crate) fn mutual_server_tls(&self, mode: ClientAuth) -> ServerTls {
        let files = self.issue(&Leaf::local("server"));
        ServerTls::builder(&files.cert, &files.key)
            .client_auth(self.ca_file(), mode)
            .build()
            .expect("server TLS")
    }

    /// Client TLS trusting this CA, without a client certificate.
    pub(crate) fn client_tls(&self) -> ClientTls {
        ClientTls::builder()
            .ca_file(self.ca_file())
            .build()
            .expect("client TLS")
    }

    /// Client TLS trusting `trusted`'s CA and presenting a certificate from this CA for
    /// `leaf`.
    pub(crate) fn client_tls_with_cert(&self, trusted: &Self, leaf: &Leaf<'_>) -> ClientTls {
        let files = self.issue(leaf);
        ClientTls::builder()
            .ca_file(trusted.ca_file())
            .client_cert(&files.cert, &files.key)
            .build()
            .expect("client TLS")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
