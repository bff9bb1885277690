//! Prometheus metrics, served as `GET /metrics` on the REST listener.
//!
//! Counters and histograms live in memory and are bumped where things
//! happen (a task created, a result ingested, an alert raised, a
//! notification sent, an HTTP request answered). Queue depths and agent
//! counts are read from the database when scraped, with cheap `COUNT`
//! queries, so every replica reports the installation's true numbers and
//! nothing has to be kept in step.
//!
//! Label values come from short fixed lists (target kinds, condition
//! kinds, channels, the *matched* route, not the requested URL), so a
//! caller cannot grow the number of series.
//!
//! The exposition is OpenMetrics when the scraper asks for it (Prometheus
//! does) and the classic Prometheus text format otherwise (curl, promtool).

use axum::http::{header, HeaderMap, Method};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use vigil_core::{AgentHealth, ConditionKind, PolicyTarget};
use vigil_store::{now_unix, Alert, Channel, Store, StoreError, UnixTime};

/// How long a scrape waits for the database counts.
const COUNT_TIMEOUT: Duration = Duration::from_secs(2);

/// Latency buckets in seconds, 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const TARGET_KINDS: [&str; 4] = ["agent_host", "host", "observed_address", "network"];

const CONDITION_KINDS: [ConditionKind; 6] = [
    ConditionKind::UnauthorizedOpen,
    ConditionKind::ServiceDown,
    ConditionKind::TargetUnreachable,
    ConditionKind::AgentNotCommunicating,
    ConditionKind::NewDevice,
    ConditionKind::ProcessChanged,
];

