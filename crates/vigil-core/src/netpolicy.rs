//! The operator's network policy: which addresses a destination a tenant
//! names (a compliance range, a scan target, an SSH install host, an LDAP
//! server, a webhook, a peer server) may reach.
//!
//! The decision is pure: callers resolve names themselves and ask about
//! every address **at connect time** (so a name that resolves to a public
//! address when saved and to loopback later is still refused).
//!
//! Rules, in order:
//! 1. the operator's `--allow-targets` / `--deny-targets` rules for the
//!    kind of destination (or `all`): the most specific network (longest
//!    prefix) that contains the address decides; a tie is a refusal;
//! 2. otherwise the defaults: loopback (and "this host", 0.0.0.0/8, ::),
//!    link-local, cloud metadata and multicast addresses are refused for
//!    every kind; private ranges (RFC 1918, 100.64.0.0/10, fc00::/7) are
//!    refused for webhooks and peer servers, and allowed for compliance
//!    scopes, scans, SSH installs and LDAP (the company network is what
//!    those are for);
//! 3. otherwise the address is allowed.
//!
//! A hosted multi-tenant operator refuses private ranges everywhere with one
//! rule: `--deny-targets all=private`.

use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// The kinds of tenant-supplied destinations the policy tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Destination {
    /// A security scan the server runs itself (an agent's observed address).
    Scan,
    /// An endpoint of a compliance scope (IP ranges, resolved AD computers).
    Compliance,
    /// A host an agent is installed on over SSH.
    Ssh,
    /// The Active Directory (LDAP) server of a compliance scope.
    Ldap,
    /// A notification channel's URL (webhook, Slack, ntfy, Telegram, PagerDuty, ...).
    Webhook,
    /// Another Vigil server's REST API (moving agents).
    Peer,
}

impl Destination {
    pub const ALL: [Destination; 6] = [
        Destination::Scan,
        Destination::Compliance,
        Destination::Ssh,
        Destination::Ldap,
        Destination::Webhook,
        Destination::Peer,
    ];

