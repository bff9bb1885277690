//! What a compliance assessment covers, saved per tenant: an optional Active
//! Directory scope (`ad.rs`), an IP scope of ranges (`range.rs`), the ports
//! Vigil agents listen on, the optional "unreachable" port check and the
//! choice between live (on-demand) and database-only assessment.
//!
//! Rules, all checked by [`ComplianceScope::validate`]:
//! - the ranges of the IP scope may overlap or repeat: the list is kept as
//!   written for display, assessment walks the merged ranges; together they
//!   may cover at most [`MAX_SCOPE_ADDRESSES`] distinct addresses, checked
//!   even while the IP scope is disabled so turning it on cannot fail later;
//!   an enabled IP scope needs at least one range;
//! - agent ports: at least one, each 1–65535, duplicates dropped;
//! - the unreachable-check port, when set, is 1–65535 (default 135);
//! - a scope with no AD scope and no enabled IP scope is valid: it keeps
//!   the settings while assessing nothing ([`ComplianceScope::has_targets`]).

use super::ad::AdScope;
use super::error::ComplianceError;
use super::range::{Addresses, IpRange};
use crate::targets::AddrRange;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Most distinct addresses all ranges of one scope may cover together.
pub const MAX_SCOPE_ADDRESSES: u128 = 1_048_576;
/// The port Vigil agents answer identify requests on
/// (the same value as `vigil_proto::identify::DEFAULT_PORT`).
pub const DEFAULT_AGENT_PORT: u16 = 47_760;
/// The default port of the unreachable check (Windows RPC endpoint mapper).
pub const DEFAULT_UNREACHABLE_PORT: u16 = 135;

/// The IP side of the scope.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IpScope {
    #[serde(default)]
    pub enabled: bool,
    /// As the user listed them (overlaps and duplicates allowed).
    #[serde(default)]
    pub ranges: Vec<IpRange>,
}

impl IpScope {
    /// An enabled scope needs a range; all ranges together may cover at most
    /// [`MAX_SCOPE_ADDRESSES`] distinct addresses (checked even when
    /// disabled, so turning it on cannot fail later).
    pub fn validate(&self) -> Result<(), ComplianceError> {
        if self.enabled && self.ranges.is_empty() {
            return Err(ComplianceError::IpScopeEmpty);
        }
        let addresses = self.address_count();
        if addresses > MAX_SCOPE_ADDRESSES {
            return Err(ComplianceError::IpScopeTooLarge { addresses });
        }
        Ok(())
    }

    /// The listed ranges sorted (IPv4 first) with overlapping and adjacent
    /// ranges merged, whether or not the scope is enabled.
    pub fn merged_ranges(&self) -> Vec<AddrRange> {
        let mut ranges: Vec<AddrRange> = self.ranges.iter().map(IpRange::addr_range).collect();
        ranges.sort_by_key(|r| (r.start().is_ipv6(), value(r.start())));
        let mut merged: Vec<AddrRange> = Vec::with_capacity(ranges.len());
        for r in ranges {
            if let Some(last) = merged.last_mut() {
                let same_family = last.start().is_ipv6() == r.start().is_ipv6();
                if same_family && value(r.start()) <= value(last.end()).saturating_add(1) {
                    if value(r.end()) > value(last.end()) {
                        if let Ok(joined) = AddrRange::new(last.start(), r.end()) {
                            *last = joined;
                        }
                    }
                    continue;
                }
            }
            merged.push(r);
        }
        merged
    }

    /// Distinct addresses the listed ranges cover, whether or not enabled.
    pub fn address_count(&self) -> u128 {
        self.merged_ranges().iter().map(AddrRange::len).sum()
    }

    /// The addresses to assess, each once, ascending (IPv4 first); none when
    /// the scope is disabled.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> {
        let ranges = if self.enabled {
            self.merged_ranges()
        } else {
            Vec::new()
        };
        ranges.into_iter().flat_map(Addresses::new)
    }

    /// Whether `addr` is assessed by this scope (never when disabled).
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.enabled && self.ranges.iter().any(|r| r.contains(addr))
    }
}

fn value(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v) => u32::from(v).into(),
        IpAddr::V6(v) => u128::from(v),
    }
}

