//! Alerts and what they tell people: opening and resolving alert records,
//! queueing one notification per interested contact in the outbox,
//! acknowledging an alert (the rules the REST API and the web console
//! share) and an alert's title.

use crate::app::App;
pub(crate) use crate::ending::Ending;
use crate::http::error::ApiError;
use vigil_core::listener::PortDetails;
use vigil_core::{Condition, ConditionKind};
use vigil_notify::{EventKind, Notification, Severity};
use vigil_proto::agent::PortForward;
use vigil_store::{
    now_unix, AckOutcome, Agent, Alert, AlertId, AlertStatus, Role, StoreError, UnixTime, User,
};

/// The alert target of conditions about the agent itself (not a scanned host).
pub(crate) const AGENT_TARGET: &str = "agent";

/// One thing to tell the contacts of an agent.
pub(crate) struct Occurrence<'a> {
    pub agent: &'a Agent,
    pub event: EventKind,
    pub severity: Severity,
    /// The scanned host or address, for people.
    pub target: Option<String>,
    pub port: Option<u16>,
    pub title: String,
    pub details: String,
    /// Shared by an alert and its recovery (receivers group on it).
    pub group_key: String,
    /// Unique per occurrence: the outbox sends each key once per contact.
    pub outbox_key: String,
    pub at: UnixTime,
}

/// What kind of event raising or clearing a condition is.
pub(crate) fn event_for(condition: Condition, raised: bool) -> (EventKind, Severity) {
    match (condition.kind, raised) {
        (ConditionKind::UnauthorizedOpen, true) => {
            (EventKind::UnauthorizedPortOpen, Severity::Critical)
        }
        (ConditionKind::UnauthorizedOpen, false) => {
            (EventKind::UnauthorizedPortOpen, Severity::Recovery)
        }
        (ConditionKind::ServiceDown, true) => (EventKind::ServiceDown, Severity::Critical),
        (ConditionKind::ServiceDown, false) => (EventKind::ServiceRecovered, Severity::Recovery),
        (ConditionKind::TargetUnreachable, true) => {
            (EventKind::TargetUnreachable, Severity::Warning)
        }
        (ConditionKind::TargetUnreachable, false) => {
            (EventKind::TargetReachable, Severity::Recovery)
        }
        (ConditionKind::AgentNotCommunicating, true) => {
            (EventKind::AgentNotCommunicating, Severity::Critical)
        }
        (ConditionKind::AgentNotCommunicating, false) => (EventKind::AgentBack, Severity::Recovery),
        (ConditionKind::NewDevice, true) => (EventKind::NewDevice, Severity::Warning),
        (ConditionKind::NewDevice, false) => (EventKind::NewDevice, Severity::Recovery),
        // What listens on an authorized port changed: an event of its
        // own (rules for "*" include it), as a warning.
        (ConditionKind::ProcessChanged, true) => (EventKind::ProcessChanged, Severity::Warning),
        (ConditionKind::ProcessChanged, false) => (EventKind::ProcessChanged, Severity::Recovery),
    }
}

/// Where an alert stands, for its title and notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage<'a> {
    /// Raised and not over.
    Open,
    /// Over, for this reason; `None` for alerts resolved before Vigil
    /// recorded why.
    Over(Option<Ending<'a>>),
}

