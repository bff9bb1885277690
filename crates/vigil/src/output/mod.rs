//! Printing a finished scan: table (default), JSON lines, CSV, nmap XML.

pub mod csv;
pub mod json;
pub mod table;
pub mod xml;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};
use vigil_core::{PortList, PortState};
use vigil_scan::{PortResult, ScanSummary, TargetSet};

/// Everything the printers need, results sorted by (address, port).
pub struct Report {
    pub targets: TargetSet,
    pub ports: PortList,
    pub results: Vec<PortResult>,
    pub summary: ScanSummary,
    pub started: SystemTime,
    pub elapsed: Duration,
    /// False when the scan was interrupted.
    pub complete: bool,
    /// Per answering host: smoothed RTT, RTT variance, final timeout.
    pub host_times: HashMap<IpAddr, (Duration, Duration, Duration)>,
    /// How the ports were probed.
    pub method: vigil_scan::Method,
}

impl Report {
    /// `SYN` or `connect`, as the summary says it.
    pub fn method_name(&self) -> &'static str {
        match self.method {
            vigil_scan::Method::Syn => "SYN",
            _ => "connect",
        }
    }

    /// Results worth printing: open ports, or all with `all`.
    pub fn shown(&self, all: bool) -> impl Iterator<Item = &PortResult> {
        self.results
            .iter()
            .filter(move |r| all || r.state == PortState::Open)
    }
}

/// Milliseconds with three decimals, as JSON/CSV print them.
pub fn rtt_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Printable banner: UTF-8 lossless where possible, control bytes escaped.
pub fn banner_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banners_are_escaped() {
        assert_eq!(banner_text(b"SSH-2.0\r\n\x01"), "SSH-2.0\\r\\n\\x01");
    }

    #[test]
    fn rtt_has_three_decimals() {
        assert_eq!(rtt_ms(Duration::from_micros(123_456)), 123.456);
    }
}
