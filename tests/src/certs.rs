//! Certificates made at test time with `rcgen`: a CA, provider certificates for 127.0.0.1
//! (valid, expired, or for another name), and client certificates, written as PEM files in
//! a temp dir.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// A test CA whose certificate is written to `ca.pem` in `dir`.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
    /// The CA certificate's PEM file: what consumers trust.
    pub ca: PathBuf,
}

impl TestCa {
    /// A new CA named `name`, its files in `dir`.
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let ca = dir.join(format!("{name}.pem"));
        std::fs::write(&ca, issuer.pem()).expect("write CA");
        TestCa {
            issuer,
            dir: dir.to_path_buf(),
            ca,
        }
    }

    /// A provider certificate for 127.0.0.1 and `localhost`, valid now.
    pub fn server(&self, file: &str) -> CertFiles {
        self.issue(file, &["127.0.0.1", "localhost"], "provider", Validity::Now)
    }

    /// A certificate whose validity ended yesterday.
    pub fn expired_server(&self, file: &str) -> CertFiles {
        self.issue(
            file,
            &["127.0.0.1", "localhost"],
            "provider",
            Validity::Expired,
        )
    }

    /// A provider certificate for `name` only (not for 127.0.0.1).
    pub fn server_named(&self, file: &str, name: &str) -> CertFiles {
        self.issue(file, &[name], "provider", Validity::Now)
    }

    /// A client certificate whose subject common name is `caller`.
    pub fn client(&self, file: &str, caller: &str) -> CertFiles {
        self.issue(file, &[caller], caller, Validity::Now)
    }

    fn issue(&self, file: &str, names: &[&str], common_name: &str, when: Validity) -> CertFiles {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let now = OffsetDateTime::now_utc();
        (params.not_before, params.not_after) = match when {
            Validity::Now => (now - Duration::hours(1), now + Duration::days(1)),
            Validity::Expired => (now - Duration::days(3), now - Duration::days(1)),
        };
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let files = CertFiles {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        files
    }
}

enum Validity {
    Now,
    Expired,
}
