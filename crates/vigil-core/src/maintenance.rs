//! Maintenance windows: planned periods in which an account's agents are
//! still scanned and evaluated but nobody is notified.
//!
//! A window has a [`Schedule`] — once (local start and end), weekly (some
//! weekdays, a local time range that may cross midnight) or a cron
//! expression with a duration — always in an explicit IANA time zone, so
//! "Sundays 02:00–04:00 Europe/Paris" stays 02:00 local across daylight
//! saving changes. A local time that does not exist (the hour skipped in
//! spring) starts at the first instant after the gap; one that exists twice
//! (autumn) uses the earlier one. And a [`Scope`]: the whole account,
//! chosen agents, or the agents carrying a tag.
//!
//! Everything here works on Unix seconds given by the caller: no clock.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest window or occurrence: 31 days. A longer "maintenance" is an
/// agent that should be removed or its rules changed.
pub const MAX_DURATION_MINUTES: u32 = 31 * 24 * 60;
/// Most agents a window may name.
pub const MAX_AGENTS: usize = 1000;
/// Most characters of a window name.
pub const MAX_NAME_CHARS: usize = 100;
/// Most tags on one agent.
pub const MAX_TAGS: usize = 16;
/// Most characters of one tag.
pub const MAX_TAG_CHARS: usize = 32;

/// Why a window or a tag was rejected. Messages name the value and say what to write.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MaintenanceError {
    #[error(
        "time zone {0:?} is not an IANA time zone name (e.g. Europe/Paris, America/New_York, UTC)"
    )]
    BadTimeZone(String),
    #[error("{field} {value:?} is not valid: write YYYY-MM-DDTHH:MM in the window's time zone")]
    BadDateTime { field: &'static str, value: String },
    #[error(
        "{field} {value:?} is not valid: write HH:MM (24-hour, local to the window's time zone)"
    )]
    BadTime { field: &'static str, value: String },
    #[error("the window ends ({end}) before or when it starts ({start})")]
    EndsBeforeStart { start: String, end: String },
    #[error("the window lasts longer than {MAX_DURATION_MINUTES} minutes (31 days)")]
    TooLong,
    #[error("weekday {0} is not valid: use 0 (Sunday) to 6 (Saturday)")]
    BadWeekday(u8),
    #[error("a weekly window needs at least one weekday")]
    NoWeekday,
    #[error("from and to are both {0}: a weekly window needs a time range")]
    EmptyRange(String),
    #[error("cron expression {expr:?} is not valid: {reason}")]
    BadCron { expr: String, reason: String },
    #[error("duration_minutes must be from 1 to {MAX_DURATION_MINUTES}")]
    BadDuration,
    #[error("the window needs a name (at most {MAX_NAME_CHARS} characters)")]
    BadName,
    #[error("a window for chosen agents needs at least one agent (at most {MAX_AGENTS})")]
    BadAgents,
    #[error(
        "tag {0:?} is not valid: use 1 to {MAX_TAG_CHARS} lowercase letters, digits, '-', '_', '.' or ':'"
    )]
    BadTag(String),
    #[error("an agent carries at most {MAX_TAGS} tags")]
    TooManyTags,
}

/// When a window is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// From `start` to `end`, local `YYYY-MM-DDTHH:MM`.
    Once {
        start: String,
        end: String,
        time_zone: String,
    },
    /// On each of `days` (0 = Sunday … 6 = Saturday) from `from` to `to`
    /// (`HH:MM`); when `to` is not after `from` the window ends the next day.
    Weekly {
        days: Vec<u8>,
        from: String,
        to: String,
        time_zone: String,
    },
    /// At every match of a five-field cron expression, for `duration_minutes`.
    Cron {
        expr: String,
        duration_minutes: u32,
        time_zone: String,
    },
}

/// Which agents a window covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scope {
    /// Every agent of the account.
    Account,
    /// The agents with these ids.
    Agents { agents: Vec<String> },
    /// The agents carrying this tag.
    Tag { tag: String },
}

