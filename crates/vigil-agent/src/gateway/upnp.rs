//! The UPnP IGD half of the audit: find the Internet gateway device with
//! SSDP, read its description, ask its WAN connection service for the
//! external address and list every port mapping.
//!
//! Everything here comes from the LAN, unauthenticated, so every step is
//! bounded: answers are only followed to the device that sent them, bodies
//! are capped, the listing stops after [`MAX_ENTRIES`], every request ends
//! by the audit's deadline, and nothing is unwrapped.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::net::IpAddr;

use reqwest::{StatusCode, Url};
use tokio::time::{timeout_at, Duration, Instant};

use super::description::{self, Service};
use super::soap::{self, Reply, SPECIFIED_ARRAY_INDEX_INVALID};
use super::ssdp::{self, clip};
use super::PortForward;

/// Device descriptions larger than this are refused (real ones are a few
/// KiB).
pub(super) const DESCRIPTION_CAP: usize = 256 * 1024;
/// SOAP answers larger than this are refused (real ones are under 1 KiB).
const SOAP_CAP: usize = 64 * 1024;
/// The port mapping listing stops here: a gateway that never says "no more"
/// must not keep the agent busy.
pub(super) const MAX_ENTRIES: u32 = 1024;
/// Any single HTTP exchange, at most (and never past the deadline).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Strings from the gateway are cut to this many characters.
const MAX_FIELD: usize = 256;
/// UPnP error 714, NoSuchEntryInArray: what some gateways answer instead of
/// 713 past the last mapping.
const NO_SUCH_ENTRY_IN_ARRAY: u32 = 714;

/// What the UPnP half found.
#[derive(Debug, Default)]
pub(super) struct Findings {
    /// The gateway device that answered with a usable connection service.
    pub device: Option<IpAddr>,
    pub friendly_name: Option<String>,
    pub external_address: Option<String>,
    pub forwards: Vec<PortForward>,
    pub problems: Vec<String>,
}

/// A gateway's connection service, ready to be called.
struct Igd {
    control: Url,
    service_type: String,
}

/// Runs the UPnP half: SSDP until `discover_until`, the rest until
/// `deadline`. With a known `gateway`, only that device is audited; other
/// devices answering as Internet gateways are reported as problems (a LAN
/// host posing as the gateway is worth knowing about).
pub(super) async fn audit(
    gateway: Option<IpAddr>,
    discover_until: Instant,
    deadline: Instant,
) -> Findings {
    let (answers, problems) = ssdp::discover(gateway, discover_until).await;
    let mut found = Findings {
        problems,
        ..Findings::default()
    };
    let candidates = candidates(gateway, answers, &mut found.problems);
    if candidates.is_empty() {
        return found;
    }
    let client = match http_client() {
        Ok(c) => c,
        Err(e) => {
            found.problems.push(format!("UPnP: {e}"));
            return found;
        }
    };
    for (device, location) in candidates {
        match read_description(&client, device, &location, deadline).await {
            Ok((igd, name)) => {
                found.device = Some(device);
                found.friendly_name = name.map(|n| truncate(&n, MAX_FIELD));
                list(&client, &igd, deadline, &mut found).await;
                return found;
            }
            Err(why) => found.problems.push(format!("UPnP: {device}: {why}")),
        }
    }
    found
}

