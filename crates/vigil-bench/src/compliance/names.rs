//! The benchmark network's DNS server (`vigil_testnet::DnsServer`,
//! dnsmasq): authoritative for the reverse zones of the scanned ranges, a
//! PTR record (`h-<n>.bench.test`) for every host that is up (what an
//! office network's DNS has), NXDOMAIN for every other address, and the AD
//! domain forwarded to the DC when there is one. The server under test
//! resolves through it (the scanner namespace's resolv.conf).

use super::network::{Range, Role};
use anyhow::{Context, Result};
use std::net::IpAddr;
use std::path::Path;
use vigil_testnet::{DnsServer, DnsSpec, TestNet};

/// Where dnsmasq listens (in the target namespace, next to the DC).
pub const DNS_ADDR: &str = "198.51.100.54";
/// The domain of the hosts' PTR names.
pub const DOMAIN: &str = "bench.test";

/// How many endpoints of `range` an assessment names from DNS: every host
/// up but our own agents (their reported host name comes first).
pub fn dns_named(range: &Range) -> u64 {
    range.hosts.len() as u64 - range.with_role(Role::Ours).count() as u64
}

/// Starts dnsmasq with a PTR for every host of `ranges`; `ad_dc` is the
/// DC to forward `example.test` to.
pub fn start(
    net: &TestNet,
    dir: &Path,
    ranges: &[&Range],
    ad_dc: Option<IpAddr>,
) -> Result<DnsServer> {
    let records: Vec<(IpAddr, String)> = ranges
        .iter()
        .flat_map(|r| r.hosts.keys())
        .enumerate()
        .map(|(n, addr)| (*addr, format!("h-{}.{DOMAIN}", n + 1)))
        .collect();
    let spec = DnsSpec {
        listen: Some(DNS_ADDR.parse()?),
        records,
        zones: [DOMAIN, "19.198.in-addr.arpa", "ip6.arpa"]
            .map(String::from)
            .to_vec(),
        forward: ad_dc
            .map(|dc| ("example.test".to_string(), dc))
            .into_iter()
            .collect(),
    };
    let dns = DnsServer::start(net, &spec, dir)
        .context("starting dnsmasq (Debian package dnsmasq-base)")?;
    net.set_scanner_dns(dns.addr())?;
    eprintln!("dnsmasq on {DNS_ADDR}: {} PTR records", spec.records.len());
    Ok(dns)
}
