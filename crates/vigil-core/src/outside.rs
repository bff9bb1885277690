//! The outside-scan schedule of an account: which ports each scan of an
//! agent's observed address probes.
//!
//! A full sweep of 65,535 ports at every interval is what one replica
//! holds for a few thousand agents (see BENCHMARKS.md, "Fleet"). So, as
//! nmap's default of its top 1,000 ports does, every run probes what
//! matters (the policy's ports, the ports with an alert raised or pending,
//! and the most common ports), and the rest of the sweep range is probed a slice
//! per run, the slices covering it over a longer period: the load stays
//! flat, and nothing in the range goes unprobed for longer than that.

use crate::ports::PortList;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The most common ports probed at every run by default (nmap's default
/// scan is its top 1,000).
pub const DEFAULT_TOP_PORTS: u16 = 1000;

/// Over how many hours the rest of the range is spread by default.
pub const DEFAULT_FULL_RANGE_HOURS: u16 = 24;

/// The longest period a schedule may spread the range over: a week.
pub const MAX_FULL_RANGE_HOURS: u16 = 7 * 24;

/// The fewest ports of the range a run probes beside the common ones, when
/// the range is spread: a run's cost is mostly its timeouts, not its
/// probes, so thinner slices save nothing and only stretch the period.
pub const MIN_SLICE_PORTS: usize = 1000;

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScheduleError {
    #[error("full_range_hours must be from 0 (the whole range at every run) to {MAX_FULL_RANGE_HOURS} (a week), not {0}")]
    Period(u16),
}

/// An account's outside-scan schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutsideSchedule {
    /// How many of the most common ports every run probes (0: none
    /// beyond the policy's and those with an alert raised or pending).
    pub top_ports: u16,
    /// Over how many hours the rest of the range is probed, a slice per
    /// run; 0: the whole range at every run.
    pub full_range_hours: u16,
}

impl Default for OutsideSchedule {
    fn default() -> Self {
        OutsideSchedule {
            top_ports: DEFAULT_TOP_PORTS,
            full_range_hours: DEFAULT_FULL_RANGE_HOURS,
        }
    }
}

/// "the top 1000 ports at every run, the rest of the range over 24 h"
/// (beside the policy's ports and those with an alert).
impl std::fmt::Display for OutsideSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.full_range_hours {
            0 => write!(
                f,
                "the top {} ports and the whole range at every run",
                self.top_ports
            ),
            h => write!(
                f,
                "the top {} ports at every run, the rest of the range over {h} h",
                self.top_ports
            ),
        }
    }
}

/// What one run must probe beside the schedule's own choice.
#[derive(Debug, Clone, Copy)]
pub struct RunPorts<'a> {
    /// The whole sweep range (the server's sweep ports).
    pub range: &'a PortList,
    /// Ports ranked most common first (nmap's frequencies or Vigil's list).
    pub ranked: &'a [u16],
    /// The policy's authorized and monitored ports.
    pub policy: &'a PortList,
    /// The ports whose scan decides something: with a condition raised or
    /// pending (an alert that clears after two scans without its port
    /// open needs both).
    pub watched: &'a PortList,
    /// The policy's interval, in seconds.
    pub interval_secs: u32,
    /// How many runs of this target came before (which slice is next).
    pub run: u64,
}

impl OutsideSchedule {
    pub fn validated(self) -> Result<OutsideSchedule, ScheduleError> {
        if self.full_range_hours > MAX_FULL_RANGE_HOURS {
            return Err(ScheduleError::Period(self.full_range_hours));
        }
        Ok(self)
    }

    /// The common ports of the range this schedule probes at every run.
    fn common(&self, range: &PortList, ranked: &[u16]) -> PortList {
        PortList::from_ports(
            ranked
                .iter()
                .copied()
                .filter(|p| range.contains(*p))
                .take(usize::from(self.top_ports)),
        )
    }

    /// Into how many slices the rest of `range` (`rest` ports) is cut at
    /// `interval_secs`: one per run over the period, but no thinner than
    /// [`MIN_SLICE_PORTS`].
    pub fn slices(&self, rest: usize, interval_secs: u32) -> u64 {
        if self.full_range_hours == 0 || rest == 0 {
            return 1;
        }
        let period = u64::from(self.full_range_hours) * 3600;
        let runs = period.div_ceil(u64::from(interval_secs.max(1)));
        let thinnest = u64::try_from(rest.div_ceil(MIN_SLICE_PORTS)).unwrap_or(u64::MAX);
        runs.min(thinnest).max(1)
    }

