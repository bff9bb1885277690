//! The gateway port-forward audit: which ports has the LAN's Internet
//! gateway opened to the internet on behalf of LAN devices?
//!
//! Any device on a LAN whose gateway speaks UPnP IGD or NAT-PMP can open
//! ports on it without anyone noticing — malware does, and so do game
//! consoles, NAS boxes and remote-desktop tools. [`audit`] asks the gateway
//! the way those devices do:
//!
//! * `upnp.rs`: SSDP discovery (`ssdp.rs`), the device description
//!   (`description.rs`), then SOAP calls (`soap.rs`) for the external
//!   address and every port mapping, one `GetGenericPortMappingEntry` at a
//!   time.
//! * `natpmp.rs`: the external address request of RFC 6886; `pcp.rs`: a
//!   PCP ANNOUNCE (RFC 6887). Neither protocol can list mappings, so they
//!   only tell whether the gateway offers them (and NAT-PMP its external
//!   address).
//!
//! Everything the gateway (or anything else on the LAN) sends is treated as
//! hostile input: parsers are pure functions with bounds (`xml.rs`), URLs
//! are only followed to the device that announced them, and the whole audit
//! ends by [`AuditConfig::timeout`]. It never fails: what went wrong is
//! described in [`GatewayAudit::problems`].
//!
//! ```no_run
//! # async fn run() {
//! use std::time::Duration;
//! use vigil_agent::gateway::{audit, AuditConfig};
//!
//! let cfg = AuditConfig {
//!     timeout: Duration::from_secs(5),
//!     gateway: Some("192.0.2.1".parse().unwrap()),
//! };
//! for f in audit(&cfg).await.forwards {
//!     let to = format!("{}:{}", f.internal_client, f.internal_port);
//!     println!("{} {} -> {to} ({})", f.protocol, f.external_port, f.description);
//! }
//! # }
//! ```

mod description;
mod natpmp;
mod pcp;
mod soap;
mod ssdp;
mod upnp;
mod xml;

use std::net::IpAddr;
use std::time::Duration;

use tokio::time::{timeout_at, Instant};

/// How to audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// Bound on the whole audit (5 s is plenty on a LAN).
    pub timeout: Duration,
    /// The default gateway, if known. Then only it is audited over UPnP
    /// (other devices claiming to be gateways are reported in
    /// [`GatewayAudit::problems`]), it is also searched for by unicast, and
    /// NAT-PMP runs alongside; otherwise NAT-PMP asks the device found by
    /// UPnP, if any.
    pub gateway: Option<IpAddr>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            timeout: Duration::from_secs(5),
            gateway: None,
        }
    }
}

/// One port the gateway forwards from the internet to the LAN.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortForward {
    /// `"tcp"` or `"udp"`.
    pub protocol: String,
    /// The port open on the gateway's external address (0: any).
    pub external_port: u16,
    /// The LAN device it leads to, as the gateway reports it.
    pub internal_client: String,
    /// The port on that device.
    pub internal_port: u16,
    /// What the requesting program called it (cut at 256 characters).
    pub description: String,
    /// Whether the mapping is active.
    pub enabled: bool,
    /// The only internet host allowed to use it; empty: any.
    pub remote_host: String,
    /// Seconds until it expires; 0: never (or the gateway does not say).
    pub lease_secs: u32,
    /// How it was learned: `"upnp"` (the only protocol that lists mappings).
    pub source: String,
}

/// What the audit found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GatewayAudit {
    /// The protocols the gateway answered: `"upnp"` (a usable IGD
    /// description was found), `"nat-pmp"` (a successful answer) and/or
    /// `"pcp"` (a successful ANNOUNCE).
    /// Each means any LAN device can open ports on the gateway.
    pub answered: Vec<String>,
    /// The audited gateway's address: the device that answered, else the
    /// configured default gateway.
    pub gateway: Option<String>,
    /// The gateway's UPnP friendly name.
    pub friendly_name: Option<String>,
    /// Its external (WAN) address, from UPnP, else NAT-PMP.
    pub external_address: Option<String>,
    /// Every port mapping UPnP listed.
    pub forwards: Vec<PortForward>,
    /// What got in the way, one sentence each, e.g. "UPnP:
    /// GetGenericPortMappingEntry 5 failed: …". Not finding a gateway at all
    /// is not a problem: `answered` is then empty.
    pub problems: Vec<String>,
}

/// Share of the timeout spent waiting for SSDP answers, and its bounds.
const DISCOVERY_SHARE: f64 = 0.4;
const DISCOVERY_MAX: Duration = Duration::from_secs(2);
/// Past the deadline, the audit is cut off after this (every step honours
/// the deadline by itself; this is a safety net).
const GRACE: Duration = Duration::from_millis(500);

/// Audits the gateway; see the module docs. Returns within about
/// `cfg.timeout`, never panics, never fails.
pub async fn audit(cfg: &AuditConfig) -> GatewayAudit {
    let deadline = Instant::now() + cfg.timeout;
    match timeout_at(deadline + GRACE, run(cfg, deadline)).await {
        Ok(audit) => audit,
        Err(_) => GatewayAudit {
            gateway: cfg.gateway.map(|g| g.to_string()),
            problems: vec![format!(
                "the gateway audit did not finish within {:?}",
                cfg.timeout
            )],
            ..GatewayAudit::default()
        },
    }
}

