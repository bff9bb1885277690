//! Port lists: `22,80,443`, `1000-2000`, `-` (all), `-1024`, `60000-`.

use crate::state::PortState;
use std::fmt;
use thiserror::Error;

/// Why a port specification was rejected. Every variant names the offending token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PortSpecError {
    #[error("empty port list")]
    Empty,
    #[error("empty entry in port list {spec:?} (two commas in a row?)")]
    EmptyToken { spec: String },
    #[error("invalid port {token:?}: expected a number from 1 to 65535")]
    NotAPort { token: String },
    #[error("invalid port range {token:?}: start is greater than end")]
    Reversed { token: String },
    #[error("--top-ports must be at least 1")]
    ZeroTop,
}

/// A sorted, de-duplicated set of TCP ports (1–65535).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortList {
    ports: Vec<u16>,
}

impl PortList {
    /// Every port, 1–65535.
    pub fn all() -> Self {
        PortList {
            ports: (1..=u16::MAX).collect(),
        }
    }

    /// Parses a comma-separated list of ports and ranges.
    pub fn parse(spec: &str) -> Result<Self, PortSpecError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(PortSpecError::Empty);
        }
        let mut ranges = Vec::new();
        for raw in spec.split(',') {
            let token = raw.trim();
            if token.is_empty() {
                return Err(PortSpecError::EmptyToken { spec: spec.into() });
            }
            ranges.push(parse_token(token)?);
        }
        Ok(Self::from_ranges(ranges))
    }

    /// Builds a list from inclusive `(lo, hi)` ranges, each port once.
    /// Overlaps are skipped rather than expanded, so a spec that repeats
    /// `-` thousands of times costs no more than one `-`.
    fn from_ranges(mut ranges: Vec<(u16, u16)>) -> Self {
        ranges.sort_unstable();
        let mut ports = Vec::new();
        // The first port not yet in `ports` (ranges come sorted by start).
        let mut next: u32 = 1;
        for (lo, hi) in ranges {
            let start = u32::from(lo).max(next);
            if start <= u32::from(hi) {
                ports.extend(start as u16..=hi);
                next = u32::from(hi) + 1;
            }
        }
        PortList { ports }
    }

    /// Builds a list from arbitrary port numbers; 0 is dropped.
    pub fn from_ports(ports: impl IntoIterator<Item = u16>) -> Self {
        let mut ports: Vec<u16> = ports.into_iter().filter(|&p| p != 0).collect();
        ports.sort_unstable();
        ports.dedup();
        PortList { ports }
    }

    pub fn len(&self) -> usize {
        self.ports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    pub fn contains(&self, port: u16) -> bool {
        self.ports.binary_search(&port).is_ok()
    }

    pub fn as_slice(&self) -> &[u16] {
        &self.ports
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.ports.iter().copied()
    }

    /// Merges another list into this one.
    pub fn union(&self, other: &PortList) -> PortList {
        PortList::from_ports(self.iter().chain(other.iter()))
    }
}

/// Compact form, ranges collapsed: `22,80,1000-2000` (what nmap prints in `services=`).
impl fmt::Display for PortList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut i = 0;
        while i < self.ports.len() {
            let start = self.ports[i];
            let mut end = start;
            while i + 1 < self.ports.len() && self.ports[i + 1] == end.wrapping_add(1) {
                i += 1;
                end = self.ports[i];
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
            i += 1;
        }
        Ok(())
    }
}

/// How many ports in one state with no answer (filtered, unreachable) a
/// stored result lists before it only counts them, as nmap does ("Not
/// shown: 65530 filtered tcp ports"): a full sweep of an address that
/// drops everything is 65,535 filtered ports, and listing each would make
/// every stored result megabytes of "filtered".
pub const MAX_SILENT_LISTED: usize = 25;

/// Whether a stored result lists a port its scan reported in `state`, when
/// the scan reported `in_state` ports in that state. Open ports are always
/// listed, and so is every port the policy names (`in_policy`: authorized
/// or monitored), whatever its state. Closed ports are only counted
/// (something answered: nothing listens), and so are filtered and
/// unreachable ones when there are more than [`MAX_SILENT_LISTED`] of
/// them.
pub fn listed_in_result(state: PortState, in_policy: bool, in_state: usize) -> bool {
    in_policy
        || match state {
            PortState::Open => true,
            PortState::Closed => false,
            PortState::Filtered | PortState::Unreachable => in_state <= MAX_SILENT_LISTED,
        }
}

