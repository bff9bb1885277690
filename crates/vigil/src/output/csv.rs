//! CSV with a header row, one port per line.

use super::{banner_text, rtt_ms, Report};
use std::io::Write;
use vigil_scan::services::ServiceNames;

pub fn write(
    out: &mut impl Write,
    report: &Report,
    services: &ServiceNames,
    all: bool,
) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "addr", "port", "state", "reason", "rtt_ms", "service", "host", "banner",
    ])?;
    for r in report.shown(all) {
        w.write_record([
            r.addr.to_string(),
            r.port.to_string(),
            r.state.to_string(),
            r.reason.to_string(),
            r.rtt.map(|d| rtt_ms(d).to_string()).unwrap_or_default(),
            services.get(r.port).unwrap_or_default().to_string(),
            report
                .targets
                .name_of(&r.addr)
                .unwrap_or_default()
                .to_string(),
            r.banner.as_deref().map(banner_text).unwrap_or_default(),
        ])?;
    }
    w.flush()?;
    Ok(())
}
