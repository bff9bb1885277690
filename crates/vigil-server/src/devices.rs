//! The location's whole network: the local-network sweep handed to an
//! agent, and the inventory its results build (see `vigil_core::lan`);
//! [`location`]: the inventory as lists and pages show it.

mod location;

pub(crate) use location::{Location, Reviewer};

use crate::app::App;
use crate::audit::Actor;
use crate::evaluate::IngestError;
use serde::Serialize;
use vigil_core::compliance::names::clean_host_name;
use vigil_core::lan::{
    device_target, forward_target, review, scope, Arrival, Coverage, Device, InventoryChange,
    MacAddr, Review, Sighting, UnreviewedDevices,
};
use vigil_core::policy::NETWORK_TASK_KEY;
use vigil_core::{
    evaluate, Change, Condition, Event, Observation, PortList, PortState, Resolution,
};
use vigil_core::{AccountKind, PolicyTarget, SecurityPolicy};
use vigil_proto::agent::{
    GatewayReport, InterfaceReport, NetworkSweep, NetworkUpload, SkippedNetwork, UploadStatus,
};
use vigil_store::{
    now_unix, AccountId, Agent, AgentId, DeviceId, DevicePatch, NewNetworkSweep, StoreError,
    SweepIngest, UnixTime,
};

/// What the agent's sweep of its location covers, from its policy.
pub(crate) fn sweep_of(policy: &SecurityPolicy, kind: AccountKind) -> NetworkSweep {
    let local = policy.targets.contains(&PolicyTarget::LocalNetwork);
    NetworkSweep {
        local,
        include_interfaces: policy.include_interfaces.clone(),
        networks: policy.added_networks().map(str::to_string).collect(),
        max_addresses: u64::try_from(scope::sweep_limit(kind)).unwrap_or(u64::MAX),
        // The gateway is on the agent's own network.
        audit_gateway: local,
    }
}

/// How `device` looks under `policy` (`None`: the defaults of a new
/// policy — no device kinds, unreviewed devices' open ports unauthorized)
/// and how it `arrival`ed (see `vigil_core::lan::review`). The one rule
/// the sweep's alerts, the REST API and the console share.
pub(crate) fn review_of(
    device: &Device,
    policy: Option<&SecurityPolicy>,
    arrival: Arrival,
) -> Review {
    match policy {
        Some(p) => review(device, &p.device_kinds, p.unreviewed_devices, arrival),
        None => review(device, &[], UnreviewedDevices::default(), arrival),
    }
}

/// Applies a user's decisions about a device (REST and console), audited.
/// Approving it ends its *new device* alert.
pub(crate) async fn decide(
    app: &App,
    account: AccountId,
    actor: Actor,
    agent: AgentId,
    device: DeviceId,
    patch: &DevicePatch,
) -> Result<Device, StoreError> {
    let d = app
        .store
        .update_device(account, agent, device, patch)
        .await?;
    let detail = serde_json::json!({
        "approved": patch.approved,
        "kind": patch.kind,
        "authorized": patch.authorized.as_ref().map(|a| a.as_ref().map(ToString::to_string)),
        "monitored": patch.monitored,
    });
    let label = d
        .address()
        .map(|a| a.to_string())
        .unwrap_or_else(|| d.id.clone());
    let actor_email = actor.email.clone();
    crate::audit::record(
        app,
        account,
        actor,
        "device.update",
        Some(&label),
        Some(detail),
    )
    .await;
    if patch.approved == Some(true) {
        if let Some(key) = device_target(&d) {
            let agent = app.store.agent(account, agent).await?;
            let ending = crate::alert::Ending {
                why: vigil_core::Resolution::Cleared,
                by: Some(&actor_email),
            };
            app.clear(&agent, &key, Condition::new_device(), ending, now_unix())
                .await?;
        }
    }
    Ok(d)
}

/// *Approve device*: reviewed, and what it has open now is its own
/// authorized list (unless it already has one, or its kind's applies).
pub(crate) async fn approve(
    app: &App,
    account: AccountId,
    actor: Actor,
    agent: AgentId,
    device: DeviceId,
) -> Result<Device, StoreError> {
    let current = app.store.device(account, agent, device).await?;
    let authorized = (current.authorized.is_none() && current.kind.is_none())
        .then(|| Some(PortList::from_ports(current.open_ports.iter().copied())));
    let patch = DevicePatch {
        approved: Some(true),
        authorized,
        ..DevicePatch::default()
    };
    decide(app, account, actor, agent, device, &patch).await
}