impl Scope {
    /// Whether the window covers the agent with `id` and `tags`.
    pub fn covers(&self, id: &str, tags: &[String]) -> bool {
        match self {
            Scope::Account => true,
            Scope::Agents { agents } => agents.iter().any(|a| a == id),
            Scope::Tag { tag } => tags.iter().any(|t| t == tag),
        }
    }
}

/// A window as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub name: String,
    pub schedule: Schedule,
    pub scope: Scope,
    /// Tell the contacts when the window starts and ends.
    #[serde(default)]
    pub notify_start_end: bool,
}

/// One occurrence of a window: `[start, end)` in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Occurrence {
    pub start: i64,
    pub end: i64,
}

impl Window {
    /// Checks everything a tenant wrote; the error says what to change.
    pub fn validate(&self) -> Result<(), MaintenanceError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(MaintenanceError::BadName);
        }
        match &self.scope {
            Scope::Account => {}
            Scope::Agents { agents } => {
                if agents.is_empty() || agents.len() > MAX_AGENTS {
                    return Err(MaintenanceError::BadAgents);
                }
            }
            Scope::Tag { tag } => check_tag(tag)?,
        }
        self.schedule.validate()
    }

    /// The occurrence that contains `at`, if the window is open then.
    pub fn open_at(&self, at: i64) -> Option<Occurrence> {
        self.schedule.open_at(at)
    }
}

impl Schedule {
    fn time_zone(&self) -> &str {
        match self {
            Schedule::Once { time_zone, .. }
            | Schedule::Weekly { time_zone, .. }
            | Schedule::Cron { time_zone, .. } => time_zone,
        }
    }

    /// Checks the schedule; the error says what to change.
    pub fn validate(&self) -> Result<(), MaintenanceError> {
        let tz = zone(self.time_zone())?;
        match self {
            Schedule::Once { start, end, .. } => {
                let s = instant(tz, local_datetime("start", start)?);
                let e = instant(tz, local_datetime("end", end)?);
                if e <= s {
                    return Err(MaintenanceError::EndsBeforeStart {
                        start: start.clone(),
                        end: end.clone(),
                    });
                }
                if e - s > i64::from(MAX_DURATION_MINUTES) * 60 {
                    return Err(MaintenanceError::TooLong);
                }
                Ok(())
            }
            Schedule::Weekly { days, from, to, .. } => {
                if days.is_empty() {
                    return Err(MaintenanceError::NoWeekday);
                }
                if let Some(d) = days.iter().find(|d| **d > 6) {
                    return Err(MaintenanceError::BadWeekday(*d));
                }
                let f = local_time("from", from)?;
                let t = local_time("to", to)?;
                if f == t {
                    return Err(MaintenanceError::EmptyRange(from.clone()));
                }
                Ok(())
            }
            Schedule::Cron {
                expr,
                duration_minutes,
                ..
            } => {
                if *duration_minutes == 0 || *duration_minutes > MAX_DURATION_MINUTES {
                    return Err(MaintenanceError::BadDuration);
                }
                cron(expr).map(drop)
            }
        }
    }

    /// The occurrence that contains `at` (`start <= at < end`), if any.
    /// An invalid schedule is never open.
    pub fn open_at(&self, at: i64) -> Option<Occurrence> {
        let tz = zone(self.time_zone()).ok()?;
        match self {
            Schedule::Once { start, end, .. } => {
                let start = instant(tz, local_datetime("start", start).ok()?);
                let end = instant(tz, local_datetime("end", end).ok()?);
                (start <= at && at < end).then_some(Occurrence { start, end })
            }
            Schedule::Weekly { days, from, to, .. } => {
                let from = local_time("from", from).ok()?;
                let to = local_time("to", to).ok()?;
                let today = DateTime::from_timestamp(at, 0)?
                    .with_timezone(&tz)
                    .date_naive();
                // An occurrence that contains `at` started today or, when it
                // crosses midnight, yesterday.
                [today.pred_opt()?, today]
                    .into_iter()
                    .filter(|d| days.contains(&weekday(*d)))
                    .map(|d| weekly_occurrence(tz, d, from, to))
                    .find(|o| o.start <= at && at < o.end)
            }
            Schedule::Cron {
                expr,
                duration_minutes,
                ..
            } => {
                let cron = cron(expr).ok()?;
                let duration = i64::from(*duration_minutes) * 60;
                // The first start after `at - duration` is the only one that
                // can still be open at `at`.
                let from = DateTime::from_timestamp(at - duration + 1, 0)?.with_timezone(&tz);
                let start = cron.find_next_occurrence(&from, true).ok()?.timestamp();
                (start <= at).then_some(Occurrence {
                    start,
                    end: start + duration,
                })
            }
        }
    }

