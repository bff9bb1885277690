//! nmap-compatible XML (`-oX`), so `ndiff` and existing nmap tooling read Vigil's scans.
//!
//! Layout follows nmap 7.9x: one `<host>` per target (every target is "up,
//! user-set", as with `nmap -Pn`: Vigil does no host discovery), closed and
//! filtered ports folded into `<extraports>` when more than 25 share a state,
//! exactly as nmap folds them, so `ndiff` compares like with like.

use super::Report;
use quick_xml::escape::escape;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::time::UNIX_EPOCH;
use vigil_core::PortList;
use vigil_scan::services::ServiceNames;
use vigil_scan::PortResult;

/// nmap lists at most this many ports of a non-open state individually.
const MAX_LISTED_PER_STATE: usize = 25;

pub fn write(
    out: &mut impl Write,
    report: &Report,
    services: &ServiceNames,
    command_line: &str,
) -> anyhow::Result<()> {
    let start = unix(report.started);
    let end = start + report.elapsed.as_secs();
    let startstr = ctime(start);
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(out, "<!DOCTYPE nmaprun>")?;
    writeln!(
        out,
        r#"<nmaprun scanner="vigil" args="{}" start="{start}" startstr="{startstr}" version="{}" xmloutputversion="1.05">"#,
        escape(command_line),
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(
        out,
        r#"<scaninfo type="{}" protocol="tcp" numservices="{}" services="{}"/>"#,
        report.method.name(),
        report.ports.len(),
        report.ports
    )?;
    writeln!(out, r#"<verbose level="0"/>"#)?;
    writeln!(out, r#"<debugging level="0"/>"#)?;

    let mut by_host: BTreeMap<IpAddr, Vec<&PortResult>> = BTreeMap::new();
    for r in &report.results {
        by_host.entry(r.addr).or_default().push(r);
    }
    for (addr, ports) in &by_host {
        writeln!(
            out,
            r#"<host starttime="{start}" endtime="{end}"><status state="up" reason="user-set" reason_ttl="0"/>"#
        )?;
        let kind = if addr.is_ipv4() { "ipv4" } else { "ipv6" };
        writeln!(out, r#"<address addr="{addr}" addrtype="{kind}"/>"#)?;
        match report.targets.name_of(addr) {
            Some(name) => writeln!(
                out,
                "<hostnames>\n<hostname name=\"{}\" type=\"user\"/>\n</hostnames>",
                escape(name)
            )?,
            None => writeln!(out, "<hostnames>\n</hostnames>")?,
        }
        write_ports(out, ports, services)?;
        if let Some((srtt, rttvar, to)) = report.host_times.get(addr) {
            writeln!(
                out,
                r#"<times srtt="{}" rttvar="{}" to="{}"/>"#,
                srtt.as_micros(),
                rttvar.as_micros(),
                to.as_micros()
            )?;
        }
        writeln!(out, "</host>")?;
    }
    let hosts = report.targets.len();
    let elapsed = report.elapsed.as_secs_f64();
    let exit = if report.complete { "success" } else { "error" };
    writeln!(
        out,
        r#"<runstats><finished time="{end}" timestr="{}" summary="Vigil done at {}; {hosts} IP address{} ({hosts} host{} up) scanned in {elapsed:.2} seconds" elapsed="{elapsed:.2}" exit="{exit}"/><hosts up="{hosts}" down="0" total="{hosts}"/>"#,
        ctime(end),
        ctime(end),
        if hosts == 1 { "" } else { "es" },
        if hosts == 1 { "" } else { "s" },
    )?;
    writeln!(out, "</runstats>\n</nmaprun>")?;
    Ok(())
}

fn write_ports(
    out: &mut impl Write,
    ports: &[&PortResult],
    services: &ServiceNames,
) -> anyhow::Result<()> {
    // Group non-open ports by nmap state, then by reason, to decide what folds.
    let mut by_state: BTreeMap<&str, Vec<&PortResult>> = BTreeMap::new();
    for r in ports {
        by_state.entry(r.state.nmap_state()).or_default().push(r);
    }
    let folded = |state: &str| {
        state != "open"
            && by_state
                .get(state)
                .is_some_and(|v| v.len() > MAX_LISTED_PER_STATE)
    };
    writeln!(out, "<ports>")?;
    for (state, list) in by_state.iter().filter(|(s, _)| folded(s)) {
        writeln!(
            out,
            r#"<extraports state="{state}" count="{}">"#,
            list.len()
        )?;
        let mut reasons: BTreeMap<&str, Vec<u16>> = BTreeMap::new();
        for r in list {
            reasons.entry(r.reason).or_default().push(r.port);
        }
        for (reason, nums) in reasons {
            writeln!(
                out,
                r#"<extrareasons reason="{reason}" count="{}" proto="tcp" ports="{}"/>"#,
                nums.len(),
                PortList::from_ports(nums)
            )?;
        }
        writeln!(out, "</extraports>")?;
    }
    for r in ports.iter().filter(|r| !folded(r.state.nmap_state())) {
        write!(
            out,
            r#"<port protocol="tcp" portid="{}"><state state="{}" reason="{}" reason_ttl="0"/>"#,
            r.port,
            r.state.nmap_state(),
            r.reason
        )?;
        if let Some(name) = services.get(r.port) {
            write!(
                out,
                r#"<service name="{}" method="table" conf="3"/>"#,
                escape(name)
            )?;
        }
        writeln!(out, "</port>")?;
    }
    writeln!(out, "</ports>")?;
    Ok(())
}

fn unix(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// nmap's `startstr` form: `Mon Nov 23 09:12:45 2026`, local time.
fn ctime(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%a %b %e %H:%M:%S %Y")
                .to_string()
        })
        .unwrap_or_default()
}