/// The description URLs worth reading, in answer order: checked with
/// [`device_url`], one per (device, URL), and only the default gateway's
/// when it is known.
fn candidates(
    gateway: Option<IpAddr>,
    answers: Vec<(IpAddr, ssdp::Answer)>,
    problems: &mut Vec<String>,
) -> Vec<(IpAddr, Url)> {
    let mut out: Vec<(IpAddr, Url)> = Vec::new();
    let mut others: Vec<IpAddr> = Vec::new();
    for (from, answer) in answers {
        let url = match device_url(&answer.location, None, from) {
            Ok(url) => url,
            Err(why) => {
                problems.push(format!(
                    "UPnP: ignored {from}'s answer: its LOCATION {} {why}",
                    clip(&answer.location)
                ));
                continue;
            }
        };
        match gateway {
            Some(gw) if gw != from => {
                if !others.contains(&from) {
                    others.push(from);
                }
            }
            _ if out.iter().any(|(d, u)| *d == from && *u == url) => {}
            _ => out.push((from, url)),
        }
    }
    if let Some(gw) = gateway {
        for other in others {
            problems.push(format!(
                "UPnP: {other} answered as an Internet gateway device but is not the \
                 default gateway {gw}; not audited"
            ));
        }
    }
    out
}

/// `raw` (resolved against `base` if given) as an `http` URL on the device
/// at `device` itself.
///
/// This is the rule that keeps a hostile LAN host from steering the agent:
/// SSDP answers are unauthenticated UDP, so anyone on the LAN can answer
/// our search with a LOCATION (or a description with a URLBase or
/// controlURL) pointing anywhere — a router's admin page, a cloud metadata
/// endpoint, an internal service, the internet. Following it would make the
/// agent fetch attacker-chosen URLs from its own network position. Only
/// following URLs on the answering device's own address means a device can
/// only make us talk to itself, which it can do anyway. Host names are
/// refused too (resolving one could lead anywhere).
pub(super) fn device_url(raw: &str, base: Option<&Url>, device: IpAddr) -> Result<Url, String> {
    let parsed = match base {
        Some(base) => base.join(raw),
        None => Url::parse(raw),
    };
    let url = parsed.map_err(|e| format!("is not a URL ({e})"))?;
    if url.scheme() != "http" {
        return Err(format!("uses {}, not http", clip(url.scheme())));
    }
    let host = url.host_str().ok_or("has no host")?;
    let ip: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("names host {}, not the device's address", clip(host)))?;
    if ip != device {
        return Err(format!("points at {ip}, not at the answering device"));
    }
    Ok(url)
}

/// Fetches and reads the description at `location`: the connection service
/// to call and the device's friendly name.
async fn read_description(
    client: &reqwest::Client,
    device: IpAddr,
    location: &Url,
    deadline: Instant,
) -> Result<(Igd, Option<String>), String> {
    let body = fetch(client.get(location.clone()), DESCRIPTION_CAP, deadline)
        .await
        .and_then(|(status, body)| match status {
            StatusCode::OK => Ok(body),
            other => Err(format!("HTTP {other}")),
        })
        .map_err(|e| format!("fetching the device description {location} failed: {e}"))?;
    let desc = description::parse(&body)
        .map_err(|e| format!("the device description {location} is unreadable: {e}"))?;
    let Some(Service {
        service_type,
        control_url,
    }) = desc.connection_service()
    else {
        return Err(format!(
            "the device description {location} has no WAN connection service"
        ));
    };
    // A URLBase elsewhere is ignored: relative URLs then resolve against
    // the description's own URL, still on the device.
    let base = desc
        .url_base
        .as_deref()
        .and_then(|b| device_url(b, None, device).ok())
        .unwrap_or_else(|| location.clone());
    let control = device_url(control_url, Some(&base), device)
        .map_err(|why| format!("its controlURL {} {why}", clip(control_url)))?;
    let igd = Igd {
        control,
        service_type: service_type.clone(),
    };
    Ok((igd, desc.friendly_name))
}

