//! What an open port's service announces: its greeting (the banner the
//! scanner read), else the certificate it presents to a TLS client
//! (subject, issuer, expiry) and what it answers to `GET /` (the `Server`
//! header and the page's `<title>`), over TLS when TLS worked, in the clear
//! otherwise.
//!
//! The certificate is read, never trusted: the verifier accepts any
//! certificate (it still checks the handshake's signatures), since the point
//! is to say what is there. Everything read is bounded in size and time.

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_core::listener::{clean_text, HttpSummary, PortDetails, TlsSummary, MAX_FIELD_CHARS};

/// How much of an HTTP answer is read for its headers and title.
const MAX_HTTP_BYTES: usize = 16 * 1024;

/// Bounds for describing one port.
#[derive(Debug, Clone, Copy)]
pub struct DescribeConfig {
    /// For each step: connect, TLS handshake, the HTTP answer.
    pub timeout: Duration,
}

impl Default for DescribeConfig {
    fn default() -> Self {
        DescribeConfig {
            timeout: Duration::from_secs(2),
        }
    }
}

/// What the service on `addr` announces. `banner`: what it said unasked
/// during the scan; a service that speaks first is not asked anything else.
pub async fn describe(addr: SocketAddr, banner: Option<&[u8]>, cfg: DescribeConfig) -> PortDetails {
    let mut details = PortDetails::default();
    if let Some(text) = banner
        .filter(|b| !b.is_empty())
        .and_then(|b| clean_text(&String::from_utf8_lossy(b), MAX_FIELD_CHARS))
    {
        details.banner = Some(text);
        return details;
    }
    match tls(addr, cfg).await {
        Some((cert, http)) => {
            details.tls = cert;
            details.http = http;
        }
        None => details.http = plain_http(addr, cfg).await,
    }
    details
}

/// A TLS handshake with `addr`: the certificate's summary and, over the
/// session, the HTTP answer. `None` when no TLS session came up.
async fn tls(
    addr: SocketAddr,
    cfg: DescribeConfig,
) -> Option<(Option<TlsSummary>, Option<HttpSummary>)> {
    let config = any_cert_config()?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = tokio::time::timeout(cfg.timeout, TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    let name = ServerName::IpAddress(addr.ip().into());
    let mut tls = tokio::time::timeout(cfg.timeout, connector.connect(name, stream))
        .await
        .ok()?
        .ok()?;
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|der| cert_summary(der.as_ref()));
    let http = http_over(&mut tls, addr, cfg).await;
    Some((cert, http))
}

async fn plain_http(addr: SocketAddr, cfg: DescribeConfig) -> Option<HttpSummary> {
    let mut stream = tokio::time::timeout(cfg.timeout, TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    http_over(&mut stream, addr, cfg).await
}

/// Sends `GET /` on `stream` and reads the answer's start.
async fn http_over<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    addr: SocketAddr,
    cfg: DescribeConfig,
) -> Option<HttpSummary> {
    let host = match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let request = format!(
        "GET / HTTP/1.0\r\nHost: {host}\r\nUser-Agent: vigil-agent\r\nAccept: text/html\r\n\
         Connection: close\r\n\r\n"
    );
    let exchange = async {
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while answer.len() < MAX_HTTP_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if answer
                .windows(8)
                .any(|w| w.eq_ignore_ascii_case(b"</title>"))
            {
                break;
            }
        }
        Some(answer)
    };
    let answer = tokio::time::timeout(cfg.timeout, exchange)
        .await
        .ok()
        .flatten()?;
    parse_http(&answer)
}

/// The `Server` header and the `<title>` of an HTTP answer's start; `None`
/// when it is not HTTP or names neither.
pub fn parse_http(answer: &[u8]) -> Option<HttpSummary> {
    let text = String::from_utf8_lossy(answer);
    if !text.starts_with("HTTP/") {
        return None;
    }
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let server = head.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("server")
            .then(|| clean_text(value, MAX_FIELD_CHARS))
            .flatten()
    });
    let title = html_title(body).and_then(|t| clean_text(&t, MAX_FIELD_CHARS));
    (server.is_some() || title.is_some()).then_some(HttpSummary { server, title })
}