/// The part of a stored sweep shown beside the inventory, as read back
/// (written by [`App::ingest_network`] as a [`Report`]).
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct StoredReport {
    #[serde(default)]
    pub interfaces: Vec<InterfaceReport>,
    #[serde(default)]
    pub swept: Vec<String>,
    #[serde(default)]
    pub skipped: Vec<SkippedNetwork>,
    #[serde(default)]
    pub gateway: Option<GatewayReport>,
    #[serde(default)]
    pub incomplete: Option<String>,
}

impl StoredReport {
    /// The report of `sweep`. This server wrote it; an error means it was
    /// tampered with (the API says so, the console shows an empty report).
    pub(crate) fn of(sweep: &vigil_store::StoredSweep) -> Result<StoredReport, serde_json::Error> {
        serde_json::from_str(&sweep.report)
    }
}

/// The part of a sweep shown beside the inventory.
#[derive(Debug, Serialize)]
struct Report<'a> {
    interfaces: &'a [InterfaceReport],
    swept: &'a [String],
    skipped: &'a [SkippedNetwork],
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: Option<&'a GatewayReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    incomplete: Option<&'a str>,
}

/// The vendor of a MAC, from the IEEE registry built into the binary.
pub(crate) fn vendor_of(mac: MacAddr) -> Option<String> {
    vigil_oui::vendor(mac.octets()).map(str::to_string)
}

/// A sighting as stored: names come from the scanned network, so only a
/// clean one is kept.
fn cleaned(s: &Sighting) -> Sighting {
    let mut s = s.clone();
    s.name = s.name.as_deref().and_then(clean_host_name);
    if s.name.is_none() {
        s.name_source = None;
    }
    s.open_ports.sort_unstable();
    s.open_ports.dedup();
    s
}

impl App {
    /// Stores a finished local-network sweep once and merges it into the
    /// location's inventory.
    pub(crate) async fn ingest_network(
        &self,
        agent: &Agent,
        upload: &NetworkUpload,
        now: UnixTime,
    ) -> Result<UploadStatus, IngestError> {
        let (task_id, task) = match self
            .upload_task(agent, &upload.task_id, now, || {
                self.store
                    .has_network_upload(agent.account_id, agent.id, &upload.upload_id)
            })
            .await?
        {
            Ok(open) => open,
            Err(status) => return Ok(status),
        };
        if task.target_key != NETWORK_TASK_KEY {
            return Err(IngestError::Rejected(format!(
                "task {} is not a network sweep: its result goes to the results endpoint",
                upload.task_id
            )));
        }
        let report = Report {
            interfaces: &upload.interfaces,
            swept: &upload.swept,
            skipped: &upload.skipped,
            gateway: upload.gateway.as_ref(),
            incomplete: upload.incomplete.as_deref(),
        };
        let report = serde_json::to_string(&report)
            .map_err(|e| IngestError::Rejected(format!("unusable sweep report: {e}")))?;
        let sightings: Vec<Sighting> = upload.devices.iter().map(cleaned).collect();
        // The first sweep of a location is its baseline: what is there is
        // not new.
        let baseline = self
            .store
            .network_sweep(agent.account_id, agent.id)
            .await?
            .is_none();
        let sweep = NewNetworkSweep {
            upload_id: &upload.upload_id,
            task_id: &upload.task_id,
            started_at: upload.started_at,
            finished_at: upload.finished_at,
            report: &report,
            sightings: &sightings,
            // A sweep that may have missed devices takes none for gone.
            coverage: if upload.incomplete.is_some() {
                Coverage::Partial
            } else {
                Coverage::Complete
            },
        };
        let stored = self
            .store
            .ingest_network_sweep(agent.account_id, agent.id, &sweep, now, vendor_of)
            .await
            .map_err(|e| match e {
                StoreError::Invalid(msg) => IngestError::Rejected(msg),
                e => IngestError::Store(e),
            })?;
        self.metrics
            .result_ingested(&task.target_key, stored != SweepIngest::Duplicate);
        let SweepIngest::Stored { changes, devices } = stored else {
            return Ok(UploadStatus::Duplicate);
        };
        self.store
            .complete_task(agent.account_id, agent.id, task_id, now)
            .await?;
        for change in &changes {
            match change {
                InventoryChange::Joined { id } => {
                    tracing::info!(agent = %agent.id, device = %id, "new device on the network");
                }
                InventoryChange::Moved { id, from, to } => {
                    tracing::info!(agent = %agent.id, device = %id, ?from, ?to, "device moved to another address");
                }
                InventoryChange::Left { id } | InventoryChange::Returned { id } => {
                    tracing::debug!(agent = %agent.id, device = %id, ?change, "device presence changed");
                }
            }
        }
        tracing::info!(
            agent = %agent.id,
            devices = devices.len(),
            present = devices.iter().filter(|d| d.present).count(),
            changes = changes.len(),
            "network sweep stored"
        );
        let joined: Vec<&Device> = if baseline {
            Vec::new()
        } else {
            let ids = vigil_core::lan::inventory::joined(&changes);
            devices
                .iter()
                .filter(|d| ids.contains(d.id.as_str()))
                .collect()
        };
        self.evaluate_network(
            agent,
            &task.ports,
            &devices,
            &joined,
            upload.gateway.as_ref(),
            now,
        )
        .await?;
        Ok(UploadStatus::Stored)
    }

