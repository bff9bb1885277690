//! Security-scan policies: which ports are allowed or expected open, where to
//! scan and how often.

use crate::lan::policy::{DeviceKind, UnreviewedDevices};
use crate::lan::scope::{self, ScopeError};
use crate::plan::{AccountKind, IntervalError, Plan, ScanInterval};
use crate::ports::PortList;
use crate::targets::TargetSpec;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use thiserror::Error;

/// Why a policy (or one of its targets) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    #[error("a security scan policy needs at least one target")]
    NoTargets,
    #[error("invalid target host {host:?}: {reason}")]
    InvalidHost { host: String, reason: String },
    #[error("target {target} is listed more than once")]
    DuplicateTarget { target: String },
    #[error("a policy may list at most {MAX_TARGETS} targets ({count} given)")]
    TooManyTargets { count: usize },
    #[error(transparent)]
    Interval(#[from] IntervalError),
    #[error("security scans need the Extended plan (this agent is on the {plan} plan)")]
    NeedsExtendedPlan { plan: Plan },
    #[error(
        "unknown policy target key {key:?}: expected \"observed_address\", \"agent_host\", \
         \"local_network\", \"host:<host>\" or \"net:<network>\""
    )]
    UnknownTargetKey { key: String },
    #[error(transparent)]
    Network(#[from] ScopeError),
    #[error("interface name {name:?} is not valid: {reason}")]
    InvalidInterface { name: String, reason: String },
    #[error("device kind {name:?} is not valid: {reason}")]
    InvalidDeviceKind { name: String, reason: String },
}

/// Where a security scan looks.
///
/// Serialized as `"observed_address"`, `"agent_host"`, `"local_network"`,
/// `{"host": "nas.example"}` or `{"network": "198.51.100.0/24"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyTarget {
    /// The location's public address as the server sees it; scanned from the server.
    ObservedAddress,
    /// The agent's own host; scanned by the agent.
    AgentHost,
    /// An explicit hostname or IP address; scanned by the agent.
    ///
    /// Build it with [`PolicyTarget::host`], which validates and normalizes it.
    Host(String),
    /// The subnets of the agent's own interfaces, swept by the agent for
    /// devices (see [`crate::lan`]). Never in a policy unless a user adds it.
    LocalNetwork,
    /// A CIDR block, range or address the user adds to the local-network
    /// sweep, in normal form (see [`crate::lan::network_range`]).
    Network(String),
}

impl PolicyTarget {
    /// Validates an explicit host and returns it in normal form (hostnames in
    /// lower case without a trailing dot, addresses in their canonical text form).
    ///
    /// Accepted: a single IPv4/IPv6 address or a hostname (at most 253
    /// characters, labels of letters, digits, `-` and `_`). Rejected: empty
    /// input, any whitespace, CIDR blocks and address ranges.
    pub fn host(host: &str) -> Result<PolicyTarget, PolicyError> {
        normalize_host(host).map(PolicyTarget::Host)
    }

    /// Validates a network to sweep and returns it in normal form.
    pub fn network(network: &str) -> Result<PolicyTarget, PolicyError> {
        Ok(PolicyTarget::Network(scope::network_range(network)?.0))
    }

    /// Whether the target is part of the local-network sweep (one task per
    /// run covers them all, see [`NETWORK_TASK_KEY`]).
    pub fn is_network(&self) -> bool {
        matches!(self, PolicyTarget::LocalNetwork | PolicyTarget::Network(_))
    }

    /// A stable machine key for this target, e.g. to name the scan tasks and
    /// evaluation state of one target: `"observed_address"`, `"agent_host"`
    /// or `"host:<host>"` (the host as stored, normally in normal form).
    /// [`PolicyTarget::from_key`] parses it back.
    pub fn key(&self) -> String {
        match self {
            PolicyTarget::ObservedAddress => KEY_OBSERVED_ADDRESS.to_owned(),
            PolicyTarget::AgentHost => KEY_AGENT_HOST.to_owned(),
            PolicyTarget::Host(h) => format!("{KEY_HOST_PREFIX}{h}"),
            PolicyTarget::LocalNetwork => KEY_LOCAL_NETWORK.to_owned(),
            PolicyTarget::Network(n) => format!("{KEY_NETWORK_PREFIX}{n}"),
        }
    }