pub(crate) const OPENMETRICS_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub(crate) const TEXT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    target: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    condition: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    channel: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    api: &'static str,
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    api: &'static str,
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HealthLabels {
    health: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WhatLabels {
    what: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Every metric of one server process.
pub(crate) struct Metrics {
    registry: Registry,
    tasks_created: Family<TargetLabels, Counter>,
    results_ingested: Family<ResultLabels, Counter>,
    ingest_seconds: Histogram,
    alerts_raised: Family<ConditionLabels, Counter>,
    alerts_resolved: Family<ConditionLabels, Counter>,
    notifications: Family<NotificationLabels, Counter>,
    http_requests: Family<RequestLabels, Counter>,
    http_seconds: HistogramFamily<RouteLabels>,
    pruned: Family<TableLabels, Counter>,
    retention_runs: Counter,
    outbox_pending: Gauge,
    outbox_dropped: Gauge,
    scan_sockets: Family<WhatLabels, Gauge>,
    /// The SYN engine: rate, jobs running and waiting (gauges); probes
    /// sent and answers (counters, brought up to the engine's at scrape).
    scan_engine: Family<WhatLabels, Gauge>,
    scan_probes: Family<WhatLabels, Counter>,
    tasks_open: Gauge,
    agents: Family<HealthLabels, Gauge>,
    database_up: Gauge,
    /// Per listener: its cap, open connections, refusals and timeouts.
    pub(crate) connections: crate::listen::ConnectionMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("vigil"),
            tasks_created: Family::default(),
            results_ingested: Family::default(),
            ingest_seconds: latency_histogram(),
            alerts_raised: Family::default(),
            alerts_resolved: Family::default(),
            notifications: Family::default(),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(latency_histogram),
            pruned: Family::default(),
            retention_runs: Counter::default(),
            outbox_pending: Gauge::default(),
            outbox_dropped: Gauge::default(),
            scan_sockets: Family::default(),
            scan_engine: Family::default(),
            scan_probes: Family::default(),
            tasks_open: Gauge::default(),
            agents: Family::default(),
            database_up: Gauge::default(),
            connections: Default::default(),
        };
        m.register();
        m.zero_series();
        m
    }

    /// Shows every series with a fixed label set from the start, at 0, so
    /// that "nothing happened yet" reads as 0 and not as absent.
    fn zero_series(&self) {
        for target in TARGET_KINDS {
            self.tasks_created
                .get_or_create(&TargetLabels { target })
                .inc_by(0);
            for outcome in ["stored", "duplicate"] {
                self.results_ingested
                    .get_or_create(&ResultLabels { target, outcome })
                    .inc_by(0);
            }
        }
        for kind in CONDITION_KINDS {
            let labels = ConditionLabels {
                condition: condition_kind(kind),
            };
            self.alerts_raised.get_or_create(&labels).inc_by(0);
            self.alerts_resolved.get_or_create(&labels).inc_by(0);
        }
        for channel in Channel::ALL {
            for outcome in ["sent", "failed", "given_up"] {
                self.notifications
                    .get_or_create(&NotificationLabels {
                        channel: channel.as_str(),
                        outcome,
                    })
                    .inc_by(0);
            }
        }
        for health in AgentHealth::ALL {
            self.agents
                .get_or_create(&HealthLabels {
                    health: health_label(health),
                })
                .set(0);
        }
        for table in crate::retention::TABLES {
            self.pruned.get_or_create(&TableLabels { table }).inc_by(0);
        }
    }

    fn register(&mut self) {
        let registry = &mut self.registry;
        self.connections.register(registry);
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the version of the running server in a label",
            build_info,
        );
        registry.register(
            "scan_tasks_created",
            "Scan tasks created by the scheduler, by policy target kind",
            self.tasks_created.clone(),
        );
        registry.register(
            "scan_results_ingested",
            "Scan results accepted, by policy target kind and outcome (stored, duplicate)",
            self.results_ingested.clone(),
        );
        registry.register_with_unit(
            "ingest_duration",
            "Time from receiving a scan result to having it stored and evaluated",
            Unit::Seconds,
            self.ingest_seconds.clone(),
        );
        registry.register(
            "alerts_raised",
            "Alerts opened, by condition kind",
            self.alerts_raised.clone(),
        );
        registry.register(
            "alerts_resolved",
            "Alerts resolved, by condition kind",
            self.alerts_resolved.clone(),
        );
        registry.register(
            "notifications",
            "Notification delivery attempts, by channel and outcome \
             (sent, failed: retried later, given_up: no more retries)",
            self.notifications.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by API (rest, agent), method, matched route and status",
            self.http_requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "HTTP request latency, by API (rest, agent), method and matched route",
            Unit::Seconds,
            self.http_seconds.clone(),
        );
        registry.register(
            "retention_pruned_rows",
            "Rows deleted by retention, by table",
            self.pruned.clone(),
        );
        registry.register(
            "retention_runs",
            "Passes of the retention job completed (hourly, or on SIGUSR1)",
            self.retention_runs.clone(),
        );
        registry.register(
            "outbox_pending",
            "Notifications waiting for delivery (read from the database at scrape time)",
            self.outbox_pending.clone(),
        );
        registry.register(
            "outbox_dropped",
            "Notifications dropped unsent because their account had too many waiting \
             (rows still kept; read from the database at scrape time)",
            self.outbox_dropped.clone(),
        );
        registry.register(
            "scan_sockets",
            "The scan budget of this server: sockets its scans and assessments may hold \
             (budget), hold now (in_use), held at most at once (peak); accounts scanning (accounts)",
            self.scan_sockets.clone(),
        );
        registry.register(
            "scan_engine",
            "The SYN engine all server-side scans and assessments share (absent with connect \
             probes): its rate limit in probes per second (rate), scans running and waiting \
             for a turn (running, waiting), engine threads (shards)",
            self.scan_engine.clone(),
        );
        registry.register(
            "scan_probes",
            "Probes the SYN engine sent (sent, retries included) and genuine answers it \
             received (answers)",
            self.scan_probes.clone(),
        );
        registry.register(
            "scan_tasks_open",
            "Scan tasks not answered and not expired (read from the database at scrape time)",
            self.tasks_open.clone(),
        );
        registry.register(
            "agents",
            "Agents not removed, by health (read from the database at scrape time)",
            self.agents.clone(),
        );
        registry.register(
            "database_up",
            "1 if the last scrape's database counts succeeded, else 0 (the counts are then stale)",
            self.database_up.clone(),
        );
    }

    /// The scheduler created a scan task for the policy target `key`.
    pub(crate) fn task_created(&self, key: &str) {
        self.tasks_created
            .get_or_create(&TargetLabels {
                target: target_kind(key),
            })
            .inc();
    }

    /// A result for the policy target `key` was accepted: stored for the
    /// first time (`new`) or a retry of a stored one.
    pub(crate) fn result_ingested(&self, key: &str, new: bool) {
        let outcome = if new { "stored" } else { "duplicate" };
        self.results_ingested
            .get_or_create(&ResultLabels {
                target: target_kind(key),
                outcome,
            })
            .inc();
    }

    /// A result received at `started` is stored and evaluated.
    pub(crate) fn ingest_done(&self, started: Instant) {
        self.ingest_seconds.observe(started.elapsed().as_secs_f64());
    }

    /// `alert` was returned by opening an alert at `now`; counted if it
    /// was opened then, not if it had been open already.
    pub(crate) fn alert_opened(&self, alert: &Alert, now: UnixTime) {
        if alert.raised_at == now {
            self.alert_raised(alert.condition.kind);
        }
    }

    fn alert_raised(&self, kind: ConditionKind) {
        self.alerts_raised
            .get_or_create(&ConditionLabels {
                condition: condition_kind(kind),
            })
            .inc();
    }

    pub(crate) fn alert_resolved(&self, kind: ConditionKind) {
        self.alerts_resolved
            .get_or_create(&ConditionLabels {
                condition: condition_kind(kind),
            })
            .inc();
    }

    pub(crate) fn notification_sent(&self, channel: Channel) {
        self.notification(channel, "sent");
    }

    /// A delivery attempt failed; `retry`: it will be tried again.
    pub(crate) fn notification_failed(&self, channel: Channel, retry: bool) {
        self.notification(channel, if retry { "failed" } else { "given_up" });
    }

    fn notification(&self, channel: Channel, outcome: &'static str) {
        self.notifications
            .get_or_create(&NotificationLabels {
                channel: channel.as_str(),
                outcome,
            })
            .inc();
    }

    /// The scan budget's use now (set when scraped).
    pub(crate) fn scan_budget(&self, usage: crate::budget::BudgetUse) {
        for (what, n) in [
            ("budget", usage.total),
            ("in_use", usage.in_use),
            ("peak", usage.peak),
            ("accounts", usage.accounts),
        ] {
            self.scan_sockets
                .get_or_create(&WhatLabels { what })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// The SYN engine's use now (set when scraped).
    pub(crate) fn scan_engine(&self, usage: vigil_scan::ServiceUse) {
        for (what, n) in [
            ("rate", usage.rate as i64),
            ("running", i64::try_from(usage.running).unwrap_or(i64::MAX)),
            ("waiting", i64::try_from(usage.waiting).unwrap_or(i64::MAX)),
            ("shards", i64::try_from(usage.shards).unwrap_or(i64::MAX)),
        ] {
            self.scan_engine.get_or_create(&WhatLabels { what }).set(n);
        }
        for (what, total) in [("sent", usage.probes_sent), ("answers", usage.answers)] {
            let counter = self.scan_probes.get_or_create(&WhatLabels { what });
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    pub(crate) fn retention_ran(&self) {
        self.retention_runs.inc();
    }

    pub(crate) fn pruned(&self, table: &'static str, rows: u64) {
        self.pruned
            .get_or_create(&TableLabels { table })
            .inc_by(rows);
    }

    pub(crate) fn request(
        &self,
        api: &'static str,
        method: &Method,
        route: String,
        status: u16,
        took: f64,
    ) {
        let method = method_label(method);
        self.http_seconds
            .get_or_create(&RouteLabels {
                api,
                method,
                route: route.clone(),
            })
            .observe(took);
        self.http_requests
            .get_or_create(&RequestLabels {
                api,
                method,
                route,
                status,
            })
            .inc();
    }

    /// Reads the queue depths and agent counts from the database.
    pub(crate) async fn refresh(&self, store: &Store, liveness: &vigil_core::LivenessConfig) {
        let counts = tokio::time::timeout(COUNT_TIMEOUT, counts(store, liveness)).await;
        match counts {
            Ok(Ok(c)) => {
                self.outbox_pending.set(gauge_value(c.outbox_pending));
                self.outbox_dropped.set(gauge_value(c.outbox_dropped));
                self.tasks_open.set(gauge_value(c.tasks_open));
                for (health, n) in c.agents {
                    self.agents
                        .get_or_create(&HealthLabels {
                            health: health_label(health),
                        })
                        .set(gauge_value(n));
                }
                self.database_up.set(1);
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "metrics: counting in the database failed");
                self.database_up.set(0);
            }
            Err(_) => {
                tracing::warn!("metrics: the database did not answer the counts in time");
                self.database_up.set(0);
            }
        }
    }

    /// The Prometheus text exposition (tests).
    #[cfg(test)]
    pub(crate) fn encode_text(&self) -> String {
        self.encode(false)
    }

    /// The exposition: OpenMetrics, or else the Prometheus text format.
    pub(crate) fn encode(&self, openmetrics: bool) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Writing to a String fails only if a metric's encoder does.
            tracing::error!(error = %e, "metrics: encoding failed");
        }
        if openmetrics {
            out
        } else {
            prometheus_text(&out)
        }
    }
}

