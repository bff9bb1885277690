//! Joining the Active Directory side and the IP side of an assessment into
//! one list in which **both sides appear once**: every AD computer is exactly
//! one endpoint, and every IP result is part of exactly one endpoint.
//!
//! The assessment runs in steps; only the marked ones do IO:
//! 1. read the computers of the AD scope (IO) into [`AdComputer`]s;
//! 2. resolve [`names_to_resolve`] (IO, DNS) into a name → addresses map
//!    (a computer without dNSHostName is looked up as `<cn>.<domain>`, as
//!    AD's own tools do, see [`AdComputer::lookup_name`]);
//! 3. probe the IP scope plus [`addresses_to_probe`], the AD addresses the
//!    IP scope does not cover (IO), classifying each with
//!    [`classify`] into an [`IpEndpoint`];
//! 4. name the IP results (IO: PTR, NetBIOS; see `names.rs`);
//! 5. [`join`] everything, with the agents our database knows by AD GUID;
//! 6. [`settle_silent_addresses`]: silent addresses nothing shows a
//!    machine uses are *no host at address*, not *unreachable*.
//!
//! Join rules:
//! - an AD computer whose dNSHostName resolves to an address with an IP
//!   result becomes one endpoint carrying both; a multi-homed computer
//!   takes all its results and the best status among them (managed here,
//!   managed elsewhere, no agent, unreachable, in that order);
//! - an address claimed by several AD computers (stale DNS records) goes to
//!   the one whose name matches the name seen at the address, else the one
//!   that logged on last, else the first listed; the others lose it;
//! - an AD computer whose GUID our database knows is managed here even when
//!   it did not answer or answered without an agent (an offline agent is
//!   still ours); only a live answer from another server's agent, or a
//!   forged one in the name of ours (see `identify.rs`), overrides;
//! - an AD computer with no IP result (no dNSHostName, a name that did not
//!   resolve, or addresses nobody probed) and a GUID our database does not
//!   know is an unresolved AD assessment;
//! - IP results claimed by no AD computer are endpoints of their own;
//! - an AD computer listed twice (overlapping base DNs) counts once, by
//!   GUID; so does an address probed twice (the first result counts).
//!
//! Output order: AD computers as given, then the remaining IP results as given.

use super::dn::Dn;
use super::endpoint::Endpoint;
use super::identify::IdentifyCheck;
use super::names::{clean_host_name, NameSource};
use super::scope::IpScope;
use super::status::{classify, EndpointStatus, Identified, Probe};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use uuid::Uuid;

/// A computer object read from Active Directory. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdComputer {
    pub guid: Uuid,
    /// The object's distinguished name (its parent is the container).
    pub dn: String,
    pub cn: String,
    pub dns_host_name: Option<String>,
    pub os: Option<String>,
    /// `lastLogonTimestamp` converted with `filetime_to_unix`.
    pub last_logon: Option<i64>,
    pub disabled: bool,
}

impl AdComputer {
    /// The name to resolve: the dNSHostName, else `<cn>.<domain>` with the
    /// domain from the DN's `DC=` parts (what AD's own tools try).
    pub fn lookup_name(&self) -> Option<String> {
        if let Some(name) = self
            .dns_host_name
            .as_deref()
            .map(host_key)
            .filter(|n| !n.is_empty())
        {
            return Some(name);
        }
        let domain: Vec<&str> = self
            .dn
            .split(',')
            .filter_map(|part| {
                let (key, value) = part.split_once('=')?;
                key.trim().eq_ignore_ascii_case("dc").then(|| value.trim())
            })
            .collect();
        let cn = clean_host_name(&self.cn).filter(|cn| !cn.contains('.'))?;
        if domain.is_empty() {
            return None;
        }
        clean_host_name(&format!("{cn}.{}", domain.join("."))).map(|n| host_key(&n))
    }
}

/// The assessment result for one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpEndpoint {
    pub addr: IpAddr,
    pub status: EndpointStatus,
    pub identify: Option<Identified>,
    /// The verdict on `identify` (see [`Identified::check`]).
    #[serde(default)]
    pub check: Option<IdentifyCheck>,
    /// The name found for the address (see `names.rs`), if any.
    pub name: Option<String>,
    /// Where `name` came from.
    #[serde(default)]
    pub name_source: Option<NameSource>,
    /// When the address last answered.
    pub seen_at: Option<i64>,
}

