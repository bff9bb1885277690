//! Names for endpoints found only by address, found the way Windows admin
//! tools find them, and where each name came from.
//!
//! An address gets, in this order of preference: the host name its agent
//! reported in the identify reply (not from a reply judged forged), its
//! reverse-DNS (PTR) name, its NetBIOS computer name (node status). Every
//! name comes from the scanned network, so it is cleaned first: a name
//! with anything but letters, digits, `-`, `_` and `.` is not used.

use super::error::ComplianceError;
use super::identify::IdentifyCheck;
use super::status::Identified;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The longest name kept (a DNS name's limit).
pub const MAX_NAME_LEN: usize = 253;

/// Where an endpoint's name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameSource {
    /// The AD computer object (`cn`).
    Ad,
    /// Reverse DNS (PTR).
    Dns,
    /// NetBIOS node status (UDP 137).
    Netbios,
    /// The host name the agent reported.
    Agent,
    /// The device's own mDNS responder (devices on a location's network;
    /// compliance sweeps do not ask).
    Mdns,
}

impl NameSource {
    pub const ALL: [NameSource; 5] = [
        NameSource::Ad,
        NameSource::Dns,
        NameSource::Netbios,
        NameSource::Agent,
        NameSource::Mdns,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NameSource::Ad => "ad",
            NameSource::Dns => "dns",
            NameSource::Netbios => "netbios",
            NameSource::Agent => "agent",
            NameSource::Mdns => "mdns",
        }
    }

    /// The name shown to people.
    pub fn label(self) -> &'static str {
        match self {
            NameSource::Ad => "Active Directory",
            NameSource::Dns => "DNS",
            NameSource::Netbios => "NetBIOS",
            NameSource::Agent => "Agent",
            NameSource::Mdns => "mDNS",
        }
    }
}

impl fmt::Display for NameSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NameSource {
    type Err = ComplianceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NameSource::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| ComplianceError::UnknownNameSource { given: s.into() })
    }
}

/// What the network said an address is called.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenNames {
    /// The PTR name.
    pub dns: Option<String>,
    /// The NetBIOS computer name.
    pub netbios: Option<String>,
}

/// The name to show for an address, and its source (see the module doc);
/// `None` when nothing usable names it.
pub fn pick_name(
    identify: Option<&Identified>,
    check: Option<IdentifyCheck>,
    seen: &SeenNames,
) -> Option<(String, NameSource)> {
    let agent = identify
        .filter(|_| check != Some(IdentifyCheck::Forged))
        .and_then(|id| id.hostname.as_deref());
    [
        (agent, NameSource::Agent),
        (seen.dns.as_deref(), NameSource::Dns),
        (seen.netbios.as_deref(), NameSource::Netbios),
    ]
    .into_iter()
    .find_map(|(name, source)| Some((clean_host_name(name?)?, source)))
}

/// `raw` trimmed and without a trailing dot, if it is a usable host name:
/// 1 to [`MAX_NAME_LEN`] characters, each a letter, digit, `-`, `_` or
/// `.` (no empty labels).
pub fn clean_host_name(raw: &str) -> Option<String> {
    let name = raw.trim().strip_suffix('.').unwrap_or(raw.trim());
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.split('.').all(|label| !label.is_empty());
    ok.then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::identify::Proof;

    fn reply(hostname: Option<&str>) -> Identified {
        Identified {
            agent_id: "a".into(),
            server_id: "s".into(),
            version: "1".into(),
            proof: Proof::default(),
            hostname: hostname.map(String::from),
        }
    }

    #[test]
    fn cleans_names_from_the_network() {
        let cases = [
            ("web01.acme.test.", Some("web01.acme.test")),
            ("  WEB01 ", Some("WEB01")),
            ("db_2", Some("db_2")),
            ("", None),
            (".", None),
            ("a..b", None),
            ("=cmd|' /C calc'!A0", None),
            ("name with space", None),
            ("caf\u{e9}", None),
        ];
        for (raw, want) in cases {
            assert_eq!(clean_host_name(raw).as_deref(), want, "{raw:?}");
        }
        assert!(clean_host_name(&"a".repeat(MAX_NAME_LEN)).is_some());
        assert!(clean_host_name(&"a".repeat(MAX_NAME_LEN + 1)).is_none());
    }

    #[test]
    fn prefers_the_agent_then_dns_then_netbios() {
        let both = SeenNames {
            dns: Some("web01.acme.test".into()),
            netbios: Some("WEB01".into()),
        };
        let netbios_only = SeenNames {
            dns: None,
            netbios: Some("WEB01".into()),
        };
        let agent = reply(Some("web01"));
        let cases = [
            (
                Some(&agent),
                None,
                &both,
                Some(("web01", NameSource::Agent)),
            ),
            (
                Some(&agent),
                Some(IdentifyCheck::Forged),
                &both,
                Some(("web01.acme.test", NameSource::Dns)),
            ),
            (
                None,
                None,
                &both,
                Some(("web01.acme.test", NameSource::Dns)),
            ),
            (
                None,
                None,
                &netbios_only,
                Some(("WEB01", NameSource::Netbios)),
            ),
            (None, None, &SeenNames::default(), None),
        ];
        for (id, check, seen, want) in cases {
            let got = pick_name(id, check, seen);
            assert_eq!(
                got.as_ref().map(|(n, s)| (n.as_str(), *s)),
                want,
                "{id:?} {check:?} {seen:?}"
            );
        }
        // An unusable name falls through to the next source.
        let bad_agent = reply(Some("<script>"));
        assert_eq!(
            pick_name(Some(&bad_agent), None, &netbios_only),
            Some(("WEB01".to_string(), NameSource::Netbios))
        );
    }

    #[test]
    fn sources_round_trip() {
        for s in NameSource::ALL {
            assert_eq!(s.as_str().parse::<NameSource>().unwrap(), s);
        }
        assert!("ldap".parse::<NameSource>().is_err());
    }
}