/// The ports Vigil agents listen on: at least one, each 1–65535, in the
/// order given, without duplicates. Serialized as a list of numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<u16>", into = "Vec<u16>")]
pub struct AgentPorts(Vec<u16>);

impl AgentPorts {
    pub fn new(ports: impl IntoIterator<Item = u16>) -> Result<Self, ComplianceError> {
        let mut list = Vec::new();
        for port in ports {
            if port == 0 {
                return Err(ComplianceError::PortZero {
                    what: "an agent port",
                });
            }
            if !list.contains(&port) {
                list.push(port);
            }
        }
        if list.is_empty() {
            return Err(ComplianceError::NoAgentPorts);
        }
        Ok(AgentPorts(list))
    }

    pub fn as_slice(&self) -> &[u16] {
        &self.0
    }

    pub fn contains(&self, port: u16) -> bool {
        self.0.contains(&port)
    }

    /// Adds a port at the end; `Ok(false)` if it was already listed.
    pub fn add(&mut self, port: u16) -> Result<bool, ComplianceError> {
        if port == 0 {
            return Err(ComplianceError::PortZero {
                what: "an agent port",
            });
        }
        if self.contains(port) {
            return Ok(false);
        }
        self.0.push(port);
        Ok(true)
    }

    /// Removes a port; `Ok(false)` if it was not listed. The last port cannot
    /// be removed.
    pub fn remove(&mut self, port: u16) -> Result<bool, ComplianceError> {
        if !self.contains(port) {
            return Ok(false);
        }
        if self.0.len() == 1 {
            return Err(ComplianceError::LastAgentPort { port });
        }
        self.0.retain(|&p| p != port);
        Ok(true)
    }
}

impl Default for AgentPorts {
    fn default() -> Self {
        AgentPorts(vec![DEFAULT_AGENT_PORT])
    }
}

impl TryFrom<Vec<u16>> for AgentPorts {
    type Error = ComplianceError;

    fn try_from(ports: Vec<u16>) -> Result<Self, Self::Error> {
        AgentPorts::new(ports)
    }
}

impl From<AgentPorts> for Vec<u16> {
    fn from(p: AgentPorts) -> Vec<u16> {
        p.0
    }
}

/// Everything an assessment needs to know, saved per tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceScope {
    #[serde(default)]
    pub ad: Option<AdScope>,
    #[serde(default)]
    pub ip: IpScope,
    #[serde(default)]
    pub agent_ports: AgentPorts,
    /// "Declare a computer unreachable by checking port N"; `None` turns the
    /// check off. Defaults to 135 when the field is absent.
    #[serde(default = "default_unreachable_port")]
    pub unreachable_port: Option<u16>,
    /// Contact every endpoint live (true) or answer from stored results only.
    #[serde(default = "default_on_demand")]
    pub on_demand: bool,
    /// Name the endpoints found only by address: reverse DNS (PTR) of every
    /// address and NetBIOS node status of the live ones (`false`: like
    /// `nmap -n`, no lookups; the agents' reported host names still count).
    #[serde(default = "default_resolve_names")]
    pub resolve_names: bool,
}

fn default_resolve_names() -> bool {
    true
}

fn default_unreachable_port() -> Option<u16> {
    Some(DEFAULT_UNREACHABLE_PORT)
}

fn default_on_demand() -> bool {
    true
}

impl Default for ComplianceScope {
    fn default() -> Self {
        ComplianceScope {
            ad: None,
            ip: IpScope::default(),
            agent_ports: AgentPorts::default(),
            unreachable_port: default_unreachable_port(),
            on_demand: default_on_demand(),
            resolve_names: default_resolve_names(),
        }
    }
}

impl ComplianceScope {
    /// Checks every part; the error's message is meant for the user.
    pub fn validate(&self) -> Result<(), ComplianceError> {
        if let Some(ad) = &self.ad {
            ad.validate()?;
        }
        self.ip.validate()?;
        // `AgentPorts` cannot hold an invalid list: nothing to check.
        if self.unreachable_port == Some(0) {
            return Err(ComplianceError::PortZero {
                what: "the unreachable check",
            });
        }
        Ok(())
    }

