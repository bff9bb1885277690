//! From an uploaded scan result to alerts: store it once, then run the
//! domain's evaluation against the agent's policy and act on its events.

use crate::alert::Ending;
use crate::app::App;
use std::collections::BTreeMap;
use vigil_core::listener::ProcessInfo;
use vigil_core::{
    evaluate, Change, Condition, Event, Observation, PolicyTarget, PortState, SecurityPolicy,
    TargetState,
};
use vigil_proto::agent::{ResultUpload, UploadStatus};
use vigil_store::{
    Agent, NewScanResult, PortResult, Probed, ScanTask, StoreError, TaskId, UnixTime,
};

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IngestError {
    /// The agent sent something that can never be stored (4xx).
    #[error("{0}")]
    Rejected(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long after its expiry a task still takes its result: the scan that
/// was running when the task expired (a slow target, a long sweep) reports
/// after it.
const UPLOAD_GRACE: i64 = 15 * 60;

/// Why a task takes no new result (`None`: it is open).
fn closed(task: &ScanTask, now: UnixTime) -> Option<&'static str> {
    if task.completed_at.is_some() {
        Some("completed")
    } else if now > task.expires_at.saturating_add(UPLOAD_GRACE) {
        Some("expired")
    } else {
        None
    }
}

/// What a stored result shows of a scan: its listed ports
/// ([`vigil_core::listed_in_result`]) and what it probed.
struct Swept {
    ports: vigil_core::PortList,
    filtered_not_listed: u32,
    unreachable_not_listed: u32,
}

/// Splits a scan's ports into those its stored result lists and the
/// counts of the rest (`in_policy`: whether the policy names a port).
fn history_view(ports: &[PortResult], in_policy: impl Fn(u16) -> bool) -> (Vec<PortResult>, Swept) {
    let in_state = |state| ports.iter().filter(|p| p.state == state).count();
    let filtered = in_state(PortState::Filtered);
    let unreachable = in_state(PortState::Unreachable);
    let mut swept = Swept {
        ports: vigil_core::PortList::from_ports(ports.iter().map(|p| p.port)),
        filtered_not_listed: 0,
        unreachable_not_listed: 0,
    };
    let mut kept = Vec::new();
    for p in ports {
        let count = match p.state {
            PortState::Filtered => filtered,
            PortState::Unreachable => unreachable,
            PortState::Open | PortState::Closed => 0,
        };
        if vigil_core::listed_in_result(p.state, in_policy(p.port), count) {
            kept.push(p.clone());
        } else if p.state == PortState::Filtered {
            swept.filtered_not_listed = swept.filtered_not_listed.saturating_add(1);
        } else if p.state == PortState::Unreachable {
            swept.unreachable_not_listed = swept.unreachable_not_listed.saturating_add(1);
        }
    }
    (kept, swept)
}

impl Swept {
    fn probed(&self) -> Probed<'_> {
        Probed {
            ports: &self.ports,
            filtered_not_listed: self.filtered_not_listed,
            unreachable_not_listed: self.unreachable_not_listed,
        }
    }
}