    /// The ports run number `r.run` probes: the policy's, the watched
    /// ones, the common ones, and slice `run mod slices` of the rest of
    /// the range. Any `slices` consecutive runs cover the whole range.
    pub fn ports(&self, r: RunPorts<'_>) -> PortList {
        let common = self.common(r.range, r.ranked);
        let rest: Vec<u16> = r.range.iter().filter(|p| !common.contains(*p)).collect();
        let n = self.slices(rest.len(), r.interval_secs);
        let k = r.run % n;
        let cut = |i: u64| {
            let i = u128::from(i) * rest.len() as u128 / u128::from(n);
            usize::try_from(i).unwrap_or(rest.len())
        };
        let slice = PortList::from_ports(rest[cut(k)..cut(k + 1)].iter().copied());
        common.union(&slice).union(r.policy).union(r.watched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked() -> Vec<u16> {
        // 1,000 common ports, most common first: the odd ones below 2000.
        (1..=1999).rev().step_by(2).collect()
    }

    #[test]
    fn runs_probe_what_matters_and_slices_cover_the_range() {
        let range = PortList::all();
        let ranked = ranked();
        let policy = PortList::from_ports([22, 40000]);
        let watched = PortList::from_ports([31337]);
        let schedule = OutsideSchedule::default();
        let interval = 15 * 60;
        let run = |run| {
            schedule.ports(RunPorts {
                range: &range,
                ranked: &ranked,
                policy: &policy,
                watched: &watched,
                interval_secs: interval,
                run,
            })
        };
        // A day of 15-minute runs is 96, but the 64,535 other ports make
        // 65 slices of at least 1,000.
        let slices = schedule.slices(65535 - 1000, interval);
        assert_eq!(slices, 65);
        let mut covered = PortList::from_ports([]);
        let mut sizes = Vec::new();
        for r in 0..slices {
            let ports = run(r);
            // Every run: the top 1,000, the policy's, the watched one.
            for p in [1999, 1001, 22, 40000, 31337] {
                assert!(ports.contains(p), "run {r} lacks {p}");
            }
            sizes.push(ports.len());
            covered = covered.union(&ports);
        }
        assert_eq!(covered, range, "{slices} runs cover the range");
        // Flat: every run probes about the same number of ports.
        let (least, most) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(most - least <= 4, "{sizes:?}");
        assert!(*most < 2000 + 5, "{most}");
        // The next period starts over.
        assert_eq!(run(slices), run(0));
        assert_ne!(run(1), run(0));
    }

    #[test]
    fn short_intervals_or_ranges_and_no_period_probe_the_whole_range() {
        let schedule = OutsideSchedule::default();
        // A range of a few ports: one slice, the whole range every run.
        let small = PortList::parse("8000-8100").unwrap();
        let ports = schedule.ports(RunPorts {
            range: &small,
            ranked: &ranked(),
            policy: &PortList::from_ports([22]),
            watched: &PortList::from_ports([]),
            interval_secs: 60,
            run: 7,
        });
        assert_eq!(ports, small.union(&PortList::from_ports([22])));
        // No period: the whole range at every run.
        let whole = OutsideSchedule {
            top_ports: 0,
            full_range_hours: 0,
        };
        assert_eq!(whole.slices(65535, 60), 1);
        // A long interval: one slice per run of the period.
        assert_eq!(schedule.slices(64535, 6 * 3600), 4);
        assert_eq!(schedule.slices(64535, 25 * 3600), 1);
        assert_eq!(schedule.slices(0, 60), 1);
    }

    #[test]
    fn only_common_ports_of_the_range_count_and_periods_are_bounded() {
        let range = PortList::parse("1000-1010").unwrap();
        let schedule = OutsideSchedule {
            top_ports: 3,
            full_range_hours: 0,
        };
        assert_eq!(
            schedule.common(&range, &[80, 1005, 443, 1001, 1003, 1009]),
            PortList::from_ports([1001, 1003, 1005])
        );
        assert_eq!(
            OutsideSchedule {
                top_ports: 10,
                full_range_hours: MAX_FULL_RANGE_HOURS + 1
            }
            .validated(),
            Err(ScheduleError::Period(MAX_FULL_RANGE_HOURS + 1))
        );
        assert!(OutsideSchedule::default().validated().is_ok());
        assert_eq!(
            OutsideSchedule::default().to_string(),
            "the top 1000 ports at every run, the rest of the range over 24 h"
        );
        assert_eq!(
            schedule.to_string(),
            "the top 3 ports and the whole range at every run"
        );
    }
}