    /// The next occurrence that starts after `at`, looking up to a year ahead.
    pub fn next_after(&self, at: i64) -> Option<Occurrence> {
        let tz = zone(self.time_zone()).ok()?;
        match self {
            Schedule::Once { start, end, .. } => {
                let start = instant(tz, local_datetime("start", start).ok()?);
                let end = instant(tz, local_datetime("end", end).ok()?);
                (start > at).then_some(Occurrence { start, end })
            }
            Schedule::Weekly { days, from, to, .. } => {
                let from = local_time("from", from).ok()?;
                let to = local_time("to", to).ok()?;
                let today = DateTime::from_timestamp(at, 0)?
                    .with_timezone(&tz)
                    .date_naive();
                today
                    .iter_days()
                    .take(8)
                    .filter(|d| days.contains(&weekday(*d)))
                    .map(|d| weekly_occurrence(tz, d, from, to))
                    .find(|o| o.start > at)
            }
            Schedule::Cron {
                expr,
                duration_minutes,
                ..
            } => {
                let cron = cron(expr).ok()?;
                let from = DateTime::from_timestamp(at, 0)?.with_timezone(&tz);
                let start = cron.find_next_occurrence(&from, false).ok()?.timestamp();
                (start - at <= 366 * 86_400).then_some(Occurrence {
                    start,
                    end: start + i64::from(*duration_minutes) * 60,
                })
            }
        }
    }
}

/// Checks one tag: 1 to [`MAX_TAG_CHARS`] of `a-z 0-9 - _ . :`.
pub fn check_tag(tag: &str) -> Result<(), MaintenanceError> {
    let ok = !tag.is_empty()
        && tag.chars().count() <= MAX_TAG_CHARS
        && tag
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(MaintenanceError::BadTag(tag.to_owned()))
    }
}

/// An agent's tags as given: trimmed, lowercased, checked, sorted, once each.
pub fn normalize_tags<S: AsRef<str>>(tags: &[S]) -> Result<Vec<String>, MaintenanceError> {
    let mut out: Vec<String> = tags
        .iter()
        .map(|t| t.as_ref().trim().to_lowercase())
        .collect();
    for t in &out {
        check_tag(t)?;
    }
    out.sort();
    out.dedup();
    if out.len() > MAX_TAGS {
        return Err(MaintenanceError::TooManyTags);
    }
    Ok(out)
}

fn zone(name: &str) -> Result<Tz, MaintenanceError> {
    name.parse::<Tz>()
        .map_err(|_| MaintenanceError::BadTimeZone(name.to_owned()))
}

fn local_datetime(field: &'static str, value: &str) -> Result<NaiveDateTime, MaintenanceError> {
    NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M").map_err(|_| {
        MaintenanceError::BadDateTime {
            field,
            value: value.to_owned(),
        }
    })
}

fn local_time(field: &'static str, value: &str) -> Result<NaiveTime, MaintenanceError> {
    NaiveTime::parse_from_str(value, "%H:%M").map_err(|_| MaintenanceError::BadTime {
        field,
        value: value.to_owned(),
    })
}

