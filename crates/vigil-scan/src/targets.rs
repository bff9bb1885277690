//! Turning target specifications into the set of addresses to scan.

use crate::ScanError;
use std::collections::BTreeMap;
use std::net::IpAddr;
use vigil_core::targets::AddrRange;
use vigil_core::TargetSpec;

/// Largest number of addresses one scan accepts (a /8, like nmap's practical limit).
pub const MAX_HOSTS: u128 = 1 << 24;

/// Which address families a hostname may resolve to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    #[default]
    Any,
    V4,
    V6,
}

impl Family {
    fn accepts(self, a: &IpAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => a.is_ipv4(),
            Family::V6 => a.is_ipv6(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::Any => "IP",
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// The de-duplicated addresses of a scan, as sorted disjoint ranges, with
/// the names they were resolved from.
#[derive(Debug, Clone, Default)]
pub struct TargetSet {
    ranges: Vec<AddrRange>,
    /// `offsets[i]` = number of addresses before `ranges[i]`.
    offsets: Vec<u64>,
    len: u64,
    names: BTreeMap<IpAddr, String>,
}

impl TargetSet {
    /// Resolves hostnames (all their addresses of the requested family) and
    /// merges overlapping ranges so every address is scanned once.
    pub async fn resolve(specs: &[TargetSpec], family: Family) -> Result<Self, ScanError> {
        let mut ranges = Vec::new();
        let mut names = BTreeMap::new();
        for spec in specs {
            match spec {
                TargetSpec::Range(r) if family.accepts(&r.start()) => ranges.push(*r),
                TargetSpec::Range(r) => {
                    return Err(ScanError::WrongFamily {
                        target: r.to_string(),
                        family: family.name(),
                    })
                }
                TargetSpec::Name(name) => {
                    let addrs =
                        tokio::net::lookup_host((name.as_str(), 0))
                            .await
                            .map_err(|source| ScanError::Resolve {
                                name: name.clone(),
                                source,
                            })?;
                    let mut found = false;
                    for a in addrs.map(|s| s.ip()).filter(|a| family.accepts(a)) {
                        found = true;
                        names.entry(a).or_insert_with(|| name.clone());
                        ranges.push(AddrRange::single(a));
                    }
                    if !found {
                        return Err(ScanError::NoAddress {
                            name: name.clone(),
                            family: family.name(),
                        });
                    }
                }
            }
        }
        Self::from_ranges(ranges, names)
    }

    /// Builds a set from address ranges (no resolution).
    pub fn from_ranges(
        mut ranges: Vec<AddrRange>,
        names: BTreeMap<IpAddr, String>,
    ) -> Result<Self, ScanError> {
        ranges.sort_by_key(|r| (r.start().is_ipv6(), key(r.start())));
        let mut merged: Vec<AddrRange> = Vec::with_capacity(ranges.len());
        for r in ranges {
            if let Some(last) = merged.last_mut() {
                let same_family = last.start().is_ipv4() == r.start().is_ipv4();
                if same_family && key(r.start()) <= key(last.end()).saturating_add(1) {
                    if key(r.end()) > key(last.end()) {
                        *last = AddrRange::new(last.start(), r.end()).map_err(ScanError::Config)?;
                    }
                    continue;
                }
            }
            merged.push(r);
        }
        let total: u128 = merged.iter().map(|r| r.len()).fold(0, u128::saturating_add);
        if total > MAX_HOSTS {
            return Err(ScanError::TooManyHosts {
                count: total,
                limit: MAX_HOSTS,
            });
        }
        let mut offsets = Vec::with_capacity(merged.len());
        let mut len = 0u64;
        for r in &merged {
            offsets.push(len);
            len += r.len() as u64;
        }
        Ok(TargetSet {
            ranges: merged,
            offsets,
            len,
            names,
        })
    }

    /// Number of distinct addresses.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`-th address in sorted order.
    pub fn get(&self, i: u64) -> Option<IpAddr> {
        if i >= self.len {
            return None;
        }
        let idx = self.offsets.partition_point(|&o| o <= i) - 1;
        self.ranges[idx].nth((i - self.offsets[idx]) as u128)
    }

    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.ranges
            .iter()
            .flat_map(|r| (0..r.len()).filter_map(move |i| r.nth(i)))
    }

    /// The hostname an address was resolved from, if any.
    pub fn name_of(&self, addr: &IpAddr) -> Option<&str> {
        self.names.get(addr).map(String::as_str)
    }
}

fn key(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(list: &[&str]) -> Vec<TargetSpec> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[tokio::test]
    async fn merges_overlaps_and_indexes() {
        let set = TargetSet::resolve(
            &specs(&[
                "198.51.100.8/30",
                "198.51.100.10-198.51.100.13",
                "2001:db8::1",
                "198.51.100.9",
            ]),
            Family::Any,
        )
        .await
        .unwrap();
        let all: Vec<String> = set.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            all,
            [
                "198.51.100.8",
                "198.51.100.9",
                "198.51.100.10",
                "198.51.100.11",
                "198.51.100.12",
                "198.51.100.13",
                "2001:db8::1"
            ]
        );
        assert_eq!(set.len(), 7);
        for (i, a) in set.iter().enumerate() {
            assert_eq!(set.get(i as u64), Some(a));
        }
        assert_eq!(set.get(7), None);
    }

    #[tokio::test]
    async fn resolves_localhost_by_family() {
        let set = TargetSet::resolve(&specs(&["localhost"]), Family::V4)
            .await
            .unwrap();
        assert!(set.iter().all(|a| a.is_loopback() && a.is_ipv4()));
        assert_eq!(
            set.name_of(&"127.0.0.1".parse().unwrap()),
            Some("localhost")
        );
    }

    #[tokio::test]
    async fn refuses_oversized_scans() {
        let err = TargetSet::resolve(&specs(&["2001:db8::/96"]), Family::Any)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("too many hosts"), "{err}");
    }

    #[tokio::test]
    async fn unknown_names_are_a_clear_error() {
        let err = TargetSet::resolve(&specs(&["no-such-host.invalid"]), Family::Any)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
    }

    #[tokio::test]
    async fn literal_of_the_other_family_is_refused() {
        let err = TargetSet::resolve(&specs(&["198.51.100.0/30"]), Family::V6)
            .await
            .unwrap_err();
        assert!(matches!(err, ScanError::WrongFamily { .. }), "{err}");
        assert!(err.to_string().contains("198.51.100.0"), "{err}");
    }
}