impl IpEndpoint {
    /// Classifies a probe made at `checked_at`; an address that answered at
    /// all was seen then.
    pub fn from_probe(addr: IpAddr, probe: Probe, our_server_id: &str, checked_at: i64) -> Self {
        let status = classify(&probe, our_server_id);
        IpEndpoint {
            addr,
            status,
            seen_at: (status != EndpointStatus::Unreachable).then_some(checked_at),
            check: probe
                .identify
                .as_ref()
                .and_then(|id| id.check(our_server_id)),
            identify: probe.identify,
            name: None,
            name_source: None,
        }
    }
}

/// An agent enrolled with this server, found by the AD GUID of its machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownAgent {
    pub agent_id: String,
    pub version: Option<String>,
    /// Its last contact with this server.
    pub last_seen: Option<i64>,
}

/// The distinct names to resolve ([`AdComputer::lookup_name`]), normalized
/// (lower case, no trailing dot), sorted.
pub fn names_to_resolve(ad: &[AdComputer]) -> Vec<String> {
    let names: BTreeSet<String> = ad.iter().filter_map(AdComputer::lookup_name).collect();
    names.into_iter().collect()
}

/// The resolved AD addresses an IP scope does not cover, each once, sorted:
/// probe these too so AD computers outside the IP ranges get assessed.
pub fn addresses_to_probe(
    ad: &[AdComputer],
    resolved: &HashMap<String, Vec<IpAddr>>,
    ip: &IpScope,
) -> Vec<IpAddr> {
    let resolved = normalize(resolved);
    let addrs: BTreeSet<IpAddr> = ad
        .iter()
        .flat_map(|c| addrs_of(c, &resolved))
        .filter(|a| !ip.contains(*a))
        .collect();
    addrs.into_iter().collect()
}

/// Joins AD computers and IP results into endpoints (see the module docs).
///
/// `resolved` maps dNSHostNames to their addresses (keys in any case, with
/// or without trailing dot); `known` maps AD GUIDs to agents enrolled here.
pub fn join(
    ad: Vec<AdComputer>,
    ip: Vec<IpEndpoint>,
    resolved: &HashMap<String, Vec<IpAddr>>,
    known: &HashMap<Uuid, KnownAgent>,
) -> Vec<Endpoint> {
    let resolved = normalize(resolved);

    let mut seen_guids = HashSet::new();
    let ad: Vec<AdComputer> = ad
        .into_iter()
        .filter(|c| seen_guids.insert(c.guid))
        .collect();
    let mut seen_addrs = HashSet::new();
    let ip: Vec<IpEndpoint> = ip
        .into_iter()
        .filter(|r| seen_addrs.insert(r.addr))
        .collect();
    let ip_index: HashMap<IpAddr, usize> =
        ip.iter().enumerate().map(|(i, r)| (r.addr, i)).collect();

    // Which AD computers claim each IP result.
    let ad_addrs: Vec<Vec<IpAddr>> = ad.iter().map(|c| addrs_of(c, &resolved)).collect();
    let mut claims: Vec<Vec<usize>> = vec![Vec::new(); ip.len()];
    for (c, addrs) in ad_addrs.iter().enumerate() {
        for addr in addrs {
            if let Some(&i) = ip_index.get(addr) {
                claims[i].push(c);
            }
        }
    }
    // The owner of each claimed IP result.
    let owner: Vec<Option<usize>> = claims
        .iter()
        .zip(&ip)
        .map(|(claimants, result)| {
            let seen_name = result.name.as_deref().map(host_key);
            claimants.iter().copied().max_by_key(|&c| {
                let named = seen_name
                    .as_deref()
                    .is_some_and(|n| name_matches(&ad[c], n));
                (named, ad[c].last_logon, Reverse(c))
            })
        })
        .collect();

    let mut out = Vec::with_capacity(ad.len() + ip.len());
    for (c, computer) in ad.into_iter().enumerate() {
        let owned: Vec<&IpEndpoint> = ad_addrs[c]
            .iter()
            .filter_map(|a| ip_index.get(a))
            .filter(|&&i| owner[i] == Some(c))
            .map(|&i| &ip[i])
            .collect();
        // Addresses another computer won are dropped; unprobed ones are kept.
        let addrs: Vec<IpAddr> = ad_addrs[c]
            .iter()
            .copied()
            .filter(|a| ip_index.get(a).is_none_or(|&i| owner[i] == Some(c)))
            .collect();
        out.push(ad_endpoint(computer, addrs, &owned, known));
    }
    for (i, result) in ip.into_iter().enumerate() {
        if owner[i].is_none() {
            out.push(ip_endpoint(result));
        }
    }
    out
}

