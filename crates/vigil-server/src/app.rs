//! The state every request handler and background job shares.

use crate::config::ServerConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use vigil_core::{contact_range, health, AgentHealth, ScanStatus, SecurityPolicy};
use vigil_proto::api::{AgentView, ScanStatusView};
use vigil_proto::pin::CertPin;
use vigil_store::{Agent, AgentId, Store, UnixTime};

/// Held while one agent target's evaluation state is read, evaluated and written.
type TargetLock = Arc<tokio::sync::Mutex<()>>;

/// Shared by handlers and jobs; cheap to clone behind an `Arc`.
pub(crate) struct App {
    pub store: Store,
    pub cfg: ServerConfig,
    /// This installation's ID, which agents report in identify answers.
    pub server_id: String,
    pub pin: CertPin,
    /// The agent API URL handed out with enrollment tokens.
    pub agent_url: String,
    /// Woken when a notification is queued, so it goes out without waiting a tick.
    pub outbox_wake: Notify,
    /// Woken when a policy changes, so its first scan is scheduled at once.
    pub scheduler_wake: Notify,
    /// Woken when a server-side scan is queued, so a free runner claims it.
    pub server_scan_wake: Notify,
    /// Counters and histograms of `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// The running compliance assessment of each account.
    pub compliance: crate::compliance::Running,
    /// Agent installs: what is handed out, and push-install jobs.
    pub install: crate::install::Installer,
    /// Signs the web console's forms (the same in every replica).
    pub console_key: [u8; 32],
    /// The agent builds offered for self-update, and the key signing them.
    pub updates: crate::updates::Updates,
    /// The sockets server-side scans and assessments of all accounts share.
    pub scan_budget: crate::budget::ScanBudget,
    /// The login throttle (this replica's counts).
    pub logins: crate::login::Logins,
    /// TCP ports, most common first (nmap's frequencies when its table is
    /// installed): the "top N" of outside-scan schedules.
    pub ranked_ports: Vec<u16>,
    /// Serializes evaluations of one agent target: the read-evaluate-write
    /// of its damping state must not interleave. (One server process; with
    /// several replicas this becomes a row lock — issue 6.)
    target_locks: Mutex<HashMap<(AgentId, String), TargetLock>>,
}

impl App {
    // Each argument is one part of the state, built by `start`; a builder
    // would only repeat the fields.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        cfg: ServerConfig,
        server_id: String,
        pin: CertPin,
        agent_url: String,
        install: crate::install::Installer,
        console_key: [u8; 32],
        updates: crate::updates::Updates,
        scan_budget: crate::budget::ScanBudget,
    ) -> Self {
        App {
            store,
            cfg,
            server_id,
            pin,
            agent_url,
            outbox_wake: Notify::new(),
            scheduler_wake: Notify::new(),
            server_scan_wake: Notify::new(),
            metrics: Default::default(),
            compliance: Default::default(),
            install,
            console_key,
            updates,
            scan_budget,
            logins: Default::default(),
            ranked_ports: vigil_scan::services::top_ports(usize::from(u16::MAX)),
            target_locks: Mutex::new(HashMap::new()),
        }
    }

    /// The lock of one agent target's evaluation state.
    pub fn target_lock(&self, agent: AgentId, target: &str) -> TargetLock {
        let mut locks = self
            .target_locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if locks.len() > 100_000 {
            // Forget idle locks now and then; a lock someone holds or waits
            // for has more than one reference and stays.
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks
            .entry((agent, target.to_string()))
            .or_default()
            .clone()
    }

    /// The agent's health right now.
    /// The agent's health: what its last contact says, except that silence
    /// counts only once the liveness sweeper has held it against the agent
    /// (its stored health). The sweeper does not judge silence while the
    /// server could not hear the agent (after a start or a database
    /// outage), and neither may scans and views: an agent whose calls a
    /// database outage held up is not suspended when the database is back.
    /// Coming back counts at once.
    pub fn health_of(&self, agent: &Agent, now: UnixTime) -> AgentHealth {
        self.contact_health(agent, now).min(agent.last_health)
    }

    /// What the agent's last contact says, at `now` (the sweeper's view).
    pub fn contact_health(&self, agent: &Agent, now: UnixTime) -> AgentHealth {
        health(
            agent.last_seen_at.map(unix),
            unix(agent.enrolled_at),
            unix(now),
            &self.cfg.liveness,
        )
    }

    /// Whether the agent's security scan runs now; `None` without a policy.
    pub fn scan_status(
        &self,
        agent: &Agent,
        policy: Option<&SecurityPolicy>,
        now: UnixTime,
    ) -> Option<ScanStatus> {
        policy.map(|p| {
            vigil_core::scan_status(
                agent.plan,
                p.enabled,
                agent.is_removed(),
                self.health_of(agent, now),
            )
        })
    }

    pub fn agent_view(
        &self,
        agent: &Agent,
        policy: Option<&SecurityPolicy>,
        now: UnixTime,
    ) -> AgentView {
        AgentView {
            id: agent.id.to_string(),
            name: agent.name.clone(),
            plan: agent.plan,
            health: self.health_of(agent, now),
            enrolled_at: agent.enrolled_at,
            last_seen_at: agent.last_seen_at,
            public_addr: agent.public_addr.clone(),
            version: agent.version.clone(),
            os: agent.os.clone(),
            hostname: agent.hostname.clone(),
            removed_at: agent.removed_at,
            scan: status_view(self.scan_status(agent, policy, now)),
            tags: agent.tags.clone(),
            maintenance: None,
        }
    }
}

pub(crate) fn status_view(status: Option<ScanStatus>) -> ScanStatusView {
    match status {
        None => ScanStatusView {
            state: "none".into(),
            reason: Some("no security scan policy yet".into()),
        },
        Some(ScanStatus::Active) => ScanStatusView {
            state: "active".into(),
            reason: None,
        },
        Some(ScanStatus::Suspended { reason }) => ScanStatusView {
            state: "suspended".into(),
            reason: Some(reason.text().into()),
        },
        Some(ScanStatus::Disabled { reason }) => ScanStatusView {
            state: "disabled".into(),
            reason: Some(reason.text().into()),
        },
    }
}

/// How many agents (not removed) of `account`, or of every account, have
/// each health at `now`, by their last contact: counted in the database.
pub(crate) async fn agents_by_health(
    store: &Store,
    account: Option<vigil_store::AccountId>,
    liveness: &vigil_core::LivenessConfig,
    now: UnixTime,
) -> Result<Vec<(AgentHealth, u64)>, vigil_store::StoreError> {
    let ranges = AgentHealth::ALL.map(|h| (h, contact_range(h, unix(now), liveness)));
    let wanted: Vec<_> = ranges.iter().filter_map(|(_, r)| *r).collect();
    let mut counted = store
        .agent_contact_counts(account, &wanted)
        .await?
        .into_iter();
    // A health no time stands for (just after the epoch) has no agents.
    Ok(ranges
        .iter()
        .map(|(h, r)| (*h, r.and_then(|_| counted.next()).unwrap_or(0)))
        .collect())
}

/// Store times are signed; the liveness rules count unsigned seconds.
fn unix(t: UnixTime) -> u64 {
    u64::try_from(t).unwrap_or(0)
}
