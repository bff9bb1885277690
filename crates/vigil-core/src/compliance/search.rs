//! Searching the compliance results the way users of the original tool
//! expect.
//!
//! A name is matched whole and without regard to case: `web` finds `WEB`
//! but not `web01`. Only `*` is a wildcard; it stands for any run of
//! characters, including none, and may appear several times (`web*`, `*01`,
//! `w*b*1`, `*`). Every other character, `?` included, is literal. A name
//! pattern is tried against the endpoint's name and its DNS name.
//!
//! The advanced search ANDs its criteria; an absent criterion (or an empty
//! status list) accepts everything. The OS criterion is friendlier: without
//! `*` it finds the text anywhere in the OS (`server 2022`), with `*` it is
//! a whole-value pattern like a name. The container criterion finds
//! endpoints in that OU or below it. `last_seen_after` is inclusive,
//! `last_seen_before` exclusive; an endpoint never seen fails both.

use super::dn::Dn;
use super::endpoint::Endpoint;
use super::error::ComplianceError;
use super::range::IpRange;
use super::status::EndpointStatus;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A whole-name pattern where `*` matches any run of characters.
/// Serialized as the text the user typed (trimmed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NamePattern {
    text: String,
    /// The lower-cased text split at every `*`: one part means no wildcard.
    parts: Vec<String>,
}

impl NamePattern {
    pub fn parse(input: &str) -> Result<NamePattern, ComplianceError> {
        Self::build(input, "a name")
    }

    fn build(input: &str, what: &'static str) -> Result<NamePattern, ComplianceError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(ComplianceError::EmptyPattern { what });
        }
        Ok(NamePattern {
            text: text.to_owned(),
            parts: text.to_lowercase().split('*').map(str::to_owned).collect(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern has a `*`.
    pub fn has_wildcard(&self) -> bool {
        self.parts.len() > 1
    }

    /// Whether `name` matches the whole pattern, ignoring case.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        match self.parts.as_slice() {
            [] => false,
            [exact] => name == *exact,
            [first, middle @ .., last] => {
                if name.len() < first.len() + last.len()
                    || !name.starts_with(first.as_str())
                    || !name.ends_with(last.as_str())
                {
                    return false;
                }
                let mut rest = &name[first.len()..name.len() - last.len()];
                for part in middle {
                    match rest.find(part.as_str()) {
                        Some(i) => rest = &rest[i + part.len()..],
                        None => return false,
                    }
                }
                true
            }
        }
    }

    /// Whether the endpoint's name or DNS name matches.
    pub fn matches_endpoint(&self, ep: &Endpoint) -> bool {
        self.matches(&ep.name) || ep.dns_name.as_deref().is_some_and(|n| self.matches(n))
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for NamePattern {
    type Err = ComplianceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NamePattern::parse(s)
    }
}

impl TryFrom<String> for NamePattern {
    type Error = ComplianceError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        NamePattern::parse(&s)
    }
}

impl From<NamePattern> for String {
    fn from(p: NamePattern) -> String {
        p.text
    }
}

/// The OS criterion: a substring without `*`, a whole-value pattern with it.
/// Serialized as the text the user typed (trimmed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OsPattern {
    text: String,
    pattern: NamePattern,
}

impl OsPattern {
    pub fn parse(input: &str) -> Result<OsPattern, ComplianceError> {
        let text = input.trim();
        let what = "an operating system";
        let pattern = if text.contains('*') {
            NamePattern::build(text, what)?
        } else if text.is_empty() {
            return Err(ComplianceError::EmptyPattern { what });
        } else {
            NamePattern::build(&format!("*{text}*"), what)?
        };
        Ok(OsPattern {
            text: text.to_owned(),
            pattern,
        })
    }

    pub fn matches(&self, os: &str) -> bool {
        self.pattern.matches(os)
    }
}

impl fmt::Display for OsPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<String> for OsPattern {
    type Error = ComplianceError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        OsPattern::parse(&s)
    }
}

impl From<OsPattern> for String {
    fn from(p: OsPattern) -> String {
        p.text
    }
}