    /// The alerts of a sweep: unauthorized open ports of devices, monitored
    /// devices gone, and port forwards the policy does not authorize (see
    /// `vigil_core::lan::policy`), each through the security scan's
    /// evaluation (damping, flapping, alerts, outbox).
    async fn evaluate_network(
        &self,
        agent: &Agent,
        task_ports: &str,
        devices: &[Device],
        joined: &[&Device],
        gateway: Option<&GatewayReport>,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let Some(policy) = self.store.policy(agent.account_id, agent.id).await? else {
            return Ok(());
        };
        let runs = matches!(
            self.scan_status(agent, Some(&policy), now),
            Some(vigil_core::ScanStatus::Active | vigil_core::ScanStatus::Suspended { .. })
        );
        if !runs || !policy.sweeps_networks() {
            return Ok(());
        }
        for d in joined {
            if let Some(key) = device_target(d) {
                self.raise(agent, &key, Condition::new_device(), now)
                    .await?;
            }
        }
        // What the server asked for; the agent's report of it is not trusted further.
        let scanned = PortList::parse(task_ports).unwrap_or_default();
        for d in devices {
            let Some(key) = device_target(d) else {
                continue;
            };
            if d.present {
                let Some(authorized) = review_of(d, Some(&policy), Arrival::default()).authorized
                else {
                    continue;
                };
                let ports = scanned
                    .iter()
                    .map(|p| {
                        let state = if d.open_ports.contains(&p) {
                            PortState::Open
                        } else {
                            PortState::Closed
                        };
                        (p, state)
                    })
                    .collect();
                let rules = rules_with(&policy, authorized);
                self.evaluate_target(
                    agent,
                    &rules,
                    &key,
                    &scanned,
                    &Observation::from_ports(ports),
                    now,
                )
                .await?;
            } else if d.monitored {
                let rules = rules_with(&policy, PortList::default());
                self.evaluate_target(
                    agent,
                    &rules,
                    &key,
                    &scanned,
                    &Observation::unreachable(),
                    now,
                )
                .await?;
            }
        }
        // A gateway that did not answer UPnP this time says nothing of its
        // forwards: keep what was known.
        let Some(g) = gateway.filter(|g| g.answered.iter().any(|a| a == "upnp")) else {
            return Ok(());
        };
        let rules = forward_rules(&policy);
        for proto in ["tcp", "udp"] {
            let forwarded: Vec<u16> = g
                .forwards
                .iter()
                .filter(|f| f.enabled && f.protocol.eq_ignore_ascii_case(proto))
                .map(|f| f.external_port)
                .collect();
            let universe = PortList::from_ports(forwarded.iter().copied()).union(&rules.authorized);
            let observation =
                Observation::from_ports(forwarded.iter().map(|p| (*p, PortState::Open)).collect());
            let key = forward_target(proto);
            let events = self
                .update_target(agent, &key, |state| {
                    let mut events = state.retain_ports(&universe);
                    events.extend(evaluate(state, &rules, &observation, &self.cfg.damping));
                    events
                })
                .await?;
            self.act_all(agent, &key, gone_forwards_cleared(events), None, now)
                .await?;
        }
        Ok(())
    }
}

/// A forward that is gone leaves the ports its evaluation looks at, so its
/// condition is dropped as no longer scanned; but that is the condition
/// over (the router no longer forwards the port), not a policy change.
fn gone_forwards_cleared(events: Vec<Event>) -> Vec<Event> {
    events
        .into_iter()
        .map(|e| match e.change {
            Change::Dropped(Resolution::NotScanned) => Event {
                change: Change::Cleared,
                ..e
            },
            _ => e,
        })
        .collect()
}

