//! Agents: the list (server-side search, pages of 50: it stays small with
//! thousands of agents) and an agent's page with its security-scan policy
//! editor and last results.

use super::error::ConsoleError;
use super::form::{Form, Post};
use super::layout::{self, Page};
use super::session::Session;
use crate::agents::checked_policy;
use crate::alert::target_label;
use crate::app::{status_view, App};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use std::sync::Arc;
use vigil_core::lan::{DeviceKind, UnreviewedDevices};
use vigil_core::{
    contact_range, AccountKind, AgentHealth, Plan, PolicyTarget, PortList, PortState, ScanInterval,
    SecurityPolicy, MEMBER_INTERVALS,
};
use vigil_proto::api::ScanStatusView;
use vigil_store::{now_unix, Agent, AgentId, AgentQuery, ScanResult};

pub(crate) const PAGE_SIZE: u32 = 50;
/// At most this many port rows per target on an agent's page.
const MAX_PORT_ROWS: usize = 500;

/// One row of the agents table.
pub(crate) struct Line {
    pub id: String,
    pub name: String,
    pub health: &'static str,
    pub plan: Plan,
    pub scan: ScanStatusView,
    pub last_seen_at: Option<i64>,
    pub public_addr: Option<String>,
    pub hostname: Option<String>,
    pub tags: Vec<String>,
}