struct Counts {
    outbox_pending: u64,
    outbox_dropped: u64,
    tasks_open: u64,
    agents: Vec<(AgentHealth, u64)>,
}

async fn counts(
    store: &Store,
    liveness: &vigil_core::LivenessConfig,
) -> Result<Counts, StoreError> {
    let now = now_unix();
    let agents = crate::app::agents_by_health(store, None, liveness, now).await?;
    Ok(Counts {
        outbox_pending: store.pending_count().await?,
        outbox_dropped: store.dropped_count().await?,
        tasks_open: store.open_task_count(now).await?,
        agents,
    })
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The label of a policy target key: its kind, never the host.
fn target_kind(key: &str) -> &'static str {
    match PolicyTarget::from_key(key) {
        Ok(PolicyTarget::AgentHost) => "agent_host",
        Ok(PolicyTarget::Host(_)) => "host",
        Ok(PolicyTarget::ObservedAddress) => "observed_address",
        Ok(PolicyTarget::LocalNetwork | PolicyTarget::Network(_)) => "network",
        Err(_) if key == vigil_core::policy::NETWORK_TASK_KEY => "network",
        Err(_) => "other",
    }
}

fn condition_kind(kind: ConditionKind) -> &'static str {
    match kind {
        ConditionKind::UnauthorizedOpen => "unauthorized_open",
        ConditionKind::ServiceDown => "service_down",
        ConditionKind::TargetUnreachable => "target_unreachable",
        ConditionKind::AgentNotCommunicating => "agent_not_communicating",
        ConditionKind::NewDevice => "new_device",
        ConditionKind::ProcessChanged => "process_changed",
    }
}