/// How the router's forwards are judged: a forward of a port the policy
/// authorizes or monitors is allowed.
pub(crate) fn forward_rules(policy: &SecurityPolicy) -> SecurityPolicy {
    rules_with(policy, policy.authorized.union(&policy.monitored))
}

/// The agent's policy with `authorized` as its only allowed ports and no
/// monitored ones: how one device (or the gateway's forwards) is judged.
fn rules_with(policy: &SecurityPolicy, authorized: PortList) -> SecurityPolicy {
    SecurityPolicy {
        authorized,
        monitored: PortList::default(),
        ..policy.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::{PortList, ScanInterval};

    #[test]
    fn the_sweep_follows_the_policy_and_the_plan() {
        let policy = SecurityPolicy {
            enabled: true,
            authorized: PortList::default(),
            monitored: PortList::default(),
            targets: vec![
                PolicyTarget::LocalNetwork,
                PolicyTarget::Network("198.51.100.0/24".into()),
                PolicyTarget::AgentHost,
            ],
            interval: ScanInterval::default(),
            include_interfaces: vec!["docker0".into()],
            unreviewed_devices: Default::default(),
            device_kinds: Vec::new(),
            process_change_alerts: false,
        };
        let sweep = sweep_of(&policy, AccountKind::Member);
        assert!(sweep.local && sweep.audit_gateway);
        assert_eq!(sweep.networks, vec!["198.51.100.0/24".to_string()]);
        assert_eq!(sweep.include_interfaces, vec!["docker0".to_string()]);
        assert_eq!(sweep.max_addresses, 1024);
        let mut only_added = policy.clone();
        only_added.targets.remove(0);
        let sweep = sweep_of(&only_added, AccountKind::Organization);
        assert!(!sweep.local && !sweep.audit_gateway);
        assert_eq!(sweep.max_addresses, 65_536);
    }

    #[test]
    fn a_forward_that_is_gone_is_over_and_an_authorized_one_is_a_policy_change() {
        let mut policy = SecurityPolicy {
            enabled: true,
            authorized: PortList::from_ports([443]),
            monitored: PortList::from_ports([22]),
            targets: vec![PolicyTarget::LocalNetwork],
            interval: ScanInterval::default(),
            include_interfaces: Vec::new(),
            unreviewed_devices: Default::default(),
            device_kinds: Vec::new(),
            process_change_alerts: false,
        };
        let cfg = vigil_core::DampingConfig::default();
        // As a sweep evaluates the forwards of one protocol.
        let sweep = |state: &mut vigil_core::TargetState, policy: &SecurityPolicy, fw: &[u16]| {
            let rules = forward_rules(policy);
            let universe = PortList::from_ports(fw.iter().copied()).union(&rules.authorized);
            let obs = Observation::from_ports(fw.iter().map(|p| (*p, PortState::Open)).collect());
            let mut events = state.retain_ports(&universe);
            events.extend(evaluate(state, &rules, &obs, &cfg));
            gone_forwards_cleared(events)
                .iter()
                .map(|e| (e.condition.port, e.change))
                .collect::<Vec<_>>()
        };
        let mut state = vigil_core::TargetState::new();
        // 22 and 443 are allowed (monitored, authorized); 3389 and 8080 not.
        assert_eq!(
            sweep(&mut state, &policy, &[22, 443, 3389, 8080]),
            [(Some(3389), Change::Raised), (Some(8080), Change::Raised)]
        );
        // The 3389 forward is removed: over, as the scans saw.
        assert_eq!(
            sweep(&mut state, &policy, &[22, 443, 8080]),
            [(Some(3389), Change::Cleared)]
        );
        // 8080 is authorized while still forwarded: a policy change.
        policy.authorized = PortList::from_ports([443, 8080]);
        assert_eq!(
            sweep(&mut state, &policy, &[22, 443, 8080]),
            [(Some(8080), Change::Dropped(Resolution::PolicyChanged))]
        );
        assert!(state.active_conditions().is_empty());
    }

    #[test]
    fn names_from_the_network_are_cleaned() {
        let s = Sighting {
            ip: "198.51.100.9".parse().unwrap(),
            mac: None,
            open_ports: vec![80, 22, 80],
            name: Some("evil\u{1b}[31m".into()),
            name_source: Some(vigil_core::compliance::names::NameSource::Dns),
        };
        let c = cleaned(&s);
        assert_eq!((c.name, c.name_source), (None, None));
        assert_eq!(c.open_ports, vec![22, 80]);
    }
}
