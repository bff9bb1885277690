//! JSON lines: `{"addr":"198.51.100.2","port":22,"state":"open","rtt_ms":0.1}`.

use super::{banner_text, rtt_ms, Report};
use serde::Serialize;
use std::io::Write;

#[derive(Serialize)]
struct Line<'a> {
    addr: String,
    port: u16,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    banner: Option<String>,
}

pub fn write(out: &mut impl Write, report: &Report, all: bool) -> anyhow::Result<()> {
    for r in report.shown(all) {
        let line = Line {
            addr: r.addr.to_string(),
            port: r.port,
            state: r.state.as_str(),
            rtt_ms: r.rtt.map(rtt_ms),
            host: report.targets.name_of(&r.addr),
            banner: r.banner.as_deref().map(banner_text),
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
