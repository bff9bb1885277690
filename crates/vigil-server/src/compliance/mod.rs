//! Compliance assessments: find the machines of a tenant's scope that Vigil
//! does not protect.
//!
//! An assessment probes the scope ([`probe`]), classifies and joins the
//! results with the pure rules of `vigil_core::compliance`, and stores one
//! endpoint per machine. One assessment runs per account: starting another
//! cancels the running one (its rows stay, marked cancelled).

pub(crate) mod ad;
mod ad_tls;
pub(crate) mod export;
mod identify;
mod names;
pub(crate) mod notify;
pub(crate) mod probe;
pub(crate) mod query;
mod resolve;
mod running;
pub(crate) mod schedule;
pub(crate) mod service;

pub(crate) use running::Running;

use crate::app::App;
use probe::{ProbeError, ProbePlan};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use vigil_core::compliance::{
    addresses_to_probe, join, names_to_resolve, pick_name, settle_silent_addresses,
    ComplianceScope, EndpointStatus, IpEndpoint, KnownAgent, StatusCounts, MAX_SCOPE_ADDRESSES,
};
use vigil_core::targets::AddrRange;
use vigil_store::{
    now_unix, AccountId, AssessmentId, AssessmentState, AssessmentTrigger, StoreError,
};

/// How long to wait for an identify answer from an agent port.
const IDENTIFY_TIMEOUT: Duration = Duration::from_secs(3);
/// How often progress is written to the store while probing.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// The error of an assessment another replica took over.
const INTERRUPTED: &str =
    "interrupted: the server running it stopped; another server ran the assessment again";

