//! Service names for ports (`22` → `ssh`), read from the system's tables.
//!
//! nmap's own table (`nmap-services`, which also carries open frequencies
//! for `--top-ports`) is preferred when installed, then `/etc/services`.

use std::collections::HashMap;

/// Locations searched for nmap's frequency table.
pub const NMAP_SERVICES_PATHS: &[&str] = &[
    "/usr/share/nmap/nmap-services",
    "/usr/local/share/nmap/nmap-services",
];

/// Reads the first nmap-services table found, if any.
pub fn read_nmap_services() -> Option<String> {
    NMAP_SERVICES_PATHS
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
}

/// The `n` most common TCP ports, most common first: ranked by nmap's open
/// frequencies when its table is installed, else Vigil's built-in ranking
/// (which knows fewer, so fewer may come back).
pub fn top_ports(n: usize) -> Vec<u16> {
    match read_nmap_services() {
        Some(table) => vigil_core::ports::top_ports_from_services(&table, n),
        None => vigil_core::ports::builtin_top_ports(n),
    }
}

/// TCP port → service name.
#[derive(Debug, Clone, Default)]
pub struct ServiceNames {
    names: HashMap<u16, String>,
}

impl ServiceNames {
    /// Loads from nmap-services, else `/etc/services`, else empty.
    pub fn load() -> Self {
        let text = read_nmap_services()
            .or_else(|| std::fs::read_to_string("/etc/services").ok())
            .unwrap_or_default();
        Self::parse(&text)
    }

    /// Parses `name port/proto ...` lines (both table formats share them).
    pub fn parse(text: &str) -> Self {
        let mut names = HashMap::new();
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            let mut cols = line.split_whitespace();
            let (Some(name), Some(pp)) = (cols.next(), cols.next()) else {
                continue;
            };
            let Some((port, "tcp")) = pp.split_once('/') else {
                continue;
            };
            if let Ok(port) = port.parse::<u16>() {
                names.entry(port).or_insert_with(|| name.to_string());
            }
        }
        ServiceNames { names }
    }

    pub fn get(&self, port: u16) -> Option<&str> {
        self.names.get(&port).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_formats_tcp_only_first_wins() {
        let t = "ssh\t22/tcp\t0.18\t# Secure Shell\nsnmp 161/udp\nhttp 80/tcp www\nwww 80/tcp\n# x 1/tcp\n";
        let s = ServiceNames::parse(t);
        assert_eq!(s.get(22), Some("ssh"));
        assert_eq!(s.get(80), Some("http"));
        assert_eq!(s.get(161), None);
        assert_eq!(s.get(1), None);
    }
}