/// GetExternalIPAddress, then GetGenericPortMappingEntry 0, 1, 2, … until
/// the gateway says there are no more (error 713), fails, repeats itself,
/// or [`MAX_ENTRIES`] or the deadline is reached.
async fn list(client: &reqwest::Client, igd: &Igd, deadline: Instant, found: &mut Findings) {
    let action = "GetExternalIPAddress";
    match call(client, igd, action, &[], deadline).await {
        Ok(Reply::Values(values)) => {
            match values.get("NewExternalIPAddress").map(|a| a.trim()) {
                // No external address (yet): nothing to report.
                Some("") => {}
                Some(addr) if addr.parse::<IpAddr>().is_ok() => {
                    found.external_address = Some(addr.to_string());
                }
                Some(other) => found.problems.push(format!(
                    "UPnP: {action} returned {}, not an address",
                    clip(other)
                )),
                None => found
                    .problems
                    .push(format!("UPnP: {action} returned no NewExternalIPAddress")),
            }
        }
        Ok(Reply::Fault { code, description }) => found.problems.push(format!(
            "UPnP: {action} failed: {}",
            fault(code, &description)
        )),
        Err(e) => found.problems.push(format!("UPnP: {action} failed: {e}")),
    }

    let action = "GetGenericPortMappingEntry";
    for index in 0..MAX_ENTRIES {
        let arg = index.to_string();
        let reply = call(
            client,
            igd,
            action,
            &[("NewPortMappingIndex", &arg)],
            deadline,
        )
        .await;
        let values = match reply {
            Ok(Reply::Values(values)) => values,
            Ok(Reply::Fault {
                code: Some(SPECIFIED_ARRAY_INDEX_INVALID | NO_SUCH_ENTRY_IN_ARRAY),
                ..
            }) => return,
            Ok(Reply::Fault { code, description }) => {
                let why = fault(code, &description);
                found
                    .problems
                    .push(format!("UPnP: {action} {index} failed: {why}"));
                return;
            }
            Err(e) => {
                found
                    .problems
                    .push(format!("UPnP: {action} {index} failed: {e}"));
                return;
            }
        };
        match port_forward(&values) {
            Ok(forward) => {
                // A gateway that ignores the index answers the same mapping
                // forever; protocol, external port and remote host identify
                // a mapping.
                let repeated = found.forwards.last().is_some_and(|last| {
                    (&last.protocol, last.external_port, &last.remote_host)
                        == (
                            &forward.protocol,
                            forward.external_port,
                            &forward.remote_host,
                        )
                });
                if repeated {
                    found.problems.push(format!(
                        "UPnP: {action} {index} repeated the previous mapping; stopped listing"
                    ));
                    return;
                }
                found.forwards.push(forward);
            }
            Err(why) => found
                .problems
                .push(format!("UPnP: {action} {index} is unusable: {why}")),
        }
    }
    found.problems.push(format!(
        "UPnP: stopped listing port mappings after {MAX_ENTRIES} entries"
    ));
}

/// A port mapping from GetGenericPortMappingEntry's out-arguments.
pub(super) fn port_forward(values: &BTreeMap<String, String>) -> Result<PortForward, String> {
    let get = |name: &str| values.get(name).map(|v| v.trim()).unwrap_or_default();
    let port = |name: &str| {
        get(name)
            .parse::<u16>()
            .map_err(|_| format!("{name} {} is not a port", clip(get(name))))
    };
    let protocol = get("NewProtocol").to_ascii_lowercase();
    if protocol != "tcp" && protocol != "udp" {
        return Err(format!("unknown protocol {}", clip(get("NewProtocol"))));
    }
    let lease = get("NewLeaseDuration");
    let lease_secs = if lease.is_empty() {
        0
    } else {
        lease
            .parse()
            .map_err(|_| format!("NewLeaseDuration {} is not a number", clip(lease)))?
    };
    Ok(PortForward {
        protocol,
        external_port: port("NewExternalPort")?,
        internal_client: truncate(get("NewInternalClient"), MAX_FIELD),
        internal_port: port("NewInternalPort")?,
        description: truncate(get("NewPortMappingDescription"), MAX_FIELD),
        enabled: matches!(
            get("NewEnabled").to_ascii_lowercase().as_str(),
            "1" | "true" | "yes"
        ),
        remote_host: truncate(get("NewRemoteHost"), MAX_FIELD),
        lease_secs,
        source: "upnp".to_string(),
    })
}

