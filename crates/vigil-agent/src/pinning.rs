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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedCert {
        pin,
        provider: provider.clone(),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AgentError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

#[derive(Debug)]
struct PinnedCert {
    pin: CertPin,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name and validity period do not matter: the pin names the
        // one certificate we trust, whatever address the server moved to.
        if self.pin.matches(end_entity.as_ref()) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "server certificate {} does not match the pinned {}",
                CertPin::of_der(end_entity.as_ref()),
                self.pin
            )))
        }
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
    use rustls::pki_types::PrivateKeyDer;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A TLS server with a fresh self-signed certificate; returns its address
    /// and the certificate's pin.
    async fn tls_server() -> (std::net::SocketAddr, CertPin) {
        let cert = rcgen::generate_simple_self_signed(vec!["vigil-server".into()]).expect("cert");
        let der = cert.cert.der().clone();
        let pin = CertPin::of_der(der.as_ref());
        let key = PrivateKeyDer::try_from(cert.signing_key.serialize_der()).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = tls.write_all(b"hello").await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        (addr, pin)
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