impl<'a> Stage<'a> {
    /// Where `alert` stands, as stored.
    pub(crate) fn of(alert: &'a Alert) -> Stage<'a> {
        match alert.status {
            AlertStatus::Open => Stage::Open,
            AlertStatus::Resolved => Stage::Over(Ending::of(alert)),
        }
    }
}

/// Where an alert is, for people: `agent "home"` or `the agent's host (agent "home")`.
fn place(agent: &Agent, target: &str) -> String {
    if target == AGENT_TARGET {
        format!("agent {:?}", agent.name)
    } else {
        format!("{} (agent {:?})", target_label(target), agent.name)
    }
}

/// A one-line title for an alert, or for its end (which says why it ended).
pub(crate) fn title(agent: &Agent, target: &str, condition: Condition, stage: Stage<'_>) -> String {
    let forward = vigil_core::lan::policy::forward_protocol(target).map(str::to_uppercase);
    let place = place(agent, target);
    match stage {
        Stage::Open => raised_title(agent, &place, forward.as_deref(), condition),
        Stage::Over(Some(ending)) => {
            let at = crate::ending::Place {
                place: &place,
                agent: &agent.name,
                forward: forward.as_deref(),
            };
            crate::ending::title(&at, condition, ending)
        }
        // Why it ended was not recorded: no claim about how.
        Stage::Over(None) => format!(
            "{} (resolved)",
            raised_title(agent, &place, forward.as_deref(), condition)
        ),
    }
}

fn raised_title(agent: &Agent, place: &str, forward: Option<&str>, condition: Condition) -> String {
    if let (Some(proto), Some(p), ConditionKind::UnauthorizedOpen) =
        (forward, condition.port, condition.kind)
    {
        return format!(
            "Router forwards {proto} {p} from outside, not authorized (agent {:?})",
            agent.name
        );
    }
    match (condition.kind, condition.port) {
        (ConditionKind::UnauthorizedOpen, Some(p)) => {
            format!("Unauthorized port {p}/tcp open on {place}")
        }
        (ConditionKind::ServiceDown, Some(p)) => {
            format!("Service on port {p}/tcp down on {place}")
        }
        (ConditionKind::TargetUnreachable, _) => format!("{place} unreachable"),
        (ConditionKind::AgentNotCommunicating, _) => {
            format!("Agent {:?} is not communicating", agent.name)
        }
        (ConditionKind::NewDevice, _) => format!("New {place} on the network"),
        (ConditionKind::ProcessChanged, Some(p)) => {
            format!("Port {p}/tcp served by another program on {place}")
        }
        (_, None) => format!("{condition} on {place}"),
    }
}

/// A policy target key for people: `agent_host` → "the agent's host".
pub(crate) fn target_label(key: &str) -> String {
    if let Some(label) = vigil_core::lan::policy::target_label(key, crate::devices::vendor_of) {
        return label;
    }
    match vigil_core::PolicyTarget::from_key(key) {
        Ok(vigil_core::PolicyTarget::AgentHost) => "the agent's host".into(),
        Ok(vigil_core::PolicyTarget::ObservedAddress) => "the location's public address".into(),
        Ok(vigil_core::PolicyTarget::Host(h)) => h,
        Ok(vigil_core::PolicyTarget::LocalNetwork) => "the local network".into(),
        Ok(vigil_core::PolicyTarget::Network(n)) => format!("network {n}"),
        Err(_) if key == vigil_core::policy::NETWORK_TASK_KEY => "the local network".into(),
        Err(_) => key.to_string(),
    }
}

/// What to do about it, a few lines; for an alert that is over, what ended it.
fn details(condition: Condition, stage: Stage<'_>) -> String {
    let raised = match stage {
        Stage::Open => true,
        Stage::Over(ending) => {
            return crate::ending::details(condition, ending.unwrap_or(Ending::CLEARED))
        }
    };
    match (condition.kind, raised) {
        (ConditionKind::UnauthorizedOpen, true) => {
            "A port that is not on the authorized list accepts connections. \
             If it should be open, add it to the authorized ports of the security scan; \
             otherwise find and stop the service or close it in the firewall."
                .into()
        }
        (ConditionKind::ServiceDown, true) => "A monitored port stopped accepting connections. \
             Check the service and the network path to it."
            .into(),
        (ConditionKind::TargetUnreachable, true) => "The scanned host did not answer on any port. \
             It may be down, disconnected, or its name may not resolve."
            .into(),
        (ConditionKind::AgentNotCommunicating, true) => {
            "The agent has stopped calling in. The location may have lost power or \
             its connection; its security scan is suspended until it communicates again."
                .into()
        }
        (ConditionKind::NewDevice, true) => {
            "A device that was not on the location's network before answered the agent's \
             sweep. If you know it, approve it on the agent's Devices page (its open ports \
             become its authorized ports); otherwise find it by its address and MAC."
                .into()
        }
        (ConditionKind::ProcessChanged, true) => {
            "An authorized port is now served by another program than in the previous \
             scan. If the change was expected (an update, a replaced service), nothing needs \
             doing; otherwise find out what started the new program."
                .into()
        }
        (_, false) => "The condition is over; no action needed.".into(),
    }
}

/// What the gateway said of the forward behind a raised forward alert
/// (`forward:<proto>`, port `port`), from the location's latest sweep:
/// where it goes and who added it.
pub(crate) fn forward_details(forwards: &[PortForward], proto: &str, port: u16) -> Option<String> {
    let f = forwards
        .iter()
        .find(|f| f.protocol.eq_ignore_ascii_case(proto) && f.external_port == port)?;
    let by = match f.source.as_str() {
        "upnp" => "added by UPnP".to_string(),
        other => format!("learned by {other}"),
    };
    let what = if f.description.is_empty() {
        String::new()
    } else {
        format!(" as {:?}", f.description)
    };
    let from = if f.remote_host.is_empty() {
        "anyone on the Internet".to_string()
    } else {
        f.remote_host.clone()
    };
    Some(format!(
        "The router forwards {} {port} from {from} to {}:{} ({by}{what}). Remove the \
         forward (or stop the program that asked for it), or add {port} to the authorized \
         ports of the security scan if it should be reachable.",
        proto.to_uppercase(),
        f.internal_client,
        f.internal_port
    ))
}

/// An alert's title and details with what listens on its port: the title
/// ends with the process (or the service and what it announces), the
/// details list every fact and then `note` (what changed).
pub(crate) fn with_listening(
    title: String,
    details: String,
    listening: &PortDetails,
    note: Option<&str>,
) -> (String, String) {
    let title = match listening.summary() {
        Some(what) => format!("{title}: {what}"),
        None => title,
    };
    let mut lines: Vec<String> = listening
        .facts()
        .into_iter()
        .map(|(label, value)| format!("{label}: {value}"))
        .collect();
    if let Some(note) = note {
        lines.push(note.to_string());
    }
    if lines.is_empty() {
        return (title, details);
    }
    (title, format!("{details}\n\n{}", lines.join("\n")))
}

/// The key receivers group an alert and its recovery under.
pub(crate) fn group_key(agent: &Agent, target: &str, condition: Condition) -> String {
    match condition.port {
        Some(p) => format!("{}:{target}:{:?}:{p}", agent.id, condition.kind),
        None => format!("{}:{target}:{:?}", agent.id, condition.kind),
    }
}

impl App {
    /// Opens (or finds) the alert for `condition` and tells the contacts.
    pub(crate) async fn raise(
        &self,
        agent: &Agent,
        target: &str,
        condition: Condition,
        now: UnixTime,
    ) -> Result<Alert, StoreError> {
        let alert = self
            .store
            .open_alert(agent.account_id, agent.id, target, condition, false, now)
            .await?;
        self.metrics.alert_opened(&alert, now);
        self.announce(agent, target, &alert, now).await?;
        Ok(alert)
    }

