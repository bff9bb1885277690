//! `vigil ctl policy set`: the flags as a change to the current policy (or
//! a new one), checked here so that typos fail before anything is sent.
//! The per-account interval rules stay with the server, which knows the
//! account's kind.

use super::table::{fields, time};
use crate::cmd::usage;
use anyhow::Result;
use vigil_core::plan::MAX_INTERVAL_MINUTES;
use vigil_core::{PolicyTarget, PortList, ScanInterval, SecurityPolicy, MEMBER_INTERVALS};
use vigil_proto::api::{PolicyView, ScanStatusView};

/// What `policy set` was asked to change; `None` keeps the current value.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub enabled: Option<bool>,
    pub authorized: Option<PortList>,
    pub monitored: Option<PortList>,
    pub targets: Option<Vec<PolicyTarget>>,
    pub interval: Option<ScanInterval>,
    pub include_interfaces: Option<Vec<String>>,
    pub process_change_alerts: Option<bool>,
}

impl Changes {
    /// Parses the flags' values; errors name the flag and the value.
    pub fn parse(
        enabled: Option<bool>,
        authorized: Option<&str>,
        monitored: Option<&str>,
        targets: &[String],
        interval: Option<u32>,
    ) -> Result<Changes> {
        Ok(Changes {
            enabled,
            authorized: authorized.map(|s| ports("--authorized", s)).transpose()?,
            monitored: monitored.map(|s| ports("--monitored", s)).transpose()?,
            targets: if targets.is_empty() {
                None
            } else {
                Some(targets.iter().map(|t| target(t)).collect::<Result<_>>()?)
            },
            interval: interval
                .map(|m| ScanInterval::try_from(m).map_err(|e| usage(format!("--interval: {e}"))))
                .transpose()?,
            include_interfaces: None,
            process_change_alerts: None,
        })
    }

    /// `--include-interface` values: none given keeps the list, `none`
    /// clears it.
    pub fn include_interfaces(&mut self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        self.include_interfaces = Some(if names.iter().any(|n| n == "none") {
            Vec::new()
        } else {
            names.to_vec()
        });
    }

    fn is_empty(&self) -> bool {
        *self == Changes::default()
    }

    /// The policy to PUT: `current` with the changes, or a new policy
    /// (enabled, no ports, the agent's own host) that needs an interval.
    pub fn apply(self, current: Option<SecurityPolicy>) -> Result<SecurityPolicy> {
        let mut policy = match current {
            Some(current) => {
                if self.is_empty() {
                    return Err(usage(
                        "nothing to change: give --enable, --disable, --authorized, --monitored, \
                         --target, --include-interface, --interval or --process-change-alerts",
                    ));
                }
                current
            }
            None => SecurityPolicy {
                enabled: true,
                authorized: PortList::default(),
                monitored: PortList::default(),
                targets: vec![PolicyTarget::AgentHost],
                interval: self.interval.ok_or_else(|| usage(interval_help()))?,
                include_interfaces: Vec::new(),
                unreviewed_devices: Default::default(),
                device_kinds: Vec::new(),
                process_change_alerts: false,
            },
        };
        if let Some(enabled) = self.enabled {
            policy.enabled = enabled;
        }
        if let Some(ports) = self.authorized {
            policy.authorized = ports;
        }
        if let Some(ports) = self.monitored {
            policy.monitored = ports;
        }
        if let Some(targets) = self.targets {
            policy.targets = targets;
        }
        if let Some(interval) = self.interval {
            policy.interval = interval;
        }
        if let Some(names) = self.include_interfaces {
            policy.include_interfaces = names;
        }
        if let Some(on) = self.process_change_alerts {
            policy.process_change_alerts = on;
        }
        Ok(policy)
    }
}

fn interval_help() -> String {
    let member: Vec<String> = MEMBER_INTERVALS.iter().map(u32::to_string).collect();
    format!(
        "this agent has no security scan policy yet: give --interval MINUTES \
         (member accounts: one of {}; organizations: any whole number from 1 to {MAX_INTERVAL_MINUTES})",
        member.join(", ")
    )
}

/// A port list; `""` or `none` is the empty list.
fn ports(flag: &str, spec: &str) -> Result<PortList> {
    let spec = spec.trim();
    if spec.is_empty() || spec.eq_ignore_ascii_case("none") {
        return Ok(PortList::default());
    }
    PortList::parse(spec).map_err(|e| usage(format!("{flag}: {e}")))
}

/// `agent_host`, `observed_address`, `local_network`, a CIDR block or
/// range (`net:` prefix optional), or a hostname / IP address (`host:`
/// prefix optional).
fn target(text: &str) -> Result<PolicyTarget> {
    match text {
        "agent_host" => Ok(PolicyTarget::AgentHost),
        "observed_address" => Ok(PolicyTarget::ObservedAddress),
        "local_network" => Ok(PolicyTarget::LocalNetwork),
        _ if text.starts_with("net:") || looks_like_network(text) => {
            let net = text.strip_prefix("net:").unwrap_or(text);
            PolicyTarget::network(net).map_err(|e| usage(format!("--target {text:?}: {e}")))
        }
        _ => {
            let host = text.strip_prefix("host:").unwrap_or(text);
            PolicyTarget::host(host).map_err(|e| {
                usage(format!(
                    "--target {text:?}: {e} (or use agent_host or observed_address)"
                ))
            })
        }
    }
}