/// Why an assessment could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("no compliance scope saved yet")]
    NoScope,
    #[error(
        "the scope has nothing to assess: enable the IP scope or set an Active Directory scope"
    )]
    Empty,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl App {
    /// Starts an assessment of the account's saved scope in the background,
    /// cancelling the one that runs. Returns its id at once.
    pub(crate) async fn start_assessment(
        self: &Arc<Self>,
        account: AccountId,
        trigger: AssessmentTrigger,
    ) -> Result<AssessmentId, StartError> {
        let (scope, _) = self
            .store
            .compliance_scope(account)
            .await?
            .ok_or(StartError::NoScope)?;
        if !scope.has_targets() {
            return Err(StartError::Empty);
        }
        let total = if scope.ip.enabled {
            u64::try_from(scope.ip.address_count()).unwrap_or(u64::MAX)
        } else {
            0
        };
        let id = self
            .store
            .start_assessment(account, scope.on_demand, trigger, total, now_unix())
            .await?;
        let cancel = self.compliance.replace(account, id);
        let app = self.clone();
        tokio::spawn(async move {
            let outcome = app.assess_holding_lease(account, id, &scope, &cancel).await;
            let (state, error) = match outcome {
                Ok(()) => (AssessmentState::Done, None),
                Err(AssessError::Cancelled) => (AssessmentState::Cancelled, None),
                Err(e) => {
                    tracing::error!(%account, assessment = %id, error = %e, "assessment failed");
                    (AssessmentState::Failed, Some(e.to_string()))
                }
            };
            if let Err(e) = app
                .store
                .finish_assessment(account, id, state, error.as_deref(), now_unix())
                .await
            {
                tracing::error!(error = %e, "cannot record the end of an assessment");
            }
            app.compliance.finished(account, id);
            notify::assessment_finished(&app, account, id).await;
        });
        Ok(id)
    }

    /// [`App::assess`] while keeping the assessment's lease, so that other
    /// replicas know it runs; when the lease is lost (this replica was cut
    /// off long enough for another one to take the assessment over), it
    /// stops as cancelled.
    async fn assess_holding_lease(
        &self,
        account: AccountId,
        id: AssessmentId,
        scope: &ComplianceScope,
        cancel: &CancellationToken,
    ) -> Result<(), AssessError> {
        let assess = self.assess(account, id, scope, cancel);
        tokio::pin!(assess);
        // Renewed every third of `Leases::assessment`: a replica that dies
        // hands its assessments over within about that.
        let lease = self.cfg.leases.assessment;
        let mut renew = tokio::time::interval(lease / 3);
        loop {
            tokio::select! {
                outcome = &mut assess => return outcome,
                _ = renew.tick() => {
                    let until = now_unix() + lease.as_secs() as i64;
                    match self.store.renew_assessment_lease(account, id, until).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(%account, assessment = %id, "the assessment ended elsewhere; stopping it");
                            return Err(AssessError::Cancelled);
                        }
                        Err(e) => tracing::warn!(%account, assessment = %id, error = %e, "renewing the assessment's lease failed"),
                    }
                }
            }
        }
    }

    /// Runs again, here, the assessments whose replica stopped renewing
    /// them (killed, or cut off from the database): they end as failed
    /// ("interrupted") and a new one of the same account starts with the
    /// same trigger. Each is reclaimed by one replica.
    pub(crate) async fn resume_stalled_assessments(self: &Arc<Self>) -> Result<usize, StoreError> {
        let stalled = self
            .store
            .reclaim_stalled_assessments(now_unix(), self.cfg.leases.assessment, INTERRUPTED)
            .await?;
        for a in &stalled {
            tracing::warn!(account = %a.account_id, assessment = %a.id, "assessment interrupted (its server stopped); running it again");
            match self.start_assessment(a.account_id, a.trigger).await {
                Ok(id) => {
                    tracing::info!(account = %a.account_id, assessment = %id, "assessment restarted")
                }
                Err(e) => {
                    tracing::error!(account = %a.account_id, error = %e, "cannot restart an interrupted assessment")
                }
            }
        }
        Ok(stalled.len())
    }

    async fn assess(
        &self,
        account: AccountId,
        id: AssessmentId,
        scope: &ComplianceScope,
        cancel: &CancellationToken,
    ) -> Result<(), AssessError> {
        if !scope.on_demand {
            return self.assess_from_database(account, id).await;
        }
        // 1. The AD side: computers, and the addresses of their names.
        let ad_computers = match &scope.ad {
            Some(ad_scope) => {
                if ad_scope.bind == vigil_core::compliance::AdBind::Gssapi
                    && !self.cfg.gssapi_allowed(account)
                {
                    return Err(AssessError::Directory(
                        ad::AdError::GssapiNotAllowed.to_string(),
                    ));
                }
                let password = self.store.compliance_ad_password(account).await?;
                ad::read_computers(ad_scope, password.as_deref(), &self.cfg.net_policy, cancel)
                    .await
                    .map_err(|e| match e {
                        ad::AdError::Cancelled => AssessError::Cancelled,
                        e => AssessError::Directory(e.to_string()),
                    })?
            }
            None => Vec::new(),
        };
        let resolved = resolve::resolve_all(names_to_resolve(&ad_computers), cancel)
            .await
            .ok_or(AssessError::Cancelled)?;
        let plan = ProbePlan {
            unreachable_port: scope.unreachable_port,
            agent_ports: scope.agent_ports.as_slice().to_vec(),
            identify_timeout: IDENTIFY_TIMEOUT,
            // The server's one scan budget, this account's fair share of it.
            scan: self.scan_budget.scan_config(account),
            our_server_id: self.server_id.clone(),
            keys: Arc::new(identify::AgentKeys::of_account(&self.store, account).await?),
        };
        // 2. What to probe: the IP scope, plus AD addresses outside it.
        let mut ranges = if scope.ip.enabled {
            scope.ip.merged_ranges()
        } else {
            Vec::new()
        };
        ranges.extend(
            addresses_to_probe(&ad_computers, &resolved, &scope.ip)
                .into_iter()
                .map(AddrRange::single),
        );
        let ranges = self.allowed_ranges(account, ranges);

        // Progress goes through a watch channel to one writer, so the
        // probe loop never waits for the database.
        let (tx, mut rx) = watch::channel((0u64, 0u64, StatusCounts::default()));
        let store = self.store.clone();
        let writer = tokio::spawn(async move {
            let mut written = StatusCounts::default();
            while rx.changed().await.is_ok() {
                let (done, total, counts) = *rx.borrow_and_update();
                let mut result = store
                    .set_assessment_progress(account, id, done, total)
                    .await;
                if result.is_ok() && counts != written {
                    result = store.set_assessment_live_counts(account, id, &counts).await;
                    written = counts;
                }
                if let Err(e) = result {
                    tracing::warn!(error = %e, "cannot record assessment progress");
                }
                tokio::time::sleep(PROGRESS_EVERY).await;
            }
        });
        let report = move |done: u64, total: u64, counts: &StatusCounts| {
            let _ = tx.send((done, total, *counts));
        };
        let probes = probe::probe(ranges, &plan, cancel, &report).await;
        drop(report);
        let _ = writer.await;
        let probes = probes.map_err(|e| match e {
            ProbeError::Cancelled => AssessError::Cancelled,
            e => AssessError::Probe(e.to_string()),
        })?;

        let now = now_unix();
        let mut ip: Vec<IpEndpoint> = probes
            .into_iter()
            .map(|(addr, p)| IpEndpoint::from_probe(addr, p, &self.server_id, now))
            .collect();
        // 3. Names for the addresses: PTR of all, NetBIOS of the live ones,
        // at once. After the probing, not during it: on a small machine
        // the lookups take CPU the probe's timing needs (measured: running
        // them alongside made the /16 assessment slower, BENCHMARKS.md).
        let seen = if scope.resolve_names {
            let all: Vec<IpAddr> = ip.iter().map(|e| e.addr).collect();
            let live: Vec<IpAddr> = ip
                .iter()
                .filter(|e| e.status != EndpointStatus::Unreachable)
                .map(|e| e.addr)
                .collect();
            let (ptr, netbios) = tokio::join!(
                names::reverse_dns(&all, cancel),
                names::node_status(&live, cancel)
            );
            names::merge(
                ptr.ok_or(AssessError::Cancelled)?,
                netbios.ok_or(AssessError::Cancelled)?,
            )
        } else {
            HashMap::new()
        };
        let unnamed = vigil_core::compliance::SeenNames::default();
        for e in &mut ip {
            let found = seen.get(&e.addr).unwrap_or(&unnamed);
            if let Some((name, source)) = pick_name(e.identify.as_ref(), e.check, found) {
                e.name = Some(name);
                e.name_source = Some(source);
            }
        }
        // What the last finished assessment knew: agents by AD GUID, and
        // when each address answered.
        let (known, seen_before) = match self.last_done(account, id).await? {
            Some(previous) => (
                self.known_agents(account, previous).await?,
                self.store.addresses_seen(account, previous).await?,
            ),
            None => (HashMap::new(), HashMap::new()),
        };
        let mut endpoints = join(ad_computers, ip, &resolved, &known);
        // 4. Silent addresses nothing shows a machine uses: no host there.
        settle_silent_addresses(&mut endpoints, &seen_before);
        if cancel.is_cancelled() {
            return Err(AssessError::Cancelled);
        }
        self.store.put_endpoints(account, id, &endpoints).await?;
        let n = endpoints.len() as u64;
        self.store
            .set_assessment_progress(account, id, n, n)
            .await?;
        Ok(())
    }
}