    /// Resolves the open alert for `condition`, if any, for the reason in
    /// `ending`, and sends the notice that it is over (which says why).
    pub(crate) async fn clear(
        &self,
        agent: &Agent,
        target: &str,
        condition: Condition,
        ending: Ending<'_>,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let Some(open) = self
            .store
            .open_alert_for(agent.account_id, agent.id, target, condition)
            .await?
        else {
            return Ok(());
        };
        let alert = match self
            .store
            .resolve_alert_as(agent.account_id, open.id, now, ending.why, ending.by)
            .await
        {
            Ok(a) => a,
            Err(StoreError::NotFound) => return Ok(()), // resolved meanwhile
            Err(e) => return Err(e),
        };
        self.metrics.alert_resolved(alert.condition.kind);
        // Told as stored: resolved meanwhile by someone else, its first reason.
        self.announce(agent, target, &alert, now).await?;
        Ok(())
    }

    /// Tells the contacts that `alert` was raised or is over — unless a
    /// maintenance window covers the agent: then the notice is held
    /// (see [`crate::maintenance`]).
    async fn announce(
        &self,
        agent: &Agent,
        target: &str,
        alert: &Alert,
        now: UnixTime,
    ) -> Result<usize, StoreError> {
        if self.hold_if_in_maintenance(agent, alert, now).await? {
            return Ok(0);
        }
        self.announce_now(agent, target, alert, now).await
    }

    /// Tells a notice held during maintenance, now that it is over.
    pub(crate) async fn announce_released(
        &self,
        agent: &Agent,
        alert: &Alert,
        now: UnixTime,
    ) -> Result<usize, StoreError> {
        self.announce_now(agent, &alert.target, alert, now).await
    }

