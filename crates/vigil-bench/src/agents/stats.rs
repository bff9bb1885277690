//! What the simulated agents measure: per request kind a latency histogram,
//! successes per second and errors by kind; sent from the worker
//! processes to the coordinator as [`WireStats`] and merged there.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use vigil_agent::client::ClientError;

/// Latencies above this are recorded as this (the client gives up at 30 s).
const MAX_MICROS: u64 = 60_000_000;
/// Times in a worker's report are at most a day after its start.
const DAY_MICROS: u64 = 24 * 3600 * 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Enroll,
    Heartbeat,
    Upload,
    /// An upload sent again with the same upload id.
    Resend,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Enroll, Kind::Heartbeat, Kind::Upload, Kind::Resend];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Enroll => "enroll",
            Kind::Heartbeat => "heartbeat",
            Kind::Upload => "result upload",
            Kind::Resend => "upload re-sent",
        }
    }
}

pub struct KindStats {
    /// Latency of successful requests, in microseconds.
    pub latency: Histogram<u64>,
    pub ok: u64,
    /// Error kind → (count, first message).
    pub errors: BTreeMap<String, (u64, String)>,
    /// Successes finished in each second since `since`.
    pub per_second: Vec<u64>,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
}

impl KindStats {
    fn new() -> KindStats {
        KindStats {
            latency: Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid bounds"),
            ok: 0,
            errors: BTreeMap::new(),
            per_second: Vec::new(),
            first: None,
            last: None,
        }
    }

    pub fn failed(&self) -> u64 {
        self.errors.values().map(|(n, _)| n).sum()
    }

    /// Successes per second between the first and the last answer.
    pub fn rate(&self) -> Option<f64> {
        let span = self.last?.duration_since(self.first?).as_secs_f64();
        (span > 0.0 && self.ok > 1).then(|| self.ok as f64 / span)
    }

    /// The busiest whole second (the last, partial, one left out).
    pub fn peak_second(&self) -> Option<u64> {
        let full = self.per_second.len().checked_sub(1)?;
        self.per_second[..full].iter().copied().max()
    }

    pub fn quantile(&self, q: f64) -> Option<Duration> {
        (self.ok > 0).then(|| Duration::from_micros(self.latency.value_at_quantile(q)))
    }

    pub fn max(&self) -> Option<Duration> {
        (self.ok > 0).then(|| Duration::from_micros(self.latency.max()))
    }

    /// For the coordinator; times as microseconds since `since`.
    fn to_wire(&self, since: Instant) -> WireStats {
        let micros = |t: Option<Instant>| {
            t.map(|t| {
                u64::try_from(t.saturating_duration_since(since).as_micros()).unwrap_or(u64::MAX)
            })
        };
        WireStats {
            latency: self
                .latency
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
            ok: self.ok,
            errors: self.errors.clone(),
            per_second: self.per_second.clone(),
            first_micros: micros(self.first),
            last_micros: micros(self.last),
        }
    }

    /// Adds a worker's statistics, whose times count from `since`.
    fn absorb(&mut self, w: WireStats, since: Instant) {
        for (value, count) in w.latency {
            self.latency
                .saturating_record_n(value.clamp(1, MAX_MICROS), count);
        }
        self.ok += w.ok;
        for (kind, (n, first)) in w.errors {
            self.errors.entry(kind).or_insert((0, first)).0 += n;
        }
        let seconds = w.per_second.len().min(24 * 3600);
        if self.per_second.len() < seconds {
            self.per_second.resize(seconds, 0);
        }
        for (mine, theirs) in self.per_second.iter_mut().zip(w.per_second) {
            *mine += theirs;
        }
        let at = |m: Option<u64>| m.map(|m| since + Duration::from_micros(m.min(DAY_MICROS)));
        if let Some(first) = at(w.first_micros) {
            self.first = Some(self.first.map_or(first, |f| f.min(first)));
        }
        if let Some(last) = at(w.last_micros) {
            self.last = Some(self.last.map_or(last, |l| l.max(last)));
        }
    }
}

/// [`KindStats`] as a worker process reports it.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireStats {
    /// (latency in microseconds, count).
    latency: Vec<(u64, u64)>,
    ok: u64,
    errors: BTreeMap<String, (u64, String)>,
    per_second: Vec<u64>,
    first_micros: Option<u64>,
    last_micros: Option<u64>,
}

/// Statistics of every kind merged from the workers' reports, with times
/// counted from `since` (when the workers were told to start).
pub fn merge(since: Instant, reports: Vec<Vec<(Kind, WireStats)>>) -> BTreeMap<Kind, KindStats> {
    let mut kinds: BTreeMap<Kind, KindStats> =
        Kind::ALL.iter().map(|k| (*k, KindStats::new())).collect();
    for (kind, wire) in reports.into_iter().flatten() {
        kinds
            .entry(kind)
            .or_insert_with(KindStats::new)
            .absorb(wire, since);
    }
    kinds
}

/// Shared by every simulated agent (a mutex is plenty at a few thousand
/// requests per second).
pub struct Recorder {
    since: Instant,
    kinds: Mutex<BTreeMap<Kind, KindStats>>,
}

impl Recorder {
    pub fn new(since: Instant) -> Recorder {
        Recorder {
            since,
            kinds: Mutex::new(Kind::ALL.iter().map(|k| (*k, KindStats::new())).collect()),
        }
    }

    /// Records one request that was sent at `sent` and has just finished.
    pub fn record<T>(&self, kind: Kind, sent: Instant, outcome: &Result<T, ClientError>) {
        let now = Instant::now();
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        let s = kinds.get_mut(&kind).expect("every kind is present");
        match outcome {
            Ok(_) => {
                let micros = u64::try_from(now.duration_since(sent).as_micros())
                    .unwrap_or(MAX_MICROS)
                    .clamp(1, MAX_MICROS);
                s.latency.saturating_record(micros);
                s.ok += 1;
                s.first.get_or_insert(now);
                s.last = Some(now);
                let second = now.saturating_duration_since(self.since).as_secs();
                let second = usize::try_from(second).unwrap_or(usize::MAX);
                if second < 24 * 3600 {
                    if s.per_second.len() <= second {
                        s.per_second.resize(second + 1, 0);
                    }
                    s.per_second[second] += 1;
                }
            }
            Err(e) => {
                let entry = s
                    .errors
                    .entry(error_kind(e))
                    .or_insert_with(|| (0, e.to_string()));
                entry.0 += 1;
            }
        }
    }

    /// Every kind's statistics, for the coordinator.
    pub fn into_wire(self) -> Vec<(Kind, WireStats)> {
        let since = self.since;
        self.kinds
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, s)| (*k, s.to_wire(since)))
            .collect()
    }
}

/// A short name for an error, to count errors by kind.
fn error_kind(e: &ClientError) -> String {
    match e {
        ClientError::Unreachable(msg) if msg.contains("timed out") => "timeout".into(),
        ClientError::Unreachable(_) => "connection".into(),
        ClientError::Unauthorized | ClientError::EnrollmentRefused(_) => "HTTP 401/403".into(),
        ClientError::Rejected { status, .. } | ClientError::Server { status, .. } => {
            format!("HTTP {status}")
        }
        ClientError::Url(_) => "URL".into(),
        ClientError::Tls(_) => "TLS".into(),
    }
}