    /// The name used in rules and messages.
    pub fn name(self) -> &'static str {
        match self {
            Destination::Scan => "scan",
            Destination::Compliance => "compliance",
            Destination::Ssh => "ssh",
            Destination::Ldap => "ldap",
            Destination::Webhook => "webhook",
            Destination::Peer => "peer",
        }
    }

    fn parse(s: &str) -> Option<Destination> {
        Destination::ALL.into_iter().find(|d| d.name() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Named sets of networks a rule may use instead of CIDRs.
const SETS: &[(&str, &[&str])] = &[
    (
        "loopback",
        &["127.0.0.0/8", "0.0.0.0/8", "::1/128", "::/128"],
    ),
    ("link-local", &["169.254.0.0/16", "fe80::/10"]),
    (
        "metadata",
        &[
            "169.254.169.254/32",
            "169.254.170.2/32",
            "100.100.100.200/32",
            "fd00:ec2::254/128",
        ],
    ),
    (
        "private",
        &[
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "fc00::/7",
        ],
    ),
    (
        "multicast",
        &["224.0.0.0/4", "255.255.255.255/32", "ff00::/8"],
    ),
];

/// The sets refused by default, and for which kinds.
const DEFAULTS: &[(&str, &[Destination])] = &[
    ("loopback", &Destination::ALL),
    ("link-local", &Destination::ALL),
    ("metadata", &Destination::ALL),
    ("multicast", &Destination::ALL),
    ("private", &[Destination::Webhook, Destination::Peer]),
];

fn set_nets(name: &str) -> Option<Vec<IpNet>> {
    let (_, nets) = SETS.iter().find(|(n, _)| *n == name)?;
    Some(
        nets.iter()
            .map(|n| n.parse().expect("the built-in sets are valid CIDRs"))
            .collect(),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
}

impl Verdict {
    fn flag(self) -> &'static str {
        match self {
            Verdict::Allow => "--allow-targets",
            Verdict::Deny => "--deny-targets",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    /// One bit per [`Destination`].
    kinds: u8,
    net: IpNet,
    verdict: Verdict,
    /// How the operator (or the default) wrote it, for messages.
    origin: String,
}

impl Rule {
    fn applies(&self, kind: Destination, addr: IpAddr) -> bool {
        self.kinds & kind.bit() != 0 && self.net.contains(&addr)
    }
}

/// Why an address is refused: the address, the kind, the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{addr} is refused for {destination} destinations by {rule}")]
pub struct Refusal {
    pub addr: IpAddr,
    pub destination: Destination,
    pub rule: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetPolicyError {
    #[error("{spec:?}: write KINDS=NETWORKS, e.g. webhook,peer=10.0.0.0/8 or all=private")]
    Shape { spec: String },
    #[error(
        "{spec:?}: unknown kind {kind:?} (kinds: all, scan, compliance, ssh, ldap, webhook, peer)"
    )]
    Kind { spec: String, kind: String },
    #[error("{spec:?}: {net:?} is neither a CIDR, an address nor a set (loopback, link-local, metadata, private, multicast)")]
    Network { spec: String, net: String },
}

/// A range cut by [`NetPolicy::split`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// The allowed stretches, first to last address, in order, merged.
    pub allowed: Vec<(IpAddr, IpAddr)>,
    /// One refusal per refused stretch (its first address), in order.
    pub refused: Vec<Refusal>,
}

/// The operator's rules plus the defaults. `Default` is the defaults alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPolicy {
    operator: Vec<Rule>,
    defaults: Vec<Rule>,
}

impl Default for NetPolicy {
    fn default() -> Self {
        let mut defaults = Vec::new();
        for (set, kinds) in DEFAULTS {
            let bits = kinds.iter().fold(0, |b, k| b | k.bit());
            for net in set_nets(set).expect("the defaults name built-in sets") {
                defaults.push(Rule {
                    kinds: bits,
                    net,
                    verdict: Verdict::Deny,
                    origin: (*set).to_string(),
                });
            }
        }
        NetPolicy {
            operator: Vec::new(),
            defaults,
        }
    }
}

impl NetPolicy {
    /// Adds the rules of one `KINDS=NETWORKS` spec (`all=private`,
    /// `webhook,peer=10.1.0.0/16,fd00::/8`, `compliance=127.0.0.1`).
    pub fn add(&mut self, verdict: Verdict, spec: &str) -> Result<(), NetPolicyError> {
        let err_shape = || NetPolicyError::Shape { spec: spec.into() };
        let (kinds, nets) = spec.split_once('=').ok_or_else(err_shape)?;
        let mut bits = 0u8;
        for kind in kinds.split(',').map(str::trim) {
            bits |= match kind {
                "all" => Destination::ALL.iter().fold(0, |b, k| b | k.bit()),
                _ => Destination::parse(kind)
                    .ok_or_else(|| NetPolicyError::Kind {
                        spec: spec.into(),
                        kind: kind.into(),
                    })?
                    .bit(),
            };
        }
        let mut added = Vec::new();
        for item in nets.split(',').map(str::trim) {
            let parsed = set_nets(item)
                .or_else(|| item.parse::<IpNet>().ok().map(|n| vec![n.trunc()]))
                .or_else(|| item.parse::<IpAddr>().ok().map(|a| vec![IpNet::from(a)]))
                .ok_or_else(|| NetPolicyError::Network {
                    spec: spec.into(),
                    net: item.into(),
                })?;
            for net in parsed {
                added.push(Rule {
                    kinds: bits,
                    net,
                    verdict,
                    origin: format!("{} {kinds}={item}", verdict.flag()),
                });
            }
        }
        if added.is_empty() {
            return Err(err_shape());
        }
        self.operator.extend(added);
        Ok(())
    }

    /// Whether a `kind` destination may connect to `addr`.
    pub fn check(&self, kind: Destination, addr: IpAddr) -> Result<(), Refusal> {
        let addr = addr.to_canonical();
        let refuse = |rule: String| Refusal {
            addr,
            destination: kind,
            rule,
        };
        let decisive = self
            .operator
            .iter()
            .filter(|r| r.applies(kind, addr))
            .max_by_key(|r| (r.net.prefix_len(), r.verdict == Verdict::Deny));
        if let Some(rule) = decisive {
            return match rule.verdict {
                Verdict::Allow => Ok(()),
                Verdict::Deny => Err(refuse(format!("the operator's rule {}", rule.origin))),
            };
        }
        match self.defaults.iter().find(|r| r.applies(kind, addr)) {
            Some(rule) => Err(refuse(format!(
                "the default rule refusing {} addresses ({}); the operator can allow it with --allow-targets {kind}={}",
                rule.origin, rule.net, rule.net
            ))),
            None => Ok(()),
        }
    }

    /// [`check`](Self::check) for every address from `first` to `last`
    /// (same family, `first <= last`): the first refused one, if any.
    pub fn check_range(
        &self,
        kind: Destination,
        first: IpAddr,
        last: IpAddr,
    ) -> Result<(), Refusal> {
        match self.split(kind, first, last).refused.into_iter().next() {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }

    /// The range from `first` to `last` (same family, `first <= last`) cut
    /// into what `kind` may reach and what it may not. Decisions only
    /// change at rule boundaries, so this checks one address per stretch
    /// between boundaries: linear in the number of rules, not in the size
    /// of the range.
    pub fn split(&self, kind: Destination, first: IpAddr, last: IpAddr) -> Split {
        let (lo, hi) = (ordinal(first), ordinal(last));
        let mut starts = vec![lo];
        for rule in self.operator.iter().chain(&self.defaults) {
            if !same_family(first, rule.net.network()) {
                continue;
            }
            for b in [
                ordinal(rule.net.network()),
                ordinal(rule.net.broadcast()).saturating_add(1),
            ] {
                if b > lo && b <= hi {
                    starts.push(b);
                }
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let mut out = Split::default();
        for (i, &start) in starts.iter().enumerate() {
            let end = starts.get(i + 1).map_or(hi, |next| next - 1);
            let (a, b) = (from_ordinal(first, start), from_ordinal(first, end));
            match self.check(kind, a) {
                Ok(()) => match out.allowed.last_mut() {
                    Some(prev) if ordinal(prev.1).saturating_add(1) == start => prev.1 = b,
                    _ => out.allowed.push((a, b)),
                },
                Err(r) => out.refused.push(r),
            }
        }
        out
    }

    /// The operator's rules, as written, for the startup log.
    pub fn operator_rules(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for r in &self.operator {
            if !seen.contains(&r.origin) {
                seen.push(r.origin.clone());
            }
        }
        seen
    }
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

fn ordinal(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_ordinal(like: IpAddr, n: u128) -> IpAddr {
    match like {
        // `n` lies within a v4 range here, so it fits.
        IpAddr::V4(_) => IpAddr::from(std::net::Ipv4Addr::from(
            u32::try_from(n).unwrap_or(u32::MAX),
        )),
        IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::from(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Destination::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy(rules: &[(Verdict, &str)]) -> NetPolicy {
        let mut p = NetPolicy::default();
        for (v, spec) in rules {
            p.add(*v, spec).unwrap();
        }
        p
    }

    #[test]
    fn defaults() {
        let p = NetPolicy::default();
        let table: &[(&str, Destination, bool)] = &[
            ("127.0.0.1", Webhook, false),
            ("127.0.0.1", Compliance, false),
            ("127.9.9.9", Scan, false),
            ("0.0.0.0", Peer, false),
            ("::1", Ldap, false),
            ("::ffff:127.0.0.1", Webhook, false),
            ("::", Ssh, false),
            ("169.254.169.254", Compliance, false),
            ("169.254.1.1", Scan, false),
            ("fe80::1", Ssh, false),
            ("fd00:ec2::254", Compliance, false),
            ("100.100.100.200", Compliance, false),
            ("224.0.0.1", Compliance, false),
            ("10.1.2.3", Webhook, false),
            ("172.16.0.1", Peer, false),
            ("192.168.1.1", Webhook, false),
            ("::ffff:192.168.1.1", Webhook, false),
            ("fd12::1", Peer, false),
            ("100.64.0.1", Webhook, false),
            ("10.1.2.3", Compliance, true),
            ("192.168.1.1", Scan, true),
            ("172.31.255.255", Ssh, true),
            ("fd12::1", Ldap, true),
            ("172.32.0.1", Webhook, true),
            ("198.51.100.7", Webhook, true),
            ("2001:db8::1", Peer, true),
            ("93.184.216.34", Webhook, true),
        ];
        for (addr, kind, allowed) in table {
            assert_eq!(
                p.check(*kind, ip(addr)).is_ok(),
                *allowed,
                "{addr} for {kind}"
            );
        }
    }

    #[test]
    fn refusals_name_the_rule() {
        let p = policy(&[(Verdict::Deny, "all=private")]);
        let e = p.check(Webhook, ip("127.0.0.1")).unwrap_err();
        assert_eq!(e.addr, ip("127.0.0.1"));
        let text = e.to_string();
        assert!(text.contains("loopback"), "{text}");
        assert!(
            text.contains("--allow-targets webhook=127.0.0.0/8"),
            "{text}"
        );
        let e = p.check(Compliance, ip("10.0.0.1")).unwrap_err();
        assert!(e.to_string().contains("--deny-targets all=private"), "{e}");
    }

    #[test]
    fn operator_rules_come_first_and_the_most_specific_wins() {
        let p = policy(&[
            (Verdict::Allow, "webhook=127.0.0.0/8"),
            (Verdict::Deny, "all=private"),
            (Verdict::Allow, "webhook,peer=10.20.0.0/16"),
            (Verdict::Deny, "webhook=10.20.30.40"),
        ]);
        let table: &[(&str, Destination, bool)] = &[
            ("127.0.0.1", Webhook, true),
            ("127.0.0.1", Peer, false),
            ("10.20.1.1", Webhook, true),
            ("10.20.1.1", Peer, true),
            ("10.20.1.1", Compliance, false),
            ("10.20.30.40", Webhook, false),
            ("10.20.30.40", Peer, true),
            ("10.21.0.1", Webhook, false),
            ("192.168.0.1", Scan, false),
            ("198.51.100.1", Scan, true),
        ];
        for (addr, kind, allowed) in table {
            assert_eq!(
                p.check(*kind, ip(addr)).is_ok(),
                *allowed,
                "{addr} for {kind}"
            );
        }
        // A tie between an allow and a deny of the same network refuses.
        let p = policy(&[
            (Verdict::Allow, "scan=198.51.100.0/24"),
            (Verdict::Deny, "scan=198.51.100.0/24"),
        ]);
        assert!(p.check(Scan, ip("198.51.100.9")).is_err());
    }

    #[test]
    fn ranges_are_checked_at_every_boundary() {
        let p = NetPolicy::default();
        let range = |a: &str, b: &str| p.check_range(Compliance, ip(a), ip(b));
        assert!(range("10.0.0.0", "10.0.255.255").is_ok());
        assert!(range("198.51.100.0", "198.51.100.255").is_ok());
        // Ends inside loopback, starts outside it.
        let e = range("126.255.255.250", "127.0.0.3").unwrap_err();
        assert_eq!(e.addr, ip("127.0.0.0"));
        // Spans the metadata address inside 169.254/16 (refused anyway).
        assert!(range("169.253.255.255", "169.254.0.0").is_err());
        // Starts inside loopback.
        assert!(range("127.255.255.255", "128.0.0.5").is_err());
        // Just after loopback.
        assert!(range("128.0.0.0", "128.0.0.5").is_ok());
        // An allowed hole inside a refused network is found either way.
        let mut p = NetPolicy::default();
        p.add(Verdict::Deny, "compliance=198.51.100.0/24").unwrap();
        p.add(Verdict::Allow, "compliance=198.51.100.16/28")
            .unwrap();
        assert!(p
            .check_range(Compliance, ip("198.51.100.16"), ip("198.51.100.31"))
            .is_ok());
        let e = p
            .check_range(Compliance, ip("198.51.100.16"), ip("198.51.100.32"))
            .unwrap_err();
        assert_eq!(e.addr, ip("198.51.100.32"));
        // IPv6.
        let p = NetPolicy::default();
        assert!(p
            .check_range(Compliance, ip("2001:db8::"), ip("2001:db8::ffff"))
            .is_ok());
        assert!(p.check_range(Compliance, ip("::"), ip("::ff")).is_err());
    }

    #[test]
    fn ranges_split_into_allowed_stretches() {
        let mut p = NetPolicy::default();
        p.add(Verdict::Deny, "compliance=198.51.100.64/26").unwrap();
        let s = p.split(Compliance, ip("198.51.100.0"), ip("198.51.100.255"));
        assert_eq!(
            s.allowed,
            vec![
                (ip("198.51.100.0"), ip("198.51.100.63")),
                (ip("198.51.100.128"), ip("198.51.100.255")),
            ]
        );
        assert_eq!(s.refused.len(), 1);
        assert_eq!(s.refused[0].addr, ip("198.51.100.64"));
        // Adjacent allowed stretches (split only by a rule of another kind) merge.
        let s = p.split(Webhook, ip("198.51.100.0"), ip("198.51.100.255"));
        assert_eq!(s.allowed, vec![(ip("198.51.100.0"), ip("198.51.100.255"))]);
        assert!(s.refused.is_empty());
        // Wholly refused.
        let s = p.split(Scan, ip("127.0.0.1"), ip("127.0.0.9"));
        assert!(s.allowed.is_empty());
        assert_eq!(s.refused.len(), 1);
    }

    #[test]
    fn bad_specs_are_explained() {
        let mut p = NetPolicy::default();
        for (spec, needle) in [
            ("10.0.0.0/8", "KINDS=NETWORKS"),
            ("webhooks=10.0.0.0/8", "unknown kind \"webhooks\""),
            ("webhook=10.0.0.0/33", "neither a CIDR"),
            ("webhook=intranet", "neither a CIDR"),
            ("webhook=", "neither a CIDR"),
        ] {
            let e = p.add(Verdict::Allow, spec).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec}: {e}");
        }
        assert_eq!(p, NetPolicy::default(), "a refused spec adds nothing");
    }
}