/// The advanced search: every given criterion must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AdvancedQuery {
    #[serde(default)]
    pub name: Option<NamePattern>,
    /// Endpoints with at least one address in the range.
    #[serde(default)]
    pub ip_range: Option<IpRange>,
    /// Any of these statuses; empty means any status shown by default
    /// ([`EndpointStatus::SHOWN`]: not *no host at address*).
    #[serde(default)]
    pub statuses: Vec<EndpointStatus>,
    #[serde(default)]
    pub os: Option<OsPattern>,
    /// Endpoints in this AD container or below it.
    #[serde(default)]
    pub container: Option<Dn>,
    /// Last seen at or after this Unix time.
    #[serde(default)]
    pub last_seen_after: Option<i64>,
    /// Last seen before this Unix time.
    #[serde(default)]
    pub last_seen_before: Option<i64>,
}

impl AdvancedQuery {
    /// The simple search: by name only.
    pub fn by_name(name: NamePattern) -> Self {
        AdvancedQuery {
            name: Some(name),
            ..AdvancedQuery::default()
        }
    }

    /// Every endpoint of an assessment, whatever its status.
    pub fn everything() -> Self {
        AdvancedQuery {
            statuses: EndpointStatus::ALL.to_vec(),
            ..AdvancedQuery::default()
        }
    }

    /// The statuses asked for: `statuses`, or when empty the ones shown by
    /// default.
    pub fn wanted_statuses(&self) -> &[EndpointStatus] {
        if self.statuses.is_empty() {
            &EndpointStatus::SHOWN
        } else {
            &self.statuses
        }
    }

    /// Refuses a time window that can match nothing.
    pub fn validate(&self) -> Result<(), ComplianceError> {
        match (self.last_seen_after, self.last_seen_before) {
            (Some(after), Some(before)) if after >= before => Err(ComplianceError::LastSeenBounds),
            _ => Ok(()),
        }
    }

    pub fn matches(&self, ep: &Endpoint) -> bool {
        self.name.as_ref().is_none_or(|p| p.matches_endpoint(ep))
            && self
                .ip_range
                .as_ref()
                .is_none_or(|r| ep.addrs.iter().any(|a| r.contains(*a)))
            && self.wanted_statuses().contains(&ep.status)
            && self
                .os
                .as_ref()
                .is_none_or(|p| ep.os.as_deref().is_some_and(|os| p.matches(os)))
            && self
                .container
                .as_ref()
                .is_none_or(|c| ep.container.as_ref().is_some_and(|e| e.is_within(c)))
            && self
                .last_seen_after
                .is_none_or(|t| ep.last_seen.is_some_and(|s| s >= t))
            && self
                .last_seen_before
                .is_none_or(|t| ep.last_seen.is_some_and(|s| s < t))
    }

