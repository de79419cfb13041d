//! Certificates generated at test time (rcgen): a CA, a server certificate for 127.0.0.1 and
//! localhost, and a client certificate, as PEM files in a temp dir.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

/// PEM files: `ca.pem`, `server.pem` + `server-key.pem`, `client.pem` + `client-key.pem`.
#[derive(Debug)]
pub struct TlsFiles {
    dir: TempDir,
}

impl TlsFiles {
    /// Generates a CA and a server and a client certificate signed by it. The client
    /// certificate's common name is `client_name`.
    pub fn generate(client_name: &str) -> TlsFiles {
        let dir = tempfile::Builder::new()
            .prefix("registry-tls-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot make a temp dir: {e}"));
        let fail = |e: rcgen::Error| -> ! { panic!("cannot generate certificates: {e}") };
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| fail(e));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name = name("rpc test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().unwrap_or_else(|e| fail(e));
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap_or_else(|e| fail(e));
        write(dir.path(), "ca.pem", &ca.pem());
        let leaf = |file: &str, sans: Vec<String>, common: &str, usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(sans).unwrap_or_else(|e| fail(e));
            params.distinguished_name = name(common);
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().unwrap_or_else(|e| fail(e));
            let cert = params.signed_by(&key, &ca).unwrap_or_else(|e| fail(e));
            write(dir.path(), &format!("{file}.pem"), &cert.pem());
            write(dir.path(), &format!("{file}-key.pem"), &key.serialize_pem());
        };
        leaf(
            "server",
            vec!["127.0.0.1".into(), "localhost".into()],
            "etcd",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        leaf(
            "client",
            Vec::new(),
            client_name,
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        TlsFiles { dir }
    }

    /// A file of this set by name, e.g. `ca.pem`.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// The client certificate and its key.
    pub fn client(&self) -> (PathBuf, PathBuf) {
        (self.path("client.pem"), self.path("client-key.pem"))
    }

    /// The server certificate and its key.
    pub fn server(&self) -> (PathBuf, PathBuf) {
        (self.path("server.pem"), self.path("server-key.pem"))
    }
}

fn name(common: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common);
    name
}

fn write(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