fn ad_endpoint(
    computer: AdComputer,
    addrs: Vec<IpAddr>,
    owned: &[&IpEndpoint],
    known: &HashMap<Uuid, KnownAgent>,
) -> Endpoint {
    let best = owned.iter().min_by_key(|r| r.status);
    let known = known.get(&computer.guid);
    let forged = owned.iter().any(|r| r.check == Some(IdentifyCheck::Forged));
    let status = match (best.map(|r| r.status), known) {
        (Some(EndpointStatus::NoAgent | EndpointStatus::Unreachable), Some(_)) if !forged => {
            EndpointStatus::ManagedHere
        }
        (None, Some(_)) => EndpointStatus::ManagedHere,
        (Some(status), _) => status,
        (None, None) => EndpointStatus::UnresolvedAd,
    };
    let name = if computer.cn.is_empty() {
        computer
            .dns_host_name
            .clone()
            .unwrap_or_else(|| computer.guid.to_string())
    } else {
        computer.cn
    };
    let mut ep = Endpoint::new(name, status);
    ep.name_source = Some(NameSource::Ad);
    ep.dns_name = computer
        .dns_host_name
        .map(|n| n.trim().trim_end_matches('.').to_owned())
        .filter(|n| !n.is_empty());
    ep.addrs = addrs;
    ep.os = computer.os.filter(|os| !os.trim().is_empty());
    ep.container = Dn::parse(&computer.dn).ok().and_then(|dn| dn.parent());
    ep.ad_guid = Some(computer.guid);
    ep.disabled = computer.disabled;
    // The reply that decided, else a forged one (so the flag shows).
    let live = best
        .filter(|r| r.identify.is_some())
        .or_else(|| {
            owned
                .iter()
                .find(|r| r.check == Some(IdentifyCheck::Forged))
        })
        .copied();
    let live = live.and_then(|r| Some((r.identify.as_ref()?, r.check)));
    match (live, known) {
        (Some((id, _)), Some(agent))
            if status == EndpointStatus::ManagedHere && id.server_id.is_empty() =>
        {
            set_known(&mut ep, agent)
        }
        (Some((id, check)), _) => set_identified(&mut ep, id, check),
        (None, Some(agent)) => set_known(&mut ep, agent),
        (None, None) => {}
    }
    ep.last_seen = [computer.last_logon, known.and_then(|k| k.last_seen)]
        .into_iter()
        .chain(owned.iter().map(|r| r.seen_at))
        .flatten()
        .max();
    ep
}

fn ip_endpoint(result: IpEndpoint) -> Endpoint {
    let named = result
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .map(|n| (n, result.name_source));
    let (name, source) = named.unwrap_or_else(|| (result.addr.to_string(), None));
    let mut ep = Endpoint::new(name, result.status);
    ep.name_source = source;
    ep.addrs = vec![result.addr];
    if let Some(id) = &result.identify {
        set_identified(&mut ep, id, result.check);
    }
    ep.last_seen = result.seen_at;
    ep
}

fn set_identified(ep: &mut Endpoint, id: &Identified, check: Option<IdentifyCheck>) {
    ep.agent_id = Some(id.agent_id.clone());
    ep.server_id = Some(id.server_id.clone()).filter(|s| !s.is_empty());
    ep.agent_version = Some(id.version.clone());
    ep.identify = check;
}

fn set_known(ep: &mut Endpoint, agent: &KnownAgent) {
    ep.agent_id = Some(agent.agent_id.clone());
    ep.agent_version = agent.version.clone();
}