    /// The endpoints matching this query, in their order.
    pub fn filter<'a>(&'a self, endpoints: &'a [Endpoint]) -> impl Iterator<Item = &'a Endpoint> {
        endpoints.iter().filter(move |ep| self.matches(ep))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EndpointStatus::*;

    #[test]
    fn name_patterns() {
        let cases: &[(&str, &str, bool)] = &[
            // Without '*': the whole name, any case.
            ("web01", "web01", true),
            ("WEB01", "web01", true),
            ("web01", "WEB01", true),
            ("  web01 ", "web01", true),
            ("web", "web01", false),
            ("eb01", "web01", false),
            ("web01", "web01.example.test", false),
            ("", "", false),
            // '*' for any run, including none.
            ("web*", "web01", true),
            ("web*", "web", true),
            ("web*", "myweb01", false),
            ("*01", "web01", true),
            ("*01", "web010", false),
            ("*eb*", "web01", true),
            ("w*b*1", "web01", true),
            ("w*b*1", "wb1", true),
            ("w*b*1", "web02", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("ab*bc", "abc", false),
            ("ab*bc", "abbc", true),
            ("*", "anything", true),
            ("*", "", true),
            ("**", "x", true),
            ("w**1", "web01", true),
            ("*b*b*", "bob", true),
            ("*b*b*", "bo", false),
            // '?' and other characters are literal.
            ("web?1", "web01", false),
            ("web?1", "web?1", true),
            ("web[0]1", "web01", false),
            ("web.*", "web.example", true),
            ("web.*", "webxexample", false),
            // Unicode case folding.
            ("ÉCOLE-*", "école-pc1", true),
        ];
        for (pattern, name, want) in cases {
            let got = NamePattern::parse(pattern).is_ok_and(|p| p.matches(name));
            assert_eq!(got, *want, "{pattern:?} vs {name:?}");
        }
        assert_eq!(
            NamePattern::parse(" ").unwrap_err().to_string(),
            "enter a name to search for, or * for all"
        );
        assert!(!NamePattern::parse("web").unwrap().has_wildcard());
        assert!(NamePattern::parse("web*").unwrap().has_wildcard());
    }

    #[test]
    fn os_patterns() {
        let os = "Windows Server 2022 Standard";
        let cases: &[(&str, bool)] = &[
            ("Windows Server 2022 Standard", true),
            ("server 2022", true),
            ("windows", true),
            ("Server 2019", false),
            ("windows*", true),
            ("server*", false),
            ("*2022*", true),
            ("*standard", true),
            ("*datacenter", false),
        ];
        for (pattern, want) in cases {
            let p = OsPattern::parse(pattern).unwrap();
            assert_eq!(p.matches(os), *want, "{pattern:?}");
        }
        assert_eq!(
            OsPattern::parse("").unwrap_err().to_string(),
            "enter an operating system to search for, or * for all"
        );
    }

    fn endpoints() -> Vec<Endpoint> {
        let ep = |name: &str,
                  status,
                  addr: &str,
                  os: Option<&str>,
                  ou: Option<&str>,
                  seen: Option<i64>| {
            let mut e = Endpoint::new(name, status);
            e.addrs = vec![addr.parse().unwrap()];
            e.os = os.map(str::to_owned);
            e.container = ou.map(|d| Dn::parse(d).unwrap());
            e.last_seen = seen;
            e
        };
        let mut web01 = ep(
            "WEB01",
            ManagedHere,
            "10.0.1.1",
            Some("Windows Server 2022 Standard"),
            Some("OU=Web,OU=Servers,DC=example,DC=test"),
            Some(1_000),
        );
        web01.dns_name = Some("web01.example.test".into());
        vec![
            web01,
            ep(
                "WEB02",
                NoAgent,
                "10.0.1.2",
                Some("Windows Server 2019 Datacenter"),
                Some("OU=Servers,DC=example,DC=test"),
                Some(2_000),
            ),
            ep(
                "LAPTOP7",
                ManagedElsewhere,
                "10.0.2.7",
                Some("Windows 11 Pro"),
                Some("OU=Laptops,DC=example,DC=test"),
                Some(3_000),
            ),
            ep(
                "OLD01",
                UnresolvedAd,
                "192.0.2.1",
                None,
                Some("OU=OldServers,DC=example,DC=test"),
                None,
            ),
            ep("10.0.3.9", Unreachable, "10.0.3.9", None, None, None),
            ep(
                "2001:db8::5",
                NoAgent,
                "2001:db8::5",
                None,
                None,
                Some(2_500),
            ),
        ]
    }

    #[test]
    fn advanced_query_table() {
        let name = |s: &str| Some(NamePattern::parse(s).unwrap());
        let os = |s: &str| Some(OsPattern::parse(s).unwrap());
        let dn = |s: &str| Some(Dn::parse(s).unwrap());
        let range = |s: &str| Some(IpRange::parse(s).unwrap());
        let all = [
            "WEB01",
            "WEB02",
            "LAPTOP7",
            "OLD01",
            "10.0.3.9",
            "2001:db8::5",
        ];
        let q = AdvancedQuery::default;
        let cases: Vec<(&str, AdvancedQuery, Vec<&str>)> = vec![
            ("no criteria", q(), all.to_vec()),
            (
                "exact name",
                AdvancedQuery::by_name(NamePattern::parse("web01").unwrap()),
                vec!["WEB01"],
            ),
            (
                "incomplete name finds nothing",
                AdvancedQuery {
                    name: name("web"),
                    ..q()
                },
                vec![],
            ),
            (
                "wildcard name",
                AdvancedQuery {
                    name: name("web*"),
                    ..q()
                },
                vec!["WEB01", "WEB02"],
            ),
            (
                "DNS name",
                AdvancedQuery {
                    name: name("web01.example.test"),
                    ..q()
                },
                vec!["WEB01"],
            ),
            (
                "address-named endpoint",
                AdvancedQuery {
                    name: name("10.0.3.*"),
                    ..q()
                },
                vec!["10.0.3.9"],
            ),
            (
                "IP range",
                AdvancedQuery {
                    ip_range: range("10.0.1.0/24"),
                    ..q()
                },
                vec!["WEB01", "WEB02"],
            ),
            (
                "IPv6 range",
                AdvancedQuery {
                    ip_range: range("2001:db8::/120"),
                    ..q()
                },
                vec!["2001:db8::5"],
            ),
            (
                "one status",
                AdvancedQuery {
                    statuses: vec![NoAgent],
                    ..q()
                },
                vec!["WEB02", "2001:db8::5"],
            ),
            (
                "several statuses",
                AdvancedQuery {
                    statuses: vec![Unreachable, UnresolvedAd],
                    ..q()
                },
                vec!["OLD01", "10.0.3.9"],
            ),
            (
                "OS substring",
                AdvancedQuery {
                    os: os("server"),
                    ..q()
                },
                vec!["WEB01", "WEB02"],
            ),
            (
                "OS wildcard",
                AdvancedQuery {
                    os: os("windows 1*"),
                    ..q()
                },
                vec!["LAPTOP7"],
            ),
            (
                "OS * needs an OS",
                AdvancedQuery { os: os("*"), ..q() },
                vec!["WEB01", "WEB02", "LAPTOP7"],
            ),
            (
                "container and below",
                AdvancedQuery {
                    container: dn("ou=servers,dc=example,dc=test"),
                    ..q()
                },
                vec!["WEB01", "WEB02"],
            ),
            (
                "container leaf",
                AdvancedQuery {
                    container: dn("OU=Web,OU=Servers,DC=example,DC=test"),
                    ..q()
                },
                vec!["WEB01"],
            ),
            (
                "seen at or after",
                AdvancedQuery {
                    last_seen_after: Some(2_000),
                    ..q()
                },
                vec!["WEB02", "LAPTOP7", "2001:db8::5"],
            ),
            (
                "seen before",
                AdvancedQuery {
                    last_seen_before: Some(2_000),
                    ..q()
                },
                vec!["WEB01"],
            ),
            (
                "seen window",
                AdvancedQuery {
                    last_seen_after: Some(1_500),
                    last_seen_before: Some(3_000),
                    ..q()
                },
                vec!["WEB02", "2001:db8::5"],
            ),
            (
                "criteria combine",
                AdvancedQuery {
                    name: name("web*"),
                    statuses: vec![ManagedHere],
                    os: os("2022"),
                    container: dn("DC=example,DC=test"),
                    ip_range: range("10.0.1.1"),
                    last_seen_after: Some(1_000),
                    last_seen_before: Some(1_001),
                },
                vec!["WEB01"],
            ),
            (
                "criteria combine to nothing",
                AdvancedQuery {
                    name: name("web*"),
                    statuses: vec![ManagedElsewhere],
                    ..q()
                },
                vec![],
            ),
        ];
        let eps = endpoints();
        for (case, query, want) in cases {
            assert_eq!(query.validate(), Ok(()), "{case}");
            let got: Vec<&str> = query.filter(&eps).map(|e| e.name.as_str()).collect();
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn advanced_query_validation_and_serde() {
        let bad = AdvancedQuery {
            last_seen_after: Some(5),
            last_seen_before: Some(5),
            ..AdvancedQuery::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "\"last seen after\" must be earlier than \"last seen before\""
        );
        let json = r#"{
            "name": "web*",
            "ip_range": "10.0.1.0/24",
            "statuses": ["managed_here", "no_agent"],
            "os": "server",
            "container": "OU=Servers,DC=example,DC=test",
            "last_seen_after": 1000
        }"#;
        let q: AdvancedQuery = serde_json::from_str(json).unwrap();
        assert_eq!(q.name.as_ref().map(NamePattern::as_str), Some("web*"));
        let eps = endpoints();
        let got: Vec<&str> = q.filter(&eps).map(|e| e.name.as_str()).collect();
        assert_eq!(got, ["WEB01", "WEB02"]);
        let back: AdvancedQuery =
            serde_json::from_str(&serde_json::to_string(&q).unwrap()).unwrap();
        assert_eq!(back, q);
        assert_eq!(serde_json::to_value(&q).unwrap()["os"], "server");

        let err =
            serde_json::from_str::<AdvancedQuery>(r#"{"statuses": ["managed"]}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
        let err = serde_json::from_str::<AdvancedQuery>(r#"{"name": " "}"#).unwrap_err();
        assert!(err.to_string().contains("enter a name"), "{err}");
        let empty: AdvancedQuery = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, AdvancedQuery::default());
    }

    #[test]
    fn endpoint_serde_round_trip() {
        for ep in endpoints() {
            let json = serde_json::to_string(&ep).unwrap();
            let back: Endpoint = serde_json::from_str(&json).unwrap();
            assert_eq!(back, ep);
        }
        let minimal: Endpoint =
            serde_json::from_str(r#"{"name": "x", "status": "no_agent"}"#).unwrap();
        assert_eq!(minimal, Endpoint::new("x", NoAgent));
    }
}