pub(crate) fn table(lines: &[Line]) -> Markup {
    layout::table_wrap(
        "Agents",
        html! {
            table {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Health" } th scope="col" { "Plan" }
                    th scope="col" { "Security scan" } th scope="col" { "Last seen" }
                    th scope="col" { "Public address" } th scope="col" { "Hostname" }
                    th scope="col" { "Tags" }
                } }
                tbody {
                    @for l in lines {
                        tr {
                            td { a href={ "/agents/" (l.id) } { (l.name) } }
                            td { (layout::badge(l.health)) }
                            td { (l.plan) }
                            td { (layout::badge(&l.scan.state)) }
                            td { (layout::maybe_time(l.last_seen_at)) }
                            td { (l.public_addr.as_deref().unwrap_or("—")) }
                            td { (l.hostname.as_deref().unwrap_or("—")) }
                            td {
                                @for (i, t) in l.tags.iter().enumerate() {
                                    @if i > 0 { " " }
                                    a.tag href={ "/agents?tag=" (t) } { (t) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Markup, ConsoleError> {
    let query = Form::query(query)?;
    let search = query.get("q").unwrap_or_default().trim().to_string();
    let healths = health_filter(&query.all("health"));
    let tag = query.get("tag").unwrap_or_default().trim().to_lowercase();
    let page = super::page_number(query.get("page"));
    let offset = (page - 1) * u64::from(PAGE_SIZE);
    let account = session.account.id;
    let now = u64::try_from(now_unix()).unwrap_or(0);
    let agent_query = AgentQuery {
        search: search.clone(),
        contact: (!healths.is_empty()).then(|| {
            healths
                .iter()
                .filter_map(|h| contact_range(*h, now, &app.cfg.liveness))
                .collect()
        }),
        tag: (!tag.is_empty()).then(|| tag.clone()),
    };
    let (agents, total) = app
        .store
        .agents_query(account, &agent_query, offset, PAGE_SIZE)
        .await?;
    let now = now_unix();
    let mut lines = Vec::with_capacity(agents.len());
    for a in &agents {
        let policy = app.store.policy(account, a.id).await?;
        lines.push(Line {
            id: a.id.to_string(),
            name: a.name.clone(),
            health: app.health_of(a, now).as_str(),
            plan: a.plan,
            scan: status_view(app.scan_status(a, policy.as_ref(), now)),
            last_seen_at: a.last_seen_at,
            public_addr: a.public_addr.clone(),
            hostname: a.hostname.clone(),
            tags: a.tags.clone(),
        });
    }
    let known_tags = app.store.agent_tags(account).await?;
    let outside = app.store.outside_schedule(account).await?;
    let pages = total.div_ceil(u64::from(PAGE_SIZE)).max(1);
    let link = |p: u64| {
        let mut q = vec![("q", search.clone())];
        q.extend(
            healths
                .iter()
                .map(|h| ("health", health_key(*h).to_string())),
        );
        if !tag.is_empty() {
            q.push(("tag", tag.clone()));
        }
        q.push(("page", p.to_string()));
        format!(
            "/agents?{}",
            serde_urlencoded::to_string(q).unwrap_or_default()
        )
    };
    let body = html! {
        h1 { "Agents" }
        form.search method="get" action="/agents" role="search" {
            label for="q" { "Search by name or hostname" }
            input #q type="search" name="q" value=(search);
            label for="tag" { "Tag" }
            input #tag type="text" name="tag" value=(tag) list="known-tags";
            datalist #known-tags { @for t in &known_tags { option value=(t) {} } }
            fieldset.inline {
                legend { "Health" }
                @for h in AgentHealth::ALL {
                    label.check {
                        input type="checkbox" name="health" value=(health_key(h)) checked[healths.contains(&h)];
                        (h.as_str())
                    }
                }
            }
            button type="submit" { "Search" }
        }
        p aria-live="polite" {
            (total) " agent" (if total == 1 { "" } else { "s" })
            @if !search.is_empty() { (if total == 1 { " matches" } else { " match" }) " “" (search) "”" }
            @if !tag.is_empty() { " tagged “" (tag) "”" }
            @if !healths.is_empty() {
                " ("
                @for (i, h) in healths.iter().enumerate() { @if i > 0 { " or " } (h.as_str()) }
                ")"
            }
            "."
            @if session.can_write() { " " a href="/enroll" { "Enroll an agent" } }
        }
        @if !lines.is_empty() { (table(&lines)) }
        (layout::pager(page, pages, link))
        p.hint {
            "Outside scans (observed addresses) probe " (outside) ". "
            a href="/outside-schedule" { "Outside scans" }
        }
    };
    Ok(layout::page(
        &session,
        Page {
            title: "Agents",
            nav: "/agents",
            refresh_secs: None,
        },
        body,
    ))
}

/// A health as the agents list's query names it (`?health=not_communicating`).
pub(crate) fn health_key(h: AgentHealth) -> &'static str {
    match h {
        AgentHealth::Communicating => "communicating",
        AgentHealth::NotCommunicating => "not_communicating",
        AgentHealth::Abandoned => "abandoned",
    }
}

/// The healths checked in the query, each once, in the usual order;
/// unknown values are ignored (an old bookmark still shows a list).
fn health_filter(values: &[&str]) -> Vec<AgentHealth> {
    AgentHealth::ALL
        .into_iter()
        .filter(|h| values.contains(&health_key(*h)))
        .collect()
}

/// What the policy editor shows: the stored policy, or what was submitted
/// when it was refused (so nothing typed is lost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Draft {
    pub enabled: bool,
    pub authorized: String,
    pub monitored: String,
    pub observed_address: bool,
    pub agent_host: bool,
    /// Explicit hosts, one per line.
    pub hosts: String,
    /// The agent sweeps its own subnets for devices.
    pub local_network: bool,
    /// Networks added to the sweep, one per line.
    pub networks: String,
    /// Interfaces left out by default that are included, one per line.
    pub include_interfaces: String,
    /// Open ports of unreviewed devices do not alert.
    pub unreviewed_report_only: bool,
    /// `kind: ports`, one per line.
    pub device_kinds: String,
    /// Another program on an authorized port of the agent's host alerts.
    pub process_change_alerts: bool,
    pub interval: String,
}

impl Draft {
    fn of(policy: Option<&SecurityPolicy>) -> Draft {
        match policy {
            None => Draft {
                enabled: false,
                authorized: String::new(),
                monitored: String::new(),
                observed_address: false,
                agent_host: true,
                hosts: String::new(),
                local_network: false,
                networks: String::new(),
                include_interfaces: String::new(),
                unreviewed_report_only: false,
                device_kinds: String::new(),
                process_change_alerts: false,
                interval: "60".into(),
            },
            Some(p) => Draft {
                enabled: p.enabled,
                authorized: p.authorized.to_string(),
                monitored: p.monitored.to_string(),
                observed_address: p.targets.contains(&PolicyTarget::ObservedAddress),
                agent_host: p.targets.contains(&PolicyTarget::AgentHost),
                hosts: p
                    .targets
                    .iter()
                    .filter_map(|t| match t {
                        PolicyTarget::Host(h) => Some(h.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
                local_network: p.targets.contains(&PolicyTarget::LocalNetwork),
                networks: p.added_networks().collect::<Vec<_>>().join("\n"),
                include_interfaces: p.include_interfaces.join("\n"),
                unreviewed_report_only: p.unreviewed_devices == UnreviewedDevices::ReportOnly,
                device_kinds: p
                    .device_kinds
                    .iter()
                    .map(|k| format!("{}: {}", k.name, k.authorized))
                    .collect::<Vec<_>>()
                    .join("\n"),
                process_change_alerts: p.process_change_alerts,
                interval: p.interval.minutes().to_string(),
            },
        }
    }

    pub(crate) fn from_form(f: &Form) -> Draft {
        let targets = f.all("target");
        Draft {
            enabled: f.get("enabled").is_some(),
            authorized: f.get("authorized").unwrap_or_default().trim().into(),
            monitored: f.get("monitored").unwrap_or_default().trim().into(),
            observed_address: targets.contains(&"observed_address"),
            agent_host: targets.contains(&"agent_host"),
            hosts: f.get("hosts").unwrap_or_default().trim().into(),
            local_network: targets.contains(&"local_network"),
            networks: f.get("networks").unwrap_or_default().trim().into(),
            include_interfaces: f
                .get("include_interfaces")
                .unwrap_or_default()
                .trim()
                .into(),
            unreviewed_report_only: f.get("unreviewed_report_only").is_some(),
            device_kinds: f.get("device_kinds").unwrap_or_default().trim().into(),
            process_change_alerts: f.get("process_change_alerts").is_some(),
            interval: f.get("interval").unwrap_or_default().trim().into(),
        }
    }

    /// The policy, before the shared rules ([`checked_policy`]) run;
    /// an error names the field.
    pub(crate) fn to_policy(&self) -> Result<SecurityPolicy, String> {
        let ports = |what: &str, spec: &str| {
            if spec.is_empty() {
                Ok(PortList::default())
            } else {
                PortList::parse(spec).map_err(|e| format!("{what}: {e}"))
            }
        };
        let mut targets = Vec::new();
        if self.observed_address {
            targets.push(PolicyTarget::ObservedAddress);
        }
        if self.agent_host {
            targets.push(PolicyTarget::AgentHost);
        }
        for h in self
            .hosts
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|h| !h.is_empty())
        {
            targets.push(PolicyTarget::Host(h.to_string()));
        }
        if self.local_network {
            targets.push(PolicyTarget::LocalNetwork);
        }
        for n in self
            .networks
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|n| !n.is_empty())
        {
            targets.push(PolicyTarget::Network(n.to_string()));
        }
        // Interface names may hold spaces (Windows: "Ethernet 2"): one per line.
        let include_interfaces = self
            .include_interfaces
            .lines()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        let minutes: u32 = self.interval.parse().map_err(|_| {
            format!(
                "interval: {:?} is not a whole number of minutes",
                self.interval
            )
        })?;
        Ok(SecurityPolicy {
            enabled: self.enabled,
            authorized: ports("authorized ports", &self.authorized)?,
            monitored: ports("monitored ports", &self.monitored)?,
            targets,
            interval: ScanInterval::try_from(minutes).map_err(|e| format!("interval: {e}"))?,
            include_interfaces,
            unreviewed_devices: if self.unreviewed_report_only {
                UnreviewedDevices::ReportOnly
            } else {
                UnreviewedDevices::OpenPortsAlert
            },
            device_kinds: self.kinds()?,
            process_change_alerts: self.process_change_alerts,
        })
    }

    /// `printer: 80,443,631,9100` lines.
    fn kinds(&self) -> Result<Vec<DeviceKind>, String> {
        self.device_kinds
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|line| {
                let (name, ports) = line.split_once(':').ok_or_else(|| {
                    format!(
                        "device kinds: {line:?} is not \"kind: ports\" (e.g. printer: 631,9100)"
                    )
                })?;
                let ports = ports.trim();
                let authorized = if ports.is_empty() {
                    PortList::default()
                } else {
                    PortList::parse(ports).map_err(|e| format!("device kinds: {e}"))?
                };
                Ok(DeviceKind {
                    name: name.trim().to_string(),
                    authorized,
                })
            })
            .collect()
    }
}

fn interval_label(minutes: u32) -> String {
    match minutes {
        m if m % 60 == 0 && m >= 60 => {
            let h = m / 60;
            format!("{h} hour{}", if h == 1 { "" } else { "s" })
        }
        m => format!("{m} minutes"),
    }
}

/// Why the editor (or its "enabled" switch) is off, if it is.
fn editor_lock(agent: &Agent) -> (Option<String>, Option<String>) {
    if agent.is_removed() {
        return (
            Some("The agent was removed; enroll it again to scan it.".into()),
            None,
        );
    }
    let enable = vigil_core::policy::can_run(agent.plan)
        .err()
        .map(|e| format!("{e}. A disabled policy can be prepared."));
    (None, enable)
}

pub(crate) fn editor(
    session: &Session,
    agent: &Agent,
    draft: &Draft,
    error: Option<&str>,
) -> Markup {
    let kind = session.account.kind;
    if !session.can_write() {
        return html! {
            p.hint { "Viewers may only read; ask an admin or owner of the account to change the policy." }
            dl.facts {
                dt { "Enabled" } dd { (if draft.enabled { "yes" } else { "no" }) }
                dt { "Authorized ports" } dd { (if draft.authorized.is_empty() { "none" } else { &draft.authorized }) }
                dt { "Monitored ports" } dd { (if draft.monitored.is_empty() { "none" } else { &draft.monitored }) }
                dt { "Targets" } dd {
                    @if draft.observed_address { "observed address " }
                    @if draft.agent_host { "agent host " }
                    @if draft.local_network { "local network " }
                    (draft.hosts.replace('\n', ", "))
                    " "
                    (draft.networks.replace('\n', ", "))
                }
                dt { "Interval" } dd { (draft.interval) " minutes" }
            }
        };
    }
    let (locked, enable_lock) = editor_lock(agent);
    let minutes: Option<u32> = draft.interval.parse().ok();
    html! {
        (layout::error(error))
        @if let Some(reason) = &locked { p.flash.error { (reason) } }
        form.stack method="post" action={ "/agents/" (agent.id) "/policy" } {
            (session.csrf_field())
            fieldset disabled[locked.is_some()] {
                legend { "Scan settings" }
                label.check for="enabled" {
                    input #enabled type="checkbox" name="enabled" value="on"
                        checked[draft.enabled && enable_lock.is_none()] disabled[enable_lock.is_some()];
                    "Scan enabled"
                }
                @if let Some(reason) = &enable_lock { p.hint #enabled-why { (reason) } }
                label for="authorized" { "Authorized ports" }
                input #authorized type="text" name="authorized" value=(draft.authorized)
                    placeholder="22,80,443" aria-describedby="ports-hint";
                label for="monitored" { "Monitored ports (expected open)" }
                input #monitored type="text" name="monitored" value=(draft.monitored)
                    placeholder="443" aria-describedby="ports-hint";
                p.hint #ports-hint { "Comma-separated ports and ranges, e.g. 22,8000-8100. Monitored ports are authorized too." }
                fieldset {
                    legend { "Targets" }
                    label.check for="t-observed" {
                        input #t-observed type="checkbox" name="target" value="observed_address" checked[draft.observed_address];
                        "The location's observed address (scanned from this server)"
                    }
                    label.check for="t-agent" {
                        input #t-agent type="checkbox" name="target" value="agent_host" checked[draft.agent_host];
                        "The agent's own host"
                    }
                    label for="hosts" { "Other hosts (one per line, scanned by the agent)" }
                    textarea #hosts name="hosts" rows="3" { (draft.hosts) }
                    label.check for="t-lan" {
                        input #t-lan type="checkbox" name="target" value="local_network" checked[draft.local_network]
                            aria-describedby="lan-hint";
                        "The local network: the agent sweeps its own subnets for devices"
                    }
                    p.hint #lan-hint {
                        "Every device that answers goes into the location's inventory. "
                        "Loopback, link-local, container bridges, virtual links and VPN tunnels are left out "
                        "unless included below; the latest sweep on the agent's Devices page lists each interface and why. "
                        "At most " (vigil_core::lan::sweep_limit(kind)) " addresses per location."
                    }
                    label for="networks" { "Networks added to the sweep (CIDR blocks or ranges, one per line)" }
                    textarea #networks name="networks" rows="2" placeholder="192.168.20.0/24" { (draft.networks) }
                    label for="include_interfaces" { "Interfaces to include although left out by default (one per line)" }
                    textarea #include_interfaces name="include_interfaces" rows="2" placeholder="docker0" { (draft.include_interfaces) }
                    label for="device_kinds" { "Ports devices may have open, by kind (one “kind: ports” per line)" }
                    textarea #device_kinds name="device_kinds" rows="2" placeholder="printer: 80,443,631,9100" { (draft.device_kinds) }
                    label.check for="unreviewed_report_only" {
                        input #unreviewed_report_only type="checkbox" name="unreviewed_report_only" value="on"
                            checked[draft.unreviewed_report_only];
                        "Devices nobody approved: do not alert on their open ports (otherwise any open port of theirs is unauthorized)"
                    }
                }
                label.check for="process_change_alerts" {
                    input #process_change_alerts type="checkbox" name="process_change_alerts" value="on"
                        checked[draft.process_change_alerts];
                    "Alert when another program serves an authorized port of the agent's host than in the previous scan"
                }
                label for="interval" { "Interval" }
                @match kind {
                    AccountKind::Member => {
                        select #interval name="interval" aria-describedby="interval-hint" {
                            @for m in MEMBER_INTERVALS {
                                option value=(m) selected[minutes == Some(m)] { (interval_label(m)) }
                            }
                        }
                        p.hint #interval-hint { "Member accounts choose from this list." }
                    }
                    AccountKind::Organization => {
                        input #interval type="number" name="interval" min="1" max="525600" step="1"
                            value=(draft.interval) aria-describedby="interval-hint";
                        p.hint #interval-hint { "Minutes between scans (organizations: any number from 1 to 525600)." }
                    }
                }
                button type="submit" { "Save policy" }
            }
        }
    }
}

/// The latest result of each target, and its port table: open ports with
/// their verdict under the policy, and monitored ports that are not open.
pub(crate) fn results_table(results: &[ScanResult], policy: Option<&SecurityPolicy>) -> Markup {
    let mut latest: Vec<&ScanResult> = Vec::new();
    for r in results {
        if !latest.iter().any(|l| l.target == r.target) {
            latest.push(r);
        }
    }
    html! {
        @if latest.is_empty() {
            p.muted { "No scan results yet." }
        }
        @for r in latest {
            h3 { (target_label(&r.target)) @if let Some(a) = &r.addr { " (" (a) ")" } }
            p.hint {
                "Finished " (layout::time(r.finished_at)) " · "
                (vigil_core::probed_summary(r.probed_count, r.probed_ports.as_deref(), r.ports.len(), r.not_listed))
            }
            @let rows: Vec<(u16, PortState, &str, PortFacts)> = r.ports.iter()
                .filter(|p| p.state == PortState::Open || policy.is_some_and(|pol| pol.is_monitored(p.port)))
                .take(MAX_PORT_ROWS)
                .map(|p| (p.port, p.state, verdict(p.port, p.state, policy), port_facts(p.details.as_deref())))
                .collect();
            @if rows.is_empty() {
                p { "No open ports." }
            } @else {
                (layout::table_wrap(&format!("Ports of {}", target_label(&r.target)), html! {
                    table {
                        thead { tr {
                            th scope="col" { "Port" } th scope="col" { "State" } th scope="col" { "Verdict" }
                            th scope="col" { "Service" } th scope="col" { "Process" } th scope="col" { "Announces" }
                        } }
                        tbody {
                            @for (port, state, v, facts) in &rows {
                                tr {
                                    td { (port) "/tcp" } td { (format!("{state:?}").to_lowercase()) } td { (v) }
                                    td { (facts.service) }
                                    td {
                                        @if let Some(p) = &facts.process {
                                            code { (p) }
                                        }
                                    }
                                    td {
                                        @for (i, line) in facts.announces.iter().enumerate() {
                                            @if i > 0 { br; }
                                            (line)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }))
            }
        }
    }
}

/// What listens on a port, for the port table's last three columns.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PortFacts {
    pub service: String,
    /// `python3 -m http.server (pid 1234, user nobody, /usr/bin/python3.11)`.
    pub process: Option<String>,
    /// `Banner: …`, `HTTP server: …`, `HTTP title: …`, `TLS certificate: …`.
    pub announces: Vec<String>,
}

pub(crate) fn port_facts(details: Option<&vigil_core::listener::PortDetails>) -> PortFacts {
    let Some(d) = details else {
        return PortFacts::default();
    };
    PortFacts {
        service: d.service.clone().unwrap_or_default(),
        process: d.process.as_ref().map(|p| p.summary()),
        announces: d
            .facts()
            .into_iter()
            .filter(|(label, _)| !matches!(*label, "Service" | "Process"))
            .map(|(label, value)| format!("{label}: {value}"))
            .collect(),
    }
}

fn verdict(port: u16, state: PortState, policy: Option<&SecurityPolicy>) -> &'static str {
    let Some(p) = policy else { return "no policy" };
    match (
        state == PortState::Open,
        p.is_monitored(port),
        p.is_authorized(port),
    ) {
        (true, true, _) => "monitored, up",
        (false, true, _) => "monitored, down",
        (true, false, true) => "authorized",
        (true, false, false) => "unauthorized",
        (false, false, _) => "",
    }
}

async fn detail_page(
    app: &App,
    session: &Session,
    agent: &Agent,
    draft: Option<Draft>,
    error: Option<&str>,
    done: Option<&str>,
) -> Result<Markup, ConsoleError> {
    let account = session.account.id;
    let policy = app.store.policy(account, agent.id).await?;
    let now = now_unix();
    let scan = status_view(app.scan_status(agent, policy.as_ref(), now));
    let results = app.store.results(account, agent.id, 20).await?;
    // The router's forwards, as the agent's latest LAN sweep asked them
    // from inside: shown beside the outside scan.
    let sweep = app.store.network_sweep(account, agent.id).await?;
    let gateway = sweep.as_ref().and_then(|s| {
        crate::devices::StoredReport::of(s)
            .ok()
            .and_then(|r| r.gateway)
            .map(|g| (s.finished_at, g))
    });
    let next_run = app.store.next_run(account, agent.id).await?;
    let maintenance = app.maintenance_of(agent, now).await?;
    let trend = crate::trends::trend(
        app,
        account,
        Some(agent.id),
        vigil_core::trend::TrendWindow::Month,
        now,
    )
    .await?;
    let draft = draft.unwrap_or_else(|| Draft::of(policy.as_ref()));
    let body = html! {
        p { a href="/agents" { "← Agents" } }
        h1 { "Agent " (agent.name) }
        (super::agent_history::tabs(agent.id, super::agent_history::Tab::Overview))
        (layout::flash(done))
        section.section aria-labelledby="facts-h" {
            h2 #facts-h { "Overview" }
            dl.facts {
                dt { "Health" } dd { (layout::badge(app.health_of(agent, now).as_str())) }
                dt { "Plan" } dd { (agent.plan) }
                dt { "Security scan" } dd {
                    (layout::badge(&scan.state))
                    @if let Some(r) = &scan.reason { " " (r) }
                }
                dt { "Next scan" } dd { (layout::maybe_time(next_run)) }
                @if let Some(m) = &maintenance {
                    dt { "Maintenance" } dd {
                        (layout::badge("in maintenance")) " “" (m.name) "” until " (layout::time(m.until))
                        " — alerts still show; notifications wait until it ends."
                    }
                }
                dt { "Tags" } dd {
                    @if session.can_write() {
                        form.inline method="post" action={ "/agents/" (agent.id) "/tags" } {
                            (session.csrf_field())
                            input #tags type="text" name="tags" value=(agent.tags.join(", "))
                                aria-label="Tags, separated by commas" placeholder="office, paris";
                            button.secondary type="submit" { "Save tags" }
                        }
                    } @else {
                        @if agent.tags.is_empty() { "—" } @else { (agent.tags.join(", ")) }
                    }
                }
                dt { "Last seen" } dd { (layout::maybe_time(agent.last_seen_at)) }
                dt { "Enrolled" } dd { (layout::time(agent.enrolled_at)) }
                dt { "Public address" } dd { (agent.public_addr.as_deref().unwrap_or("—")) }
                dt { "Hostname" } dd { (agent.hostname.as_deref().unwrap_or("—")) }
                dt { "OS" } dd { (agent.os.as_deref().unwrap_or("—")) }
                dt { "Version" } dd { (agent.version.as_deref().unwrap_or("—")) }
                dt { "ID" } dd { code { (agent.id) } }
            }
        }
        section.section aria-labelledby="trend-h" {
            h2 #trend-h { "Exposure, last 30 days" }
            (super::trend_chart::exposure(&format!("Agent {}", agent.name), &trend))
        }
        section.section aria-labelledby="policy-h" {
            h2 #policy-h { "Security scan policy" }
            (editor(session, agent, &draft, error))
        }
        section.section aria-labelledby="results-h" {
            h2 #results-h { "Last results" }
            (results_table(&results, policy.as_ref()))
            @if let Some((at, g)) = &gateway {
                h3 { "The router's port forwards" }
                p.hint { "Asked from inside by the agent's local-network sweep, " (layout::time(*at)) "." }
                (super::devices::gateway_forwards(g))
            }
        }
    };
    Ok(layout::page(
        session,
        Page {
            title: &format!("Agent {}", agent.name),
            nav: "/agents",
            refresh_secs: None,
        },
        body,
    ))
}

pub(crate) async fn detail(
    State(app): State<Arc<App>>,
    session: Session,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Markup, ConsoleError> {
    let agent = app
        .store
        .agent(session.account.id, super::path_id::<AgentId>(&id)?)
        .await?;
    let query = Form::query(query)?;
    let done = match query.get("done") {
        Some("saved") => Some("Policy saved."),
        Some("tags") => Some("Tags saved."),
        _ => None,
    };
    detail_page(&app, &session, &agent, None, None, done).await
}

/// `POST /agents/{id}/tags`: replaces the agent's tags (comma-separated).
pub(crate) async fn save_tags(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let id = super::path_id::<AgentId>(&id)?;
    let agent = app.store.agent(session.account.id, id).await?;
    let given: Vec<&str> = form
        .get("tags")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    match vigil_core::maintenance::normalize_tags(&given) {
        Ok(tags) => {
            app.store.set_tags(session.account.id, id, &tags).await?;
            crate::audit::record(
                &app,
                session.account.id,
                &session,
                "agent.tags",
                Some(&agent.name),
                Some(serde_json::json!({ "tags": tags })),
            )
            .await;
            Ok(Redirect::to(&format!("/agents/{id}?done=tags")).into_response())
        }
        Err(e) => {
            let page =
                detail_page(&app, &session, &agent, None, Some(&e.to_string()), None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

pub(crate) async fn save_policy(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let id = super::path_id::<AgentId>(&id)?;
    let agent = app.store.agent(session.account.id, id).await?;
    let draft = Draft::from_form(&form);
    let checked = draft
        .to_policy()
        .and_then(|p| checked_policy(&agent, session.account.kind, p).map_err(|e| e.to_string()));
    match checked {
        Ok(policy) => {
            crate::agents::save_policy(&app, &agent, &policy, (&session).into()).await?;
            Ok(Redirect::to(&format!("/agents/{id}?done=saved")).into_response())
        }
        Err(message) => {
            let page =
                detail_page(&app, &session, &agent, Some(draft), Some(&message), None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_filter_reads_checked_boxes_once_in_order() {
        use AgentHealth::*;
        let cases: &[(&[&str], &[AgentHealth])] = &[
            (&[], &[]),
            (&["abandoned", "communicating"], &[Communicating, Abandoned]),
            (
                &["not_communicating", "not_communicating"],
                &[NotCommunicating],
            ),
            (&["online", "NOT_COMMUNICATING", ""], &[]),
        ];
        for (values, want) in cases {
            assert_eq!(health_filter(values), *want, "{values:?}");
        }
        for h in AgentHealth::ALL {
            assert_eq!(health_filter(&[health_key(h)]), [h]);
        }
    }

    #[test]
    fn agent_names_are_escaped() {
        let line = Line {
            id: "1".into(),
            name: "<script>alert(1)</script>".into(),
            health: "communicating",
            plan: Plan::Extended,
            scan: status_view(None),
            last_seen_at: None,
            public_addr: Some("\"><img src=x onerror=alert(1)>".into()),
            hostname: None,
            tags: vec!["<b>".into()],
        };
        let html = table(&[line]).into_string();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
    }

    #[test]
    fn drafts_become_policies_or_name_the_field() {
        let form = Form::parse(
            b"enabled=on&authorized=22%2C80&monitored=443&target=agent_host&hosts=nas.example%0D%0A10.0.0.5&interval=15",
        )
        .unwrap();
        let p = Draft::from_form(&form).to_policy().unwrap();
        assert!(p.enabled);
        assert_eq!(p.authorized.to_string(), "22,80");
        assert_eq!(p.monitored.to_string(), "443");
        assert_eq!(
            p.targets,
            [
                PolicyTarget::AgentHost,
                PolicyTarget::Host("nas.example".into()),
                PolicyTarget::Host("10.0.0.5".into())
            ]
        );
        assert_eq!(p.interval.minutes(), 15);
        assert_eq!(Draft::of(Some(&p)).to_policy().unwrap(), p, "round trip");

        let form = Form::parse(
            b"target=local_network&networks=198.51.100.0%2F24%0D%0A198.18.0.1-198.18.0.9&include_interfaces=Ethernet+2%0D%0Adocker0&interval=15",
        )
        .unwrap();
        let p = Draft::from_form(&form).to_policy().unwrap();
        assert_eq!(
            p.targets,
            [
                PolicyTarget::LocalNetwork,
                PolicyTarget::Network("198.51.100.0/24".into()),
                PolicyTarget::Network("198.18.0.1-198.18.0.9".into()),
            ]
        );
        assert_eq!(p.include_interfaces, ["Ethernet 2", "docker0"]);
        let form = Form::parse(
            b"target=local_network&device_kinds=printer%3A+631%2C9100%0D%0Acamera%3A&unreviewed_report_only=on&interval=15",
        )
        .unwrap();
        let p = Draft::from_form(&form).to_policy().unwrap();
        assert_eq!(p.unreviewed_devices, UnreviewedDevices::ReportOnly);
        assert_eq!(p.device_kinds.len(), 2);
        assert_eq!(p.device_kinds[0].authorized.to_string(), "631,9100");
        assert!(p.device_kinds[1].authorized.is_empty());
        assert_eq!(Draft::of(Some(&p)).to_policy().unwrap(), p, "round trip");
        let bad =
            Form::parse(b"target=local_network&device_kinds=printer+631&interval=15").unwrap();
        assert!(Draft::from_form(&bad)
            .to_policy()
            .unwrap_err()
            .starts_with("device kinds:"));
        assert_eq!(Draft::of(Some(&p)).to_policy().unwrap(), p, "round trip");

        let bad = Form::parse(b"authorized=22%2Cssh&target=agent_host&interval=15").unwrap();
        let e = Draft::from_form(&bad).to_policy().unwrap_err();
        assert!(e.starts_with("authorized ports:"), "{e}");
        let bad = Form::parse(b"target=agent_host&interval=soon").unwrap();
        assert!(Draft::from_form(&bad)
            .to_policy()
            .unwrap_err()
            .starts_with("interval:"));
    }

    #[test]
    fn verdicts_follow_the_policy() {
        let p = SecurityPolicy {
            enabled: true,
            authorized: PortList::from_ports([22]),
            monitored: PortList::from_ports([443]),
            targets: vec![PolicyTarget::AgentHost],
            interval: ScanInterval::try_from(15).unwrap(),
            include_interfaces: Vec::new(),
            unreviewed_devices: Default::default(),
            device_kinds: Vec::new(),
            process_change_alerts: false,
        };
        assert_eq!(verdict(22, PortState::Open, Some(&p)), "authorized");
        assert_eq!(verdict(23, PortState::Open, Some(&p)), "unauthorized");
        assert_eq!(verdict(443, PortState::Open, Some(&p)), "monitored, up");
        assert_eq!(verdict(443, PortState::Closed, Some(&p)), "monitored, down");
    }

    #[test]
    fn port_table_says_what_listens() {
        use vigil_core::listener::{PortDetails, ProcessInfo, TlsSummary};
        assert_eq!(port_facts(None), PortFacts::default());
        let d = PortDetails {
            service: Some("https".into()),
            tls: Some(TlsSummary {
                subject: "CN=nas.lan".into(),
                issuer: "CN=nas.lan".into(),
                not_after: 1_709_251_200,
            }),
            process: Some(ProcessInfo {
                name: "nginx".into(),
                pid: 900,
                user: Some("root".into()),
                exe: Some("/usr/sbin/nginx".into()),
                cmdline: Some("nginx: master process /usr/sbin/nginx".into()),
            }),
            ..PortDetails::default()
        };
        let facts = port_facts(Some(&d));
        assert_eq!(facts.service, "https");
        assert_eq!(
            facts.process.as_deref(),
            Some("nginx: master process /usr/sbin/nginx (pid 900, user root, /usr/sbin/nginx)")
        );
        assert_eq!(
            facts.announces,
            ["TLS certificate: CN=nas.lan (issuer CN=nas.lan, expires 2024-03-01)"]
        );
    }
}
