//! The result tables, as aligned text or as Markdown ready to paste.

use super::load::LoadOutcome;
use super::stats::{Kind, KindStats};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// Memory and CPU of one process.
pub struct ProcRow {
    pub name: String,
    /// RSS after set-up, before the load (KiB).
    pub before_kib: Option<u64>,
    /// Highest RSS sampled during the load (KiB).
    pub sampled_peak_kib: Option<u64>,
    /// The kernel's peak RSS (`VmHWM`) over the process's life (KiB).
    pub hwm_kib: Option<u64>,
    pub end_kib: Option<u64>,
    /// CPU seconds used during the load phase.
    pub cpu_secs: Option<f64>,
}

/// What the one-line summary needs besides the request statistics.
pub struct Summary {
    pub agents: usize,
    pub db: &'static str,
    pub replicas: usize,
    pub heartbeat_ms: u64,
    /// Highest RSS sampled during the load, all replicas together (KiB).
    pub server_rss_kib: Option<u64>,
    /// Highest RSS sampled during the load, all PostgreSQL processes
    /// together (KiB).
    pub pg_rss_kib: Option<u64>,
    /// PostgreSQL's proportional set size at the end (KiB).
    pub pg_pss_kib: Option<u64>,
    pub setup_secs: f64,
}

pub struct Report {
    pub setup: Vec<String>,
    pub kinds: BTreeMap<Kind, KindStats>,
    pub outcome: LoadOutcome,
    pub expected_tasks: u64,
    pub procs: Vec<ProcRow>,
    pub notes: Vec<String>,
    pub summary: Summary,
}