impl App {
    /// "Database only": the endpoints of the last completed assessment,
    /// with what the server knows now — an agent enrolled here is managed
    /// here; one that was removed no longer is. Fast, and as accurate as
    /// the last on-demand assessment.
    async fn assess_from_database(
        &self,
        account: AccountId,
        id: AssessmentId,
    ) -> Result<(), AssessError> {
        let previous = self
            .store
            .assessments(account, 50)
            .await?
            .into_iter()
            .find(|a| a.id != id && a.state == AssessmentState::Done && a.on_demand)
            .ok_or(AssessError::Unsupported(
                "a database-only assessment needs an earlier on-demand assessment to start from",
            ))?;
        let ours: std::collections::HashSet<String> = self
            .store
            .agents(account)
            .await?
            .into_iter()
            .filter(|a| !a.is_removed())
            .map(|a| a.id.to_string())
            .collect();
        let everything = vigil_core::compliance::AdvancedQuery::everything();
        let (mut endpoints, _) = self
            .store
            .endpoints(
                account,
                previous.id,
                &everything,
                0,
                MAX_SCOPE_ADDRESSES as u64,
            )
            .await?;
        for e in &mut endpoints {
            // A forged claim stays forged: naming one of our agents is
            // not being it.
            let managed_here = e.agent_id.as_ref().is_some_and(|a| ours.contains(a))
                && e.server_id.as_deref() == Some(self.server_id.as_str())
                && e.identify_trusted();
            if managed_here {
                e.status = EndpointStatus::ManagedHere;
            } else if e.status == EndpointStatus::ManagedHere {
                e.status = EndpointStatus::NoAgent;
            }
        }
        self.store.put_endpoints(account, id, &endpoints).await?;
        let n = endpoints.len() as u64;
        self.store
            .set_assessment_progress(account, id, n, n)
            .await?;
        Ok(())
    }
}

