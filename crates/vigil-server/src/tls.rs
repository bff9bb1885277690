//! The server's TLS identity.
//!
//! On first start the server generates a self-signed certificate (rcgen,
//! ECDSA P-256) and keeps it in `<data dir>/tls/`; every later start reuses
//! it, so the pin agents stored at enrollment stays valid. An admin may
//! replace the two files with a certificate of their own; the pin changes
//! with it (agents must then be re-enrolled).

use crate::ServerError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vigil_proto::pin::CertPin;

const CERT_FILE: &str = "server.crt";
const KEY_FILE: &str = "server.key";

/// The certificate chain and key the server presents.
pub struct TlsIdentity {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    dir: PathBuf,
}

impl TlsIdentity {
    /// Loads `<data_dir>/tls/server.{crt,key}`, generating them first if
    /// neither exists. `names` go into the certificate's subject alternative
    /// names (informational: agents pin the certificate, not a name).
    pub fn load_or_create(data_dir: &Path, names: &[String]) -> Result<Self, ServerError> {
        let dir = data_dir.join("tls");
        let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {}
            (false, false) => generate(&dir, names)?,
            _ => {
                return Err(ServerError::Tls(format!(
                    "only one of {} and {} exists; restore the other or remove both to generate a new certificate",
                    cert_path.display(),
                    key_path.display()
                )))
            }
        }
        let certs = CertificateDer::pem_file_iter(&cert_path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| ServerError::Tls(format!("{}: {e}", cert_path.display())))?;
        if certs.is_empty() {
            return Err(ServerError::Tls(format!(
                "{} holds no certificate",
                cert_path.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|e| ServerError::Tls(format!("{}: {e}", key_path.display())))?;
        Ok(TlsIdentity { certs, key, dir })
    }

    /// What agents pin: the fingerprint of the leaf certificate.
    pub fn pin(&self) -> CertPin {
        CertPin::of_der(self.certs[0].as_ref())
    }

    /// The DER encoding of the leaf certificate.
    pub fn certificate(&self) -> &[u8] {
        self.certs[0].as_ref()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A rustls server configuration presenting this identity.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, ServerError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ServerError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.certs.clone(), self.key.clone_key())
            .map_err(|e| ServerError::Tls(format!("certificate and key do not fit: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn generate(dir: &Path, names: &[String]) -> Result<(), ServerError> {
    let mut sans: Vec<String> = names.to_vec();
    sans.push("localhost".into());
    sans.sort();
    sans.dedup();
    let cert = rcgen::generate_simple_self_signed(sans)
        .map_err(|e| ServerError::Tls(format!("generating a certificate: {e}")))?;
    fs::create_dir_all(dir).map_err(|e| ServerError::io("creating", dir, e))?;
    write_file(
        &dir.join(KEY_FILE),
        cert.signing_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_file(&dir.join(CERT_FILE), cert.cert.pem().as_bytes(), 0o644)?;
    tracing::info!(dir = %dir.display(), "generated a self-signed server certificate");
    Ok(())
}

pub(crate) fn write_file(path: &Path, body: &[u8], mode: u32) -> Result<(), ServerError> {
    let write = || -> std::io::Result<()> {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
        // Windows: the data directory's ACL applies (the server is not
        // supported there; only the agent and `vigil scan` are).
        #[cfg(not(unix))]
        let _ = mode;
        let mut f = opts.open(path)?;
        f.write_all(body)?;
        f.sync_all()
    };
    write().map_err(|e| ServerError::io("writing", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first =
            TlsIdentity::load_or_create(dir.path(), &["vigil.test".into()]).expect("create");
        let again = TlsIdentity::load_or_create(dir.path(), &[]).expect("load");
        assert_eq!(first.pin(), again.pin());
        first.server_config().expect("rustls accepts it");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("tls").join(KEY_FILE))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "the private key is private");
        }
    }

    #[test]
    fn half_an_identity_is_an_error_not_a_new_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = TlsIdentity::load_or_create(dir.path(), &[]).expect("create");
        fs::remove_file(dir.path().join("tls").join(KEY_FILE)).expect("remove");
        let err = TlsIdentity::load_or_create(dir.path(), &[])
            .err()
            .expect("must refuse");
        assert!(err.to_string().contains("only one of"), "{err}");
        assert!(dir.path().join("tls").join(CERT_FILE).exists());
        drop(first);
    }

    #[test]
    fn garbage_files_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = dir.path().join("tls");
        fs::create_dir_all(&tls).expect("mkdir");
        fs::write(tls.join(CERT_FILE), b"not a certificate").expect("write");
        fs::write(tls.join(KEY_FILE), b"not a key").expect("write");
        assert!(TlsIdentity::load_or_create(dir.path(), &[]).is_err());
    }
}