impl Report {
    pub fn render(&self, markdown: bool) -> String {
        let mut out = String::new();
        for line in &self.setup {
            let _ = writeln!(out, "{}{line}", if markdown { "- " } else { "" });
        }
        out.push('\n');
        let rows: Vec<Vec<String>> = Kind::ALL
            .iter()
            .filter_map(|k| self.kinds.get(k).map(|s| (k, s)))
            .map(|(k, s)| {
                vec![
                    k.name().to_string(),
                    s.ok.to_string(),
                    s.failed().to_string(),
                    s.rate().map_or("-".into(), |r| format!("{r:.0}")),
                    s.peak_second().map_or("-".into(), |p| p.to_string()),
                    fmt_latency(s.quantile(0.5)),
                    fmt_latency(s.quantile(0.99)),
                    fmt_latency(s.max()),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "request", "ok", "failed", "per s", "peak 1 s", "p50", "p99", "max",
            ],
            &rows,
            markdown,
        ));
        out.push('\n');
        let errors: Vec<String> = self
            .kinds
            .iter()
            .flat_map(|(k, s)| {
                s.errors
                    .iter()
                    .map(move |(kind, (n, first))| format!("{}: {n} × {kind} ({first})", k.name()))
            })
            .collect();
        if errors.is_empty() {
            out.push_str("Errors: none.\n");
        } else {
            out.push_str("Errors by kind:\n");
            for e in errors {
                let _ = writeln!(out, "- {e}");
            }
        }
        let o = &self.outcome;
        let _ = writeln!(
            out,
            "\nLoad phase: {:.1} s; tasks received {} (policies × targets = {} per 1-minute round), {} stored, \
             {} re-sends answered duplicate; anomalies: {} first uploads answered duplicate, \
             {} re-sends stored again, {} tasks handed out again after their result was stored; \
             {} tasks left at the deadline{}.\n",
            o.elapsed.as_secs_f64(),
            o.tasks_received,
            self.expected_tasks,
            o.stored,
            o.resend_duplicate,
            o.first_duplicate,
            o.resend_stored,
            o.tasks_again,
            o.tasks_left,
            if o.budget_exhausted {
                "; stopped by --max-requests"
            } else {
                ""
            },
        );
        let rows: Vec<Vec<String>> = self
            .procs
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    fmt_mib(p.before_kib),
                    fmt_mib(p.sampled_peak_kib),
                    fmt_mib(p.hwm_kib),
                    fmt_mib(p.end_kib),
                    p.cpu_secs.map_or("-".into(), |c| {
                        format!(
                            "{c:.1} s ({:.0}% of a core)",
                            100.0 * c / o.elapsed.as_secs_f64().max(1e-9)
                        )
                    }),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "process",
                "RSS before load",
                "RSS peak sampled",
                "VmHWM",
                "RSS at end",
                "CPU during load",
            ],
            &rows,
            markdown,
        ));
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        out.push_str("\nSummary (one row of the scale-out table in BENCHMARKS.md):\n\n");
        out.push_str(&self.summary_row());
        out
    }

    /// agents, database, replicas, heartbeat interval → heartbeats/s and
    /// p99, uploads (their count and busiest second: they come in bursts,
    /// one per policy round) and p99, failed requests, server and
    /// PostgreSQL RSS, set-up time; always Markdown.
    fn summary_row(&self) -> String {
        let s = &self.summary;
        let stat = |k: Kind| self.kinds.get(&k);
        let rate = |k: Kind| {
            stat(k)
                .and_then(KindStats::rate)
                .map_or("-".into(), |r| format!("{r:.0}"))
        };
        let p99 = |k: Kind| fmt_latency(stat(k).and_then(|s| s.quantile(0.99)));
        let ok = |k: Kind| stat(k).map_or(0, |s| s.ok);
        let failed: u64 = [Kind::Heartbeat, Kind::Upload, Kind::Resend]
            .iter()
            .filter_map(|k| stat(*k))
            .map(KindStats::failed)
            .sum();
        let pg = match (s.pg_rss_kib, s.pg_pss_kib) {
            (None, _) => "-".to_string(),
            (Some(rss), pss) => format!("{} (PSS {})", fmt_mib(Some(rss)), fmt_mib(pss)),
        };
        let headers = [
            "agents",
            "database",
            "replicas",
            "heartbeat (offered)",
            "heartbeats/s",
            "heartbeat p99",
            "uploads stored (peak 1 s)",
            "upload p99",
            "failed",
            "server RSS peak",
            "PostgreSQL RSS peak",
            "set-up",
        ];
        let row = vec![
            s.agents.to_string(),
            s.db.to_string(),
            s.replicas.to_string(),
            format!(
                "{} s ({:.0}/s)",
                s.heartbeat_ms as f64 / 1000.0,
                s.agents as f64 * 1000.0 / s.heartbeat_ms.max(1) as f64
            ),
            rate(Kind::Heartbeat),
            p99(Kind::Heartbeat),
            format!(
                "{} ({}/s)",
                ok(Kind::Upload),
                stat(Kind::Upload)
                    .and_then(KindStats::peak_second)
                    .map_or("-".into(), |p| p.to_string())
            ),
            p99(Kind::Upload),
            failed.to_string(),
            fmt_mib(s.server_rss_kib),
            pg,
            format!("{:.0} s", s.setup_secs),
        ];
        table(&headers, &[row], true)
    }
}

fn table(headers: &[&str], rows: &[Vec<String>], markdown: bool) -> String {
    let mut out = String::new();
    if markdown {
        let _ = writeln!(out, "| {} |", headers.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(headers.len()));
        for r in rows {
            let _ = writeln!(out, "| {} |", r.join(" | "));
        }
        return out;
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let _ = writeln!(out, "{}", line(headers.to_vec()));
    for r in rows {
        let _ = writeln!(out, "{}", line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn fmt_latency(d: Option<Duration>) -> String {
    match d {
        None => "-".into(),
        Some(d) if d >= Duration::from_secs(1) => format!("{:.2} s", d.as_secs_f64()),
        Some(d) => format!("{:.2} ms", d.as_secs_f64() * 1000.0),
    }
}

fn fmt_mib(kib: Option<u64>) -> String {
    kib.map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}
