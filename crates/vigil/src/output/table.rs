//! The human-readable table and summary line.

use super::{banner_text, Report};
use std::io::Write;
use vigil_scan::services::ServiceNames;

pub fn write(
    out: &mut impl Write,
    report: &Report,
    services: &ServiceNames,
    all: bool,
    banners: bool,
) -> anyhow::Result<()> {
    let rows: Vec<_> = report.shown(all).collect();
    if !rows.is_empty() {
        let addr_w = rows
            .iter()
            .map(|r| r.addr.to_string().len())
            .max()
            .unwrap_or(4)
            .max(4);
        write!(
            out,
            "{:<addr_w$}  {:<9}  {:<11}  {:<14}  {:>9}",
            "HOST", "PORT", "STATE", "SERVICE", "RTT"
        )?;
        writeln!(out, "{}", if banners { "  BANNER" } else { "" })?;
        for r in rows {
            let rtt = r
                .rtt
                .map(|d| format!("{:.2} ms", d.as_secs_f64() * 1e3))
                .unwrap_or_else(|| "-".into());
            write!(
                out,
                "{:<addr_w$}  {:<9}  {:<11}  {:<14}  {:>9}",
                r.addr.to_string(),
                format!("{}/tcp", r.port),
                r.state.as_str(),
                services.get(r.port).unwrap_or("-"),
                rtt
            )?;
            match (&r.banner, banners) {
                (Some(b), true) => writeln!(out, "  {}", banner_text(b))?,
                _ => writeln!(out)?,
            }
        }
    }
    let s = &report.summary;
    let hosts = report.targets.len();
    writeln!(
        out,
        "{}{} host{} ({} up, {} unreachable), {} port{} each, in {:.2}s with {} probes: {} open, {} closed, {} filtered, {} unreachable",
        if report.complete { "Scanned " } else { "INTERRUPTED after " },
        hosts,
        if hosts == 1 { "" } else { "s" },
        s.hosts_up(),
        s.hosts_unreachable(),
        report.ports.len(),
        if report.ports.len() == 1 { "" } else { "s" },
        report.elapsed.as_secs_f64(),
        report.method_name(),
        s.open,
        s.closed,
        s.filtered,
        s.unreachable
    )?;
    Ok(())
}