    async fn announce_now(
        &self,
        agent: &Agent,
        target: &str,
        alert: &Alert,
        now: UnixTime,
    ) -> Result<usize, StoreError> {
        let o = self.occurrence_of(agent, target, alert, now).await?;
        self.queue(o, Some(alert.id)).await
    }

    /// The notice that `alert` (of `agent`, on `target`) was raised or is
    /// over, as queued at `now` under `alert:<id>:raised|cleared`.
    pub(crate) async fn occurrence_of<'a>(
        &self,
        agent: &'a Agent,
        target: &str,
        alert: &Alert,
        now: UnixTime,
    ) -> Result<Occurrence<'a>, StoreError> {
        let stage = Stage::of(alert);
        let raised = stage == Stage::Open;
        let (event, severity) = event_for(alert.condition, raised);
        let phase = if raised { "raised" } else { "cleared" };
        let mut details = details(alert.condition, stage);
        let mut title = title(agent, target, alert.condition, stage);
        let forward = vigil_core::lan::policy::forward_protocol(target);
        if let (true, Some(proto), Some(port)) = (raised, forward, alert.condition.port) {
            if let Some(text) = self.forward_details(agent, proto, port).await? {
                details = text;
            }
        }
        // What listens on the port, from the target's latest results.
        let says_what_listens = matches!(
            alert.condition.kind,
            ConditionKind::UnauthorizedOpen | ConditionKind::ProcessChanged
        );
        if let (true, true, None, Some(port)) =
            (raised, says_what_listens, forward, alert.condition.port)
        {
            let (listening, note) = self.listening(agent, target, port).await?;
            if let Some(listening) = listening {
                let note = note.filter(|_| alert.condition.kind == ConditionKind::ProcessChanged);
                (title, details) = with_listening(title, details, &listening, note.as_deref());
            }
        }
        Ok(Occurrence {
            agent,
            event,
            severity,
            target: (target != AGENT_TARGET).then(|| target_label(target)),
            port: alert.condition.port,
            title,
            details,
            group_key: group_key(agent, target, alert.condition),
            outbox_key: format!("alert:{}:{phase}", alert.id),
            at: now,
        })
    }

    /// What listens on `port` of `target`, from its latest stored result,
    /// and, when the program differs from the result before, which it was
    /// and is (`Program before: …`).
    pub(crate) async fn listening(
        &self,
        agent: &Agent,
        target: &str,
        port: u16,
    ) -> Result<(Option<PortDetails>, Option<String>), StoreError> {
        let recent = self
            .store
            .target_results(agent.account_id, agent.id, target, 2)
            .await?;
        let mut on_port = recent.into_iter().map(|r| {
            r.ports
                .into_iter()
                .find(|p| p.port == port)
                .and_then(|p| p.details)
                .map(|d| *d)
        });
        let latest = on_port.next().flatten();
        let before = on_port.next().flatten();
        let program = |d: &Option<PortDetails>| {
            d.as_ref()
                .and_then(|d| d.process.as_ref())
                .map(|p| p.program().to_string())
        };
        let note = match (program(&before), program(&latest)) {
            (Some(was), Some(is)) if was != is => {
                Some(format!("Program before: {was}\nProgram now: {is}"))
            }
            _ => None,
        };
        Ok((latest, note))
    }

    /// [`forward_details`] of the agent's latest sweep.
    async fn forward_details(
        &self,
        agent: &Agent,
        proto: &str,
        port: u16,
    ) -> Result<Option<String>, StoreError> {
        let Some(sweep) = self.store.network_sweep(agent.account_id, agent.id).await? else {
            return Ok(None);
        };
        let report = crate::devices::StoredReport::of(&sweep).unwrap_or_default();
        Ok(report
            .gateway
            .and_then(|g| forward_details(&g.forwards, proto, port)))
    }

    /// Queues the occurrence for every contact whose rules ask for its
    /// event kind on this agent; returns how many were queued.
    pub(crate) async fn notify(&self, o: Occurrence<'_>) -> Result<usize, StoreError> {
        self.queue(o, None).await
    }

    /// [`App::notify`]; notifications about `alert` are linked to it, so
    /// their delivery shows in the alert's history.
    async fn queue(&self, o: Occurrence<'_>, alert: Option<AlertId>) -> Result<usize, StoreError> {
        let contacts = self
            .store
            .rules_for(o.agent.account_id, o.agent.id, o.event.as_str())
            .await?;
        self.queue_to(o, alert, contacts).await
    }

    /// Queues the occurrence for `contacts`; returns how many were queued.
    /// A notice that `alert` is open carries, for each contact, a link that
    /// acknowledges it (when the server knows its console URL).
    pub(crate) async fn queue_to(
        &self,
        o: Occurrence<'_>,
        alert: Option<AlertId>,
        contacts: Vec<vigil_store::Contact>,
    ) -> Result<usize, StoreError> {
        if contacts.is_empty() {
            return Ok(0);
        }
        let account = o.agent.account_id;
        let account_name = self.store.account(account).await?.name;
        let mut notification = Notification {
            event: o.event,
            severity: o.severity,
            account: account_name,
            agent_name: o.agent.name.clone(),
            agent_id: o.agent.id.to_string(),
            target: o.target,
            port: o.port,
            occurred_at: o.at.into(),
            title: o.title,
            details: o.details,
            dedupe_key: o.group_key,
            console_url: self.cfg.console_url.clone(),
            delivery_id: None,
            ack_url: None,
        };
        let acknowledgeable = alert.filter(|_| o.severity != Severity::Recovery);
        let mut queued = 0;
        for contact in contacts {
            notification.ack_url =
                acknowledgeable.and_then(|a| self.ack_url(account, a, contact.id, o.at));
            let payload = serde_json::to_value(&notification)
                .map_err(|e| StoreError::Invalid(format!("cannot encode notification: {e}")))?;
            let new = match alert {
                Some(alert) => {
                    self.store
                        .enqueue_for_alert(
                            account,
                            alert,
                            &contact,
                            &o.outbox_key,
                            &notification.title,
                            &payload,
                            o.at,
                        )
                        .await?
                }
                None => {
                    self.store
                        .enqueue(account, contact.id, &o.outbox_key, &payload, o.at)
                        .await?
                }
            };
            if new {
                queued += 1;
            }
        }
        if queued > 0 {
            self.outbox_wake.notify_one();
        }
        Ok(queued)
    }

    /// The link that acknowledges `alert` for `contact`, valid for a day
    /// from `at`; `None` when the server does not know its console URL.
    fn ack_url(
        &self,
        account: vigil_store::AccountId,
        alert: AlertId,
        contact: vigil_store::ContactId,
        at: UnixTime,
    ) -> Option<String> {
        let base = self.cfg.console_url.as_deref()?;
        let token = crate::ack_link::token(
            &self.console_key,
            account,
            alert,
            contact,
            at + crate::ack_link::VALID_SECS,
        );
        Some(format!("{}/ack/{token}", base.trim_end_matches('/')))
    }
}

