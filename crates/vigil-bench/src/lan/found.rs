//! What each tool found — devices with their MAC and open ports — read
//! from its output, and compared with the ground truth.

use super::network::Device;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use vigil_proto::agent::NetworkUpload;

pub type Found = BTreeMap<IpAddr, Device>;

/// `vigil agent sweep --json`: its devices, and the networks it swept.
pub fn agent(json: &str) -> Result<(Found, Vec<String>)> {
    let up: NetworkUpload = serde_json::from_str(json).context("vigil agent sweep --json")?;
    let found = up
        .devices
        .iter()
        .map(|d| {
            (
                d.ip,
                Device {
                    mac: d.mac.map(|m| m.to_string().to_lowercase()),
                    open: d.open_ports.iter().copied().collect(),
                },
            )
        })
        .collect();
    Ok((found, up.swept))
}

/// `nmap -oX -`: every host up, with its MAC (nmap gives none for this
/// machine's own address) and open ports.
pub fn nmap(xml: &str) -> Result<Found> {
    let open = vigil_testnet::nmap::open_set(&vigil_testnet::nmap::parse_xml(xml)?);
    let mut found = Found::new();
    // Each `<host>` element: what precedes its `</host>`, from its last
    // opening tag (`<hosthint>` elements, which nmap writes during host
    // discovery, are not hosts).
    for chunk in xml.split("</host>") {
        let Some(start) = ["<host ", "<host>"]
            .iter()
            .filter_map(|tag| chunk.rfind(tag))
            .max()
        else {
            continue;
        };
        let host = &chunk[start..];
        let up = tags(host, "status")
            .iter()
            .any(|t| attr(t, "state") == Some("up"));
        if !up {
            continue;
        }
        let mut ip = None;
        let mut mac = None;
        for t in tags(host, "address") {
            match attr(t, "addrtype") {
                Some("mac") => mac = attr(t, "addr").map(str::to_lowercase),
                Some("ipv4" | "ipv6") => ip = attr(t, "addr"),
                _ => {}
            }
        }
        let ip: IpAddr = ip
            .context("a host without address in nmap's XML")?
            .parse()?;
        let ports = open
            .iter()
            .filter(|(a, _)| *a == ip)
            .map(|(_, p)| *p)
            .collect();
        found.insert(ip, Device { mac, open: ports });
    }
    Ok(found)
}

/// The text of every `<name …>` tag in `xml` (attributes only).
fn tags<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name} ");
    xml.match_indices(&open)
        .map(|(i, _)| xml[i..].split('>').next().unwrap_or_default())
        .collect()
}

/// The value of `name="…"` in a tag.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    tag[start..].split('"').next()
}

/// How `found` differs from `truth`, one line per difference; empty when
/// exact. `no_mac` is an address whose MAC the tool cannot know (nmap's
/// own).
pub fn differences(found: &Found, truth: &Found, no_mac: Option<IpAddr>) -> Vec<String> {
    let mut out = Vec::new();
    let addrs: BTreeSet<&IpAddr> = found.keys().chain(truth.keys()).collect();
    for ip in addrs {
        match (found.get(ip), truth.get(ip)) {
            (Some(_), None) => out.push(format!("{ip}: listed, but no device is there")),
            (None, Some(_)) => out.push(format!("{ip}: device missed")),
            (Some(f), Some(t)) => {
                if f.mac != t.mac && Some(*ip) != no_mac {
                    out.push(format!("{ip}: MAC {:?}, expected {:?}", f.mac, t.mac));
                }
                if f.open != t.open {
                    out.push(format!(
                        "{ip}: open ports {:?}, expected {:?}",
                        f.open, t.open
                    ));
                }
            }
            (None, None) => {}
        }
    }
    out
}

/// How the open `(address, port)` pairs of `found` differ from `truth`'s
/// (for a tool that cannot tell devices from empty addresses).
pub fn open_differences(found: &Found, truth: &Found) -> Vec<String> {
    let pairs = |f: &Found| -> BTreeSet<(IpAddr, u16)> {
        f.iter()
            .flat_map(|(ip, d)| d.open.iter().map(move |p| (*ip, *p)))
            .collect()
    };
    let (f, t) = (pairs(found), pairs(truth));
    let missed = t
        .difference(&f)
        .map(|(ip, p)| format!("{ip}:{p}: open port missed"));
    let extra = f
        .difference(&t)
        .map(|(ip, p)| format!("{ip}:{p}: listed open, but closed"));
    missed.chain(extra).collect()
}

/// Open `(address, port)` pairs in all.
pub fn open_ports(found: &Found) -> usize {
    found.values().map(|d| d.open.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<nmaprun>
<host><status state="up" reason="localhost-response" reason_ttl="0"/>
<address addr="198.18.4.1" addrtype="ipv4"/>
<ports><extraports state="closed" count="2"><extrareasons reason="conn-refused" count="2" proto="tcp" ports="22,80"/></extraports></ports></host>
<hosthint><status state="up" reason="arp-response" reason_ttl="0"/>
<address addr="198.18.4.7" addrtype="ipv4"/>
</hosthint>
<host starttime="1" endtime="2"><status state="up" reason="arp-response" reason_ttl="0"/>
<address addr="198.18.4.7" addrtype="ipv4"/>
<address addr="00:80:77:42:00:02" addrtype="mac" vendor="Brother industries"/>
<ports><port protocol="tcp" portid="80"><state state="open" reason="syn-ack" reason_ttl="0"/></port>
<port protocol="tcp" portid="22"><state state="closed" reason="conn-refused" reason_ttl="0"/></port></ports></host>
</nmaprun>"#;

    #[test]
    fn reads_hosts_macs_and_open_ports_from_nmap() {
        let f = nmap(XML).expect("parse");
        let own: IpAddr = "198.18.4.1".parse().expect("ip");
        let printer: IpAddr = "198.18.4.7".parse().expect("ip");
        assert_eq!(f.len(), 2);
        assert_eq!(f[&own].mac, None);
        assert!(f[&own].open.is_empty());
        assert_eq!(f[&printer].mac.as_deref(), Some("00:80:77:42:00:02"));
        assert_eq!(f[&printer].open, BTreeSet::from([80]));
    }

    #[test]
    fn differences_name_each_wrong_device() {
        let d = |mac: &str, open: &[u16]| Device {
            mac: Some(mac.into()),
            open: open.iter().copied().collect(),
        };
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let truth = Found::from([
            (ip("198.18.4.1"), d("02:00:00:00:00:01", &[])),
            (ip("198.18.4.7"), d("00:80:77:42:00:02", &[80])),
            (ip("198.18.4.9"), d("00:80:77:42:00:03", &[])),
        ]);
        let mut found = truth.clone();
        assert!(differences(&found, &truth, None).is_empty());
        found.remove(&ip("198.18.4.9"));
        found.insert(ip("198.18.4.1"), d("02:00:00:00:00:99", &[]));
        found.insert(ip("198.18.4.7"), d("00:80:77:42:00:02", &[]));
        let diff = differences(&found, &truth, Some(ip("198.18.4.1")));
        assert_eq!(diff.len(), 2, "{diff:?}");
        assert!(diff[0].contains("198.18.4.7: open ports"));
        assert!(diff[1].contains("198.18.4.9: device missed"));
    }
}
