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
use reqwest::{Client, Method, Url};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_core::netpolicy::{Destination, NetPolicy};

/// How much of an error response's body is kept for the operator.
const ERROR_BODY_BYTES: usize = 512;
const ERROR_BODY_CHARS: usize = 200;

/// One request to make: method, URL, content type, extra headers and body.
pub struct HttpRequest {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) content_type: &'static str,
    /// Extra headers; their values are marked sensitive (never logged).
    pub(crate) headers: Vec<(&'static str, String)>,
    /// The whole `Authorization` value (`Bearer ...`, `GenieKey ...`, `Basic ...`).
    pub(crate) authorization: Option<String>,
    pub(crate) body: Vec<u8>,
}

impl HttpRequest {
    /// A JSON POST.
    pub(crate) fn json(url: Url, value: &serde_json::Value) -> Self {
        HttpRequest {
            method: Method::POST,
            url,
            content_type: "application/json",
            headers: Vec::new(),
            authorization: None,
            body: serde_json::to_vec(value).expect("a JSON value always serializes"),
        }
    }

    /// An `application/x-www-form-urlencoded` POST.
    pub(crate) fn form(url: Url, pairs: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        HttpRequest {
            method: Method::POST,
            url,
            content_type: "application/x-www-form-urlencoded",
            headers: Vec::new(),
            authorization: None,
            body: body.into_bytes(),
        }
    }

    pub(crate) fn bearer(mut self, token: &str) -> Self {
        self.authorization = Some(format!("Bearer {token}"));
        self
    }

    pub(crate) fn basic(mut self, user: &str, password: &str) -> Self {
        use base64::Engine as _;
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.authorization = Some(format!("Basic {pair}"));
        self
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// `base` with `segments` appended to its path, each percent-encoded (a
/// base URL may have a path of its own: `https://example.com/gotify/`).
pub(crate) fn join(base: &Url, segments: &[&str]) -> Result<Url, SendError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| SendError::Message("the base URL cannot have a path".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
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

    /// Sends once; non-2xx answers and failures become [`SendError`]s.
    pub(crate) async fn send(
        &self,
        channel: Channel,
        request: HttpRequest,
    ) -> Result<Delivery, SendError> {
        let url = &request.url;
        let endpoint = redact_url(url.as_str());
        let started = Instant::now();
        check_url(&self.policy, Destination::Webhook, url).map_err(|r| SendError::Refused {
            endpoint: endpoint.clone(),
            reason: r.to_string(),
        })?;
        let mut builder = self
            .client
            .request(request.method.clone(), url.clone())
            .header(CONTENT_TYPE, request.content_type);
        for (name, value) in &request.headers {
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                SendError::Message(format!("header {name} has characters HTTP cannot carry"))
            })?;
            value.set_sensitive(true);
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SendError::Message(format!("invalid header name {name}")))?;
            builder = builder.header(name, value);
        }
        if let Some(auth) = &request.authorization {
            let mut value = HeaderValue::from_str(auth).map_err(|_| {
                SendError::Message("the access token is not valid in a header".into())
            })?;
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        let response = builder
            .body(request.body)
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

/// `Retry-After`: (possibly fractional) seconds, or an HTTP date (the time
/// left until then; zero when it is past).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    parse_retry_after_at(value, std::time::SystemTime::now())
}

fn parse_retry_after_at(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return if secs.is_finite() && secs >= 0.0 {
            Duration::try_from_secs_f64(secs).ok()
        } else {
            None
        };
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`), the form servers send.
fn parse_http_date(value: &str) -> Option<std::time::SystemTime> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_, rest) = value.split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day)
        || !(0..24).contains(h)
        || !(0..60).contains(m)
        || !(0..61).contains(s)
    {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + h * 3600 + m * 60 + s).ok()?;
    Some(std::time::UNIX_EPOCH + Duration::from_secs(secs))
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
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_445_412_400);
        assert_eq!(
            parse_retry_after_at("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(80))
        );
        assert_eq!(parse_retry_after("Wed, 21 Foo 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-3"), None);
        assert_eq!(parse_retry_after("inf"), None);
    }
}