impl App {
    /// The open task an upload is for, or what to answer instead: an upload
    /// for a closed task (or one retention deleted) is acknowledged as a
    /// duplicate when it was stored (`stored_before` says), refused
    /// otherwise.
    pub(crate) async fn upload_task<F, Fut>(
        &self,
        agent: &Agent,
        task_id: &str,
        now: UnixTime,
        stored_before: F,
    ) -> Result<Result<(TaskId, ScanTask), UploadStatus>, IngestError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<bool, StoreError>>,
    {
        let unknown = || IngestError::Rejected(format!("unknown task {task_id:?}"));
        let id: TaskId = task_id.parse().map_err(|_| unknown())?;
        let task = match self.store.task(agent.account_id, agent.id, id).await {
            Ok(t) if closed(&t, now).is_none() => return Ok(Ok((id, t))),
            Ok(t) => Some(t),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        // A closed task, or one retention deleted: a re-send of what was
        // stored is still acknowledged.
        if stored_before().await? {
            return Ok(Err(UploadStatus::Duplicate));
        }
        Err(match task.as_ref().and_then(|t| closed(t, now)) {
            Some(why) => IngestError::Rejected(format!(
                "task {task_id} is {why}: results are accepted only for open tasks"
            )),
            None => unknown(),
        })
    }

    /// Stores an uploaded result exactly once and, the first time, evaluates it.
    pub(crate) async fn ingest(
        &self,
        agent: &Agent,
        upload: &ResultUpload,
        now: UnixTime,
    ) -> Result<UploadStatus, IngestError> {
        let started = std::time::Instant::now();
        let (task_id, task) = match self
            .upload_task(agent, &upload.task_id, now, || {
                self.store
                    .has_upload(agent.account_id, agent.id, &upload.upload_id)
            })
            .await?
        {
            Ok(open) => open,
            Err(status) => return Ok(status),
        };
        let ports: Vec<PortResult> = upload
            .ports
            .iter()
            .map(|p| PortResult {
                port: p.port,
                state: p.state,
                // Cleaned and bounded: it came from the network.
                details: p.details.as_ref().and_then(|d| d.sanitized()).map(Box::new),
            })
            .collect();
        // History keeps what matters, like nmap's "Not shown: 65530
        // filtered tcp ports": a full sweep is 65,535 entries, nearly all
        // closed or (a silent address) filtered. What was swept is stored
        // beside it: an agent (and the server's own scan) reports every
        // port it probed.
        let policy = self.store.policy(agent.account_id, agent.id).await?;
        let in_policy = |port| policy.as_ref().is_some_and(|pol| pol.is_authorized(port));
        let (kept, swept) = history_view(&ports, in_policy);
        let addr = (!upload.addr.is_empty()).then_some(upload.addr.as_str());
        let stored = self
            .store
            .ingest_result(
                agent.account_id,
                agent.id,
                &NewScanResult {
                    upload_id: &upload.upload_id,
                    target: &task.target_key,
                    addr,
                    task_id: Some(&upload.task_id),
                    started_at: upload.started_at,
                    finished_at: upload.finished_at,
                    ports: &kept,
                    probed: Some(swept.probed()),
                },
            )
            .await
            .map_err(|e| match e {
                StoreError::Invalid(msg) => IngestError::Rejected(msg),
                e => IngestError::Store(e),
            })?;
        self.metrics
            .result_ingested(&task.target_key, stored.is_new());
        if !stored.is_new() {
            return Ok(UploadStatus::Duplicate);
        }
        self.store
            .complete_task(agent.account_id, agent.id, task_id, now)
            .await?;
        let observation = if addr.is_none() {
            Observation::unreachable()
        } else {
            Observation::from_ports(ports.iter().map(|p| (p.port, p.state)).collect())
        };
        if let Some(policy) = &policy {
            self.evaluate(agent, policy, &task.target_key, &observation, now)
                .await?;
            if policy.process_change_alerts && policy.enabled {
                self.check_processes(agent, policy, &task.target_key, stored.id(), &ports, now)
                    .await?;
            }
        }
        self.metrics.ingest_done(started);
        Ok(UploadStatus::Stored)
    }

    /// Compares the listening processes of a new result (`current`, stored
    /// as `stored`) with the target's previous result: an authorized port
    /// now served by another program raises a *process changed* alert (the
    /// policy asked for them); one served by the same program as before
    /// ends such an alert.
    async fn check_processes(
        &self,
        agent: &Agent,
        policy: &SecurityPolicy,
        target_key: &str,
        stored: vigil_store::ScanResultId,
        current: &[PortResult],
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let processes = |ports: &[PortResult]| -> BTreeMap<u16, ProcessInfo> {
            ports
                .iter()
                .filter(|p| p.state == PortState::Open)
                .filter_map(|p| Some((p.port, p.details.as_ref()?.process.clone()?)))
                .collect()
        };
        let now_serving = processes(current);
        if now_serving.is_empty() {
            return Ok(());
        }
        let recent = self
            .store
            .target_results(agent.account_id, agent.id, target_key, 2)
            .await?;
        let Some(previous) = recent.into_iter().find(|r| r.id != stored) else {
            return Ok(());
        };
        let before = processes(&previous.ports);
        let changes = vigil_core::listener::process_changes(&before, &now_serving, |p| {
            policy.is_authorized(p)
        });
        // The alert's details say which program it was and is (see
        // `App::listening`, which reads the same two results).
        for change in &changes {
            self.raise(
                agent,
                target_key,
                Condition::process_changed(change.port),
                now,
            )
            .await?;
        }
        let steady = now_serving
            .keys()
            .filter(|p| before.contains_key(p) && !changes.iter().any(|c| c.port == **p));
        for &port in steady {
            let condition = Condition::process_changed(port);
            self.clear(agent, target_key, condition, Ending::CLEARED, now)
                .await?;
        }
        Ok(())
    }

    /// Evaluates one observation of one policy target against the agent's
    /// policy (as read for this upload) and acts on the events.
    pub(crate) async fn evaluate(
        &self,
        agent: &Agent,
        policy: &SecurityPolicy,
        target_key: &str,
        observation: &Observation,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        // A result that arrives after the scan was disabled (plan change,
        // removal, switched off) or for a target no longer in the policy
        // is kept as history but raises nothing.
        let covered = PolicyTarget::from_key(target_key)
            .map(|t| policy.targets.contains(&t))
            .unwrap_or(false);
        let status = self.scan_status(agent, Some(policy), now);
        let runs = matches!(
            status,
            Some(vigil_core::ScanStatus::Active | vigil_core::ScanStatus::Suspended { .. })
        );
        if !covered || !runs {
            return Ok(());
        }
        let scanned = policy.ports_to_scan(&self.cfg.sweep_ports);
        self.evaluate_target(agent, policy, target_key, &scanned, observation, now)
            .await
    }

    /// Evaluates one observation of the target `target_key` against
    /// `policy` (whose authorized and monitored ports apply) and acts on the
    /// events; conditions of ports outside `scanned` are forgotten.
    pub(crate) async fn evaluate_target(
        &self,
        agent: &Agent,
        policy: &SecurityPolicy,
        target_key: &str,
        scanned: &vigil_core::PortList,
        observation: &Observation,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let events = self
            .update_target(agent, target_key, |state| {
                let mut events = state.retain_ports(scanned);
                events.extend(evaluate(state, policy, observation, &self.cfg.damping));
                events
            })
            .await?;
        self.act_all(agent, target_key, events, None, now).await
    }

    /// Runs `step` on the stored evaluation state of the target
    /// `target_key`, stores the result and returns `step`'s events.
    pub(crate) async fn update_target(
        &self,
        agent: &Agent,
        target_key: &str,
        mut step: impl FnMut(&mut TargetState) -> Vec<Event>,
    ) -> Result<Vec<Event>, StoreError> {
        // In this process the lock orders evaluations of one target; across
        // replicas the state's version does: a write over a state someone
        // else stored meanwhile is refused, and the evaluation runs again on
        // the newer state.
        let lock = self.target_lock(agent.id, target_key);
        let _guard = lock.lock().await;
        let mut attempts = 0;
        loop {
            let (mut state, version) = self
                .store
                .target_state_versioned(agent.account_id, agent.id, target_key)
                .await?;
            let events = step(&mut state);
            if self
                .store
                .put_target_state_if(agent.account_id, agent.id, target_key, &state, version)
                .await?
            {
                return Ok(events);
            }
            attempts += 1;
            if attempts >= 10 {
                return Err(StoreError::Conflict);
            }
        }
    }

    /// Acts on each of `events` of the target `target`; `by` is the user
    /// whose change caused them, if one did (who saved the policy).
    pub(crate) async fn act_all(
        &self,
        agent: &Agent,
        target: &str,
        events: Vec<Event>,
        by: Option<&str>,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        for event in events {
            self.act(agent, target, event, by, now).await?;
        }
        Ok(())
    }

    async fn act(
        &self,
        agent: &Agent,
        target: &str,
        event: Event,
        by: Option<&str>,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let condition = event.condition;
        match event.change {
            Change::Raised => {
                self.raise(agent, target, condition, now).await?;
            }
            Change::Cleared => {
                self.clear(agent, target, condition, Ending::CLEARED, now)
                    .await?
            }
            Change::Dropped(why) => {
                let ending = Ending { why, by };
                self.clear(agent, target, condition, ending, now).await?;
            }
            Change::FlappingStarted | Change::FlappingStopped => {
                let flapping = event.change == Change::FlappingStarted;
                let open = self
                    .store
                    .open_alert_for(agent.account_id, agent.id, target, condition)
                    .await?;
                match (open, event.active) {
                    (Some(alert), true) => {
                        self.store
                            .set_alert_flapping(agent.account_id, alert.id, flapping)
                            .await?;
                    }
                    // Settled into the condition while flapping: one alert now.
                    (None, true) => {
                        let alert = self.raise(agent, target, condition, now).await?;
                        self.store
                            .set_alert_flapping(agent.account_id, alert.id, flapping)
                            .await?;
                    }
                    // Settled into "fine": close what is open, with a notice.
                    (Some(_), false) => {
                        self.clear(agent, target, condition, Ending::CLEARED, now)
                            .await?
                    }
                    (None, false) => {}
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(port: u16, state: PortState) -> PortResult {
        PortResult {
            port,
            state,
            details: None,
        }
    }

    #[test]
    fn a_silent_sweep_keeps_what_answered_and_what_the_policy_names() {
        // A full sweep of an address that drops nearly everything: 22 and
        // 443 open, 80 closed, 8443 unreachable, the rest filtered.
        let state = |p| match p {
            22 | 443 => PortState::Open,
            80 => PortState::Closed,
            8443 => PortState::Unreachable,
            _ => PortState::Filtered,
        };
        let ports: Vec<PortResult> = (1..=65535).map(|p| port(p, state(p))).collect();
        // The policy names 22 (authorized) and 5222 (monitored, filtered).
        let (kept, swept) = history_view(&ports, |p| p == 22 || p == 5222);
        let listed: Vec<u16> = kept.iter().map(|p| p.port).collect();
        assert_eq!(listed, [22, 443, 5222, 8443]);
        assert_eq!(swept.ports.len(), 65535);
        assert_eq!(swept.filtered_not_listed, 65535 - 5);
        assert_eq!(swept.unreachable_not_listed, 0);

        // A short sweep lists its few filtered ports, as before.
        let few: Vec<PortResult> = (8000..8010).map(|p| port(p, PortState::Filtered)).collect();
        let (kept, swept) = history_view(&few, |_| false);
        assert_eq!(kept, few);
        assert_eq!(swept.filtered_not_listed, 0);

        // A host the network says is unreachable: counted, not listed.
        let gone: Vec<PortResult> = (1..=1000)
            .map(|p| port(p, PortState::Unreachable))
            .collect();
        let (kept, swept) = history_view(&gone, |_| false);
        assert!(kept.is_empty());
        assert_eq!(swept.unreachable_not_listed, 1000);
        assert_eq!(swept.filtered_not_listed, 0);
    }
}