/// `user` acknowledges `alert` of their account with an optional note.
///
/// The rules: owners and admins may, viewers may not (403); only an open
/// alert can be acknowledged — a resolved one is a conflict (409), as is
/// one that someone else acknowledged already (the first acknowledgement
/// stays, with its note). Repeating your own acknowledgement changes
/// nothing and succeeds, so a retried request is harmless.
pub(crate) async fn acknowledge(
    app: &App,
    user: &User,
    from: Option<std::net::IpAddr>,
    alert: AlertId,
    note: Option<&str>,
) -> Result<Alert, ApiError> {
    may_acknowledge(user.role)?;
    let outcome = app
        .store
        .acknowledge_alert(user.account_id, alert, user, note, now_unix())
        .await?;
    let acked = ack_answer(outcome, &user.email)?;
    let actor = crate::audit::Actor {
        email: user.email.clone(),
        user_id: Some(user.id),
        from,
    };
    let detail = serde_json::json!({ "note": note });
    crate::audit::record(
        app,
        user.account_id,
        actor,
        "alert.ack",
        Some(&alert.to_string()),
        Some(detail),
    )
    .await;
    Ok(acked)
}

fn may_acknowledge(role: Role) -> Result<(), ApiError> {
    match role {
        Role::Owner | Role::Admin => Ok(()),
        Role::Viewer => Err(ApiError::Forbidden(
            "viewers may only read; ask an admin or owner of the account to acknowledge the alert"
                .into(),
        )),
    }
}