fn health_label(health: AgentHealth) -> &'static str {
    match health {
        AgentHealth::Communicating => "communicating",
        AgentHealth::NotCommunicating => "not_communicating",
        AgentHealth::Abandoned => "abandoned",
    }
}

/// Methods outside the usual few share one label value.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The Prometheus text format (0.0.4) of an OpenMetrics exposition that
/// has counters, gauges and histograms only. The differences there: a
/// counter family is named with its `_total` suffix, and there are no
/// `# UNIT` and `# EOF` lines.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let (name, rest) = line.strip_prefix(tag)?.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{tag}{name}_total {rest}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Whether the scraper takes OpenMetrics (Prometheus asks for it first).
pub(crate) fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

/// Whether the request may read the metrics: always without a metrics
/// token, else with `Authorization: Bearer <token>`.
pub(crate) fn authorized(headers: &HeaderMap, token: Option<&str>) -> bool {
    let Some(token) = token else {
        return true;
    };
    // Comparing digests: the time taken tells nothing about the token.
    crate::http::auth::bearer(headers)
        .is_some_and(|given| Sha256::digest(given) == Sha256::digest(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_kinds_never_name_the_host() {
        for (key, want) in [
            ("agent_host", "agent_host"),
            ("observed_address", "observed_address"),
            ("host:nas.lan", "host"),
            ("host:192.0.2.7", "host"),
            ("network", "network"),
            ("local_network", "network"),
            ("net:198.51.100.0/24", "network"),
            ("nonsense", "other"),
            ("", "other"),
        ] {
            assert_eq!(target_kind(key), want, "{key}");
        }
    }

    #[test]
    fn methods_are_a_short_list() {
        for (method, want) in [
            (Method::GET, "GET"),
            (Method::DELETE, "DELETE"),
            (Method::from_bytes(b"BREW").unwrap(), "other"),
            (Method::TRACE, "other"),
        ] {
            assert_eq!(method_label(&method), want, "{method}");
        }
    }

    #[test]
    fn openmetrics_becomes_prometheus_text() {
        let cases = [
            (
                "# HELP vigil_x Things.\n# TYPE vigil_x counter\nvigil_x_total{a=\"b\"} 1\n# EOF\n",
                "# HELP vigil_x_total Things.\n# TYPE vigil_x_total counter\nvigil_x_total{a=\"b\"} 1\n",
            ),
            (
                "# HELP vigil_up Up.\n# TYPE vigil_up gauge\nvigil_up 1\n# EOF\n",
                "# HELP vigil_up Up.\n# TYPE vigil_up gauge\nvigil_up 1\n",
            ),
            (
                "# HELP vigil_d_seconds D.\n# TYPE vigil_d_seconds histogram\n# UNIT vigil_d_seconds seconds\n\
                 vigil_d_seconds_sum 0.5\nvigil_d_seconds_count 1\nvigil_d_seconds_bucket{le=\"+Inf\"} 1\n# EOF\n",
                "# HELP vigil_d_seconds D.\n# TYPE vigil_d_seconds histogram\n\
                 vigil_d_seconds_sum 0.5\nvigil_d_seconds_count 1\nvigil_d_seconds_bucket{le=\"+Inf\"} 1\n",
            ),
            ("# EOF\n", ""),
        ];
        for (input, want) in cases {
            assert_eq!(prometheus_text(input), want, "{input}");
        }
    }

    #[test]
    fn accept_header_picks_the_format() {
        let with = |accept: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, accept.parse().unwrap());
            wants_openmetrics(&h)
        };
        assert!(with(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!with("text/plain"));
        assert!(!with("*/*"));
        assert!(!wants_openmetrics(&HeaderMap::new()));
    }

    #[test]
    fn the_metrics_token_is_checked_when_set() {
        let with = |auth: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(a) = auth {
                h.insert(header::AUTHORIZATION, a.parse().unwrap());
            }
            h
        };
        assert!(authorized(&with(None), None));
        assert!(authorized(&with(Some("Bearer anything")), None));
        assert!(authorized(&with(Some("Bearer s3cret")), Some("s3cret")));
        assert!(!authorized(&with(Some("Bearer s3cre")), Some("s3cret")));
        assert!(!authorized(&with(Some("Basic s3cret")), Some("s3cret")));
        assert!(!authorized(&with(None), Some("s3cret")));
    }

    #[test]
    fn every_family_is_exposed_with_conventional_names() {
        let m = Metrics::new();
        m.task_created("agent_host");
        m.result_ingested("host:nas.lan", true);
        m.result_ingested("host:nas.lan", false);
        m.ingest_done(Instant::now());
        m.alert_raised(ConditionKind::UnauthorizedOpen);
        m.alert_resolved(ConditionKind::ServiceDown);
        m.notification_sent(Channel::Email);
        m.notification_failed(Channel::Webhook, true);
        m.notification_failed(Channel::Webhook, false);
        m.pruned("scan_results", 3);
        m.retention_ran();
        m.scan_budget(crate::budget::BudgetUse {
            total: 64,
            in_use: 3,
            peak: 9,
            accounts: 2,
        });
        for (sent, answers) in [(700, 40), (1000, 90)] {
            m.scan_engine(vigil_scan::ServiceUse {
                rate: 100_000.0,
                probes_sent: sent,
                answers,
                running: 3,
                waiting: 5,
                shards: 2,
            });
        }
        m.request(
            "agent",
            &Method::POST,
            "/agent/v1/heartbeat".into(),
            200,
            0.01,
        );
        let text = m.encode(false);
        for line in [
            "vigil_build_info{version=\"",
            "vigil_scan_tasks_created_total{target=\"agent_host\"} 1",
            "vigil_scan_results_ingested_total{target=\"host\",outcome=\"stored\"} 1",
            "vigil_scan_results_ingested_total{target=\"host\",outcome=\"duplicate\"} 1",
            "vigil_ingest_duration_seconds_count 1",
            "vigil_alerts_raised_total{condition=\"unauthorized_open\"} 1",
            "vigil_alerts_resolved_total{condition=\"service_down\"} 1",
            "vigil_notifications_total{channel=\"email\",outcome=\"sent\"} 1",
            "vigil_notifications_total{channel=\"webhook\",outcome=\"failed\"} 1",
            "vigil_notifications_total{channel=\"webhook\",outcome=\"given_up\"} 1",
            "vigil_retention_pruned_rows_total{table=\"scan_results\"} 3",
            "vigil_retention_pruned_rows_total{table=\"outbox\"} 0",
            "vigil_retention_pruned_rows_total{table=\"install_jobs\"} 0",
            "vigil_retention_runs_total 1",
            "vigil_http_requests_total{api=\"agent\",method=\"POST\",route=\"/agent/v1/heartbeat\",status=\"200\"} 1",
            "vigil_http_request_duration_seconds_count{api=\"agent\",method=\"POST\",route=\"/agent/v1/heartbeat\"} 1",
            "# TYPE vigil_http_requests_total counter",
            "# TYPE vigil_outbox_pending gauge",
            "# TYPE vigil_outbox_dropped gauge",
            "vigil_scan_sockets{what=\"budget\"} 64",
            "vigil_scan_sockets{what=\"in_use\"} 3",
            "vigil_scan_sockets{what=\"peak\"} 9",
            "vigil_scan_engine{what=\"rate\"} 100000",
            "vigil_scan_engine{what=\"waiting\"} 5",
            "vigil_scan_probes_total{what=\"sent\"} 1000",
            "vigil_scan_probes_total{what=\"answers\"} 90",
            "# TYPE vigil_agents gauge",
            "vigil_agents{health=\"abandoned\"} 0",
            "vigil_alerts_raised_total{condition=\"agent_not_communicating\"} 0",
            "vigil_notifications_total{channel=\"slack\",outcome=\"given_up\"} 0",
            "vigil_scan_tasks_created_total{target=\"observed_address\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(!text.contains("# EOF"));
        let om = m.encode(true);
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(om.contains("# TYPE vigil_http_requests counter"), "{om}");
    }

    #[tokio::test]
    async fn gauges_are_counted_in_the_database_at_scrape_time() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let m = Metrics::new();
        let liveness = vigil_core::LivenessConfig::default();
        m.refresh(&store, &liveness).await;
        let text = m.encode(false);
        for line in [
            "vigil_database_up 1",
            "vigil_outbox_pending 0",
            "vigil_outbox_dropped 0",
            "vigil_scan_tasks_open 0",
            "vigil_agents{health=\"communicating\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        // The database gone: the scrape still answers, and says so.
        store.close().await;
        m.refresh(&store, &liveness).await;
        assert!(m.encode(false).contains("vigil_database_up 0"));
    }
}