/// The text of the first `<title>` element (the common entities decoded).
fn html_title(body: &str) -> Option<String> {
    let lower = body.to_ascii_lowercase();
    let open = lower.find("<title")?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title")?;
    let raw = body.get(start..end)?;
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&"),
    )
}

/// Subject, issuer and expiry of a DER certificate.
pub fn cert_summary(der: &[u8]) -> Option<TlsSummary> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(TlsSummary {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// Accepts any certificate: it is only read (see the module's doc).
fn any_cert_config() -> Option<ClientConfig> {
    crate::pinning::config_with(|_: &CertificateDer<'_>| Ok(())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn http_answers_give_server_and_title() {
        let answer =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nSERVER:  nginx/1.24.0 \r\n\r\n\
            <html><head><TITLE lang=en>Tom &amp; Jerry\n admin</TITLE></head>";
        let h = parse_http(answer).expect("http");
        assert_eq!(h.server.as_deref(), Some("nginx/1.24.0"));
        assert_eq!(h.title.as_deref(), Some("Tom & Jerry admin"));
        let bare = parse_http(b"HTTP/1.0 404 Not Found\r\n\r\n");
        assert_eq!(bare, None);
        assert_eq!(parse_http(b"SSH-2.0-OpenSSH\r\n"), None);
        let cut = parse_http(b"HTTP/1.1 200 OK\r\nServer: x\r\n");
        assert_eq!(cut.and_then(|h| h.server).as_deref(), Some("x"));
        let untitled = parse_http(b"HTTP/1.1 200 OK\r\n\r\n<title>never closed");
        assert_eq!(untitled, None);
    }

    #[tokio::test]
    async fn a_banner_is_all_that_is_asked_for() {
        // Nothing listens behind this address's port: only the banner counts.
        let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let d = describe(addr, Some(b"SSH-2.0-test\r\n"), DescribeConfig::default()).await;
        assert_eq!(d.banner.as_deref(), Some("SSH-2.0-test"));
        assert_eq!((d.tls, d.http), (None, None));
    }

    /// A one-connection-at-a-time HTTP server on loopback answering `answer`.
    async fn http_server(answer: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn plain_http_is_described() {
        let addr = http_server(
            b"HTTP/1.0 200 OK\r\nServer: TestHTTP/1.0\r\n\r\n<title>Router login</title>",
        )
        .await;
        let d = describe(addr, None, DescribeConfig::default()).await;
        assert_eq!(d.tls, None);
        let h = d.http.expect("http");
        assert_eq!(h.server.as_deref(), Some("TestHTTP/1.0"));
        assert_eq!(h.title.as_deref(), Some("Router login"));
    }

    #[tokio::test]
    async fn tls_certificate_and_http_over_it_are_described() {
        let (addr, _pin) = crate::testing::tls_server(|mut tls| async move {
            let mut buf = [0u8; 1024];
            let _ = tls.read(&mut buf).await;
            let _ = tls
                .write_all(
                    b"HTTP/1.1 200 OK\r\nServer: VigilTest\r\n\r\n<title>Secure page</title>",
                )
                .await;
            let _ = tls.shutdown().await;
        })
        .await;
        let d = describe(addr, None, DescribeConfig::default()).await;
        let cert = d.tls.expect("certificate");
        // rcgen's self-signed certificates name themselves.
        assert_eq!(cert.subject, "CN=rcgen self signed cert");
        assert_eq!(cert.issuer, cert.subject);
        assert!(cert.not_after > crate::task::unix_now(), "{cert:?}");
        let h = d.http.expect("http over TLS");
        assert_eq!(h.server.as_deref(), Some("VigilTest"));
        assert_eq!(h.title.as_deref(), Some("Secure page"));
    }
}
