//! Reachability over time: outages (an alert's raised and resolved times)
//! turned into the up / down / unknown segments of a time window, and the
//! share of the window something was up.
//!
//! ```
//! use vigil_core::timeline::{Outage, State, Timeline};
//!
//! // A 100 s window, known from the start, down from 40 to 50.
//! let t = Timeline::new(0, 100, 0, &[Outage { start: 40, end: Some(50) }]);
//! let states: Vec<State> = t.segments.iter().map(|s| s.state).collect();
//! assert_eq!(states, [State::Up, State::Down, State::Up]);
//! assert_eq!(t.up_fraction(), Some(0.9));
//! ```
//!
//! Times are unix seconds; a segment covers `[start, end)`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How far back a timeline looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Window {
    /// The last 24 hours.
    #[default]
    #[serde(rename = "24h")]
    Day,
    /// The last 7 days.
    #[serde(rename = "7d")]
    Week,
    /// The last 30 days.
    #[serde(rename = "30d")]
    Month,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::Day, Window::Week, Window::Month];

    /// `24h`, `7d`, `30d` (query strings, JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Day => "24h",
            Window::Week => "7d",
            Window::Month => "30d",
        }
    }

    /// `24 h`, `7 d`, `30 d` (for people).
    pub fn label(self) -> &'static str {
        match self {
            Window::Day => "24 h",
            Window::Week => "7 d",
            Window::Month => "30 d",
        }
    }

    pub fn secs(self) -> i64 {
        const DAY: i64 = 24 * 3600;
        match self {
            Window::Day => DAY,
            Window::Week => 7 * DAY,
            Window::Month => 30 * DAY,
        }
    }

    /// Parses [`Window::as_str`]; `None` for anything else.
    pub fn parse(s: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.as_str() == s)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something was down from `start` until `end` (`None`: still down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Outage {
    pub start: i64,
    pub end: Option<i64>,
}

/// What a segment of a timeline says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Up,
    Down,
    /// Before anything was known (e.g. before the agent enrolled).
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Unknown => "unknown",
        }
    }
}

/// `[start, end)` in one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Segment {
    pub start: i64,
    pub end: i64,
    pub state: State,
    /// Down only: the outage had not ended by the end of the window
    /// (for a window that ends now: it is going on).
    pub open: bool,
}

impl Segment {
    pub fn secs(&self) -> i64 {
        self.end - self.start
    }
}

/// A window `[from, to)` cut into segments, oldest first, that cover it
/// without gaps or overlaps; neighbours differ in state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    pub from: i64,
    pub to: i64,
    pub segments: Vec<Segment>,
}

impl Timeline {
    /// The timeline of `[from, to)` for something known from `known_from`
    /// (earlier is [`State::Unknown`], unless an outage says otherwise)
    /// and down during `outages` (any order; overlapping, touching,
    /// open-ended and out-of-window ones are fine; one that ends before it
    /// starts is ignored). An empty window (`to <= from`) has no segments.
    pub fn new(from: i64, to: i64, known_from: i64, outages: &[Outage]) -> Timeline {
        let mut segments = Vec::new();
        if to <= from {
            return Timeline { from, to, segments };
        }
        // Down intervals clipped to the window, sorted and merged.
        let mut down: Vec<(i64, i64, bool)> = outages
            .iter()
            .filter(|o| o.end.is_none_or(|e| e >= o.start))
            .filter_map(|o| {
                let start = o.start.max(from);
                let (end, open) = match o.end {
                    Some(e) if e <= to => (e, false),
                    _ => (to, true),
                };
                (start < end).then_some((start, end, open))
            })
            .collect();
        down.sort_unstable();
        let mut merged: Vec<(i64, i64, bool)> = Vec::with_capacity(down.len());
        for (start, end, open) in down {
            match merged.last_mut() {
                Some(last) if start <= last.1 => {
                    if end >= last.1 {
                        last.2 = open || (end == last.1 && last.2);
                        last.1 = end;
                    }
                }
                _ => merged.push((start, end, open)),
            }
        }
        let first_down = merged.first().map_or(to, |d| d.0);
        let known = known_from.min(first_down).clamp(from, to);
        let mut push = |start: i64, end: i64, state: State, open: bool| {
            if start < end {
                segments.push(Segment {
                    start,
                    end,
                    state,
                    open,
                });
            }
        };
        push(from, known, State::Unknown, false);
        let mut cursor = known;
        for (start, end, open) in merged {
            push(cursor, start, State::Up, false);
            push(start, end, State::Down, open);
            cursor = end;
        }
        push(cursor, to, State::Up, false);
        Timeline { from, to, segments }
    }