    /// Parses a key made by [`PolicyTarget::key`]. The host of a `host:` key
    /// must be valid and already in normal form (see [`PolicyTarget::host`]).
    pub fn from_key(key: &str) -> Result<PolicyTarget, PolicyError> {
        match key {
            KEY_OBSERVED_ADDRESS => Ok(PolicyTarget::ObservedAddress),
            KEY_AGENT_HOST => Ok(PolicyTarget::AgentHost),
            KEY_LOCAL_NETWORK => Ok(PolicyTarget::LocalNetwork),
            _ if key.starts_with(KEY_NETWORK_PREFIX) => {
                let given = &key[KEY_NETWORK_PREFIX.len()..];
                let target = PolicyTarget::network(given)?;
                if target != PolicyTarget::Network(given.into()) {
                    return Err(PolicyError::UnknownTargetKey { key: key.into() });
                }
                Ok(target)
            }
            _ => {
                let Some(host) = key.strip_prefix(KEY_HOST_PREFIX) else {
                    return Err(PolicyError::UnknownTargetKey { key: key.into() });
                };
                let normal = normalize_host(host)?;
                if normal != host {
                    return Err(PolicyError::InvalidHost {
                        host: host.into(),
                        reason: format!("write it as {normal:?}"),
                    });
                }
                Ok(PolicyTarget::Host(normal))
            }
        }
    }

    /// Whether the agent (rather than the server) runs the scan.
    pub fn scanned_by_agent(&self) -> bool {
        !matches!(self, PolicyTarget::ObservedAddress)
    }
}

impl fmt::Display for PolicyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyTarget::ObservedAddress => f.write_str("observed address"),
            PolicyTarget::AgentHost => f.write_str("agent host"),
            PolicyTarget::Host(h) => write!(f, "{h:?}"),
            PolicyTarget::LocalNetwork => f.write_str("local network"),
            PolicyTarget::Network(n) => write!(f, "network {n}"),
        }
    }
}

const KEY_OBSERVED_ADDRESS: &str = "observed_address";
const KEY_AGENT_HOST: &str = "agent_host";
const KEY_HOST_PREFIX: &str = "host:";
const KEY_LOCAL_NETWORK: &str = "local_network";
const KEY_NETWORK_PREFIX: &str = "net:";

/// The target key of the one scan task per run that sweeps every network
/// target of a policy (the local network and the networks added to it).
pub const NETWORK_TASK_KEY: &str = "network";

/// The longest interface name accepted (Windows adapter names are long).
pub const MAX_INTERFACE_NAME: usize = 256;
/// The most interfaces a policy may opt in.
pub const MAX_INCLUDED_INTERFACES: usize = 64;
/// The most device kinds a policy may list.
pub const MAX_DEVICE_KINDS: usize = 64;
/// The longest device kind name, in characters.
pub const MAX_KIND_NAME: usize = 64;

/// Longest accepted hostname, in characters (the DNS limit).
pub const MAX_HOST_LEN: usize = 253;

/// The most targets one policy may list: each is a scan task per run, and a
/// location has a handful of hosts worth a security scan, not thousands.
pub const MAX_TARGETS: usize = 256;

fn normalize_host(host: &str) -> Result<String, PolicyError> {
    let invalid = |reason: &str| PolicyError::InvalidHost {
        host: host.into(),
        reason: reason.into(),
    };
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    if host.chars().any(char::is_whitespace) {
        return Err(invalid("hosts may not contain whitespace"));
    }
    if host.len() > MAX_HOST_LEN {
        return Err(invalid("longer than 253 characters"));
    }
    if let Ok(addr) = host.parse::<IpAddr>() {
        return Ok(addr.to_string());
    }
    // Same hostname rules as `vigil scan` targets, but ranges and CIDR blocks
    // are not hosts.
    match host.parse::<TargetSpec>() {
        Ok(TargetSpec::Name(name)) => Ok(match name.strip_suffix('.') {
            Some(stripped) => stripped.to_owned(),
            None => name,
        }),
        Ok(TargetSpec::Range(_)) => Err(invalid(
            "expected a single address or hostname, not a range or CIDR block",
        )),
        Err(_) => Err(invalid(
            "not an IP address or hostname (hostnames use letters, digits, '-' and '.')",
        )),
    }
}

