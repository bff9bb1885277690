//! Names for addresses, asked of the network the way admin tools ask:
//! reverse DNS (PTR) through the system's resolvers, the device's own
//! mDNS responder (a one-shot reverse query, RFC 6762 §5.1 and §6.7), and
//! NetBIOS node status (UDP 137). The server's compliance sweep and the
//! agent's device list both use these.
//!
//! Everything here is bounded and distrustful, since every byte comes from
//! the scanned network:
//! - PTR lookups run a fixed number at a time, one attempt each with a
//!   timeout, and stop early when no resolver answers at all;
//! - mDNS and NetBIOS questions go out paced from one socket per address
//!   family, replies are read into a fixed buffer (longer ones are cut and
//!   fail to parse) and awaited a fixed time after the last question;
//! - a reply counts only if it carries the transaction id of a question
//!   and answers it: a NetBIOS reply must come from the address asked, an
//!   mDNS reply from port 5353 with a PTR record, class IN, for exactly
//!   the reverse name asked;
//! - every name is cleaned with [`vigil_core::compliance::clean_host_name`]
//!   (letters, digits, `-`, `_`, `.`; no trailing dot), or dropped.
//!
//! A lookup that cannot run (no resolver configured, no socket) logs a
//! warning and finds nothing: a missing name is not a failed scan. Cancel a
//! lookup by dropping its future.
//!
//! ```no_run
//! # async fn demo() {
//! use vigil_scan::names::{lookup_names, NameLookup};
//! let addrs = ["192.0.2.10".parse().unwrap()];
//! for (addr, (source, name)) in lookup_names(&addrs, &NameLookup::default()).await {
//!     println!("{addr} {name} ({source})");
//! }
//! # }
//! ```

mod exchange;
mod mdns;
mod netbios;
mod ptr;

pub use mdns::{mdns_reverse, MDNS_PORT};
pub use netbios::node_status;
pub use ptr::reverse_dns;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Which lookups [`lookup_names`] makes, and how long each may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameLookup {
    /// Reverse DNS (PTR) of every address.
    pub ptr: bool,
    /// NetBIOS node status of every IPv4 address (Windows, Samba).
    pub netbios: bool,
    /// A reverse mDNS query to every address's port 5353 (avahi on Linux,
    /// Apple devices, printers, many IoT devices).
    pub mdns: bool,
    /// Per PTR lookup.
    pub timeout: Duration,
    /// How long mDNS and NetBIOS replies are awaited after the last
    /// question (all of them have answered: at once). A responder on the
    /// same link answers in milliseconds; across routers, allow more.
    pub reply_wait: Duration,
    /// DNS servers for the PTR lookups; empty: the system's (resolv.conf,
    /// or the network adapters' settings on Windows).
    pub name_servers: Vec<SocketAddr>,
}

impl Default for NameLookup {
    /// All three lookups, 2 s each way, the system's DNS servers.
    fn default() -> Self {
        NameLookup {
            ptr: true,
            netbios: true,
            mdns: true,
            timeout: Duration::from_secs(2),
            reply_wait: Duration::from_secs(2),
            name_servers: Vec::new(),
        }
    }
}

/// Where a name found by [`lookup_names`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameSource {
    /// Reverse DNS (PTR).
    Dns,
    /// The device's mDNS responder.
    Mdns,
    /// NetBIOS node status.
    Netbios,
}

impl NameSource {
    /// `dns`, `mdns` or `netbios`.
    pub fn as_str(self) -> &'static str {
        match self {
            NameSource::Dns => "dns",
            NameSource::Mdns => "mdns",
            NameSource::Netbios => "netbios",
        }
    }
}

impl fmt::Display for NameSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One name per address that has one, from the first source that named
/// it in the order PTR, mDNS, NetBIOS. The lookups `how` asks for run at
/// once, so the whole takes about the longer of `how.timeout` and
/// `how.reply_wait` (longer for many PTR lookups, see [`reverse_dns`]).
pub async fn lookup_names(
    addrs: &[IpAddr],
    how: &NameLookup,
) -> HashMap<IpAddr, (NameSource, String)> {
    // A lookup that is off gets no addresses: it returns at once.
    let (dns, mdns, netbios) = tokio::join!(
        reverse_dns(addrs_if(how.ptr, addrs), how.timeout, &how.name_servers),
        mdns_reverse(addrs_if(how.mdns, addrs), how.reply_wait),
        node_status(addrs_if(how.netbios, addrs), how.reply_wait),
    );
    first_found([
        (NameSource::Dns, dns),
        (NameSource::Mdns, mdns),
        (NameSource::Netbios, netbios),
    ])
}

/// `addrs` if the lookup is on, else nothing to look up.
fn addrs_if(on: bool, addrs: &[IpAddr]) -> &[IpAddr] {
    if on {
        addrs
    } else {
        &[]
    }
}

/// `addrs` without repeats, in their order.
fn unique(addrs: impl IntoIterator<Item = IpAddr>) -> Vec<IpAddr> {
    let mut seen = std::collections::HashSet::new();
    addrs.into_iter().filter(|a| seen.insert(*a)).collect()
}

/// Per address, the name of the first source (in the order given) that
/// has one.
fn first_found<const N: usize>(
    sources: [(NameSource, HashMap<IpAddr, String>); N],
) -> HashMap<IpAddr, (NameSource, String)> {
    let mut out = HashMap::new();
    for (source, found) in sources {
        for (addr, name) in found {
            out.entry(addr).or_insert((source, name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_source_in_order_names_an_address() {
        let [a, b, c, d]: [IpAddr; 4] =
            ["192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8::4"].map(|s| s.parse().unwrap());
        let names = |pairs: &[(IpAddr, &str)]| {
            pairs
                .iter()
                .map(|(a, n)| (*a, n.to_string()))
                .collect::<HashMap<_, _>>()
        };
        let got = first_found([
            (NameSource::Dns, names(&[(a, "web01.acme.test")])),
            (
                NameSource::Mdns,
                names(&[(a, "web01.local"), (b, "printer.local")]),
            ),
            (
                NameSource::Netbios,
                names(&[(a, "WEB01"), (b, "PRINTER"), (c, "FILES01")]),
            ),
        ]);
        let want = [
            (a, NameSource::Dns, "web01.acme.test"),
            (b, NameSource::Mdns, "printer.local"),
            (c, NameSource::Netbios, "FILES01"),
        ];
        assert_eq!(got.len(), want.len());
        for (addr, source, name) in want {
            assert_eq!(got[&addr], (source, name.to_string()), "{addr}");
        }
        assert!(!got.contains_key(&d));
    }

    #[tokio::test]
    async fn nothing_to_look_up_or_nothing_asked_is_no_names() {
        assert!(lookup_names(&[], &NameLookup::default()).await.is_empty());
        let none = NameLookup {
            ptr: false,
            netbios: false,
            mdns: false,
            ..NameLookup::default()
        };
        let addrs: Vec<IpAddr> = vec!["198.51.100.1".parse().unwrap()];
        let started = std::time::Instant::now();
        assert!(lookup_names(&addrs, &none).await.is_empty());
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn sources_have_names() {
        let all = [NameSource::Dns, NameSource::Mdns, NameSource::Netbios];
        assert_eq!(all.map(|s| s.to_string()), ["dns", "mdns", "netbios"]);
    }
}