fn cron(expr: &str) -> Result<croner::Cron, MaintenanceError> {
    // Five fields only: seconds would make a window start at odd instants
    // nobody plans maintenance for.
    if expr.split_whitespace().count() != 5 {
        return Err(MaintenanceError::BadCron {
            expr: expr.to_owned(),
            reason: "write five fields: minute hour day-of-month month day-of-week".into(),
        });
    }
    croner::Cron::new(expr)
        .parse()
        .map_err(|e| MaintenanceError::BadCron {
            expr: expr.to_owned(),
            reason: e.to_string(),
        })
}

/// The instant a local time names: in a DST gap the first instant after
/// it, when it occurs twice the earlier one.
fn instant(tz: Tz, local: NaiveDateTime) -> i64 {
    let mut probe = local;
    // A gap is at most a few hours; step by minutes until past it.
    for _ in 0..=24 * 60 {
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return t.timestamp();
        }
        probe += Duration::minutes(1);
    }
    // Unreachable for real zones; treat the time as UTC rather than fail.
    local.and_utc().timestamp()
}

/// 0 = Sunday … 6 = Saturday, as in cron.
fn weekday(d: NaiveDate) -> u8 {
    d.weekday().num_days_from_sunday() as u8
}

fn weekly_occurrence(tz: Tz, day: NaiveDate, from: NaiveTime, to: NaiveTime) -> Occurrence {
    let end_day = if to > from {
        day
    } else {
        day.succ_opt().unwrap_or(day)
    };
    Occurrence {
        start: instant(tz, day.and_time(from)),
        end: instant(tz, end_day.and_time(to)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> i64 {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
            .expect("test time")
            .and_utc()
            .timestamp()
    }

    fn weekly(days: &[u8], from: &str, to: &str, tz: &str) -> Schedule {
        Schedule::Weekly {
            days: days.to_vec(),
            from: from.into(),
            to: to.into(),
            time_zone: tz.into(),
        }
    }

    #[test]
    fn once_is_open_from_start_until_end() {
        let s = Schedule::Once {
            start: "2026-12-07T02:00".into(),
            end: "2026-12-07T04:00".into(),
            time_zone: "Europe/Paris".into(),
        };
        assert!(s.validate().is_ok());
        // Paris is UTC+1 in December.
        assert_eq!(s.open_at(utc("2026-12-07T00:59")), None);
        let o = s.open_at(utc("2026-12-07T01:00")).expect("open at start");
        assert_eq!(
            (o.start, o.end),
            (utc("2026-12-07T01:00"), utc("2026-12-07T03:00"))
        );
        assert!(s.open_at(utc("2026-12-07T02:59")).is_some());
        assert_eq!(s.open_at(utc("2026-12-07T03:00")), None);
        assert_eq!(
            s.next_after(utc("2026-12-06T00:00")).map(|o| o.start),
            Some(utc("2026-12-07T01:00"))
        );
    }

    #[test]
    fn weekly_keeps_local_time_across_daylight_saving() {
        // Sundays 02:00-04:00 New York: EDT (UTC-4) until 1 Nov 2026, EST after.
        let s = weekly(&[0], "02:00", "04:00", "America/New_York");
        assert!(s.open_at(utc("2026-10-25T06:30")).is_some()); // 02:30 EDT
        assert!(s.open_at(utc("2026-10-25T05:30")).is_none()); // 01:30 EDT
        assert!(s.open_at(utc("2026-11-08T07:30")).is_some()); // 02:30 EST
        assert!(s.open_at(utc("2026-11-08T06:30")).is_none()); // 01:30 EST
                                                               // Spring forward, 8 Mar 2026: 02:00 does not exist, the window opens at 03:00 EDT.
        let o = s
            .open_at(utc("2026-03-08T07:10"))
            .expect("open after the gap");
        assert_eq!(o.start, utc("2026-03-08T07:00"));
        assert_eq!(o.end, utc("2026-03-08T08:00"));
    }

    #[test]
    fn weekly_range_may_cross_midnight() {
        // Fridays 22:00 to 02:00 UTC: open early Saturday too, not early Friday.
        let s = weekly(&[5], "22:00", "02:00", "UTC");
        assert!(s.validate().is_ok());
        assert!(s.open_at(utc("2026-12-04T23:00")).is_some()); // Friday
        assert!(s.open_at(utc("2026-12-05T01:59")).is_some()); // Saturday
        assert!(s.open_at(utc("2026-12-05T02:00")).is_none());
        assert!(s.open_at(utc("2026-12-04T01:00")).is_none()); // Friday early
        assert_eq!(
            s.next_after(utc("2026-12-05T03:00")).map(|o| o.start),
            Some(utc("2026-12-11T22:00"))
        );
    }

    #[test]
    fn cron_windows_last_their_duration() {
        let s = Schedule::Cron {
            expr: "30 1 * * 1-5".into(),
            duration_minutes: 90,
            time_zone: "UTC".into(),
        };
        assert!(s.validate().is_ok());
        // Monday 7 Dec 2026.
        assert!(s.open_at(utc("2026-12-07T01:29")).is_none());
        let o = s
            .open_at(utc("2026-12-07T01:30"))
            .expect("open at its start");
        assert_eq!(o.end, utc("2026-12-07T03:00"));
        assert!(s.open_at(utc("2026-12-07T02:59")).is_some());
        assert!(s.open_at(utc("2026-12-07T03:00")).is_none());
        assert!(s.open_at(utc("2026-12-06T01:45")).is_none()); // Sunday
    }

    #[test]
    fn bad_input_says_what_to_write() {
        let bad_tz = weekly(&[1], "01:00", "02:00", "Mars/Olympus");
        assert_eq!(
            bad_tz.validate(),
            Err(MaintenanceError::BadTimeZone("Mars/Olympus".into()))
        );
        assert!(bad_tz.open_at(0).is_none());
        assert!(matches!(
            weekly(&[7], "01:00", "02:00", "UTC").validate(),
            Err(MaintenanceError::BadWeekday(7))
        ));
        assert!(matches!(
            weekly(&[1], "25:00", "02:00", "UTC").validate(),
            Err(MaintenanceError::BadTime { field: "from", .. })
        ));
        let backwards = Schedule::Once {
            start: "2026-12-07T04:00".into(),
            end: "2026-12-07T02:00".into(),
            time_zone: "UTC".into(),
        };
        assert!(matches!(
            backwards.validate(),
            Err(MaintenanceError::EndsBeforeStart { .. })
        ));
        let cron = Schedule::Cron {
            expr: "* * *".into(),
            duration_minutes: 10,
            time_zone: "UTC".into(),
        };
        assert!(matches!(
            cron.validate(),
            Err(MaintenanceError::BadCron { .. })
        ));
        let long = Schedule::Cron {
            expr: "0 0 * * *".into(),
            duration_minutes: MAX_DURATION_MINUTES + 1,
            time_zone: "UTC".into(),
        };
        assert_eq!(long.validate(), Err(MaintenanceError::BadDuration));
    }

    #[test]
    fn scopes_cover_account_agents_or_tag() {
        let tags = vec!["office".to_owned(), "paris".to_owned()];
        assert!(Scope::Account.covers("a", &[]));
        assert!(Scope::Agents {
            agents: vec!["a".into()]
        }
        .covers("a", &[]));
        assert!(!Scope::Agents {
            agents: vec!["b".into()]
        }
        .covers("a", &tags));
        assert!(Scope::Tag {
            tag: "paris".into()
        }
        .covers("a", &tags));
        assert!(!Scope::Tag { tag: "lyon".into() }.covers("a", &tags));
    }

    #[test]
    fn tags_are_normalized_and_checked() {
        assert_eq!(
            normalize_tags(&[" Office", "paris", "office"]),
            Ok(vec!["office".to_owned(), "paris".to_owned()])
        );
        assert!(matches!(
            normalize_tags(&["has space"]),
            Err(MaintenanceError::BadTag(_))
        ));
        assert!(matches!(
            normalize_tags(&[""]),
            Err(MaintenanceError::BadTag(_))
        ));
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert_eq!(normalize_tags(&many), Err(MaintenanceError::TooManyTags));
    }
}