    /// Seconds of the window in `state`.
    pub fn secs_in(&self, state: State) -> i64 {
        self.segments
            .iter()
            .filter(|s| s.state == state)
            .map(Segment::secs)
            .sum()
    }

    /// The share of the known part of the window that was up (0 to 1);
    /// `None` when nothing of the window is known.
    pub fn up_fraction(&self) -> Option<f64> {
        let up = self.secs_in(State::Up);
        let known = up + self.secs_in(State::Down);
        (known > 0).then(|| up as f64 / known as f64)
    }

    /// The down segments, newest first.
    pub fn outages(&self) -> impl Iterator<Item = &Segment> {
        self.segments
            .iter()
            .rev()
            .filter(|s| s.state == State::Down)
    }

    /// Where `t` lies in the window, from 0 (at `from`) to 1 (at `to`).
    pub fn position(&self, t: i64) -> f64 {
        let len = self.to - self.from;
        if len <= 0 {
            return 0.0;
        }
        (t.clamp(self.from, self.to) - self.from) as f64 / len as f64
    }
}

/// A share as a percentage with one decimal, rounded down so that any
/// downtime shows below 100: `1.0` → "100", `0.99995` → "99.9",
/// `0.5` → "50.0".
pub fn percent_text(fraction: f64) -> String {
    if fraction >= 1.0 {
        return "100".into();
    }
    let tenths = (fraction.max(0.0) * 1000.0).floor() / 10.0;
    format!("{tenths:.1}")
}