impl App {
    /// The last finished assessment of the account other than `id`: what
    /// an assessment builds on (agents known by GUID, when each address
    /// answered: it carries the times forward).
    async fn last_done(
        &self,
        account: AccountId,
        id: AssessmentId,
    ) -> Result<Option<AssessmentId>, StoreError> {
        Ok(self
            .store
            .assessments(account, 50)
            .await?
            .into_iter()
            .find(|a| a.id != id && a.state == AssessmentState::Done)
            .map(|a| a.id))
    }

    /// The agents our database knows by the AD GUID of their machine: the
    /// AD computers the finished assessment `previous` found managed here whose
    /// agent is still enrolled. An AD computer known this way stays
    /// "managed here" while it is offline, instead of turning into an
    /// unresolved AD assessment.
    async fn known_agents(
        &self,
        account: AccountId,
        previous: AssessmentId,
    ) -> Result<HashMap<Uuid, KnownAgent>, StoreError> {
        let agents: HashMap<String, vigil_store::Agent> = self
            .store
            .agents(account)
            .await?
            .into_iter()
            .filter(|a| !a.is_removed())
            .map(|a| (a.id.to_string(), a))
            .collect();
        let managed_here = vigil_core::compliance::AdvancedQuery {
            statuses: vec![EndpointStatus::ManagedHere],
            ..Default::default()
        };
        let (endpoints, _) = self
            .store
            .endpoints(
                account,
                previous,
                &managed_here,
                0,
                MAX_SCOPE_ADDRESSES as u64,
            )
            .await?;
        Ok(endpoints
            .into_iter()
            .filter_map(|e| {
                let agent = agents.get(e.agent_id.as_deref()?)?;
                Some((
                    e.ad_guid?,
                    KnownAgent {
                        agent_id: agent.id.to_string(),
                        version: agent.version.clone(),
                        last_seen: agent.last_seen_at,
                    },
                ))
            })
            .collect())
    }
}

#[derive(Debug, thiserror::Error)]
enum AssessError {
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("reading Active Directory failed: {0}")]
    Directory(String),
    #[error("probing failed: {0}")]
    Probe(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl App {
    /// What the operator's network policy lets a compliance sweep reach of
    /// `ranges`, checked now (a scope saved under another policy, an AD
    /// name resolving to loopback); what is cut is logged, not probed.
    fn allowed_ranges(&self, account: AccountId, ranges: Vec<AddrRange>) -> Vec<AddrRange> {
        let mut allowed = Vec::with_capacity(ranges.len());
        for range in ranges {
            let split = self.cfg.net_policy.split(
                vigil_core::netpolicy::Destination::Compliance,
                range.start(),
                range.end(),
            );
            for refusal in &split.refused {
                tracing::warn!(%account, %refusal, "not probed");
            }
            allowed.extend(
                split
                    .allowed
                    .into_iter()
                    .filter_map(|(a, b)| AddrRange::new(a, b).ok()),
            );
        }
        allowed
    }
}
