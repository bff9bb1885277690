//! When compliance assessments run by themselves, saved per tenant.
//!
//! A schedule is either an interval (`every_minutes`) or a time of day
//! (`daily_at`, `HH:MM`), optionally on one weekday only (`weekly_on`,
//! 0 = Sunday … 6 = Saturday, as in cron). All times are UTC. A weekday
//! without a time runs at 00:00.
//!
//! Intervals are aligned to the Unix epoch, so "every 60 minutes" runs on
//! the hour and a late run does not shift the later ones. A disabled
//! schedule keeps its settings (still checked, so enabling it cannot fail)
//! and never runs.
//!
//! As with security-scan intervals, organizations may pick any whole number
//! of minutes and members no less than [`MEMBER_MIN_EVERY_MINUTES`]
//! ([`ComplianceSchedule::validate_for`]). A run that falls due while the
//! previous one is still going is skipped by the server, so a short interval
//! never stacks assessments.

use crate::plan::AccountKind;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Shortest interval any account may pick, in minutes.
pub const MIN_EVERY_MINUTES: u32 = 1;
/// Shortest interval a member account may pick, in minutes: an assessment
/// of a large scope takes a while.
pub const MEMBER_MIN_EVERY_MINUTES: u32 = 15;
/// Weekday names by [`ComplianceSchedule::weekly_on`] number (0 = Sunday).
pub const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
/// Longest interval, in minutes (one year of 365 days).
pub const MAX_EVERY_MINUTES: u32 = 525_600;

const DAY: i64 = 86_400;
const WEEK: i64 = 7 * DAY;
/// 1970-01-01 was a Thursday (4 with Sunday = 0).
const EPOCH_WEEKDAY: i64 = 4;

/// Why a schedule was rejected. Messages name the value and say what to change.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScheduleError {
    #[error(
        "an interval of {minutes} min is out of range: choose a whole number of minutes \
         from {MIN_EVERY_MINUTES} to {MAX_EVERY_MINUTES} (one year)"
    )]
    EveryOutOfRange { minutes: u32 },
    #[error(
        "an interval of {minutes} min is not available for member accounts: \
         choose at least {MEMBER_MIN_EVERY_MINUTES} minutes"
    )]
    MemberTooFrequent { minutes: u32 },
    #[error("time of day {time:?} is not valid: write HH:MM in 24-hour UTC (e.g. 02:30)")]
    BadTime { time: String },
    #[error("weekday {day} is not valid: use 0 (Sunday) to 6 (Saturday)")]
    BadWeekday { day: u8 },
    #[error("choose either an interval (every N minutes) or a time of day and weekday, not both")]
    IntervalAndTime,
    #[error("an enabled schedule needs an interval (every N minutes), a time of day or a weekday")]
    NothingScheduled,
}

/// The tenant's assessment schedule.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ComplianceSchedule {
    #[serde(default)]
    pub enabled: bool,
    /// Run every N minutes (aligned to the epoch).
    #[serde(default)]
    pub every_minutes: Option<u32>,
    /// Run at this UTC time of day, `HH:MM`.
    #[serde(default)]
    pub daily_at: Option<String>,
    /// Run on this weekday only (0 = Sunday … 6 = Saturday).
    #[serde(default)]
    pub weekly_on: Option<u8>,
}