/// A CIDR block or a dash range of addresses (hosts are neither).
fn looks_like_network(text: &str) -> bool {
    text.contains('/')
        || text
            .split_once('-')
            .is_some_and(|(a, _)| a.parse::<std::net::IpAddr>().is_ok())
}

/// `agent_host`, `observed_address`, `local_network`, the host or the
/// network itself.
pub fn target_text(t: &PolicyTarget) -> String {
    match t {
        PolicyTarget::Host(h) => h.clone(),
        PolicyTarget::Network(n) => n.clone(),
        other => other.key(),
    }
}

/// `active`, or `suspended: the agent is not communicating`.
pub fn scan_text(scan: &ScanStatusView) -> String {
    match &scan.reason {
        Some(reason) => format!("{}: {reason}", scan.state),
        None => scan.state.clone(),
    }
}

pub fn render(view: &PolicyView) -> String {
    let p = &view.policy;
    let list = |l: &PortList| {
        if l.is_empty() {
            "none".to_string()
        } else {
            l.to_string()
        }
    };
    let targets: Vec<String> = p.targets.iter().map(target_text).collect();
    let mut pairs = vec![
        ("enabled", if p.enabled { "yes" } else { "no" }.to_string()),
        ("authorized", list(&p.authorized)),
        ("monitored", list(&p.monitored)),
        ("targets", targets.join(", ")),
        ("interval", p.interval.to_string()),
        ("scan", scan_text(&view.scan)),
    ];
    if p.process_change_alerts {
        pairs.push(("process-change alerts", "yes".to_string()));
    }
    if let Some(next) = view.next_run_at {
        pairs.push(("next run", time(next)));
    }
    fields(&pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(authorized: Option<&str>, targets: &[&str], interval: Option<u32>) -> Result<Changes> {
        let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
        Changes::parse(None, authorized, None, &targets, interval)
    }

    #[test]
    fn bad_flags_are_usage_errors_naming_the_value() {
        let cases: Vec<(Result<Changes>, &str)> = vec![
            (parse(Some("70000"), &[], None), "\"70000\""),
            (parse(Some("22,,80"), &[], None), "--authorized"),
            (parse(None, &["my nas"], None), "\"my nas\""),
            (
                parse(None, &["10.0.0.7/24"], None),
                "write it as 10.0.0.0/24",
            ),
            (parse(None, &["10.0.0.9-10.0.0.1"], None), "after its end"),
            (parse(None, &[], Some(0)), "--interval"),
        ];
        for (got, needle) in cases {
            let err = got.unwrap_err();
            assert!(err.downcast_ref::<crate::cmd::UsageError>().is_some());
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn a_new_policy_needs_an_interval_and_defaults_to_the_agent_host() {
        let err = parse(None, &[], None).unwrap().apply(None).unwrap_err();
        assert!(
            err.to_string().contains("15, 30, 60, 120, 360, 720, 1440"),
            "{err}"
        );
        let p = parse(Some("22, 443"), &[], Some(45))
            .unwrap()
            .apply(None)
            .unwrap();
        assert!(p.enabled);
        assert_eq!(p.targets, vec![PolicyTarget::AgentHost]);
        assert_eq!(p.authorized.to_string(), "22,443");
        assert_eq!(p.interval.minutes(), 45);
    }

    #[test]
    fn changes_keep_what_they_do_not_name() {
        let current = parse(Some("22"), &["nas.lan"], Some(60))
            .unwrap()
            .apply(None)
            .unwrap();
        let changed = Changes::parse(Some(false), None, Some("443"), &[], None)
            .unwrap()
            .apply(Some(current.clone()))
            .unwrap();
        assert!(!changed.enabled);
        assert_eq!(changed.authorized, current.authorized);
        assert_eq!(changed.monitored.to_string(), "443");
        assert_eq!(changed.targets, vec![PolicyTarget::Host("nas.lan".into())]);
        let cleared = parse(Some("none"), &["host:NAS.lan", "observed_address"], None)
            .unwrap()
            .apply(Some(current.clone()))
            .unwrap();
        assert!(cleared.authorized.is_empty());
        assert_eq!(
            cleared.targets,
            vec![
                PolicyTarget::Host("nas.lan".into()),
                PolicyTarget::ObservedAddress
            ]
        );
        let err = parse(None, &[], None)
            .unwrap()
            .apply(Some(current))
            .unwrap_err();
        assert!(err.to_string().contains("nothing to change"), "{err}");
    }
}