/// The security-scan settings of one agent.
///
/// Ports are serialized as port-list strings (`"22,80,8000-8100"`, `""` for
/// none). Deserializing does not run the policy rules: call
/// [`SecurityPolicy::validate`] on anything that comes from a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityPolicy {
    /// User switch; a disabled policy is kept but not run.
    pub enabled: bool,
    /// Ports allowed to be open. Open ports outside this list (and outside
    /// `monitored`) raise an *unauthorized port open* alert.
    #[serde(with = "port_list_serde", default)]
    pub authorized: PortList,
    /// Ports expected to be open; one that is not raises *service down*.
    /// Monitored ports are implicitly authorized.
    #[serde(with = "port_list_serde", default)]
    pub monitored: PortList,
    pub targets: Vec<PolicyTarget>,
    pub interval: ScanInterval,
    /// Interfaces left out of the local-network sweep by default (container
    /// bridges, VPN tunnels, …) that the user includes, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_interfaces: Vec<String>,
    /// Whether open ports of devices nobody reviewed alert.
    #[serde(default, skip_serializing_if = "is_default")]
    pub unreviewed_devices: UnreviewedDevices,
    /// Ports authorized by device kind ("printer": 80, 443, 631, 9100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_kinds: Vec<DeviceKind>,
    /// Whether an authorized open port of the agent's host that another
    /// program serves than in the previous result raises a *process
    /// changed* alert (off by default: updates change paths too).
    #[serde(default, skip_serializing_if = "is_default")]
    pub process_change_alerts: bool,
}

impl SecurityPolicy {
    /// Validates a policy that comes from a user: explicit hosts are first put
    /// in normal form (see [`PolicyTarget::host`]), then [`Self::validate`]
    /// runs. Returns the normalized policy, ready to store.
    pub fn validated(mut self, account: AccountKind) -> Result<SecurityPolicy, PolicyError> {
        for target in &mut self.targets {
            match target {
                PolicyTarget::Host(h) => *h = normalize_host(h)?,
                PolicyTarget::Network(n) => *n = scope::network_range(n)?.0,
                _ => {}
            }
        }
        self.include_interfaces.sort();
        self.include_interfaces.dedup();
        self.validate(account)?;
        Ok(self)
    }

    /// Checks the policy for an account of the given kind: at least one
    /// target, every explicit host valid and in normal form (see
    /// [`PolicyTarget::host`]), no target twice, at most [`MAX_TARGETS`],
    /// and an interval the account may choose.
    pub fn validate(&self, account: AccountKind) -> Result<(), PolicyError> {
        if self.targets.is_empty() {
            return Err(PolicyError::NoTargets);
        }
        if self.targets.len() > MAX_TARGETS {
            return Err(PolicyError::TooManyTargets {
                count: self.targets.len(),
            });
        }
        let mut seen = std::collections::HashSet::with_capacity(self.targets.len());
        let mut networks = Vec::new();
        for target in &self.targets {
            if let PolicyTarget::Host(h) = target {
                let normal = normalize_host(h)?;
                if &normal != h {
                    return Err(PolicyError::InvalidHost {
                        host: h.clone(),
                        reason: format!("write it as {normal:?}"),
                    });
                }
            }
            if let PolicyTarget::Network(n) = target {
                let (normal, range) = scope::network_range(n)?;
                if &normal != n {
                    return Err(ScopeError::Invalid {
                        given: n.clone(),
                        reason: format!("write it as {normal:?}"),
                    }
                    .into());
                }
                networks.push(range);
            }
            if !seen.insert(target) {
                return Err(PolicyError::DuplicateTarget {
                    target: target.to_string(),
                });
            }
        }
        scope::check_total(&networks, account)?;
        self.check_interfaces()?;
        self.check_device_kinds()?;
        ScanInterval::for_account(account, self.interval.minutes())?;
        Ok(())
    }

