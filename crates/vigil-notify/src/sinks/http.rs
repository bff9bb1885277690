//! The HTTP client shared by the webhook channels, and HTTP error classification.

use crate::config::HttpConfig;
use crate::destination::{redact_url, Channel};
use crate::error::{chain_text, find_rustls_error, ConfigError, SendError};
use crate::guard::{check_url, find_refusal, PolicyResolver};
use crate::render::{one_line, truncate_chars};
use crate::sinks::Delivery;
use reqwest::header::{
    HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, LOCATION, RETRY_AFTER,
};
use reqwest::{Client, Url};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_core::netpolicy::{Destination, NetPolicy};

/// How much of an error response's body is kept for the operator.
const ERROR_BODY_BYTES: usize = 512;
const ERROR_BODY_CHARS: usize = 200;

/// A POST to make: its content type, extra headers and body.
pub(crate) struct HttpPayload {
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub bearer_token: Option<String>,
    pub body: Vec<u8>,
}

impl HttpPayload {
    pub(crate) fn json(value: &serde_json::Value) -> Self {
        HttpPayload {
            content_type: "application/json",
            headers: Vec::new(),
            bearer_token: None,
            body: serde_json::to_vec(value).expect("a JSON value always serializes"),
        }
    }
}

#[derive(Clone)]
pub(crate) struct HttpClient {
    client: Client,
    timeout: Duration,
    policy: Arc<NetPolicy>,
}

impl HttpClient {
    pub(crate) fn new(config: &HttpConfig) -> Result<Self, ConfigError> {
        if config.timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout { what: "HTTP" });
        }
        let mut builder = Client::builder()
            .use_rustls_tls()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(config.user_agent.clone())
            // A webhook that moved must be fixed in the contact, not followed blindly
            // (a 301/302 would also turn the POST into a GET).
            .redirect(reqwest::redirect::Policy::none())
            // Every name is resolved through the network policy (see `guard`);
            // a proxy would reach the tenant's address unchecked.
            .dns_resolver(Arc::new(PolicyResolver::new(
                Arc::clone(&config.policy),
                Destination::Webhook,
            )))
            .no_proxy();
        if let Some(pem) = &config.extra_root_ca_pem {
            for der in crate::notifier::parse_ca_pem("HTTP", pem)? {
                let cert = reqwest::Certificate::from_der(der.as_ref()).map_err(|e| {
                    ConfigError::RootCa {
                        what: "HTTP",
                        reason: e.to_string(),
                    }
                })?;
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| ConfigError::HttpClient(chain_text(&e)))?;
        Ok(HttpClient {
            client,
            timeout: config.timeout,
            policy: Arc::clone(&config.policy),
        })
    }

    /// POSTs once; non-2xx answers and failures become [`SendError`]s.
    pub(crate) async fn post(
        &self,
        channel: Channel,
        url: &Url,
        payload: HttpPayload,
    ) -> Result<Delivery, SendError> {
        let endpoint = redact_url(url.as_str());
        let started = Instant::now();
        check_url(&self.policy, Destination::Webhook, url).map_err(|r| SendError::Refused {
            endpoint: endpoint.clone(),
            reason: r.to_string(),
        })?;
        let mut request = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, payload.content_type);
        for (name, value) in &payload.headers {
            let value = HeaderValue::from_str(value).map_err(|_| {
                SendError::Message(format!("header {name} has characters HTTP cannot carry"))
            })?;
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SendError::Message(format!("invalid header name {name}")))?;
            request = request.header(name, value);
        }
        if let Some(token) = &payload.bearer_token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                SendError::Message("the access token is not valid in a header".into())
            })?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        let response = request
            .body(payload.body)
            .send()
            .await
            .map_err(|e| classify_reqwest(e, &endpoint, self.timeout))?;
        let status = response.status();
        if status.is_success() {
            return Ok(Delivery {
                channel,
                response: format!("HTTP {status}"),
                elapsed: started.elapsed(),
            });
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let mut body = match response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
        {
            Some(location) if status.is_redirection() => {
                format!("redirects to {}; update the URL", redact_url(location))
            }
            _ => String::new(),
        };
        if body.is_empty() {
            body = read_snippet(response).await;
        }
        Err(SendError::HttpStatus {
            endpoint,
            status: status.as_u16(),
            body,
            retry_after,
        })
    }
}

/// The start of a response body, on one line.
async fn read_snippet(mut response: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    buf.truncate(ERROR_BODY_BYTES);
    truncate_chars(&one_line(&String::from_utf8_lossy(&buf)), ERROR_BODY_CHARS)
}

/// `Retry-After` in (possibly fractional) seconds; HTTP dates are ignored.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    if secs.is_finite() && secs >= 0.0 {
        Duration::try_from_secs_f64(secs).ok()
    } else {
        None
    }
}

fn classify_reqwest(err: reqwest::Error, endpoint: &str, timeout: Duration) -> SendError {
    // reqwest puts the full URL in its messages: the hook's secret path must not leak.
    let err = err.without_url();
    let endpoint = endpoint.to_owned();
    if err.is_timeout() {
        return SendError::Timeout { endpoint, timeout };
    }
    if let Some(refusal) = find_refusal(&err) {
        return SendError::Refused {
            endpoint,
            reason: refusal.to_string(),
        };
    }
    if let Some(tls) = find_rustls_error(&err) {
        return SendError::Tls {
            endpoint,
            reason: tls.to_string(),
        };
    }
    if err.is_connect() {
        return SendError::Connect {
            endpoint,
            reason: chain_text(&err),
        };
    }
    if err.is_builder() {
        return SendError::Message(chain_text(&err));
    }
    SendError::Http {
        endpoint,
        reason: chain_text(&err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-3"), None);
        assert_eq!(parse_retry_after("inf"), None);
    }
}
