//! Exposure over time: per day, how many ports the scans found open and how
//! many unauthorized-port alerts were open, for the dashboard (the whole
//! account) and an agent's page.
//!
//! Days are UTC days; the last one is today, so far. *Open ports* of a day
//! is the sum over the scanned targets of the most ports one scan of that
//! target found open that day (`None` when no scan ran that day: a gap,
//! not a zero). *Unauthorized* is how many unauthorized-port alerts were
//! open at some time during the day.

use serde::{Deserialize, Serialize};

const DAY: i64 = 86_400;

/// How far back a trend looks, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum TrendWindow {
    /// The last 7 days.
    #[serde(rename = "7d")]
    Week,
    /// The last 30 days.
    #[default]
    #[serde(rename = "30d")]
    Month,
    /// The last 90 days.
    #[serde(rename = "90d")]
    Quarter,
}

impl TrendWindow {
    pub const ALL: [TrendWindow; 3] = [TrendWindow::Week, TrendWindow::Month, TrendWindow::Quarter];

    pub fn as_str(self) -> &'static str {
        match self {
            TrendWindow::Week => "7d",
            TrendWindow::Month => "30d",
            TrendWindow::Quarter => "90d",
        }
    }

    pub fn parse(s: &str) -> Option<TrendWindow> {
        TrendWindow::ALL.into_iter().find(|w| w.as_str() == s)
    }

    pub fn days(self) -> i64 {
        match self {
            TrendWindow::Week => 7,
            TrendWindow::Month => 30,
            TrendWindow::Quarter => 90,
        }
    }

    /// The start of the first day shown at `now`.
    pub fn start(self, now: i64) -> i64 {
        day_start(now) - (self.days() - 1) * DAY
    }
}

/// One day of a trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendPoint {
    /// The day's start (UTC midnight, Unix seconds).
    pub day: i64,
    /// Ports found open that day; `None` when nothing was scanned.
    pub open_ports: Option<u64>,
    /// Unauthorized-port alerts open at some time that day.
    pub unauthorized: u64,
}

/// A UTC midnight at or before `t`.
pub fn day_start(t: i64) -> i64 {
    t.div_euclid(DAY) * DAY
}

/// The trend of `window` at `now` from the days' open-port sums (`(day
/// number since the epoch, sum)`, as the store adds them up) and the
/// unauthorized-port alerts' spans (`(raised, resolved)`; `None`: still open).
pub fn series(
    window: TrendWindow,
    now: i64,
    open_by_day: &[(i64, u64)],
    unauthorized: &[(i64, Option<i64>)],
) -> Vec<TrendPoint> {
    let first = window.start(now);
    (0..window.days())
        .map(|i| {
            let day = first + i * DAY;
            let end = day + DAY;
            let open_ports = open_by_day
                .iter()
                .find(|(d, _)| *d * DAY == day)
                .map(|(_, n)| *n);
            let unauthorized = unauthorized
                .iter()
                .filter(|(raised, resolved)| *raised < end && resolved.is_none_or(|r| r >= day))
                .count();
            TrendPoint {
                day,
                open_ports,
                unauthorized: u64::try_from(unauthorized).unwrap_or(u64::MAX),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_count_back_from_today() {
        let now = 10 * DAY + 3600; // an hour into day 10
        let s = series(TrendWindow::Week, now, &[], &[]);
        assert_eq!(s.len(), 7);
        assert_eq!(s[0].day, 4 * DAY);
        assert_eq!(s[6].day, 10 * DAY);
        assert!(s
            .iter()
            .all(|p| p.open_ports.is_none() && p.unauthorized == 0));
    }

    #[test]
    fn open_ports_leave_gaps_and_alerts_count_on_every_day_they_were_open() {
        let now = 10 * DAY + 3600;
        let open = [(5, 3), (6, 0), (10, 7)];
        let spans = [
            (5 * DAY + 100, Some(6 * DAY + 10)), // days 5 and 6
            (8 * DAY, None),                     // days 8, 9, 10
            (2 * DAY, Some(3 * DAY)),            // before the window
            (9 * DAY + 5, Some(9 * DAY + 50)),   // day 9 only
        ];
        let s = series(TrendWindow::Week, now, &open, &spans);
        let opened: Vec<Option<u64>> = s.iter().map(|p| p.open_ports).collect();
        assert_eq!(opened, [None, Some(3), Some(0), None, None, None, Some(7)]);
        let unauthorized: Vec<u64> = s.iter().map(|p| p.unauthorized).collect();
        assert_eq!(unauthorized, [0, 1, 1, 0, 1, 2, 1]);
    }

    #[test]
    fn windows_parse_and_round_trip() {
        for w in TrendWindow::ALL {
            assert_eq!(TrendWindow::parse(w.as_str()), Some(w));
        }
        assert_eq!(TrendWindow::parse("1y"), None);
        assert_eq!(day_start(-1), -DAY);
    }
}