    fn check_device_kinds(&self) -> Result<(), PolicyError> {
        if self.device_kinds.len() > MAX_DEVICE_KINDS {
            return Err(PolicyError::InvalidDeviceKind {
                name: format!("({} kinds)", self.device_kinds.len()),
                reason: format!("at most {MAX_DEVICE_KINDS} device kinds"),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for k in &self.device_kinds {
            let reason = if k.name.trim().is_empty() {
                "empty name"
            } else if k.name.chars().count() > MAX_KIND_NAME {
                "name too long"
            } else if k.name.chars().any(char::is_control) {
                "name contains control characters"
            } else if !seen.insert(k.name.to_lowercase()) {
                "listed twice"
            } else {
                continue;
            };
            return Err(PolicyError::InvalidDeviceKind {
                name: k.name.clone(),
                reason: reason.into(),
            });
        }
        Ok(())
    }

    fn check_interfaces(&self) -> Result<(), PolicyError> {
        if self.include_interfaces.len() > MAX_INCLUDED_INTERFACES {
            return Err(PolicyError::InvalidInterface {
                name: format!("({} names)", self.include_interfaces.len()),
                reason: format!("at most {MAX_INCLUDED_INTERFACES} interfaces may be included"),
            });
        }
        for name in &self.include_interfaces {
            let reason = if name.trim().is_empty() {
                "empty"
            } else if name.len() > MAX_INTERFACE_NAME {
                "too long"
            } else if name.chars().any(char::is_control) {
                "contains control characters"
            } else {
                continue;
            };
            return Err(PolicyError::InvalidInterface {
                name: name.clone(),
                reason: reason.into(),
            });
        }
        Ok(())
    }

    /// Whether the policy sweeps networks (local network or added ones).
    pub fn sweeps_networks(&self) -> bool {
        self.targets.iter().any(PolicyTarget::is_network)
    }

    /// The networks the user added, in normal form.
    pub fn added_networks(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().filter_map(|t| match t {
            PolicyTarget::Network(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// Whether `port` may be open without an alert: authorized ∪ monitored.
    pub fn is_authorized(&self, port: u16) -> bool {
        self.authorized.contains(port) || self.monitored.contains(port)
    }

    /// Whether `port` is expected open (a *service down* alert if it is not).
    pub fn is_monitored(&self, port: u16) -> bool {
        self.monitored.contains(port)
    }

    /// The ports to probe on each target: `sweep` (e.g. the top 1000 ports,
    /// chosen by the caller) ∪ authorized ∪ monitored.
    pub fn ports_to_scan(&self, sweep: &PortList) -> PortList {
        sweep.union(&self.authorized).union(&self.monitored)
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Refuses security scans on plans that do not include them.
pub fn can_run(plan: Plan) -> Result<(), PolicyError> {
    if plan.allows_security_scan() {
        Ok(())
    } else {
        Err(PolicyError::NeedsExtendedPlan { plan })
    }
}

/// `PortList` as its compact string form; `""` is the empty list.
pub(crate) mod port_list_serde {
    use crate::ports::PortList;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(list: &PortList, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(list)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PortList, D::Error> {
        let spec = String::deserialize(d)?;
        if spec.trim().is_empty() {
            return Ok(PortList::default());
        }
        PortList::parse(&spec).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(authorized: &str, monitored: &str, targets: Vec<PolicyTarget>) -> SecurityPolicy {
        let list = |s: &str| {
            if s.is_empty() {
                PortList::default()
            } else {
                PortList::parse(s).unwrap()
            }
        };
        SecurityPolicy {
            enabled: true,
            authorized: list(authorized),
            monitored: list(monitored),
            targets,
            interval: ScanInterval::default(),
            include_interfaces: Vec::new(),
            unreviewed_devices: Default::default(),
            device_kinds: Vec::new(),
            process_change_alerts: false,
        }
    }

    #[test]
    fn accepts_and_normalizes_hosts() {
        let cases: &[(&str, &str)] = &[
            ("192.0.2.7", "192.0.2.7"),
            ("2001:DB8::0:1", "2001:db8::1"),
            ("::1", "::1"),
            ("nas", "nas"),
            ("NAS.Example.org", "nas.example.org"),
            ("router-1.lan.", "router-1.lan"),
            ("_svc.example", "_svc.example"),
        ];
        for (input, want) in cases {
            let got = PolicyTarget::host(input);
            assert_eq!(got, Ok(PolicyTarget::Host((*want).into())), "{input:?}");
        }
        let longest = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(longest.len(), 253);
        assert!(PolicyTarget::host(&longest).is_ok());
    }

    #[test]
    fn rejects_bad_hosts_naming_them() {
        let too_long = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(62)
        );
        let cases: &[(&str, &str)] = &[
            ("", "empty host"),
            (" nas", "whitespace"),
            ("nas ", "whitespace"),
            ("my nas", "whitespace"),
            ("nas\t", "whitespace"),
            (&too_long, "253"),
            ("192.0.2.0/24", "range or CIDR"),
            ("192.0.2.1-192.0.2.9", "range or CIDR"),
            ("192.0.2.300", "not an IP address or hostname"),
            ("-nas", "not an IP address or hostname"),
            ("nas..lan", "not an IP address or hostname"),
            ("nas!", "not an IP address or hostname"),
            ("[::1]", "not an IP address or hostname"),
        ];
        for (input, needle) in cases {
            let err = PolicyTarget::host(input).unwrap_err().to_string();
            assert!(err.contains(needle), "{input:?}: {err}");
            if !input.is_empty() && input.len() < 100 {
                assert!(err.contains(&format!("{input:?}")), "{input:?}: {err}");
            }
        }
    }

    #[test]
    fn target_keys_round_trip() {
        use PolicyTarget::*;
        let cases: &[(PolicyTarget, &str)] = &[
            (ObservedAddress, "observed_address"),
            (AgentHost, "agent_host"),
            (Host("nas.lan".into()), "host:nas.lan"),
            (Host("192.0.2.7".into()), "host:192.0.2.7"),
            (Host("2001:db8::1".into()), "host:2001:db8::1"),
            (Host("_svc.example".into()), "host:_svc.example"),
        ];
        for (target, key) in cases {
            assert_eq!(target.key(), *key, "{target:?}");
            assert_eq!(PolicyTarget::from_key(key).as_ref(), Ok(target), "{key}");
        }
        // Hosts from `PolicyTarget::host` always round-trip.
        for input in ["NAS.Example.org.", "2001:DB8::0:1", "router-1"] {
            let target = PolicyTarget::host(input).unwrap();
            assert_eq!(PolicyTarget::from_key(&target.key()), Ok(target));
        }
    }

    #[test]
    fn rejects_bad_target_keys() {
        // (key, substring of the error)
        let cases: &[(&str, &str)] = &[
            ("", "unknown policy target key \"\""),
            ("agent", "unknown policy target key \"agent\""),
            ("Agent_Host", "unknown policy target key"),
            ("observed address", "unknown policy target key"),
            (" agent_host", "unknown policy target key"),
            ("agent_host ", "unknown policy target key"),
            ("nas.lan", "unknown policy target key \"nas.lan\""),
            ("HOST:nas.lan", "unknown policy target key"),
            ("host", "unknown policy target key"),
            ("host:", "empty host"),
            ("host: nas.lan", "whitespace"),
            ("host:NAS.lan", "write it as \"nas.lan\""),
            ("host:nas.lan.", "write it as \"nas.lan\""),
            ("host:2001:DB8::1", "write it as \"2001:db8::1\""),
            ("host:192.0.2.0/24", "range or CIDR"),
            ("host:nas!", "not an IP address or hostname"),
        ];
        for (key, needle) in cases {
            let err = PolicyTarget::from_key(key).unwrap_err().to_string();
            assert!(err.contains(needle), "{key:?}: {err}");
        }
        assert_eq!(
            PolicyTarget::from_key("bogus"),
            Err(PolicyError::UnknownTargetKey {
                key: "bogus".into()
            })
        );
    }

    #[test]
    fn validates_policies() {
        use PolicyTarget::*;
        let host = |h: &str| Host(h.into());
        let cases: Vec<(Vec<PolicyTarget>, Result<(), &str>)> = vec![
            (vec![], Err("at least one target")),
            (vec![ObservedAddress], Ok(())),
            (vec![ObservedAddress, AgentHost, host("nas.lan")], Ok(())),
            (vec![host("")], Err("empty host")),
            (vec![host("bad host")], Err("whitespace")),
            (vec![host("NAS.lan")], Err("write it as \"nas.lan\"")),
            (
                vec![AgentHost, AgentHost],
                Err("agent host is listed more than once"),
            ),
            (
                vec![host("nas.lan"), ObservedAddress, host("nas.lan")],
                Err("\"nas.lan\" is listed more than once"),
            ),
            (
                (0..MAX_TARGETS)
                    .map(|i| host(&format!("h{i}.lan")))
                    .collect(),
                Ok(()),
            ),
            (
                (0..=MAX_TARGETS)
                    .map(|i| host(&format!("h{i}.lan")))
                    .collect(),
                Err("at most 256 targets (257 given)"),
            ),
        ];
        for (targets, want) in cases {
            let p = policy("22", "", targets.clone());
            let got = p.validate(AccountKind::Member).map_err(|e| e.to_string());
            match (got, want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(needle)) => assert!(e.contains(needle), "{targets:?}: {e}"),
                (got, want) => panic!("{targets:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn validated_normalizes_hosts_first() {
        use PolicyTarget::*;
        let host = |h: &str| Host(h.into());
        type Case = (Vec<PolicyTarget>, Result<Vec<PolicyTarget>, &'static str>);
        let cases: Vec<Case> = vec![
            (
                vec![host("NAS.lan."), host("2001:DB8::1"), AgentHost],
                Ok(vec![host("nas.lan"), host("2001:db8::1"), AgentHost]),
            ),
            (
                vec![host("nas.lan"), host("NAS.LAN")],
                Err("\"nas.lan\" is listed more than once"),
            ),
            (vec![host("nas lan")], Err("\"nas lan\"")),
            (vec![], Err("at least one target")),
        ];
        for (targets, want) in cases {
            let got = policy("22", "", targets.clone())
                .validated(AccountKind::Member)
                .map(|p| p.targets)
                .map_err(|e| e.to_string());
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(e), Err(needle)) => assert!(e.contains(needle), "{targets:?}: {e}"),
                (got, want) => panic!("{targets:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn validates_interval_for_the_account() {
        let mut p = policy("22", "", vec![PolicyTarget::AgentHost]);
        p.interval = ScanInterval::try_from(45).unwrap();
        assert!(p.validate(AccountKind::Organization).is_ok());
        let err = p.validate(AccountKind::Member).unwrap_err();
        assert_eq!(
            err,
            PolicyError::Interval(IntervalError::NotOffered { minutes: 45 })
        );
        assert!(err.to_string().contains("45 min"), "{err}");
    }

    #[test]
    fn monitored_ports_are_implicitly_authorized() {
        let p = policy("22,80", "443,80", vec![PolicyTarget::AgentHost]);
        // (port, authorized, monitored)
        let cases = [
            (22, true, false),
            (80, true, true),
            (443, true, true),
            (8080, false, false),
        ];
        for (port, auth, mon) in cases {
            assert_eq!(p.is_authorized(port), auth, "{port}");
            assert_eq!(p.is_monitored(port), mon, "{port}");
        }
    }

    #[test]
    fn ports_to_scan_is_the_union() {
        let p = policy("22,80", "443,8443", vec![PolicyTarget::AgentHost]);
        let cases = [
            ("80,81", "22,80-81,443,8443"),
            ("1-100", "1-100,443,8443"),
            ("8443", "22,80,443,8443"),
        ];
        for (sweep, want) in cases {
            let sweep = PortList::parse(sweep).unwrap();
            assert_eq!(p.ports_to_scan(&sweep).to_string(), want);
        }
        assert_eq!(
            p.ports_to_scan(&PortList::default()).to_string(),
            "22,80,443,8443"
        );
    }

    #[test]
    fn community_plan_cannot_run_security_scans() {
        assert_eq!(can_run(Plan::Extended), Ok(()));
        let err = can_run(Plan::Community).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("security scans need the Extended plan"),
            "{err}"
        );
    }

    #[test]
    fn serde_round_trip() {
        let p = policy(
            "22,80-82",
            "",
            vec![
                PolicyTarget::ObservedAddress,
                PolicyTarget::AgentHost,
                PolicyTarget::Host("nas.lan".into()),
            ],
        );
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "enabled": true,
                "authorized": "22,80-82",
                "monitored": "",
                "targets": ["observed_address", "agent_host", {"host": "nas.lan"}],
                "interval": 60,
            })
        );
        let back: SecurityPolicy = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);

        let bad = serde_json::json!({
            "enabled": true, "authorized": "22,http", "targets": [], "interval": 15,
        });
        let err = serde_json::from_value::<SecurityPolicy>(bad).unwrap_err();
        assert!(err.to_string().contains("\"http\""), "{err}");
    }

    #[test]
    fn network_targets_have_keys_and_json_forms() {
        for (target, key, json) in [
            (
                PolicyTarget::LocalNetwork,
                "local_network",
                "\"local_network\"",
            ),
            (
                PolicyTarget::Network("198.51.100.0/24".into()),
                "net:198.51.100.0/24",
                "{\"network\":\"198.51.100.0/24\"}",
            ),
        ] {
            assert_eq!(target.key(), key);
            assert_eq!(PolicyTarget::from_key(key), Ok(target.clone()));
            assert_eq!(serde_json::to_string(&target).expect("json"), json);
            assert!(target.is_network() && target.scanned_by_agent());
        }
        assert!(PolicyTarget::from_key("net:198.51.100.7/24").is_err());
        assert!(PolicyTarget::from_key("net:nas").is_err());
    }

    #[test]
    fn networks_are_normalized_and_bounded_by_the_plan() {
        let mut p = policy("", "", vec![PolicyTarget::LocalNetwork]);
        p.targets
            .push(PolicyTarget::Network("2001:DB8::/120".into()));
        p.include_interfaces = vec!["docker0".into(), "docker0".into()];
        let p = p.validated(AccountKind::Member).expect("valid");
        assert_eq!(p.targets[1], PolicyTarget::Network("2001:db8::/120".into()));
        assert_eq!(p.include_interfaces, vec!["docker0".to_string()]);
        assert!(p.sweeps_networks());
        assert_eq!(
            p.added_networks().collect::<Vec<_>>(),
            vec!["2001:db8::/120"]
        );

        let big = policy("", "", vec![PolicyTarget::Network("198.18.0.0/21".into())]);
        let err = big
            .clone()
            .validated(AccountKind::Member)
            .expect_err("a /21");
        assert!(err.to_string().contains("at most 1024"), "{err}");
        assert!(big.validated(AccountKind::Organization).is_ok());
        let typo = policy(
            "",
            "",
            vec![PolicyTarget::Network("198.51.100.7/24".into())],
        );
        let err = typo
            .validate(AccountKind::Organization)
            .expect_err("host bits");
        assert!(err.to_string().contains("198.51.100.0/24"), "{err}");
        let mut bad = policy("", "", vec![PolicyTarget::LocalNetwork]);
        bad.include_interfaces = vec!["eth\n0".into()];
        assert!(bad.validate(AccountKind::Member).is_err());
        assert!(!policy("", "", vec![PolicyTarget::AgentHost]).sweeps_networks());
    }
}