/// The lookup key of a host name: trimmed, lower case, no trailing dot.
fn host_key(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn normalize(resolved: &HashMap<String, Vec<IpAddr>>) -> HashMap<String, Vec<IpAddr>> {
    let mut out: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for (name, addrs) in resolved {
        let entry = out.entry(host_key(name)).or_default();
        for a in addrs {
            if !entry.contains(a) {
                entry.push(*a);
            }
        }
    }
    out
}

/// A computer's resolved addresses, each once, in resolver order.
fn addrs_of(computer: &AdComputer, resolved: &HashMap<String, Vec<IpAddr>>) -> Vec<IpAddr> {
    computer
        .lookup_name()
        .and_then(|n| resolved.get(&n))
        .cloned()
        .unwrap_or_default()
}

/// Decides *unreachable* against *no host at address* for the silent
/// endpoints of a join: an endpoint keeps *unreachable* when something
/// shows a machine uses it — it is an AD computer, it has a name, or one
/// of its addresses answered an earlier assessment (`seen_before`: when
/// each address last answered; its time becomes the endpoint's last
/// seen); the others are *no host at address*.
pub fn settle_silent_addresses(endpoints: &mut [Endpoint], seen_before: &HashMap<IpAddr, i64>) {
    for ep in endpoints
        .iter_mut()
        .filter(|ep| ep.status == EndpointStatus::Unreachable && ep.ad_guid.is_none())
    {
        let seen = ep.addrs.iter().filter_map(|a| seen_before.get(a)).max();
        if let Some(&at) = seen {
            ep.last_seen = ep.last_seen.max(Some(at));
        } else if ep.name_source.is_none() && ep.last_seen.is_none() {
            ep.status = EndpointStatus::NoHost;
        }
    }
}

/// Whether the name seen at an address (a host key) names this computer:
/// its full dNSHostName, or its cn against the first label.
fn name_matches(computer: &AdComputer, seen: &str) -> bool {
    let full = computer.dns_host_name.as_deref().map(host_key);
    let first_label = seen.split('.').next().unwrap_or(seen);
    full.as_deref() == Some(seen) || computer.cn.eq_ignore_ascii_case(first_label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::Proof;
    use EndpointStatus::*;

    const OURS: &str = "srv-ours";

    fn guid(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn computer(n: u8, cn: &str, dns: Option<&str>) -> AdComputer {
        AdComputer {
            guid: guid(n),
            dn: format!("CN={cn},OU=Servers,DC=example,DC=test"),
            cn: cn.into(),
            dns_host_name: dns.map(str::to_owned),
            os: Some("Windows Server 2022 Standard".into()),
            last_logon: Some(1_700_000_000 + i64::from(n)),
            disabled: false,
        }
    }

    /// A probe result; a reply naming us is proven when `status` is
    /// managed here.
    fn result(a: &str, status: EndpointStatus, server: Option<&str>) -> IpEndpoint {
        let identify = server.map(|s| Identified {
            agent_id: format!("agent@{a}"),
            server_id: s.into(),
            version: "0.1.0".into(),
            proof: if status == ManagedHere {
                Proof::Valid
            } else {
                Proof::Unproven
            },
            hostname: None,
        });
        IpEndpoint {
            addr: addr(a),
            status,
            check: identify.as_ref().and_then(|id| id.check(OURS)),
            identify,
            name: None,
            name_source: None,
            seen_at: (status != Unreachable).then_some(1_800_000_000),
        }
    }

    /// A host answering in the name of an agent of ours, without proof.
    fn forged(a: &str) -> IpEndpoint {
        let r = result(a, NoAgent, Some(OURS));
        assert_eq!(r.check, Some(IdentifyCheck::Forged));
        r
    }

    fn dns(entries: &[(&str, &[&str])]) -> HashMap<String, Vec<IpAddr>> {
        entries
            .iter()
            .map(|(n, a)| (n.to_string(), a.iter().map(|s| addr(s)).collect()))
            .collect()
    }

    fn known(entries: &[u8]) -> HashMap<Uuid, KnownAgent> {
        entries
            .iter()
            .map(|&n| {
                (
                    guid(n),
                    KnownAgent {
                        agent_id: format!("known-{n}"),
                        version: Some("0.0.9".into()),
                        last_seen: Some(1_750_000_000),
                    },
                )
            })
            .collect()
    }

    /// Both sides appear once: each AD GUID in one endpoint, each IP result
    /// address in exactly one endpoint.
    fn assert_both_sides_once(ad: &[AdComputer], ip: &[IpEndpoint], out: &[Endpoint]) {
        let guids: HashSet<Uuid> = ad.iter().map(|c| c.guid).collect();
        for g in &guids {
            let n = out.iter().filter(|e| e.ad_guid == Some(*g)).count();
            assert_eq!(n, 1, "AD computer {g} appears {n} times");
        }
        let addrs: HashSet<IpAddr> = ip.iter().map(|r| r.addr).collect();
        for a in &addrs {
            let n = out.iter().filter(|e| e.addrs.contains(a)).count();
            assert_eq!(n, 1, "address {a} appears {n} times");
        }
        let ip_only = out.iter().filter(|e| e.ad_guid.is_none()).count();
        assert_eq!(out.len(), guids.len() + ip_only);
    }

    struct Case {
        name: &'static str,
        ad: Vec<AdComputer>,
        ip: Vec<IpEndpoint>,
        dns: HashMap<String, Vec<IpAddr>>,
        known: HashMap<Uuid, KnownAgent>,
        /// (endpoint name, status, addresses)
        want: Vec<(&'static str, EndpointStatus, Vec<&'static str>)>,
    }

    #[test]
    fn join_table() {
        let cases = vec![
            Case {
                name: "AD computer joined to its IP result",
                ad: vec![computer(1, "WEB01", Some("web01.example.test"))],
                ip: vec![result("10.0.0.1", ManagedHere, Some(OURS))],
                dns: dns(&[("web01.example.test", &["10.0.0.1"])]),
                known: known(&[]),
                want: vec![("WEB01", ManagedHere, vec!["10.0.0.1"])],
            },
            Case {
                name: "each status passes through the join",
                ad: vec![
                    computer(1, "A", Some("a.example.test")),
                    computer(2, "B", Some("b.example.test")),
                    computer(3, "C", Some("c.example.test")),
                ],
                ip: vec![
                    result("10.0.0.1", ManagedElsewhere, Some("srv-other")),
                    result("10.0.0.2", NoAgent, None),
                    result("10.0.0.3", Unreachable, None),
                ],
                dns: dns(&[
                    ("a.example.test", &["10.0.0.1"]),
                    ("b.example.test", &["10.0.0.2"]),
                    ("c.example.test", &["10.0.0.3"]),
                ]),
                known: known(&[]),
                want: vec![
                    ("A", ManagedElsewhere, vec!["10.0.0.1"]),
                    ("B", NoAgent, vec!["10.0.0.2"]),
                    ("C", Unreachable, vec!["10.0.0.3"]),
                ],
            },
            Case {
                name: "no dNSHostName, unknown GUID: unresolved",
                ad: vec![computer(1, "OLD01", None)],
                ip: vec![],
                dns: dns(&[]),
                known: known(&[]),
                want: vec![("OLD01", UnresolvedAd, vec![])],
            },
            Case {
                name: "no dNSHostName, GUID in our database: managed here",
                ad: vec![computer(1, "LAPTOP7", None)],
                ip: vec![],
                dns: dns(&[]),
                known: known(&[1]),
                want: vec![("LAPTOP7", ManagedHere, vec![])],
            },
            Case {
                name: "name did not resolve: unresolved",
                ad: vec![computer(1, "GONE", Some("gone.example.test"))],
                ip: vec![],
                dns: dns(&[("gone.example.test", &[])]),
                known: known(&[]),
                want: vec![("GONE", UnresolvedAd, vec![])],
            },
            Case {
                name: "resolved but not probed: unresolved, address kept",
                ad: vec![computer(1, "FAR", Some("far.example.test"))],
                ip: vec![],
                dns: dns(&[("far.example.test", &["192.0.2.9"])]),
                known: known(&[]),
                want: vec![("FAR", UnresolvedAd, vec!["192.0.2.9"])],
            },
            Case {
                name: "our GUID, host silent: managed here (offline agent)",
                ad: vec![computer(1, "PC1", Some("pc1.example.test"))],
                ip: vec![result("10.0.0.1", Unreachable, None)],
                dns: dns(&[("pc1.example.test", &["10.0.0.1"])]),
                known: known(&[1]),
                want: vec![("PC1", ManagedHere, vec!["10.0.0.1"])],
            },
            Case {
                name: "our GUID, host up without agent: managed here",
                ad: vec![computer(1, "PC1", Some("pc1.example.test"))],
                ip: vec![result("10.0.0.1", NoAgent, None)],
                dns: dns(&[("pc1.example.test", &["10.0.0.1"])]),
                known: known(&[1]),
                want: vec![("PC1", ManagedHere, vec!["10.0.0.1"])],
            },
            Case {
                name: "our GUID but another server's agent answers: elsewhere",
                ad: vec![computer(1, "PC1", Some("pc1.example.test"))],
                ip: vec![result("10.0.0.1", ManagedElsewhere, Some("srv-other"))],
                dns: dns(&[("pc1.example.test", &["10.0.0.1"])]),
                known: known(&[1]),
                want: vec![("PC1", ManagedElsewhere, vec!["10.0.0.1"])],
            },
            Case {
                name: "our GUID but a forged answer in our name: no agent",
                ad: vec![computer(1, "PC1", Some("pc1.example.test"))],
                ip: vec![forged("10.0.0.1")],
                dns: dns(&[("pc1.example.test", &["10.0.0.1"])]),
                known: known(&[1]),
                want: vec![("PC1", NoAgent, vec!["10.0.0.1"])],
            },
            Case {
                name: "a forged answer stands alone as no agent",
                ad: vec![],
                ip: vec![forged("10.0.0.9")],
                dns: dns(&[]),
                known: known(&[]),
                want: vec![("10.0.0.9", NoAgent, vec!["10.0.0.9"])],
            },
            Case {
                name: "IP result without AD object stands alone",
                ad: vec![],
                ip: vec![
                    result("10.0.0.9", NoAgent, None),
                    IpEndpoint {
                        name: Some("printer.example.test".into()),
                        ..result("10.0.0.10", NoAgent, None)
                    },
                ],
                dns: dns(&[]),
                known: known(&[]),
                want: vec![
                    ("10.0.0.9", NoAgent, vec!["10.0.0.9"]),
                    ("printer.example.test", NoAgent, vec!["10.0.0.10"]),
                ],
            },
            Case {
                name: "two AD computers, one address: the later logon wins",
                ad: vec![
                    computer(1, "STALE", Some("stale.example.test")),
                    computer(2, "FRESH", Some("fresh.example.test")),
                ],
                ip: vec![result("10.0.0.5", NoAgent, None)],
                dns: dns(&[
                    ("stale.example.test", &["10.0.0.5"]),
                    ("fresh.example.test", &["10.0.0.5"]),
                ]),
                known: known(&[]),
                want: vec![
                    ("STALE", UnresolvedAd, vec![]),
                    ("FRESH", NoAgent, vec!["10.0.0.5"]),
                ],
            },
            Case {
                name: "two AD computers, one address: the name seen there wins",
                ad: vec![
                    computer(1, "STALE", Some("stale.example.test")),
                    computer(2, "FRESH", Some("fresh.example.test")),
                ],
                ip: vec![IpEndpoint {
                    name: Some("STALE.example.test.".into()),
                    ..result("10.0.0.5", NoAgent, None)
                }],
                dns: dns(&[
                    ("stale.example.test", &["10.0.0.5"]),
                    ("fresh.example.test", &["10.0.0.5"]),
                ]),
                known: known(&[]),
                want: vec![
                    ("STALE", NoAgent, vec!["10.0.0.5"]),
                    ("FRESH", UnresolvedAd, vec![]),
                ],
            },
            Case {
                name: "two AD computers, one address, same logon: first listed wins",
                ad: vec![
                    AdComputer {
                        last_logon: None,
                        ..computer(1, "ONE", Some("one.example.test"))
                    },
                    AdComputer {
                        last_logon: None,
                        ..computer(2, "TWO", Some("two.example.test"))
                    },
                ],
                ip: vec![result("10.0.0.5", NoAgent, None)],
                dns: dns(&[
                    ("one.example.test", &["10.0.0.5"]),
                    ("two.example.test", &["10.0.0.5"]),
                ]),
                known: known(&[2]),
                want: vec![
                    ("ONE", NoAgent, vec!["10.0.0.5"]),
                    ("TWO", ManagedHere, vec![]),
                ],
            },
            Case {
                name: "multi-homed computer takes both results and the best status",
                ad: vec![computer(1, "DUAL", Some("dual.example.test"))],
                ip: vec![
                    result("10.0.0.7", Unreachable, None),
                    result("2001:db8::7", ManagedHere, Some(OURS)),
                ],
                dns: dns(&[("dual.example.test", &["10.0.0.7", "2001:db8::7"])]),
                known: known(&[]),
                want: vec![("DUAL", ManagedHere, vec!["10.0.0.7", "2001:db8::7"])],
            },
            Case {
                name: "duplicates on both sides count once",
                ad: vec![
                    computer(1, "WEB01", Some("web01.example.test")),
                    computer(1, "WEB01", Some("web01.example.test")),
                ],
                ip: vec![
                    result("10.0.0.1", NoAgent, None),
                    result("10.0.0.1", Unreachable, None),
                ],
                dns: dns(&[("web01.example.test", &["10.0.0.1", "10.0.0.1"])]),
                known: known(&[]),
                want: vec![("WEB01", NoAgent, vec!["10.0.0.1"])],
            },
            Case {
                name: "name lookup ignores case and trailing dot on both sides",
                ad: vec![computer(1, "WEB01", Some("WEB01.Example.Test."))],
                ip: vec![result("10.0.0.1", NoAgent, None)],
                dns: dns(&[("web01.example.TEST", &["10.0.0.1"])]),
                known: known(&[]),
                want: vec![("WEB01", NoAgent, vec!["10.0.0.1"])],
            },
            Case {
                name: "AD and IP-only endpoints together, AD first",
                ad: vec![
                    computer(1, "WEB01", Some("web01.example.test")),
                    computer(2, "NODNS", None),
                ],
                ip: vec![
                    result("10.0.0.2", Unreachable, None),
                    result("10.0.0.1", ManagedHere, Some(OURS)),
                ],
                dns: dns(&[("web01.example.test", &["10.0.0.1"])]),
                known: known(&[]),
                want: vec![
                    ("WEB01", ManagedHere, vec!["10.0.0.1"]),
                    ("NODNS", UnresolvedAd, vec![]),
                    ("10.0.0.2", Unreachable, vec!["10.0.0.2"]),
                ],
            },
        ];
        for case in cases {
            let out = join(case.ad.clone(), case.ip.clone(), &case.dns, &case.known);
            assert_both_sides_once(&case.ad, &case.ip, &out);
            let got: Vec<(String, EndpointStatus, Vec<String>)> = out
                .iter()
                .map(|e| {
                    (
                        e.name.clone(),
                        e.status,
                        e.addrs.iter().map(|a| a.to_string()).collect(),
                    )
                })
                .collect();
            let want: Vec<(String, EndpointStatus, Vec<String>)> = case
                .want
                .iter()
                .map(|(n, s, a)| (n.to_string(), *s, a.iter().map(|a| a.to_string()).collect()))
                .collect();
            assert_eq!(got, want, "{}", case.name);
        }
    }

    #[test]
    fn joined_endpoint_carries_both_sides() {
        let mut web = computer(1, "WEB01", Some("web01.example.test."));
        web.disabled = true;
        web.last_logon = Some(1_000);
        let out = join(
            vec![web],
            vec![result("10.0.0.1", ManagedElsewhere, Some("srv-other"))],
            &dns(&[("web01.example.test", &["10.0.0.1"])]),
            &known(&[]),
        );
        let ep = &out[0];
        assert_eq!(ep.dns_name.as_deref(), Some("web01.example.test"));
        assert_eq!(ep.os.as_deref(), Some("Windows Server 2022 Standard"));
        assert_eq!(
            ep.container.as_ref().map(|d| d.as_str()),
            Some("OU=Servers,DC=example,DC=test")
        );
        assert_eq!(ep.ad_guid, Some(guid(1)));
        assert!(ep.disabled);
        assert_eq!(ep.agent_id.as_deref(), Some("agent@10.0.0.1"));
        assert_eq!(ep.server_id.as_deref(), Some("srv-other"));
        assert_eq!(ep.agent_version.as_deref(), Some("0.1.0"));
        assert_eq!(ep.identify, Some(IdentifyCheck::Unverified));
        assert_eq!(ep.last_seen, Some(1_800_000_000));
    }

    #[test]
    fn a_forged_answer_is_flagged_and_keeps_what_it_claimed() {
        // Multi-homed: one address silent, the other answers forged.
        let pc = computer(1, "PC1", Some("pc1.example.test"));
        let out = join(
            vec![pc],
            vec![result("10.0.0.1", NoAgent, None), forged("10.0.0.2")],
            &dns(&[("pc1.example.test", &["10.0.0.1", "10.0.0.2"])]),
            &known(&[1]),
        );
        let ep = &out[0];
        assert_eq!(ep.status, NoAgent);
        assert_eq!(ep.identify, Some(IdentifyCheck::Forged));
        assert_eq!(ep.agent_id.as_deref(), Some("agent@10.0.0.2"));
        assert_eq!(ep.server_id.as_deref(), Some(OURS));
        let out = join(vec![], vec![forged("10.0.0.9")], &dns(&[]), &known(&[]));
        assert_eq!(
            (out[0].status, out[0].identify),
            (NoAgent, Some(IdentifyCheck::Forged))
        );
        // A proven agent of ours is verified.
        let out = join(
            vec![],
            vec![result("10.0.0.3", ManagedHere, Some(OURS))],
            &dns(&[]),
            &known(&[]),
        );
        assert_eq!(
            (out[0].status, out[0].identify),
            (ManagedHere, Some(IdentifyCheck::Verified))
        );
    }

    #[test]
    fn database_agent_fills_agent_fields_and_last_seen() {
        let mut pc = computer(1, "PC1", None);
        pc.last_logon = Some(1_000);
        pc.os = Some("  ".into());
        let out = join(vec![pc], vec![], &dns(&[]), &known(&[1]));
        let ep = &out[0];
        assert_eq!(ep.status, ManagedHere);
        assert_eq!(ep.agent_id.as_deref(), Some("known-1"));
        assert_eq!(ep.agent_version.as_deref(), Some("0.0.9"));
        assert_eq!(ep.server_id, None);
        assert_eq!(ep.os, None, "a blank operatingSystem is no OS");
        assert_eq!(ep.last_seen, Some(1_750_000_000));
    }

    #[test]
    fn unresolved_computer_keeps_its_ad_last_logon() {
        let mut pc = computer(1, "", Some("pc9.example.test"));
        pc.last_logon = Some(1_234);
        let out = join(vec![pc], vec![], &dns(&[]), &known(&[]));
        assert_eq!(out[0].name, "pc9.example.test", "cn empty: the DNS name");
        assert_eq!(out[0].status, UnresolvedAd);
        assert_eq!(out[0].last_seen, Some(1_234));
        assert_eq!(out[0].agent_id, None);
    }

    #[test]
    fn probe_to_ip_endpoint() {
        let seen = IpEndpoint::from_probe(
            addr("10.0.0.1"),
            Probe {
                other_answer: true,
                ..Probe::default()
            },
            OURS,
            42,
        );
        assert_eq!((seen.status, seen.seen_at), (NoAgent, Some(42)));
        let silent = IpEndpoint::from_probe(addr("10.0.0.2"), Probe::default(), OURS, 42);
        assert_eq!((silent.status, silent.seen_at), (Unreachable, None));
    }

    #[test]
    fn what_to_resolve_and_probe() {
        let ad = vec![
            computer(1, "A", Some("A.example.test.")),
            computer(2, "B", Some("b.example.test")),
            computer(3, "C", None),
            computer(4, "A2", Some("a.example.test")),
            computer(5, "E", Some("")),
        ];
        // C and E have no dNSHostName: looked up as <cn>.<domain>.
        assert_eq!(
            names_to_resolve(&ad),
            [
                "a.example.test",
                "b.example.test",
                "c.example.test",
                "e.example.test"
            ]
        );
        let resolved = dns(&[
            ("a.example.test", &["10.0.0.1", "192.0.2.1"]),
            ("b.example.test", &["192.0.2.1", "2001:db8::1"]),
        ]);
        let scope = IpScope {
            enabled: true,
            ranges: vec!["10.0.0.0/24".parse().unwrap()],
        };
        let probe: Vec<String> = addresses_to_probe(&ad, &resolved, &scope)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(probe, ["192.0.2.1", "2001:db8::1"]);
        let off = IpScope {
            enabled: false,
            ..scope
        };
        assert_eq!(addresses_to_probe(&ad, &resolved, &off).len(), 3);
    }

    #[test]
    fn computers_without_dns_host_name_are_looked_up_as_cn_dot_domain() {
        let cases = [
            (
                computer(1, "WEB01", Some("Web01.Example.Test.")),
                Some("web01.example.test"),
            ),
            (
                computer(2, "PRESTAGED", None),
                Some("prestaged.example.test"),
            ),
            (computer(3, "bad name", None), None),
            (computer(4, "", None), None),
            (
                AdComputer {
                    dn: "CN=NODOMAIN,OU=Servers".into(),
                    ..computer(5, "NODOMAIN", None)
                },
                None,
            ),
        ];
        for (c, want) in cases {
            assert_eq!(c.lookup_name().as_deref(), want, "{c:?}");
        }
        let ad = vec![computer(2, "PRESTAGED", None)];
        assert_eq!(names_to_resolve(&ad), ["prestaged.example.test"]);
        let out = join(
            ad,
            vec![result("10.0.0.7", NoAgent, None)],
            &dns(&[("prestaged.example.test", &["10.0.0.7"])]),
            &known(&[]),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].status, out[0].addrs.clone()),
            (NoAgent, vec![addr("10.0.0.7")])
        );
        assert_eq!(
            out[0].dns_name, None,
            "AD's own attribute stays as AD has it"
        );
        assert_eq!(out[0].name_source, Some(NameSource::Ad));
    }

    #[test]
    fn silent_addresses_are_no_host_unless_something_shows_a_machine() {
        let named = IpEndpoint {
            name: Some("web01.example.test".into()),
            name_source: Some(NameSource::Dns),
            ..result("10.0.0.2", Unreachable, None)
        };
        let mut out = join(
            vec![computer(1, "OFFLINE", Some("offline.example.test"))],
            vec![
                result("10.0.0.1", Unreachable, None),
                named,
                result("10.0.0.3", Unreachable, None),
                result("10.0.0.4", NoAgent, None),
                result("10.0.0.5", Unreachable, None),
            ],
            &dns(&[("offline.example.test", &["10.0.0.5"])]),
            &known(&[]),
        );
        let seen_before = HashMap::from([(addr("10.0.0.3"), 1_700_000_000)]);
        settle_silent_addresses(&mut out, &seen_before);
        let got: Vec<(&str, EndpointStatus, Option<i64>)> = out
            .iter()
            .map(|e| (e.name.as_str(), e.status, e.last_seen))
            .collect();
        assert_eq!(
            got,
            [
                // An AD computer that did not answer exists.
                ("OFFLINE", Unreachable, Some(1_700_000_001)),
                ("10.0.0.1", NoHost, None),
                ("web01.example.test", Unreachable, None),
                // Answered an earlier assessment: when is kept.
                ("10.0.0.3", Unreachable, Some(1_700_000_000)),
                ("10.0.0.4", NoAgent, Some(1_800_000_000)),
            ]
        );
    }
}