impl ComplianceSchedule {
    /// Checks every field, whether or not the schedule is enabled.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if let Some(minutes) = self.every_minutes {
            if !(MIN_EVERY_MINUTES..=MAX_EVERY_MINUTES).contains(&minutes) {
                return Err(ScheduleError::EveryOutOfRange { minutes });
            }
        }
        if let Some(time) = &self.daily_at {
            parse_time(time)?;
        }
        if let Some(day) = self.weekly_on {
            if day > 6 {
                return Err(ScheduleError::BadWeekday { day });
            }
        }
        let timed = self.daily_at.is_some() || self.weekly_on.is_some();
        match (self.every_minutes.is_some(), timed) {
            (true, true) => Err(ScheduleError::IntervalAndTime),
            (false, false) if self.enabled => Err(ScheduleError::NothingScheduled),
            _ => Ok(()),
        }
    }

    /// [`ComplianceSchedule::validate`] plus the rule of the account's kind:
    /// members run at most every [`MEMBER_MIN_EVERY_MINUTES`].
    pub fn validate_for(&self, kind: AccountKind) -> Result<(), ScheduleError> {
        self.validate()?;
        match self.every_minutes {
            Some(minutes) if kind == AccountKind::Member && minutes < MEMBER_MIN_EVERY_MINUTES => {
                Err(ScheduleError::MemberTooFrequent { minutes })
            }
            _ => Ok(()),
        }
    }

    /// The first run strictly after `after` (Unix seconds, UTC); `None` when
    /// the schedule is disabled or not valid.
    pub fn next_run(&self, after: i64) -> Option<i64> {
        if !self.enabled || self.validate().is_err() {
            return None;
        }
        if let Some(minutes) = self.every_minutes {
            let step = i64::from(minutes) * 60;
            return after.div_euclid(step).checked_add(1)?.checked_mul(step);
        }
        let time_of_day = match &self.daily_at {
            Some(t) => parse_time(t).ok()?,
            None => 0,
        };
        let day = after.div_euclid(DAY);
        let (mut at, period) = match self.weekly_on {
            Some(weekday) => {
                let today = (day + EPOCH_WEEKDAY).rem_euclid(7);
                let ahead = (i64::from(weekday) - today).rem_euclid(7);
                (day.checked_add(ahead)?.checked_mul(DAY)?, WEEK)
            }
            None => (day.checked_mul(DAY)?, DAY),
        };
        at = at.checked_add(time_of_day)?;
        if at <= after {
            at = at.checked_add(period)?;
        }
        Some(at)
    }
}

