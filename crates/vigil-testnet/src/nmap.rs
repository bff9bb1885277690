//! Reading nmap's XML output (`-oX`), so tests and benchmarks can compare
//! Vigil with nmap — and Vigil's own nmap-format output — port by port.

use crate::TestNetError;
use quick_xml::events::{BytesStart, Event};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use vigil_core::PortList;

/// `(state, reason)` per `(address, port)`, as the XML states them.
pub type Verdicts = BTreeMap<(IpAddr, u16), (String, String)>;

/// Reads every `<port>` and every `<extraports>`/`<extrareasons ports=…>`
/// (the ports nmap folds together when more than 25 share a state) of every
/// `<host>`.
pub fn parse_xml(xml: &str) -> Result<Verdicts, TestNetError> {
    let bad = |what: String| TestNetError::NmapXml(what);
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Verdicts::new();
    let mut addr: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut extra_state: Option<String> = None;
    loop {
        let e = match reader.read_event().map_err(|e| bad(e.to_string()))? {
            Event::Start(e) | Event::Empty(e) => e,
            Event::End(e) => {
                match e.name().as_ref() {
                    b"host" => addr = None,
                    b"port" => port = None,
                    b"extraports" => extra_state = None,
                    _ => {}
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let need = |name: &str| attr(&e, name).ok_or_else(|| bad(format!("missing {name}=")));
        match e.name().as_ref() {
            b"address" if attr(&e, "addrtype").as_deref() != Some("mac") => {
                let a = need("addr")?;
                addr = Some(a.parse().map_err(|_| bad(format!("bad address {a}")))?);
            }
            b"port" => {
                let p = need("portid")?;
                port = Some(p.parse().map_err(|_| bad(format!("bad port {p}")))?);
            }
            b"state" => {
                if let (Some(a), Some(p)) = (addr, port) {
                    out.insert((a, p), (need("state")?, need("reason")?));
                }
            }
            b"extraports" => extra_state = attr(&e, "state"),
            b"extrareasons" => {
                let (Some(a), Some(state)) = (addr, extra_state.clone()) else {
                    continue;
                };
                let reason = need("reason")?;
                let ports = need("ports")?;
                let list = PortList::parse(&ports).map_err(|e| bad(e.to_string()))?;
                for p in list.iter() {
                    out.insert((a, p), (state.clone(), reason.clone()));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The `(address, port)` pairs whose state is `open`.
pub fn open_set(verdicts: &Verdicts) -> BTreeSet<(IpAddr, u16)> {
    verdicts
        .iter()
        .filter(|(_, (state, _))| state == "open")
        .map(|(k, _)| *k)
        .collect()
}

fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name.as_bytes())
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<?xml version="1.0"?>
<nmaprun><host><status state="up" reason="user-set"/>
<address addr="198.51.100.2" addrtype="ipv4"/>
<ports><extraports state="closed" count="30">
<extrareasons reason="conn-refused" count="30" proto="tcp" ports="1-30"/></extraports>
<port protocol="tcp" portid="80"><state state="open" reason="syn-ack" reason_ttl="0"/></port>
</ports></host></nmaprun>"#;

    #[test]
    fn reads_ports_and_folded_extraports() {
        let v = parse_xml(SAMPLE).expect("parse");
        let a: IpAddr = "198.51.100.2".parse().expect("ip");
        assert_eq!(v.len(), 31);
        assert_eq!(v[&(a, 80)], ("open".into(), "syn-ack".into()));
        assert_eq!(v[&(a, 17)], ("closed".into(), "conn-refused".into()));
        assert_eq!(open_set(&v), BTreeSet::from([(a, 80)]));
    }

    #[test]
    fn broken_xml_is_an_error() {
        assert!(parse_xml("<nmaprun><host><address/></host></nmaprun>").is_err());
        assert!(parse_xml("<a></b>").is_err());
    }
}