async fn run(cfg: &AuditConfig, deadline: Instant) -> GatewayAudit {
    let window = cfg.timeout.mul_f64(DISCOVERY_SHARE).min(DISCOVERY_MAX);
    let discover_until = Instant::now() + window;
    let known_v4 = match cfg.gateway {
        Some(IpAddr::V4(gw)) => Some(gw),
        _ => None,
    };
    let natpmp_known = async {
        match known_v4 {
            Some(gw) => Some(port_5351(gw, deadline).await),
            None => None,
        }
    };
    let (upnp, mut natpmp) = tokio::join!(
        upnp::audit(cfg.gateway, discover_until, deadline),
        natpmp_known
    );
    if natpmp.is_none() {
        if let Some(IpAddr::V4(device)) = upnp.device {
            natpmp = Some(port_5351(device, deadline).await);
        }
    }
    merge(cfg.gateway, upnp, natpmp)
}

/// How long the PCP question may take: a gateway answers at once (a
/// NAT-PMP-only one with "unsupported version"); three tries.
const PCP_MAX: Duration = Duration::from_millis(1750);

/// What `gateway` says on port 5351: NAT-PMP's answer, and whether it
/// speaks PCP.
async fn port_5351(
    gateway: std::net::Ipv4Addr,
    deadline: Instant,
) -> (std::net::Ipv4Addr, natpmp::Outcome, bool) {
    let pcp_until = deadline.min(Instant::now() + PCP_MAX);
    let (natpmp, pcp) = tokio::join!(
        natpmp::external_address(gateway, deadline),
        pcp::speaks_pcp(gateway, pcp_until)
    );
    (gateway, natpmp, pcp)
}

/// One report from both halves.
fn merge(
    configured: Option<IpAddr>,
    upnp: upnp::Findings,
    natpmp: Option<(std::net::Ipv4Addr, natpmp::Outcome, bool)>,
) -> GatewayAudit {
    let mut audit = GatewayAudit {
        gateway: upnp.device.or(configured).map(|a| a.to_string()),
        friendly_name: upnp.friendly_name,
        external_address: upnp.external_address,
        forwards: upnp.forwards,
        problems: upnp.problems,
        ..GatewayAudit::default()
    };
    if upnp.device.is_some() {
        audit.answered.push("upnp".to_string());
    }
    if let Some((gw, _, true)) = natpmp {
        audit.answered.push("pcp".to_string());
        audit.gateway.get_or_insert_with(|| gw.to_string());
    }
    match natpmp {
        Some((gw, natpmp::Outcome::Answered(external), _)) => {
            audit
                .answered
                .insert(usize::from(upnp.device.is_some()), "nat-pmp".to_string());
            audit.gateway.get_or_insert_with(|| gw.to_string());
            if let Some(external) = external.map(|a| a.to_string()) {
                match &audit.external_address {
                    None => audit.external_address = Some(external),
                    Some(upnp) if *upnp != external => audit.problems.push(format!(
                        "the gateway's external address is {upnp} over UPnP but {external} \
                         over NAT-PMP"
                    )),
                    Some(_) => {}
                }
            }
        }
        Some((_, natpmp::Outcome::Problem(why), _)) => audit.problems.push(why),
        Some((_, natpmp::Outcome::Silent, _)) | None => {}
    }
    audit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(device: Option<&str>, external: Option<&str>) -> upnp::Findings {
        upnp::Findings {
            device: device.map(|d| d.parse().unwrap()),
            external_address: external.map(str::to_string),
            ..upnp::Findings::default()
        }
    }

    #[test]
    fn merging() {
        let gw: std::net::Ipv4Addr = "198.51.100.1".parse().unwrap();
        let ext = Some("203.0.113.2".parse().unwrap());
        let both = merge(
            Some(gw.into()),
            findings(Some("198.51.100.1"), Some("203.0.113.2")),
            Some((gw, natpmp::Outcome::Answered(ext), true)),
        );
        assert_eq!(both.answered, ["upnp", "nat-pmp", "pcp"]);
        assert_eq!(both.gateway.as_deref(), Some("198.51.100.1"));
        assert_eq!(both.external_address.as_deref(), Some("203.0.113.2"));
        assert!(both.problems.is_empty());

        let natpmp_only = merge(
            None,
            findings(None, None),
            Some((gw, natpmp::Outcome::Answered(ext), false)),
        );
        assert_eq!(natpmp_only.answered, ["nat-pmp"]);
        assert_eq!(natpmp_only.gateway.as_deref(), Some("198.51.100.1"));
        assert_eq!(natpmp_only.external_address.as_deref(), Some("203.0.113.2"));

        let disagree = merge(
            None,
            findings(Some("198.51.100.1"), Some("203.0.113.9")),
            Some((gw, natpmp::Outcome::Answered(ext), false)),
        );
        assert_eq!(disagree.external_address.as_deref(), Some("203.0.113.9"));
        assert_eq!(disagree.problems.len(), 1);

        let nothing = merge(
            Some(gw.into()),
            findings(None, None),
            Some((gw, natpmp::Outcome::Silent, false)),
        );
        assert!(nothing.answered.is_empty() && nothing.problems.is_empty());
        assert_eq!(nothing.gateway.as_deref(), Some("198.51.100.1"));
    }

    #[test]
    fn serializes_for_the_server() {
        let audit = GatewayAudit {
            answered: vec!["upnp".into()],
            ..GatewayAudit::default()
        };
        let json = serde_json::to_string(&audit).unwrap();
        assert!(json.contains("\"answered\":[\"upnp\"]"));
        assert_eq!(serde_json::from_str::<GatewayAudit>(&json).unwrap(), audit);
    }
}