/// "UPnP error 402 (Invalid Args)" and the like.
fn fault(code: Option<u32>, description: &str) -> String {
    let description = clip(description);
    match code {
        Some(code) => format!("UPnP error {code} ({description})"),
        None => format!("SOAP fault ({description})"),
    }
}

/// Calls `action` on the gateway's connection service.
async fn call(
    client: &reqwest::Client,
    igd: &Igd,
    action: &str,
    args: &[(&str, &str)],
    deadline: Instant,
) -> Result<Reply, String> {
    let request = client
        .post(igd.control.clone())
        .header("Content-Type", "text/xml; charset=\"utf-8\"")
        .header("SOAPAction", soap::soap_action(&igd.service_type, action))
        .body(soap::envelope(&igd.service_type, action, args));
    let (status, body) = fetch(request, SOAP_CAP, deadline).await?;
    // Faults come with 500; anything else is not a SOAP answer.
    if status != StatusCode::OK && status != StatusCode::INTERNAL_SERVER_ERROR {
        return Err(format!("HTTP {status}"));
    }
    soap::parse_reply(&body, action).map_err(|e| format!("HTTP {status} with {e}"))
}

/// Sends `request` and reads at most `cap` bytes of the answer, all by
/// [`REQUEST_TIMEOUT`] and `deadline`.
async fn fetch(
    request: reqwest::RequestBuilder,
    cap: usize,
    deadline: Instant,
) -> Result<(StatusCode, String), String> {
    let until = deadline.min(Instant::now() + REQUEST_TIMEOUT);
    let exchange = async {
        let mut response = request.send().await.map_err(|e| chain(&e))?;
        let status = response.status();
        if response.content_length().is_some_and(|n| n > cap as u64) {
            return Err(format!("the answer is larger than {cap} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| chain(&e))? {
            if body.len() + chunk.len() > cap {
                return Err(format!("the answer is larger than {cap} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    timeout_at(until, exchange)
        .await
        .map_err(|_| "no complete answer in time".to_string())?
}

/// The HTTP client for one audit: no proxy (the gateway is on the LAN; a
/// proxy from the environment would see the requests and fail them), no
/// redirects (a redirect could lead off the device, see [`device_url`]).
fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(REQUEST_TIMEOUT)
        .user_agent(concat!(
            "vigil-agent/",
            env!("CARGO_PKG_VERSION"),
            " UPnP/1.1"
        ))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {}", chain(&e)))
}

/// An error with its causes ("error sending request: …: connection refused").
fn chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// At most `max` characters of `s`, with "…" when cut.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn answer(location: &str) -> ssdp::Answer {
        ssdp::Answer {
            location: location.into(),
            st: ssdp::SEARCH_TARGETS[0].into(),
            server: None,
        }
    }

    #[test]
    fn only_urls_on_the_answering_device() {
        let dev = ip("198.51.100.1");
        let ok = device_url("http://198.51.100.1:40119/rootDesc.xml", None, dev).unwrap();
        assert_eq!(ok.port(), Some(40119));
        let base = Url::parse("http://198.51.100.1:5000/desc/root.xml").unwrap();
        assert_eq!(
            device_url("/ctl/IPConn", Some(&base), dev)
                .unwrap()
                .as_str(),
            "http://198.51.100.1:5000/ctl/IPConn"
        );
        assert_eq!(
            device_url("ctl", Some(&base), dev).unwrap().as_str(),
            "http://198.51.100.1:5000/desc/ctl"
        );
        let v6 = ip("2001:db8::1");
        assert!(device_url("http://[2001:db8::1]:80/d.xml", None, v6).is_ok());
        for (raw, why) in [
            ("http://198.51.100.2/rootDesc.xml", "points at 198.51.100.2"),
            ("http://169.254.169.254/latest/meta-data/", "points at"),
            ("http://router.example/d.xml", "names host"),
            ("https://198.51.100.1/d.xml", "uses https"),
            ("file:///etc/passwd", "uses file"),
            ("gopher://198.51.100.1/", "uses gopher"),
            ("/relative-without-base", "is not a URL"),
            ("http://", "is not a URL"),
            // Userinfo tricks do not change the host.
            (
                "http://198.51.100.1@198.51.100.9/",
                "points at 198.51.100.9",
            ),
        ] {
            let err = device_url(raw, None, dev).unwrap_err();
            assert!(err.contains(why), "{raw}: {err}");
        }
        // Absolute control URLs elsewhere do not resolve onto the device.
        assert!(device_url("http://198.51.100.9/ctl", Some(&base), dev).is_err());
        assert!(device_url("//198.51.100.9/ctl", Some(&base), dev).is_err());
    }

    #[test]
    fn candidates_follow_the_default_gateway() {
        let answers = vec![
            (
                ip("198.51.100.66"),
                answer("http://198.51.100.66:1/evil.xml"),
            ),
            (
                ip("198.51.100.1"),
                answer("http://198.51.100.1:40119/rootDesc.xml"),
            ),
            (
                ip("198.51.100.1"),
                answer("http://198.51.100.1:40119/rootDesc.xml"),
            ),
            (
                ip("198.51.100.7"),
                answer("http://198.51.100.1:40119/rootDesc.xml"),
            ),
        ];
        let mut problems = Vec::new();
        let got = candidates(Some(ip("198.51.100.1")), answers.clone(), &mut problems);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, ip("198.51.100.1"));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("198.51.100.7's answer"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("198.51.100.66 answered"),
            "{problems:?}"
        );

        // Without a known gateway every honest answer is a candidate.
        let mut problems = Vec::new();
        let got = candidates(None, answers, &mut problems);
        assert_eq!(got.len(), 2);
        assert_eq!(problems.len(), 1);
    }

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn port_mappings() {
        let v = values(&[
            ("NewRemoteHost", ""),
            ("NewExternalPort", "3389"),
            ("NewProtocol", "TCP"),
            ("NewInternalPort", "3389"),
            ("NewInternalClient", "198.51.100.20"),
            ("NewEnabled", "1"),
            ("NewPortMappingDescription", "test rdp"),
            ("NewLeaseDuration", "604786"),
        ]);
        assert_eq!(
            port_forward(&v).unwrap(),
            PortForward {
                protocol: "tcp".into(),
                external_port: 3389,
                internal_client: "198.51.100.20".into(),
                internal_port: 3389,
                description: "test rdp".into(),
                enabled: true,
                remote_host: "".into(),
                lease_secs: 604786,
                source: "upnp".into(),
            }
        );
        let mut minimal = values(&[
            ("NewExternalPort", "53"),
            ("NewProtocol", "udp"),
            ("NewInternalPort", "5353"),
            ("NewEnabled", "0"),
        ]);
        let f = port_forward(&minimal).unwrap();
        assert_eq!(
            (f.enabled, f.lease_secs, f.internal_client.as_str()),
            (false, 0, "")
        );

        let long = "d".repeat(10_000);
        minimal.insert("NewPortMappingDescription".into(), long);
        assert_eq!(
            port_forward(&minimal).unwrap().description.chars().count(),
            MAX_FIELD + 1
        );

        for (key, bad) in [
            ("NewExternalPort", "65536"),
            ("NewExternalPort", "-1"),
            ("NewInternalPort", ""),
            ("NewProtocol", "ICMP"),
            ("NewLeaseDuration", "forever"),
        ] {
            let mut v = minimal.clone();
            v.insert(key.into(), bad.into());
            assert!(port_forward(&v).is_err(), "{key}={bad}");
        }
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hé", 2), "hé");
        assert_eq!(truncate("", 2), "");
    }
}