/// What an acknowledgement outcome means for `actor` (an email).
fn ack_answer(outcome: AckOutcome, actor: &str) -> Result<Alert, ApiError> {
    match outcome {
        AckOutcome::Acknowledged(a) => Ok(a),
        AckOutcome::AlreadyAcknowledged(a) if a.acknowledged_by.as_deref() == Some(actor) => Ok(a),
        AckOutcome::AlreadyAcknowledged(a) => Err(ApiError::Conflict(format!(
            "the alert was already acknowledged by {}; the first acknowledgement stays",
            a.acknowledged_by.as_deref().unwrap_or("someone else")
        ))),
        AckOutcome::Resolved(_) => Err(ApiError::Conflict(
            "the alert is resolved: only open alerts can be acknowledged".into(),
        )),
    }
}

/// One line for people: "Unauthorized port 23/tcp open on …".
pub(crate) fn alert_title(a: &Alert, agent: Option<&Agent>) -> String {
    match agent {
        Some(agent) => title(agent, &a.target, a.condition, Stage::of(a)),
        None => a.condition.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::Resolution;
    use vigil_store::{AccountId, AgentId};

    #[test]
    fn every_condition_has_an_alert_and_a_recovery_event() {
        let conditions = [
            Condition::unauthorized_open(23),
            Condition::service_down(443),
            Condition::target_unreachable(),
            Condition::agent_not_communicating(),
            Condition::process_changed(443),
        ];
        for c in conditions {
            let (up, up_sev) = event_for(c, true);
            let (down, down_sev) = event_for(c, false);
            assert_ne!(up_sev, Severity::Recovery, "{c:?}");
            assert_eq!(down_sev, Severity::Recovery, "{c:?}");
            assert_ne!(up, EventKind::Test);
            assert_ne!(down, EventKind::Test);
        }
        assert_eq!(
            event_for(Condition::service_down(80), false).0,
            EventKind::ServiceRecovered
        );
        assert_eq!(
            event_for(Condition::agent_not_communicating(), false).0,
            EventKind::AgentBack
        );
    }

    #[test]
    fn alerts_say_what_is_listening() {
        use vigil_core::listener::{HttpSummary, ProcessInfo};
        let listening = PortDetails {
            service: Some("http-alt".into()),
            http: Some(HttpSummary {
                server: Some("SimpleHTTP/0.6 Python/3.11.2".into()),
                title: None,
            }),
            process: Some(ProcessInfo {
                name: "python3".into(),
                pid: 1234,
                user: Some("www-data".into()),
                exe: Some("/usr/bin/python3.11".into()),
                cmdline: Some("python3 -m http.server".into()),
            }),
            ..PortDetails::default()
        };
        let (title, details) = with_listening(
            "Unauthorized port 8080/tcp open on the agent's host (agent \"home\")".into(),
            "Find the service.".into(),
            &listening,
            None,
        );
        assert_eq!(
            title,
            "Unauthorized port 8080/tcp open on the agent's host (agent \"home\"): \
             python3 -m http.server (pid 1234, user www-data, /usr/bin/python3.11)"
        );
        assert_eq!(
            details,
            "Find the service.\n\n\
             Process: python3 -m http.server (pid 1234, user www-data, /usr/bin/python3.11)\n\
             Service: http-alt\n\
             HTTP server: SimpleHTTP/0.6 Python/3.11.2"
        );
        // Nothing known: as before.
        let (t, d) = with_listening("T".into(), "D".into(), &PortDetails::default(), None);
        assert_eq!((t.as_str(), d.as_str()), ("T", "D"));
        let (_, d) = with_listening(
            "T".into(),
            "D".into(),
            &listening,
            Some("Program before: x"),
        );
        assert!(d.ends_with("\nProgram before: x"), "{d}");
    }

    fn alert(by: Option<&str>, status: AlertStatus) -> Alert {
        Alert {
            id: AlertId::random(),
            account_id: AccountId::random(),
            agent_id: AgentId::random(),
            target: "agent_host".into(),
            condition: Condition::unauthorized_open(23),
            status,
            flapping: false,
            raised_at: 1,
            resolved_at: None,
            resolution: None,
            resolved_by: None,
            acknowledged_at: by.map(|_| 2),
            acknowledged_by: by.map(String::from),
            ack_note: None,
        }
    }

    #[test]
    fn forward_alerts_say_what_is_forwarded_and_by_whom() {
        let forward = PortForward {
            protocol: "UDP".into(),
            external_port: 3389,
            internal_client: "198.51.100.23".into(),
            internal_port: 3390,
            description: "Remote Desktop".into(),
            enabled: true,
            remote_host: String::new(),
            lease_secs: 0,
            source: "upnp".into(),
        };
        let text = forward_details(std::slice::from_ref(&forward), "udp", 3389).expect("found");
        assert!(
            text.starts_with(
                "The router forwards UDP 3389 from anyone on the Internet to \
                 198.51.100.23:3390 (added by UPnP as \"Remote Desktop\")"
            ),
            "{text}"
        );
        assert_eq!(
            forward_details(std::slice::from_ref(&forward), "tcp", 3389),
            None
        );
        assert_eq!(forward_details(&[forward], "udp", 3390), None);
        let agent_row = crate::testing::agent("home", 0);
        let c = Condition::unauthorized_open(3389);
        assert_eq!(
            title(&agent_row, "forward:udp", c, Stage::Open),
            "Router forwards UDP 3389 from outside, not authorized (agent \"home\")"
        );
        assert_eq!(
            title(
                &agent_row,
                "forward:tcp",
                c,
                Stage::Over(Some(Ending::CLEARED))
            ),
            "Router no longer forwards TCP 3389 from outside (agent \"home\")"
        );
    }

    #[test]
    fn a_resolved_alert_is_titled_by_why_it_ended() {
        let agent = crate::testing::agent("home", 0);
        let place = "the agent's host (agent \"home\")";
        let resolved = |why, by: Option<&str>| Alert {
            resolved_at: Some(5),
            resolution: why,
            resolved_by: by.map(String::from),
            ..alert(None, AlertStatus::Resolved)
        };
        let cases = [
            (
                alert(None, AlertStatus::Open),
                format!("Unauthorized port 23/tcp open on {place}"),
            ),
            (
                resolved(Some(Resolution::Cleared), None),
                format!("Port 23/tcp no longer open on {place}"),
            ),
            (
                resolved(Some(Resolution::PolicyChanged), Some("alice@example.com")),
                format!(
                    "Port 23/tcp now authorized on {place} (policy changed by alice@example.com)"
                ),
            ),
            // Resolved before the reason was recorded: no claim it closed.
            (
                resolved(None, None),
                format!("Unauthorized port 23/tcp open on {place} (resolved)"),
            ),
        ];
        for (a, want) in cases {
            assert_eq!(alert_title(&a, Some(&agent)), want, "{a:?}");
        }
        let over = resolved(Some(Resolution::PolicyChanged), Some("alice@example.com"));
        let text = details(over.condition, Stage::of(&over));
        assert!(
            text.contains("may still be open") && text.contains("alice@example.com"),
            "{text}"
        );
    }

    #[test]
    fn who_may_acknowledge() {
        for (role, ok) in [
            (Role::Owner, true),
            (Role::Admin, true),
            (Role::Viewer, false),
        ] {
            match may_acknowledge(role) {
                Ok(()) => assert!(ok, "{role}"),
                Err(ApiError::Forbidden(m)) => assert!(!ok && m.contains("viewers"), "{role}: {m}"),
                Err(e) => panic!("{role}: {e:?}"),
            }
        }
    }

    #[test]
    fn what_an_outcome_means() {
        let me = "me@acme.example";
        let open = AlertStatus::Open;
        for (outcome, want) in [
            (AckOutcome::Acknowledged(alert(Some(me), open)), Ok(())),
            // Your own acknowledgement again: harmless.
            (
                AckOutcome::AlreadyAcknowledged(alert(Some(me), open)),
                Ok(()),
            ),
            (
                AckOutcome::AlreadyAcknowledged(alert(Some("bob@acme.example"), open)),
                Err("already acknowledged by bob@acme.example"),
            ),
            (
                AckOutcome::Resolved(alert(None, AlertStatus::Resolved)),
                Err("resolved"),
            ),
            (
                AckOutcome::Resolved(alert(Some(me), AlertStatus::Resolved)),
                Err("only open alerts"),
            ),
        ] {
            let shown = format!("{outcome:?}");
            match (ack_answer(outcome, me), want) {
                (Ok(_), Ok(())) => {}
                (Err(ApiError::Conflict(m)), Err(needle)) => {
                    assert!(m.contains(needle), "{shown}: {m}")
                }
                (got, want) => panic!("{shown}: got {got:?}, want {want:?}"),
            }
        }
    }
}
