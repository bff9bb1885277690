//! The DC's TLS certificate.
//!
//! Samba would generate one itself on first start, but with the host name
//! only in the subject CN and no subjectAltName, which rustls/webpki (and
//! any modern client) rejects; and a 4096-bit RSA key takes seconds. So
//! each DC gets a throwaway CA and an ECDSA P-256 server certificate whose
//! SANs are the DC's IP address and DNS name.

use std::fs;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use crate::DirError;

/// PEM files written for one DC.
pub(crate) struct TlsFiles {
    pub(crate) ca_pem: String,
}

/// Writes `ca.pem`, `cert.pem` and `key.pem` (mode 0600, which Samba
/// insists on) into `dir`.
pub(crate) fn write(dir: &Path, addr: IpAddr, host_fqdn: &str) -> Result<TlsFiles, DirError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Vigil test directory CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut params = CertificateParams::new(vec![host_fqdn.to_string()])?;
    params.subject_alt_names.push(SanType::IpAddress(addr));
    params
        .distinguished_name
        .push(DnType::CommonName, host_fqdn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;

    fs::create_dir_all(dir).map_err(|e| DirError::io(format!("creating {}", dir.display()), e))?;
    write_file(&dir.join("ca.pem"), &ca.pem(), 0o644)?;
    write_file(&dir.join("cert.pem"), &cert.pem(), 0o644)?;
    write_file(&dir.join("key.pem"), &key.serialize_pem(), 0o600)?;
    Ok(TlsFiles { ca_pem: ca.pem() })
}

fn write_file(path: &Path, body: &str, mode: u32) -> Result<(), DirError> {
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)?;
        f.write_all(body.as_bytes())
    };
    write().map_err(|e| DirError::io(format!("writing {}", path.display()), e))
}