/// The ports a stored result counts without listing them (see
/// [`listed_in_result`]); closed ones are what remains of the probed count.
/// `None` for results stored before Vigil counted them, which left out
/// closed ports only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NotListed {
    pub filtered: Option<u32>,
    pub unreachable: Option<u32>,
}

/// What a scan result says it probed, for people: `"65,535 ports probed
/// (1-65535); not shown: 65,530 filtered, 2 closed"`. A result keeps only
/// some of its ports ([`listed_in_result`]), so their number (`listed`) is
/// not what was swept. Results stored before Vigil recorded the probed
/// ports (`count` is `None`) say so instead of passing `listed` off as the
/// sweep.
pub fn probed_summary(
    count: Option<u32>,
    ports: Option<&str>,
    listed: usize,
    not_listed: NotListed,
) -> String {
    let probed = probed_part(count, ports, listed);
    let Some(count) = count else {
        return probed;
    };
    // What was left out, shared in that order: counts that do not add up
    // (a corrupt row) never claim more than was probed.
    let mut left_out = u64::from(count).saturating_sub(u64::try_from(listed).unwrap_or(u64::MAX));
    let mut take = |n: Option<u32>| {
        let n = u64::from(n.unwrap_or(0)).min(left_out);
        left_out -= n;
        n
    };
    let filtered = take(not_listed.filtered);
    let unreachable = take(not_listed.unreachable);
    let closed = left_out;
    let hidden: Vec<String> = [
        (filtered, "filtered"),
        (unreachable, "unreachable"),
        (closed, "closed"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, state)| format!("{} {state}", thousands(*n)))
    .collect();
    if hidden.is_empty() {
        probed
    } else {
        format!("{probed}; not shown: {}", hidden.join(", "))
    }
}

fn probed_part(count: Option<u32>, ports: Option<&str>, listed: usize) -> String {
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    match (count, ports.filter(|p| !p.is_empty())) {
        (None, _) => {
            let n = u64::try_from(listed).unwrap_or(u64::MAX);
            format!(
                "{} port{} listed; what was probed was not recorded",
                thousands(n),
                plural(n)
            )
        }
        (Some(0), _) => "no port probed".into(),
        (Some(n), Some(list)) => {
            format!(
                "{} port{} probed ({list})",
                thousands(n.into()),
                plural(n.into())
            )
        }
        (Some(n), None) => format!("{} port{} probed", thousands(n.into()), plural(n.into())),
    }
}

/// `65535` → `"65,535"`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn parse_token(token: &str) -> Result<(u16, u16), PortSpecError> {
    if token == "-" {
        return Ok((1, u16::MAX));
    }
    match token.split_once('-') {
        None => {
            let p = parse_port(token, token)?;
            Ok((p, p))
        }
        Some((lo, hi)) => {
            let lo = if lo.is_empty() {
                1
            } else {
                parse_port(lo, token)?
            };
            let hi = if hi.is_empty() {
                u16::MAX
            } else {
                parse_port(hi, token)?
            };
            if lo > hi {
                return Err(PortSpecError::Reversed {
                    token: token.into(),
                });
            }
            Ok((lo, hi))
        }
    }
}

fn parse_port(s: &str, token: &str) -> Result<u16, PortSpecError> {
    let not_a_port = || PortSpecError::NotAPort {
        token: token.into(),
    };
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_port());
    }
    match s.parse::<u16>() {
        Ok(p) if p >= 1 => Ok(p),
        _ => Err(not_a_port()),
    }
}

/// Vigil's built-in ranking of commonly exposed TCP ports, most common first.
///
/// Used by `--top-ports N` when no nmap frequency table (`nmap-services`) is
/// installed; with one, [`top_ports_from_services`] ranks by its measured
/// frequencies instead.
pub const BUILTIN_TOP_PORTS: &[u16] = &[
    80, 23, 443, 21, 22, 25, 3389, 110, 445, 139, 143, 53, 135, 3306, 8080, 1723, 111, 995, 993,
    5900, 1025, 587, 8888, 199, 1720, 465, 548, 113, 81, 6001, 10000, 514, 5060, 179, 1026, 2000,
    8443, 8000, 32768, 554, 26, 1433, 49152, 2001, 515, 8008, 49154, 1027, 5666, 646, 5000, 5631,
    631, 49153, 8081, 2049, 88, 79, 5800, 106, 2121, 1110, 49155, 6000, 513, 990, 5357, 427, 49156,
    543, 544, 5101, 144, 7, 389, 5432, 6379, 27017, 9200, 11211, 5222, 5269, 1883, 8883, 5672,
    9000, 9090, 2375, 2376, 6443, 10250, 3000, 5985, 5986, 636, 3268, 1521, 873, 161, 69, 9100,
    8009, 8888, 5901, 2222, 8181, 7001, 9443,
];

