//! TLS to the Vigil server, trusting exactly one pinned certificate.
//!
//! The server's certificate is self-signed (generated on its first start),
//! so web PKI validation cannot apply. Instead the agent is given the
//! certificate's SHA-256 at enrollment and accepts only a certificate with
//! that fingerprint; the handshake signature is still verified against the
//! certificate's key, so only the holder of the private key can answer.

use crate::AgentError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use vigil_proto::pin::CertPin;

/// A client configuration that trusts only the certificate matching `pin`.
pub fn client_config(pin: CertPin) -> Result<ClientConfig, AgentError> {
    config_with(move |end_entity: &CertificateDer<'_>| {
        // The name and validity period do not matter: the pin names the
        // one certificate we trust, whatever address the server moved to.
        if pin.matches(end_entity.as_ref()) {
            Ok(())
        } else {
            Err(rustls::Error::General(format!(
                "server certificate {} does not match the pinned {}",
                CertPin::of_der(end_entity.as_ref()),
                pin
            )))
        }
    })
    .map_err(|e| AgentError::Tls(e.to_string()))
}

/// A client configuration that takes the server's certificate when `check`
/// does (and verifies the handshake signature against it either way).
pub(crate) fn config_with<F>(check: F) -> Result<ClientConfig, rustls::Error>
where
    F: Fn(&CertificateDer<'_>) -> Result<(), rustls::Error> + Send + Sync + 'static,
{
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = CheckedCert {
        check,
        provider: provider.clone(),
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// A verifier whose decision on the certificate is `check`'s.
struct CheckedCert<F> {
    check: F,
    provider: Arc<CryptoProvider>,
}

impl<F> std::fmt::Debug for CheckedCert<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedCert").finish_non_exhaustive()
    }
}

impl<F> ServerCertVerifier for CheckedCert<F>
where
    F: Fn(&CertificateDer<'_>) -> Result<(), rustls::Error> + Send + Sync,
{
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        (self.check)(end_entity).map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A TLS server that says "hello" to whoever completes the handshake;
    /// returns its address and the certificate's pin.
    async fn tls_server() -> (std::net::SocketAddr, CertPin) {
        testing::tls_server(|mut tls| async move {
            let _ = tls.write_all(b"hello").await;
            let _ = tls.shutdown().await;
        })
        .await
    }

    async fn talk(addr: std::net::SocketAddr, pin: CertPin) -> Result<Vec<u8>, std::io::Error> {
        let config = client_config(pin).expect("client config");
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("anything.invalid").expect("name");
        let mut tls = connector.connect(name, tcp).await?;
        let mut out = Vec::new();
        tls.read_to_end(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn trusts_the_pinned_certificate_only() {
        let (addr, pin) = tls_server().await;
        assert_eq!(talk(addr, pin).await.expect("pinned server"), b"hello");
        let (_, other_pin) = tls_server().await;
        let err = talk(addr, other_pin)
            .await
            .expect_err("wrong pin must fail");
        assert!(err.to_string().contains("does not match"), "{err}");
    }
}
