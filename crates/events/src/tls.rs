//! The TLS material of a vnfm NATS deployment, made once into a directory and reused after: a
//! self-signed CA (`ca.pem`, which clients trust with `--nats-tls-ca`) and one certificate for
//! the servers (`server.pem`, `server-key.pem`, 0600), valid for `localhost`, `127.0.0.1` and
//! `::1`, for client connections and for the routes between cluster nodes (which present it
//! to each other and verify it against the CA). The CA's own key is never written: nothing
//! can sign another certificate with it after this, and a lost certificate is made anew with
//! the whole directory.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::credentials::{self, CredentialsError};

/// The files of one TLS directory.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA certificate clients and cluster nodes trust.
    pub ca: PathBuf,
    /// The servers' certificate, signed by the CA.
    pub cert: PathBuf,
    /// The servers' private key (0600).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files in `dir`, whether they exist or not.
    pub fn in_dir(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server-key.pem"),
        }
    }

    /// The nats-server `tls { … }` block that serves with these files; with `verify`, the
    /// other side must present a certificate the CA signed too (the routes of a cluster).
    pub fn server_block(&self, verify: bool) -> String {
        format!(
            "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  ca_file: {:?}\n  verify: {verify}\n}}\n",
            self.cert.display().to_string(),
            self.key.display().to_string(),
            self.ca.display().to_string(),
        )
    }
}

/// The TLS files in `dir`, made (with a fresh CA) when the server certificate is missing.
pub fn ensure(dir: &Path) -> Result<TlsFiles, CredentialsError> {
    let files = TlsFiles::in_dir(dir);
    if files.cert.exists() && files.key.exists() && files.ca.exists() {
        return Ok(files);
    }
    credentials::private_dir(dir)?;
    let failed = |e: rcgen::Error| CredentialsError::Certificate {
        dir: dir.to_owned(),
        reason: e.to_string(),
    };
    let ca_key = KeyPair::generate().map_err(failed)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca.distinguished_name
        .push(DnType::CommonName, "vnfm NATS CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(failed)?;
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate().map_err(failed)?;
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).map_err(failed)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "vnfm nats-server");
    server.subject_alt_names.extend([
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ]);
    // Clients see it as a server; the other nodes of a cluster see it as a route's client.
    server.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let server_cert = server.signed_by(&server_key, &issuer).map_err(failed)?;

    // The key first and the CA last: a directory with a CA holds everything.
    for path in [&files.key, &files.cert, &files.ca] {
        if path.exists() {
            std::fs::remove_file(path).map_err(|source| CredentialsError::Io {
                path: path.clone(),
                source,
            })?;
        }
    }
    credentials::write_private(&files.key, &server_key.serialize_pem())?;
    credentials::write_private(&files.cert, &server_cert.pem())?;
    credentials::write_private(&files.ca, &ca_cert.pem())?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_material_is_made_once_and_the_key_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let files = ensure(&dir.path().join("tls")).unwrap();
        let ca = std::fs::read_to_string(&files.ca).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = ensure(&dir.path().join("tls")).unwrap();
        assert_eq!(std::fs::read_to_string(&again.ca).unwrap(), ca);
        assert!(files.server_block(true).contains("verify: true"));
    }
}