/// Ranks TCP ports by the open-frequency column of an nmap-services style
/// table (`name<TAB>port/proto<TAB>frequency`) and returns the `n` most
/// frequent. Malformed lines are skipped: the table is advisory data.
pub fn top_ports_from_services(table: &str, n: usize) -> Vec<u16> {
    let mut ranked: Vec<(f64, u16)> = table
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let _name = cols.next()?;
            let (port, proto) = cols.next()?.split_once('/')?;
            if proto != "tcp" {
                return None;
            }
            let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
            let freq: f64 = cols.next()?.parse().ok()?;
            Some((freq, port))
        })
        .collect();
    // Highest frequency first; ties by port number so the order is stable.
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut seen = std::collections::HashSet::new();
    ranked
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| seen.insert(*p))
        .take(n)
        .collect()
}

/// The built-in list, de-duplicated, first `n` entries (fewer if the list is shorter).
pub fn builtin_top_ports(n: usize) -> Vec<u16> {
    let mut seen = std::collections::HashSet::new();
    BUILTIN_TOP_PORTS
        .iter()
        .copied()
        .filter(|p| seen.insert(*p))
        .take(n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probed_summaries_report_the_sweep_not_the_kept_ports() {
        // (count, port list, ports kept in the result, filtered left
        // out, summary)
        type Case<'a> = (Option<u32>, Option<&'a str>, usize, Option<u32>, &'a str);
        let gone = |filtered| NotListed {
            filtered,
            unreachable: filtered.map(|_| 0),
        };
        let cases: &[Case] = &[
            (
                Some(65535),
                Some("1-65535"),
                5,
                Some(65528),
                "65,535 ports probed (1-65535); not shown: 65,528 filtered, 2 closed",
            ),
            (
                Some(65535),
                Some("1-65535"),
                0,
                Some(65535),
                "65,535 ports probed (1-65535); not shown: 65,535 filtered",
            ),
            // Stored before filtered ports were counted: only closed ones
            // were left out.
            (
                Some(1000),
                None,
                3,
                None,
                "1,000 ports probed; not shown: 997 closed",
            ),
            (
                Some(1000),
                None,
                3,
                Some(0),
                "1,000 ports probed; not shown: 997 closed",
            ),
            (
                Some(3),
                Some("22,80,443"),
                3,
                Some(0),
                "3 ports probed (22,80,443)",
            ),
            (Some(1), Some("22"), 1, None, "1 port probed (22)"),
            (Some(0), Some(""), 0, Some(0), "no port probed"),
            (
                Some(2),
                Some(""),
                0,
                Some(2),
                "2 ports probed; not shown: 2 filtered",
            ),
            // Counts that do not add up never claim more than was probed.
            (Some(2), None, 5, Some(0), "2 ports probed"),
            (Some(0), Some(""), 0, Some(7), "no port probed"),
            (
                Some(10),
                None,
                4,
                Some(9),
                "10 ports probed; not shown: 6 filtered",
            ),
            (
                None,
                None,
                5,
                None,
                "5 ports listed; what was probed was not recorded",
            ),
            (
                None,
                Some("1-65535"),
                1,
                Some(3),
                "1 port listed; what was probed was not recorded",
            ),
            (
                None,
                None,
                12345,
                None,
                "12,345 ports listed; what was probed was not recorded",
            ),
        ];
        for (count, ports, listed, filtered, want) in cases {
            assert_eq!(
                probed_summary(*count, *ports, *listed, gone(*filtered)),
                *want
            );
        }
        let unreachable = NotListed {
            filtered: Some(3),
            unreachable: Some(1000),
        };
        assert_eq!(
            probed_summary(Some(1010), None, 5, unreachable),
            "1,010 ports probed; not shown: 3 filtered, 1,000 unreachable, 2 closed"
        );
        for (n, want) in [(0, "0"), (999, "999"), (1000, "1,000"), (65535, "65,535")] {
            assert_eq!(thousands(n), want);
        }
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn results_list_what_answers_and_what_the_policy_names() {
        use PortState::*;
        let few = MAX_SILENT_LISTED;
        let many = MAX_SILENT_LISTED + 1;
        // (state, in the policy, ports in that state, listed)
        for (state, in_policy, in_state, want) in [
            (Open, false, 65535, true),
            (Closed, false, 1, false),
            (Closed, true, 1, true),
            (Filtered, false, few, true),
            (Filtered, false, many, false),
            (Filtered, true, 65535, true),
            (Unreachable, false, few, true),
            (Unreachable, false, many, false),
            (Unreachable, true, many, true),
        ] {
            assert_eq!(
                listed_in_result(state, in_policy, in_state),
                want,
                "{state:?} in policy {in_policy}, {in_state} in that state"
            );
        }
    }

    #[test]
    fn parses_valid_specs() {
        let cases: &[(&str, &[u16])] = &[
            ("22", &[22]),
            ("22,80,443", &[22, 80, 443]),
            ("443,22,22", &[22, 443]),
            ("1-3", &[1, 2, 3]),
            (" 8 , 7-8 ", &[7, 8]),
            ("65534-", &[65534, 65535]),
            ("-2", &[1, 2]),
        ];
        for (spec, want) in cases {
            let got = PortList::parse(spec).unwrap();
            assert_eq!(got.as_slice(), *want, "spec {spec:?}");
        }
        assert_eq!(PortList::parse("-").unwrap().len(), 65535);
        assert_eq!(PortList::parse("1-65535").unwrap(), PortList::all());
    }

    #[test]
    fn rejects_invalid_specs_naming_the_token() {
        let cases: &[(&str, &str)] = &[
            ("", "empty port list"),
            ("22,,80", "two commas"),
            ("22,http", "\"http\""),
            ("0", "\"0\""),
            ("65536", "\"65536\""),
            ("80-20", "\"80-20\""),
            ("1-2-3", "\"1-2-3\""),
            ("+5", "\"+5\""),
            ("22,99999", "\"99999\""),
        ];
        for (spec, needle) in cases {
            let err = PortList::parse(spec).unwrap_err().to_string();
            assert!(err.contains(needle), "spec {spec:?}: {err}");
        }
    }

    /// Found by fuzzing (fuzz/README.md): every entry used to be expanded
    /// before de-duplication, so 64 KiB of `-,-,…` took ~4 GB.
    #[test]
    fn repeated_and_overlapping_entries_stay_cheap() {
        let spec = vec!["-"; 32_000].join(",");
        assert_eq!(PortList::parse(&spec).unwrap(), PortList::all());
        let spec = (1..=20_000)
            .map(|p| format!("{p}-"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(PortList::parse(&spec).unwrap(), PortList::all());
        let got = PortList::parse("500-600,1-3,550-700,2,701,703-").unwrap();
        let want: Vec<u16> = [1, 2, 3]
            .into_iter()
            .chain(500..=701)
            .chain(703..=u16::MAX)
            .collect();
        assert_eq!(got.as_slice(), want);
    }

    #[test]
    fn displays_compact_ranges() {
        let l = PortList::parse("22,80,81,82,443,1000-2000").unwrap();
        assert_eq!(l.to_string(), "22,80-82,443,1000-2000");
        assert_eq!(PortList::all().to_string(), "1-65535");
    }

    #[test]
    fn ranks_services_table_by_frequency() {
        let table = "# comment\nhttp\t80/tcp\t0.484143\nssh\t22/tcp\t0.182286\n\
                     snmp\t161/udp\t0.433467\nftp\t21/tcp\t0.197667\nbroken line\n\
                     x\t0/tcp\t0.9\n";
        assert_eq!(top_ports_from_services(table, 10), vec![80, 21, 22]);
        assert_eq!(top_ports_from_services(table, 1), vec![80]);
    }

    #[test]
    fn builtin_list_is_unique_and_nonzero() {
        let all = builtin_top_ports(usize::MAX);
        assert!(all.len() >= 100);
        assert!(!all.contains(&0));
        assert_eq!(builtin_top_ports(3), vec![80, 23, 443]);
    }
}