/// `HH:MM` (two digits each, 00:00 to 23:59) as seconds after midnight.
fn parse_time(text: &str) -> Result<i64, ScheduleError> {
    let bad = || ScheduleError::BadTime {
        time: text.to_owned(),
    };
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return Err(bad());
    }
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 3600 + m * 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-01-01 00:00:00 UTC, a Wednesday (3).
    const JAN1: i64 = 1_735_689_600;

    fn every(minutes: u32) -> ComplianceSchedule {
        ComplianceSchedule {
            enabled: true,
            every_minutes: Some(minutes),
            ..ComplianceSchedule::default()
        }
    }

    fn at(daily_at: Option<&str>, weekly_on: Option<u8>) -> ComplianceSchedule {
        ComplianceSchedule {
            enabled: true,
            daily_at: daily_at.map(str::to_owned),
            weekly_on,
            ..ComplianceSchedule::default()
        }
    }

    #[test]
    fn validation() {
        let cases: Vec<(ComplianceSchedule, Result<(), &str>)> = vec![
            (ComplianceSchedule::default(), Ok(())),
            (every(1), Ok(())),
            (every(15), Ok(())),
            (every(MAX_EVERY_MINUTES), Ok(())),
            (
                every(0),
                Err("an interval of 0 min is out of range: choose a whole number of minutes from 1 to 525600 (one year)"),
            ),
            (
                every(MAX_EVERY_MINUTES + 1),
                Err("an interval of 525601 min is out of range: choose a whole number of minutes from 1 to 525600 (one year)"),
            ),
            (at(Some("00:00"), None), Ok(())),
            (at(Some("23:59"), Some(6)), Ok(())),
            (at(None, Some(0)), Ok(())),
            (
                at(Some("24:00"), None),
                Err("time of day \"24:00\" is not valid: write HH:MM in 24-hour UTC (e.g. 02:30)"),
            ),
            (
                at(Some("2:30"), None),
                Err("time of day \"2:30\" is not valid: write HH:MM in 24-hour UTC (e.g. 02:30)"),
            ),
            (
                at(Some("02:60"), None),
                Err("time of day \"02:60\" is not valid: write HH:MM in 24-hour UTC (e.g. 02:30)"),
            ),
            (
                at(Some("+1:30"), None),
                Err("time of day \"+1:30\" is not valid: write HH:MM in 24-hour UTC (e.g. 02:30)"),
            ),
            (
                at(None, Some(7)),
                Err("weekday 7 is not valid: use 0 (Sunday) to 6 (Saturday)"),
            ),
            (
                ComplianceSchedule {
                    daily_at: Some("02:00".into()),
                    ..every(60)
                },
                Err("choose either an interval (every N minutes) or a time of day and weekday, not both"),
            ),
            (
                at(None, None),
                Err("an enabled schedule needs an interval (every N minutes), a time of day or a weekday"),
            ),
            // Disabled: kept as is, but still checked.
            (
                ComplianceSchedule {
                    enabled: false,
                    ..every(60)
                },
                Ok(()),
            ),
            (
                ComplianceSchedule {
                    enabled: false,
                    ..every(0)
                },
                Err("an interval of 0 min is out of range: choose a whole number of minutes from 1 to 525600 (one year)"),
            ),
        ];
        for (i, (schedule, want)) in cases.iter().enumerate() {
            let got = schedule.validate().map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_owned), "case {i}: {schedule:?}");
        }
    }

    #[test]
    fn members_run_at_most_every_15_minutes() {
        use AccountKind::{Member, Organization};
        let cases: Vec<(AccountKind, ComplianceSchedule, Result<(), &str>)> = vec![
            (Organization, every(1), Ok(())),
            (Organization, every(14), Ok(())),
            (
                Member,
                every(14),
                Err("an interval of 14 min is not available for member accounts: choose at least 15 minutes"),
            ),
            (Member, every(15), Ok(())),
            (Member, at(Some("02:30"), None), Ok(())),
            (
                Member,
                every(0),
                Err("an interval of 0 min is out of range: choose a whole number of minutes from 1 to 525600 (one year)"),
            ),
            // Disabled but kept: still checked, so enabling it cannot fail.
            (
                Member,
                ComplianceSchedule {
                    enabled: false,
                    ..every(5)
                },
                Err("an interval of 5 min is not available for member accounts: choose at least 15 minutes"),
            ),
        ];
        for (kind, schedule, want) in cases {
            let got = schedule.validate_for(kind).map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_owned), "{kind:?} {schedule:?}");
        }
    }

    #[test]
    fn next_runs() {
        let h = 3600;
        let cases: Vec<(&str, ComplianceSchedule, i64, Option<i64>)> = vec![
            ("hourly, on the hour", every(60), JAN1 + 10, Some(JAN1 + h)),
            ("strictly after", every(60), JAN1, Some(JAN1 + h)),
            ("just before", every(60), JAN1 + h - 1, Some(JAN1 + h)),
            (
                "every 15 min",
                every(15),
                JAN1 + 16 * 60,
                Some(JAN1 + 30 * 60),
            ),
            (
                "daily later today",
                at(Some("02:30"), None),
                JAN1 + h,
                Some(JAN1 + 2 * h + 1800),
            ),
            (
                "daily at that second",
                at(Some("02:30"), None),
                JAN1 + 2 * h + 1800,
                Some(JAN1 + DAY + 2 * h + 1800),
            ),
            (
                "daily tomorrow",
                at(Some("02:30"), None),
                JAN1 + 3 * h,
                Some(JAN1 + DAY + 2 * h + 1800),
            ),
            ("midnight", at(Some("00:00"), None), JAN1 - 1, Some(JAN1)),
            // JAN1 is a Wednesday (3).
            (
                "weekly today, later",
                at(Some("12:00"), Some(3)),
                JAN1,
                Some(JAN1 + 12 * h),
            ),
            (
                "weekly today, passed",
                at(Some("12:00"), Some(3)),
                JAN1 + 13 * h,
                Some(JAN1 + WEEK + 12 * h),
            ),
            (
                "weekly on Friday",
                at(Some("08:00"), Some(5)),
                JAN1,
                Some(JAN1 + 2 * DAY + 8 * h),
            ),
            (
                "weekly on Sunday, no time",
                at(None, Some(0)),
                JAN1,
                Some(JAN1 + 4 * DAY),
            ),
            (
                "weekly on Tuesday",
                at(Some("08:00"), Some(2)),
                JAN1,
                Some(JAN1 + 6 * DAY + 8 * h),
            ),
            ("before the epoch", at(Some("00:00"), Some(4)), -1, Some(0)),
            (
                "disabled",
                ComplianceSchedule {
                    enabled: false,
                    ..every(60)
                },
                JAN1,
                None,
            ),
            ("every minute", every(1), JAN1 + 59, Some(JAN1 + 60)),
            ("invalid", every(0), JAN1, None),
            ("nothing set", ComplianceSchedule::default(), JAN1, None),
            ("overflow", every(60), i64::MAX - 10, None),
        ];
        for (case, schedule, after, want) in cases {
            assert_eq!(schedule.next_run(after), want, "{case}");
        }
    }

    #[test]
    fn serde() {
        let s: ComplianceSchedule =
            serde_json::from_str(r#"{"enabled": true, "daily_at": "02:30", "weekly_on": 1}"#)
                .unwrap();
        assert_eq!(s, at(Some("02:30"), Some(1)));
        let empty: ComplianceSchedule = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, ComplianceSchedule::default());
        let back: ComplianceSchedule =
            serde_json::from_str(&serde_json::to_string(&every(90)).unwrap()).unwrap();
        assert_eq!(back, every(90));
    }
}