/// A duration for people: "45 s", "12 min", "3 h 5 min", "2 d 4 h".
pub fn duration_text(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;

    fn o(start: i64, end: Option<i64>) -> Outage {
        Outage { start, end }
    }

    /// Segments as (start, end, state, open).
    fn shape(t: &Timeline) -> Vec<(i64, i64, State, bool)> {
        t.segments
            .iter()
            .map(|s| (s.start, s.end, s.state, s.open))
            .collect()
    }

    #[test]
    fn outages_become_segments() {
        // Window [100, 200), known from `known`.
        // (name, known, outages, segments)
        type Case = (&'static str, i64, Vec<Outage>, Vec<(i64, i64, State, bool)>);
        let cases: Vec<Case> = vec![
            ("empty", 0, vec![], vec![(100, 200, Up, false)]),
            (
                "one inside",
                0,
                vec![o(120, Some(130))],
                vec![
                    (100, 120, Up, false),
                    (120, 130, Down, false),
                    (130, 200, Up, false),
                ],
            ),
            (
                "overlapping and unsorted",
                0,
                vec![o(150, Some(170)), o(120, Some(160)), o(165, Some(168))],
                vec![
                    (100, 120, Up, false),
                    (120, 170, Down, false),
                    (170, 200, Up, false),
                ],
            ),
            (
                "touching ones merge",
                0,
                vec![o(120, Some(130)), o(130, Some(140))],
                vec![
                    (100, 120, Up, false),
                    (120, 140, Down, false),
                    (140, 200, Up, false),
                ],
            ),
            (
                "open interval runs to the end",
                0,
                vec![o(180, None)],
                vec![(100, 180, Up, false), (180, 200, Down, true)],
            ),
            (
                "an open one inside a closed one stays open",
                0,
                vec![o(150, Some(200)), o(160, None)],
                vec![(100, 150, Up, false), (150, 200, Down, true)],
            ),
            (
                "ending after the window is open",
                0,
                vec![o(190, Some(500))],
                vec![(100, 190, Up, false), (190, 200, Down, true)],
            ),
            (
                "ending exactly at the end is over",
                0,
                vec![o(190, Some(200))],
                vec![(100, 190, Up, false), (190, 200, Down, false)],
            ),
            (
                "starting before the window is clipped",
                0,
                vec![o(50, Some(110))],
                vec![(100, 110, Down, false), (110, 200, Up, false)],
            ),
            (
                "covering the whole window",
                0,
                vec![o(0, None)],
                vec![(100, 200, Down, true)],
            ),
            (
                "outside the window",
                0,
                vec![
                    o(10, Some(20)),
                    o(90, Some(100)),
                    o(200, Some(300)),
                    o(250, None),
                ],
                vec![(100, 200, Up, false)],
            ),
            (
                "backwards and empty ones are ignored",
                0,
                vec![o(150, Some(140)), o(160, Some(160))],
                vec![(100, 200, Up, false)],
            ),
            (
                "known late",
                150,
                vec![],
                vec![(100, 150, Unknown, false), (150, 200, Up, false)],
            ),
            (
                "an outage before known_from is known",
                150,
                vec![o(130, Some(140))],
                vec![
                    (100, 130, Unknown, false),
                    (130, 140, Down, false),
                    (140, 200, Up, false),
                ],
            ),
            (
                "known only after the window",
                900,
                vec![],
                vec![(100, 200, Unknown, false)],
            ),
        ];
        for (name, known, outages, want) in cases {
            let t = Timeline::new(100, 200, known, &outages);
            assert_eq!(shape(&t), want, "{name}");
            // Always a cover of the window without gaps.
            assert_eq!(t.segments.first().map(|s| s.start), Some(100), "{name}");
            assert_eq!(t.segments.last().map(|s| s.end), Some(200), "{name}");
            for pair in t.segments.windows(2) {
                assert_eq!(pair[0].end, pair[1].start, "{name}");
                assert_ne!(pair[0].state, pair[1].state, "{name}");
            }
        }
    }

    #[test]
    fn an_empty_window_has_no_segments() {
        for (from, to) in [(100, 100), (200, 100)] {
            let t = Timeline::new(from, to, 0, &[o(0, None)]);
            assert!(t.segments.is_empty());
            assert_eq!(t.up_fraction(), None);
            assert_eq!(t.position(150), 0.0);
        }
    }

    #[test]
    fn up_fraction_counts_the_known_part() {
        // (known_from, outages, expected fraction)
        let cases: Vec<(i64, Vec<Outage>, Option<f64>)> = vec![
            (0, vec![], Some(1.0)),
            (0, vec![o(100, Some(125))], Some(0.75)),
            (0, vec![o(0, None)], Some(0.0)),
            (150, vec![o(190, None)], Some(0.8)),
            (900, vec![], None),
        ];
        for (known, outages, want) in cases {
            let t = Timeline::new(100, 200, known, &outages);
            assert_eq!(t.up_fraction(), want, "{known} {outages:?}");
        }
        let t = Timeline::new(100, 200, 0, &[o(120, Some(130)), o(150, None)]);
        assert_eq!(t.secs_in(Down), 60);
        let newest_first: Vec<i64> = t.outages().map(|s| s.start).collect();
        assert_eq!(newest_first, [150, 120]);
        assert_eq!(t.position(150), 0.5);
        assert_eq!(t.position(0), 0.0);
        assert_eq!(t.position(999), 1.0);
    }

    #[test]
    fn percentages_round_down() {
        let cases: &[(f64, &str)] = &[
            (1.0, "100"),
            (0.99995, "99.9"),
            (0.999, "99.9"),
            (0.973, "97.3"),
            (0.5, "50.0"),
            (0.0, "0.0"),
            (-0.1, "0.0"),
        ];
        for &(f, want) in cases {
            assert_eq!(percent_text(f), want, "{f}");
        }
    }

    #[test]
    fn durations_for_people() {
        let cases: &[(i64, &str)] = &[
            (-5, "0 s"),
            (0, "0 s"),
            (45, "45 s"),
            (60, "1 min"),
            (719, "11 min"),
            (3600, "1 h"),
            (3 * 3600 + 5 * 60 + 9, "3 h 5 min"),
            (86_400, "1 d"),
            (2 * 86_400 + 4 * 3600 + 59, "2 d 4 h"),
        ];
        for &(secs, want) in cases {
            assert_eq!(duration_text(secs), want, "{secs}");
        }
    }

    #[test]
    fn windows_parse_and_print() {
        for w in Window::ALL {
            assert_eq!(Window::parse(w.as_str()), Some(w));
            assert_eq!(serde_json::to_value(w).unwrap(), w.as_str());
            assert!(w.secs() > 0);
        }
        assert_eq!(Window::default(), Window::Day);
        assert_eq!(Window::Week.label(), "7 d");
        for bad in ["", "24H", "1d", "week"] {
            assert_eq!(Window::parse(bad), None, "{bad}");
        }
    }
}