    /// Whether an assessment would look at anything (an AD scope or an
    /// enabled IP scope). A scope without targets is valid: it turns the
    /// feature off while keeping the settings.
    pub fn has_targets(&self) -> bool {
        self.ad.is_some() || (self.ip.enabled && !self.ip.ranges.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::ad::AdBind;

    fn range(s: &str) -> IpRange {
        IpRange::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn ip_scope_merges_overlaps_for_assessment_but_keeps_the_list() {
        let scope = IpScope {
            enabled: true,
            ranges: [
                "2001:db8::/126",
                "198.51.100.10-198.51.100.20",
                "198.51.100.0/28",
                "198.51.100.21",
                "198.51.100.5",
                "198.51.100.40",
            ]
            .iter()
            .map(|s| range(s))
            .collect(),
        };
        assert_eq!(scope.validate(), Ok(()));
        let merged: Vec<String> = scope
            .merged_ranges()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(
            merged,
            [
                "198.51.100.0-198.51.100.21",
                "198.51.100.40",
                "2001:db8::-2001:db8::3"
            ]
        );
        assert_eq!(scope.address_count(), 22 + 1 + 4);
        let addrs: Vec<IpAddr> = scope.addresses().collect();
        assert_eq!(addrs.len(), 27);
        assert_eq!(addrs[0].to_string(), "198.51.100.0");
        assert_eq!(addrs[26].to_string(), "2001:db8::3");
        assert_eq!(scope.ranges.len(), 6, "the list is kept as written");
        assert!(scope.contains("198.51.100.15".parse().unwrap()));
        assert!(!scope.contains("198.51.100.30".parse().unwrap()));

        let off = IpScope {
            enabled: false,
            ..scope
        };
        assert_eq!(off.addresses().count(), 0);
        assert!(!off.contains("198.51.100.15".parse().unwrap()));
        assert_eq!(off.address_count(), 27);
    }

    #[test]
    fn ip_scope_validation() {
        let ranges = |list: &[&str]| list.iter().map(|s| range(s)).collect::<Vec<_>>();
        let sixteen: Vec<String> = (0..16).map(|i| format!("10.{i}.0.0/16")).collect();
        let seventeen: Vec<String> = (0..17).map(|i| format!("10.{i}.0.0/16")).collect();
        let strs = |v: &[String]| v.iter().map(|s| range(s)).collect::<Vec<_>>();
        let cases: Vec<(IpScope, Result<(), &str>)> = vec![
            (IpScope::default(), Ok(())),
            (IpScope { enabled: true, ranges: vec![] }, Err("the IP scope is enabled but lists no ranges; add a range or disable the IP scope")),
            (IpScope { enabled: false, ranges: ranges(&["198.51.100.0/24"]) }, Ok(())),
            (IpScope { enabled: true, ranges: strs(&sixteen) }, Ok(())),
            // The same range twice counts once.
            (IpScope { enabled: true, ranges: [strs(&sixteen), strs(&sixteen)].concat() }, Ok(())),
            (
                IpScope { enabled: true, ranges: strs(&seventeen) },
                Err("the IP ranges cover 1,114,112 addresses in all; a scope may cover at most 1,048,576 (16 full /16 or /112 ranges): narrow or remove ranges"),
            ),
            (
                IpScope { enabled: false, ranges: strs(&seventeen) },
                Err("the IP ranges cover 1,114,112 addresses in all; a scope may cover at most 1,048,576 (16 full /16 or /112 ranges): narrow or remove ranges"),
            ),
        ];
        for (i, (scope, want)) in cases.iter().enumerate() {
            let got = scope.validate().map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_owned), "case {i}");
        }
    }

    #[test]
    fn agent_ports() {
        type Case = (&'static [u16], Result<&'static [u16], &'static str>);
        let cases: &[Case] = &[
            (&[47760], Ok(&[47760])),
            (&[47760, 8443, 47760], Ok(&[47760, 8443])),
            (&[9000, 80], Ok(&[9000, 80])),
            (
                &[],
                Err("list at least one agent port (Vigil agents listen on 47760 by default)"),
            ),
            (
                &[80, 0],
                Err("port 0 is not valid for an agent port; use a port from 1 to 65535"),
            ),
        ];
        for (input, want) in cases {
            let got = AgentPorts::new(input.iter().copied());
            match (got, want) {
                (Ok(p), Ok(w)) => assert_eq!(p.as_slice(), *w),
                (Err(e), Err(w)) => assert_eq!(e.to_string(), *w),
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
        let mut p = AgentPorts::default();
        assert_eq!(p.as_slice(), [DEFAULT_AGENT_PORT]);
        assert_eq!(p.add(8443), Ok(true));
        assert_eq!(p.add(8443), Ok(false));
        assert!(p.add(0).is_err());
        assert_eq!(p.remove(1), Ok(false));
        assert_eq!(p.remove(DEFAULT_AGENT_PORT), Ok(true));
        assert_eq!(
            p.remove(8443).unwrap_err().to_string(),
            "cannot remove agent port 8443: at least one agent port is needed"
        );
        assert_eq!(p.as_slice(), [8443]);
        assert!(serde_json::from_str::<AgentPorts>("[]").is_err());
        assert!(serde_json::from_str::<AgentPorts>("[0]").is_err());
        let p: AgentPorts = serde_json::from_str("[1, 2, 1]").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "[1,2]");
    }

    #[test]
    fn compliance_scope_defaults_and_serde() {
        let scope: ComplianceScope = serde_json::from_str("{}").unwrap();
        assert_eq!(scope, ComplianceScope::default());
        assert_eq!(scope.unreachable_port, Some(135));
        assert_eq!(scope.agent_ports.as_slice(), [47760]);
        assert!(scope.on_demand);
        assert!(!scope.has_targets());
        assert_eq!(scope.validate(), Ok(()));

        let off: ComplianceScope = serde_json::from_str(r#"{"unreachable_port": null}"#).unwrap();
        assert_eq!(off.unreachable_port, None);

        let json = r#"{
            "ad": {
                "url": "ldaps://dc1.example.test",
                "bind": {"method": "simple", "bind_dn": "svc-vigil@example.test"},
                "base_dns": ["OU=Computers,DC=example,DC=test"],
                "filter": "(operatingSystem=Windows*)"
            },
            "ip": {"enabled": true, "ranges": ["198.51.100.0/24", "2001:db8::1-2001:db8::ff"]},
            "agent_ports": [47760, 8443],
            "unreachable_port": 135,
            "on_demand": false
        }"#;
        let scope: ComplianceScope = serde_json::from_str(json).unwrap();
        assert_eq!(scope.validate(), Ok(()));
        assert!(scope.has_targets());
        let back: ComplianceScope =
            serde_json::from_str(&serde_json::to_string(&scope).unwrap()).unwrap();
        assert_eq!(back, scope);
        let text = serde_json::to_value(&scope).unwrap();
        assert_eq!(text["ip"]["ranges"][1], "2001:db8::1-2001:db8::ff");
        assert_eq!(text["ad"]["bind"]["method"], "simple");
        assert_eq!(text["ad"]["base_dns"][0], "OU=Computers,DC=example,DC=test");

        let bad = r#"{"ip": {"enabled": true, "ranges": ["2001:db8::/104"]}}"#;
        let err = serde_json::from_str::<ComplianceScope>(bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("range \"2001:db8::/104\" has 16,777,216 addresses; a range may hold at most 65,536 (IPv6: prefix /112 to /128)"),
            "{err}"
        );

        let zero = ComplianceScope {
            unreachable_port: Some(0),
            ..ComplianceScope::default()
        };
        assert_eq!(
            zero.validate().unwrap_err().to_string(),
            "port 0 is not valid for the unreachable check; use a port from 1 to 65535"
        );
        let bad_ad = ComplianceScope {
            ad: Some(AdScope {
                url: "ldap://dc1".into(),
                start_tls: false,
                bind: AdBind::Simple {
                    bind_dn: "svc@example.test".into(),
                },
                base_dns: vec!["DC=example,DC=test".parse().unwrap()],
                filter: None,
                ca_cert: None,
                tls_pin: None,
            }),
            ..ComplianceScope::default()
        };
        assert_eq!(bad_ad.validate(), Err(ComplianceError::CleartextBind));
    }
}
