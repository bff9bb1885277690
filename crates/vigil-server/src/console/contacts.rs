//! Contacts and notification rules (`/contacts`): who is told about which
//! events of which agents, and a contact's page with a "Send test
//! notification" button and the contact's recent deliveries from the
//! outbox, so the user sees whether a message arrived. Checks, saving,
//! rule events and the test go through the same functions as the REST
//! handlers ([`crate::contacts`]).
//!
//! A rule's agent is typed (name, hostname or ID) and resolved here: a
//! `<select>` of every agent would not survive accounts with thousands.
//! When several agents match, the form comes back with the first few to
//! pick from.

use super::error::ConsoleError;
use super::form::{Form, Post};
use super::layout::{self, Page};
use super::session::Session;
use crate::app::App;
use crate::contacts::{add_rule, rule_event_kinds, save_contact, send_test, shown_address};
use crate::http::error::ApiError;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use vigil_notify::{EventKind, FieldKind};
use vigil_proto::api::ContactBody;
use vigil_store::{
    now_unix, AccountId, Agent, AgentId, Channel, Contact, ContactId, Delivery, DeliveryState,
    NotificationRule, RuleId, StoreError, UnixTime,
};

/// Deliveries listed on a contact's page: as many as retention keeps
/// whatever their age.
const DELIVERIES_SHOWN: u32 = vigil_store::OUTBOX_KEPT_PER_CONTACT;
/// Reload a contact's page this often while a delivery is about to be tried.
const PENDING_REFRESH_SECS: u32 = 2;
/// "About to be tried": due within this many seconds (later retries do not
/// keep the page reloading).
const DUE_SOON_SECS: i64 = 30;
/// Agents offered when a typed agent matches several.
const AGENT_CHOICES: u32 = 10;
/// Accounts with at most this many agents get every name as suggestions.
const SUGGEST_MAX: u32 = 50;

const VIEWER_HINT: &str =
    "Viewers may only read; ask an admin or owner of the account to change contacts and rules.";

fn channel_label(c: Channel) -> &'static str {
    c.label()
}

/// A rule's events as people read them, in the order of the form.
pub(crate) fn events_label(events: &[String]) -> String {
    let listed = |k: &EventKind| events.iter().any(|e| e == k.as_str());
    if rule_event_kinds().all(|k| listed(&k)) {
        return "All events".into();
    }
    let known = EventKind::ALL
        .iter()
        .filter(|k| listed(k))
        .map(|k| k.label());
    let unknown = events
        .iter()
        .filter(|e| !EventKind::ALL.iter().any(|k| k.as_str() == e.as_str()))
        .map(String::as_str);
    known.chain(unknown).collect::<Vec<_>>().join(", ")
}

/// The contact form's values as typed: the channel's first field is the
/// form's "Address"; its other fields come from inputs named
/// `<channel>.<field>`, generated from the channel's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContactDraft {
    pub name: String,
    pub channel: String,
    pub address: String,
    pub fields: BTreeMap<String, String>,
}

impl Default for ContactDraft {
    fn default() -> Self {
        ContactDraft {
            name: String::new(),
            channel: Channel::Email.as_str().into(),
            address: String::new(),
            fields: BTreeMap::new(),
        }
    }
}

impl ContactDraft {
    /// A saved contact, for its edit form: secrets are left out (kept
    /// unless retyped).
    fn of(c: &Contact) -> ContactDraft {
        let (address, fields) = match c.destination() {
            Ok(d) => {
                let primary = c.channel.spec().primary();
                let mut fields = d.shown_fields(true);
                let address = if primary.kind.is_secret() {
                    String::new()
                } else {
                    fields.remove(primary.name).unwrap_or_default()
                };
                (address, fields)
            }
            Err(_) => (String::new(), BTreeMap::new()),
        };
        ContactDraft {
            name: c.name.clone(),
            channel: c.channel.as_str().into(),
            address,
            fields,
        }
    }

    pub(crate) fn from_form(f: &Form) -> ContactDraft {
        let text = |name: &str| f.get(name).unwrap_or_default().trim().to_string();
        let channel = text("channel");
        let fields = match channel.parse::<Channel>() {
            Ok(c) => c.fields()[1..]
                .iter()
                .map(|field| (field.name.to_string(), text(&format!("{c}.{}", field.name))))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
            Err(_) => BTreeMap::new(),
        };
        ContactDraft {
            name: text("name"),
            channel,
            address: text("address"),
            fields,
        }
    }

    pub(crate) fn body(&self) -> ContactBody {
        ContactBody {
            name: self.name.clone(),
            channel: self.channel.clone(),
            address: self.address.clone(),
            fields: self.fields.clone(),
        }
    }
}

/// The HTML input type for a field.
fn input_type(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Secret => "password",
        FieldKind::Url | FieldKind::SecretUrl => "url",
        FieldKind::Email => "email",
        FieldKind::Phone => "tel",
        FieldKind::Text => "text",
    }
}

/// Each channel's fields but the first (the "Address"), from its
/// description; open for the channel chosen.
fn channel_fields(d: &ContactDraft) -> Markup {
    html! {
        @for c in Channel::ALL.iter().filter(|c| c.fields().len() > 1) {
            details.channel-fields data-channel=(c.as_str()) open[d.channel == c.as_str()] {
                summary { "More for " (c.label()) }
                @for f in &c.fields()[1..] {
                    @let id = format!("f-{c}-{}", f.name);
                    @let value = if d.channel == c.as_str() && !f.kind.is_secret() {
                        d.fields.get(f.name).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    };
                    label for=(id) { (f.label) @if !f.required { " (optional)" } }
                    input id=(id) type=(input_type(f.kind)) name={ (c) "." (f.name) } value=(value)
                        placeholder=[f.default] autocomplete="off" spellcheck="false"
                        aria-describedby={ (id) "-hint" };
                    p.hint id={ (id) "-hint" } {
                        (f.help)
                        @if f.kind.is_secret() { " Never shown again; leave empty to keep the saved one." }
                    }
                }
            }
        }
    }
}

/// The rule form's values as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleDraft {
    pub contact: String,
    /// `all` (agents) or `one`.
    pub scope: String,
    /// A name, hostname or ID.
    pub agent: String,
    /// The agent picked among several matches.
    pub agent_id: String,
    /// Event kinds; `*` for all.
    pub events: Vec<String>,
    /// Remind every N minutes (empty: no reminders).
    pub remind_every: String,
    /// Escalate after N minutes (empty: no escalation) to `escalate_to`.
    pub escalate_after: String,
    pub escalate_to: Vec<String>,
}

impl Default for RuleDraft {
    fn default() -> Self {
        RuleDraft {
            contact: String::new(),
            scope: "all".into(),
            agent: String::new(),
            agent_id: String::new(),
            events: vec!["*".into()],
            remind_every: String::new(),
            escalate_after: String::new(),
            escalate_to: Vec::new(),
        }
    }
}

impl RuleDraft {
    pub(crate) fn from_form(f: &Form) -> RuleDraft {
        let text = |name: &str| f.get(name).unwrap_or_default().trim().to_string();
        RuleDraft {
            contact: text("contact"),
            scope: text("scope"),
            agent: text("agent"),
            agent_id: text("agent_id"),
            events: f.all("event").into_iter().map(String::from).collect(),
            remind_every: text("remind_every"),
            escalate_after: text("escalate_after"),
            escalate_to: f.all("escalate_to").into_iter().map(String::from).collect(),
        }
    }

    /// The reminders and escalation step the form asks for, or what is wrong.
    fn followups(&self) -> Result<crate::contacts::Followups, String> {
        let minutes = |what: &str, text: &str| -> Result<Option<u32>, String> {
            if text.is_empty() {
                return Ok(None);
            }
            text.parse()
                .map(Some)
                .map_err(|_| format!("{what}: write a whole number of minutes, not {text:?}."))
        };
        let remind_every_minutes = minutes("Remind every", &self.remind_every)?;
        let escalation = match minutes("Escalate after", &self.escalate_after)? {
            None if self.escalate_to.is_empty() => Vec::new(),
            None => return Err("Escalate after: say after how many minutes.".into()),
            Some(after_minutes) => vec![vigil_core::followup::EscalationStep {
                after_minutes,
                contacts: self.escalate_to.clone(),
            }],
        };
        let f = crate::contacts::Followups {
            remind_every_minutes,
            escalation,
        };
        f.check().map_err(|e| e.to_string())?;
        Ok(f)
    }

    fn one_agent(&self) -> bool {
        self.scope == "one"
    }

    fn has_event(&self, kind: &str) -> bool {
        self.events.iter().any(|e| e == kind)
    }
}

/// What a typed agent is compared with: an agent's name and hostname.
pub(crate) type AgentKey<'a> = (&'a str, Option<&'a str>);

/// Which agent `typed` means among `matches` (the first few, by name, of
/// the `total` agents whose name or hostname contains it): the one with
/// exactly that name (any case), else exactly that hostname, else the only
/// match. The error says what to do.
pub(crate) fn pick_agent(
    typed: &str,
    matches: &[AgentKey<'_>],
    total: u64,
) -> Result<usize, String> {
    let typed_lower = typed.to_lowercase();
    let same = |v: &str| v.to_lowercase() == typed_lower;
    let only = |found: Vec<usize>| (found.len() == 1).then(|| found[0]);
    let indexes = |keep: &dyn Fn(&AgentKey<'_>) -> bool| {
        only(
            matches
                .iter()
                .enumerate()
                .filter(|(_, m)| keep(m))
                .map(|(i, _)| i)
                .collect(),
        )
    };
    let exact =
        indexes(&|(name, _)| same(name)).or_else(|| indexes(&|(_, host)| host.is_some_and(same)));
    if let Some(i) = exact {
        return Ok(i);
    }
    match total {
        0 => Err(format!(
            "No agent's name or hostname contains “{typed}”: check the spelling, or paste the agent's ID."
        )),
        1 if matches.len() == 1 => Ok(0),
        n => Err(format!(
            "{n} agents match “{typed}”: pick one below, or type more of its name (or its ID)."
        )),
    }
}

/// Where a rule applies, or why the form is refused.
enum Scope {
    All,
    One(AgentId),
    Refused(String, Vec<Agent>),
}

async fn scope(app: &App, account: AccountId, d: &RuleDraft) -> Result<Scope, ConsoleError> {
    if !d.one_agent() {
        return Ok(Scope::All);
    }
    if !d.agent_id.is_empty() {
        return Ok(match d.agent_id.parse() {
            Ok(id) => Scope::One(id),
            Err(_) => Scope::Refused("Pick one of the agents listed.".into(), Vec::new()),
        });
    }
    if d.agent.is_empty() {
        return Ok(Scope::Refused(
            "Type the agent's name, hostname or ID, or choose “All agents”.".into(),
            Vec::new(),
        ));
    }
    if let Ok(id) = d.agent.parse() {
        return Ok(Scope::One(id));
    }
    let (agents, total) = app
        .store
        .agents_page(account, &d.agent, 0, AGENT_CHOICES)
        .await?;
    let keys: Vec<AgentKey<'_>> = agents
        .iter()
        .map(|a| (a.name.as_str(), a.hostname.as_deref()))
        .collect();
    Ok(match pick_agent(&d.agent, &keys, total) {
        Ok(i) => Scope::One(agents[i].id),
        Err(m) => Scope::Refused(m, agents),
    })
}

/// What the list page's forms show: empty, or what was refused and why.
#[derive(Default)]
struct ListForms {
    contact: ContactDraft,
    contact_error: Option<String>,
    rule: RuleDraft,
    rule_error: Option<String>,
    /// Agents to pick from when the typed one was ambiguous.
    choices: Vec<Agent>,
}

fn contact_fields(d: &ContactDraft) -> Markup {
    html! {
        label for="name" { "Name" }
        input #name type="text" name="name" value=(d.name) required maxlength="200" autocomplete="off";
        label for="channel" { "Channel" }
        select #channel name="channel" {
            @for c in Channel::ALL {
                option value=(c.as_str()) selected[d.channel == c.as_str()] { (channel_label(*c)) }
            }
        }
        label for="address" { "Address" }
        input #address type="text" name="address" value=(d.address)
            autocomplete="off" spellcheck="false" aria-describedby="address-hint";
        p.hint #address-hint {
            @for (i, c) in Channel::ALL.iter().enumerate() {
                @if i > 0 { " " }
                (c.label()) ": " (c.spec().primary().help)
            }
        }
        (channel_fields(d))
    }
}

fn test_button(session: &Session, c: &Contact) -> Markup {
    html! {
        form.inline method="post" action={ "/contacts/" (c.id) "/test" } {
            (session.csrf_field())
            button type="submit" aria-label={ "Send test notification to " (c.name) } { "Send test notification" }
        }
    }
}

fn contacts_table(session: &Session, contacts: &[Contact]) -> Markup {
    let write = session.can_write();
    layout::table_wrap(
        "Contacts",
        html! {
            table {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Channel" } th scope="col" { "Address" }
                    @if write { th scope="col" { "Check" } }
                } }
                tbody {
                    @for c in contacts {
                        tr {
                            td { a href={ "/contacts/" (c.id) } { (c.name) } }
                            td { (channel_label(c.channel)) }
                            td.wrap { (shown_address(c, write)) }
                            @if write { td { (test_button(session, c)) } }
                        }
                    }
                }
            }
        },
    )
}

/// The agents that rules name, by id (`None`: gone).
async fn rule_agents(
    app: &App,
    account: AccountId,
    rules: &[NotificationRule],
) -> Result<HashMap<AgentId, Option<Agent>>, ConsoleError> {
    let mut out = HashMap::new();
    for id in rules.iter().filter_map(|r| r.agent_id) {
        if out.contains_key(&id) {
            continue;
        }
        let agent = match app.store.agent(account, id).await {
            Ok(a) => Some(a),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        out.insert(id, agent);
    }
    Ok(out)
}

fn agents_cell(rule: &NotificationRule, agents: &HashMap<AgentId, Option<Agent>>) -> Markup {
    html! {
        @match rule.agent_id {
            None => { "All agents" }
            Some(id) => {
                @match agents.get(&id).and_then(Option::as_ref) {
                    Some(a) => {
                        a href={ "/agents/" (id) } { (a.name) }
                        @if a.is_removed() { " (removed)" }
                    }
                    None => { code { (id) } }
                }
            }
        }
    }
}

fn agents_text(rule: &NotificationRule, agents: &HashMap<AgentId, Option<Agent>>) -> String {
    match rule.agent_id {
        None => "all agents".into(),
        Some(id) => agents
            .get(&id)
            .and_then(Option::as_ref)
            .map_or_else(|| id.to_string(), |a| a.name.clone()),
    }
}

fn rules_table(
    session: &Session,
    rules: &[NotificationRule],
    contacts: &[Contact],
    agents: &HashMap<AgentId, Option<Agent>>,
) -> Markup {
    let write = session.can_write();
    let contact_name = |id: ContactId| {
        contacts
            .iter()
            .find(|c| c.id == id)
            .map_or("?", |c| c.name.as_str())
    };
    layout::table_wrap(
        "Notification rules",
        html! {
            table {
                thead { tr {
                    th scope="col" { "Contact" } th scope="col" { "Agents" } th scope="col" { "Events" }
                    th scope="col" { "Until acknowledged" }
                    @if write { th scope="col" { "Remove" } }
                } }
                tbody {
                    @for r in rules {
                        tr {
                            td { a href={ "/contacts/" (r.contact_id) } { (contact_name(r.contact_id)) } }
                            td { (agents_cell(r, agents)) }
                            td.wrap { (events_label(&r.events)) }
                            td.wrap {
                                @if r.remind_every_minutes.is_none() && r.escalation.is_empty() { "—" }
                                @if let Some(m) = r.remind_every_minutes { "Reminds every " (m) " min. " }
                                @for step in &r.escalation {
                                    "Escalates after " (step.after_minutes) " min to "
                                    (step.contacts.iter().filter_map(|c| c.parse::<ContactId>().ok()).map(contact_name).collect::<Vec<_>>().join(", "))
                                    ". "
                                }
                            }
                            @if write {
                                td {
                                    form.inline method="post" action={ "/contacts/rules/" (r.id) "/delete" } {
                                        (session.csrf_field())
                                        button type="submit"
                                            aria-label={ "Delete rule: " (contact_name(r.contact_id)) ", " (agents_text(r, agents)) } { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn rule_form(
    session: &Session,
    contacts: &[Contact],
    suggestions: &[Agent],
    f: &ListForms,
) -> Markup {
    let d = &f.rule;
    html! {
        (layout::error(f.rule_error.as_deref()))
        form.stack method="post" action="/contacts/rules#add-rule" {
            (session.csrf_field())
            label for="rule-contact" { "Contact" }
            select #rule-contact name="contact" {
                @for c in contacts {
                    option value=(c.id) selected[d.contact == c.id.to_string()] { (c.name) }
                }
            }
            fieldset {
                legend { "Agents" }
                label.check for="scope-all" {
                    input #scope-all type="radio" name="scope" value="all" checked[!d.one_agent()];
                    "All agents"
                }
                label.check for="scope-one" {
                    input #scope-one type="radio" name="scope" value="one" checked[d.one_agent()];
                    "One agent:"
                }
                label for="rule-agent" { "Agent name, hostname or ID" }
                input #rule-agent type="text" name="agent" value=(d.agent) autocomplete="off"
                    list=[(!suggestions.is_empty()).then_some("agent-names")] aria-describedby="agent-hint";
                @if !suggestions.is_empty() {
                    datalist #agent-names {
                        @for a in suggestions { option value=(a.name) {} }
                    }
                }
                p.hint #agent-hint { "Used with “One agent”. Part of a name is enough when only one agent matches." }
                @if !f.choices.is_empty() {
                    fieldset #agent-choices {
                        legend { "Matching agents" }
                        @for (i, a) in f.choices.iter().enumerate() {
                            label.check for={ "pick-" (i) } {
                                input id={ "pick-" (i) } type="radio" name="agent_id" value=(a.id)
                                    checked[d.agent_id == a.id.to_string()];
                                (a.name)
                                @if let Some(h) = &a.hostname { " (" (h) ")" }
                                " · last seen " (layout::maybe_time(a.last_seen_at))
                            }
                        }
                    }
                }
            }
            fieldset {
                legend { "Events" }
                label.check for="ev-all" {
                    input #ev-all type="checkbox" name="event" value="*" checked[d.has_event("*")];
                    "All events"
                }
                @for k in rule_event_kinds() {
                    label.check for={ "ev-" (k.as_str()) } {
                        input id={ "ev-" (k.as_str()) } type="checkbox" name="event" value=(k.as_str())
                            checked[d.has_event(k.as_str())];
                        (k.label())
                    }
                }
            }
            fieldset {
                legend { "Until someone acknowledges the alert" }
                label for="remind-every" { "Remind every (minutes, at least 5)" }
                input #remind-every type="number" name="remind_every" min="5" value=(d.remind_every)
                    aria-describedby="remind-hint";
                p.hint #remind-hint { "Empty: no reminders. The contact gets the alert again until it is acknowledged or over." }
                label for="escalate-after" { "Escalate after (minutes)" }
                input #escalate-after type="number" name="escalate_after" min="1" value=(d.escalate_after);
                label for="escalate-to" { "…to these contacts" }
                select #escalate-to name="escalate_to" multiple size="3" {
                    @for c in contacts {
                        @let id = c.id.to_string();
                        option value=(id) selected[d.escalate_to.contains(&id)] { (c.name) }
                    }
                }
                p.hint { "Notices of open alerts carry a link that acknowledges them without logging in. More escalation steps: REST API or " code { "vigil ctl rules add --escalate" } "." }
            }
            button type="submit" { "Add rule" }
        }
    }
}

async fn list_page(
    app: &App,
    session: &Session,
    f: ListForms,
    done: Option<&str>,
) -> Result<Markup, ConsoleError> {
    let account = session.account.id;
    let contacts = app.store.contacts(account).await?;
    let rules = app.store.rules(account).await?;
    let agents = rule_agents(app, account, &rules).await?;
    let write = session.can_write();
    let suggestions = if write && !contacts.is_empty() {
        let (first, total) = app.store.agents_page(account, "", 0, SUGGEST_MAX).await?;
        if total <= u64::from(SUGGEST_MAX) {
            first
        } else {
            Vec::new()
        }
    } else {
        Vec::new()
    };
    let body = html! {
        h1 { "Contacts" }
        (layout::flash(done))
        p { "Contacts receive the events their rules name. “Send test notification” checks a contact; its page shows whether the message was delivered." }
        @if !write { p.hint { (VIEWER_HINT) } }
        section.section aria-labelledby="contacts-h" {
            h2 #contacts-h { "Contacts (" (contacts.len()) ")" }
            @if contacts.is_empty() { p.muted { "No contacts yet." } }
            @else { (contacts_table(session, &contacts)) }
        }
        @if write {
            section.section #add-contact aria-labelledby="add-contact-h" {
                h2 #add-contact-h { "Add a contact" }
                (layout::error(f.contact_error.as_deref()))
                form.stack method="post" action="/contacts" {
                    (session.csrf_field())
                    (contact_fields(&f.contact))
                    button type="submit" { "Add contact" }
                }
            }
        }
        section.section #rules aria-labelledby="rules-h" {
            h2 #rules-h { "Notification rules (" (rules.len()) ")" }
            @if rules.is_empty() { p.muted { "No rules yet: nobody is notified." } }
            @else { (rules_table(session, &rules, &contacts, &agents)) }
        }
        @if write {
            section.section #add-rule aria-labelledby="add-rule-h" {
                h2 #add-rule-h { "Add a rule" }
                @if contacts.is_empty() { p.muted { "Add a contact first." } }
                @else { (rule_form(session, &contacts, &suggestions, &f)) }
            }
        }
    };
    Ok(layout::page(
        session,
        Page {
            title: "Contacts",
            nav: "/contacts",
            refresh_secs: None,
        },
        body,
    ))
}

/// A delivery's state as shown, and its badge class.
fn delivery_badge(d: &Delivery) -> Markup {
    let (text, class) = match d.state {
        DeliveryState::Sent => ("sent", "badge good"),
        DeliveryState::Failed => ("failed", "badge bad"),
        DeliveryState::Queued if d.last_error.is_some() => ("retrying", "badge warn"),
        DeliveryState::Queued if d.attempts > 0 => ("sending", "badge warn"),
        DeliveryState::Queued => ("queued", "badge"),
    };
    html! { span class=(class) { (text) } }
}

/// What a delivery was: the notification's title, else its event.
fn delivery_title(d: &Delivery) -> String {
    let field = |name: &str| d.payload.get(name).and_then(|v| v.as_str());
    match (field("title"), field("event")) {
        (Some(t), _) if !t.is_empty() => t.to_string(),
        (_, Some(e)) => events_label(&[e.to_string()]),
        _ => d.dedupe_key.clone(),
    }
}

/// Whether a delivery will be tried within `DUE_SOON_SECS` of `now`.
fn due_soon(d: &Delivery, now: UnixTime) -> bool {
    d.state == DeliveryState::Queued
        && d.next_attempt_at
            .is_some_and(|t| t <= now.saturating_add(DUE_SOON_SECS))
}

fn deliveries_table(deliveries: &[Delivery]) -> Markup {
    layout::table_wrap(
        "Recent deliveries",
        html! {
            table #deliveries {
                thead { tr {
                    th scope="col" { "Queued" } th scope="col" { "Notification" } th scope="col" { "State" }
                    th scope="col" { "Attempts" } th scope="col" { "Sent / next try" } th scope="col" { "Last error" }
                } }
                tbody {
                    @for d in deliveries {
                        tr {
                            td { (layout::time(d.created_at)) }
                            td.wrap { (delivery_title(d)) }
                            td { (delivery_badge(d)) }
                            td { (d.attempts) }
                            td {
                                @match d.state {
                                    DeliveryState::Sent => { (layout::maybe_time(d.sent_at)) }
                                    DeliveryState::Failed => { "gave up" }
                                    DeliveryState::Queued => { (layout::maybe_time(d.next_attempt_at)) }
                                }
                            }
                            td.wrap { (d.last_error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        },
    )
}

/// The contact's page; `done` says what just worked, `refused` what did not.
async fn contact_page(
    app: &App,
    session: &Session,
    c: &Contact,
    done: Option<&str>,
    refused: Option<&str>,
) -> Result<Markup, ConsoleError> {
    let account = session.account.id;
    let deliveries = app
        .store
        .deliveries(account, c.id, DELIVERIES_SHOWN)
        .await?;
    let rules: Vec<NotificationRule> = app
        .store
        .rules(account)
        .await?
        .into_iter()
        .filter(|r| r.contact_id == c.id)
        .collect();
    let agents = rule_agents(app, account, &rules).await?;
    let now = now_unix();
    let pending = deliveries.iter().any(|d| due_soon(d, now));
    let write = session.can_write();
    let body = html! {
        p { a href="/contacts" { "← Contacts" } }
        h1 { "Contact " (c.name) }
        (layout::flash(done))
        (layout::error(refused))
        @if !write { p.hint { (VIEWER_HINT) } }
        section.section aria-labelledby="facts-h" {
            h2 #facts-h { "Overview" }
            dl.facts {
                dt { "Channel" } dd { (channel_label(c.channel)) }
                dt { "Address" } dd #contact-address { (shown_address(c, write)) }
                @if let Ok(d) = c.destination() {
                    @let primary = c.channel.spec().primary().name;
                    @for (name, value) in d.shown_fields(write) {
                        @if name != primary {
                            dt { (c.channel.spec().field(&name).map_or(name.as_str(), |f| f.label)) }
                            dd { (value) }
                        }
                    }
                    @for name in d.secrets_set() {
                        dt { (c.channel.spec().field(&name).map_or(name.as_str(), |f| f.label)) }
                        dd { "set (never shown)" }
                    }
                }
                dt { "Added" } dd { (layout::time(c.created_at)) }
            }
            @if write {
                div.actions {
                    (test_button(session, c))
                    " "
                    a href={ "/contacts/" (c.id) "/edit" } { "Edit contact" }
                }
            }
        }
        section.section aria-labelledby="deliveries-h" {
            h2 #deliveries-h { "Recent deliveries" }
            @if deliveries.is_empty() { p.muted { "Nothing was sent to this contact yet." } }
            @else {
                @if pending { p.hint role="status" { "A delivery is under way; this page reloads until it is done." } }
                (deliveries_table(&deliveries))
            }
        }
        section.section aria-labelledby="contact-rules-h" {
            h2 #contact-rules-h { "Rules" }
            @if rules.is_empty() { p.muted { "No rule sends anything to this contact yet." } }
            @else {
                ul {
                    @for r in &rules {
                        li { (agents_cell(r, &agents)) ": " (events_label(&r.events)) }
                    }
                }
            }
            @if write { p { a href={ "/contacts?contact=" (c.id) "#add-rule" } { "Add a rule for this contact" } } }
        }
        @if write {
            section.section aria-labelledby="delete-h" {
                h2 #delete-h { "Delete" }
                form.inline method="post" action={ "/contacts/" (c.id) "/delete" } {
                    (session.csrf_field())
                    button type="submit" { "Delete contact" }
                }
                p.hint { "Its rules and its delivery history are deleted too." }
            }
        }
    };
    Ok(layout::page(
        session,
        Page {
            title: &format!("Contact {}", c.name),
            nav: "/contacts",
            refresh_secs: pending.then_some(PENDING_REFRESH_SECS),
        },
        body,
    ))
}

fn edit_page(session: &Session, c: &Contact, d: &ContactDraft, error: Option<&str>) -> Markup {
    let body = html! {
        p { a href={ "/contacts/" (c.id) } { "← " (c.name) } }
        h1 { "Edit contact " (c.name) }
        (layout::error(error))
        form.stack method="post" action={ "/contacts/" (c.id) "/edit" } {
            (session.csrf_field())
            (contact_fields(d))
            button type="submit" { "Save contact" }
        }
    };
    layout::page(
        session,
        Page {
            title: &format!("Edit contact {}", c.name),
            nav: "/contacts",
            refresh_secs: None,
        },
        body,
    )
}

/// A refusal the form shows (422), or a failure of the request.
fn form_message(e: ApiError) -> Result<String, ConsoleError> {
    match e {
        ApiError::Invalid(m) | ApiError::Conflict(m) | ApiError::Refused(m) => Ok(m),
        e => Err(e.into()),
    }
}

/// `GET /contacts`.
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Markup, ConsoleError> {
    let query = Form::query(query)?;
    let done = match query.get("done") {
        Some("deleted") => Some("Contact deleted."),
        Some("rule") => Some("Rule added."),
        Some("rule-deleted") => Some("Rule deleted."),
        _ => None,
    };
    let forms = ListForms {
        rule: RuleDraft {
            contact: query.get("contact").unwrap_or_default().to_string(),
            ..RuleDraft::default()
        },
        ..ListForms::default()
    };
    list_page(&app, &session, forms, done).await
}

/// `POST /contacts`: adds a contact, then shows it.
pub(crate) async fn create(
    State(app): State<Arc<App>>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let draft = ContactDraft::from_form(&form);
    match save_contact(&app, session.account.id, &session, None, &draft.body()).await {
        Ok(c) => Ok(Redirect::to(&format!("/contacts/{}?done=added", c.id)).into_response()),
        Err(e) => {
            let forms = ListForms {
                contact_error: Some(form_message(e)?),
                contact: draft,
                ..ListForms::default()
            };
            let page = list_page(&app, &session, forms, None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

/// `GET /contacts/{id}`.
pub(crate) async fn detail(
    State(app): State<Arc<App>>,
    session: Session,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Markup, ConsoleError> {
    let c = app
        .store
        .contact(session.account.id, super::path_id::<ContactId>(&id)?)
        .await?;
    let done = match Form::query(query)?.get("done") {
        Some("added") => Some("Contact added. Send a test notification to check it."),
        Some("saved") => Some("Contact saved."),
        Some("test") => Some("Test notification queued; its delivery is listed below."),
        _ => None,
    };
    contact_page(&app, &session, &c, done, None).await
}

/// `GET /contacts/{id}/edit`.
pub(crate) async fn edit_form(
    State(app): State<Arc<App>>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Markup, ConsoleError> {
    session.require_write()?;
    let c = app
        .store
        .contact(session.account.id, super::path_id::<ContactId>(&id)?)
        .await?;
    Ok(edit_page(&session, &c, &ContactDraft::of(&c), None))
}

/// `POST /contacts/{id}/edit`.
pub(crate) async fn save(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let c = app
        .store
        .contact(session.account.id, super::path_id::<ContactId>(&id)?)
        .await?;
    let draft = ContactDraft::from_form(&form);
    match save_contact(
        &app,
        session.account.id,
        &session,
        Some(c.id),
        &draft.body(),
    )
    .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/contacts/{}?done=saved", c.id)).into_response()),
        Err(e) => {
            let page = edit_page(&session, &c, &draft, Some(&form_message(e)?));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

/// `POST /contacts/{id}/test`: queues a test, then shows its delivery.
pub(crate) async fn test(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Post { session, .. }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let id = super::path_id::<ContactId>(&id)?;
    match send_test(&app, &session.account, &session.user.email, id).await {
        Ok(()) => {
            let target = id.to_string();
            crate::audit::record(
                &app,
                session.account.id,
                &session,
                "contact.test",
                Some(&target),
                None,
            )
            .await;
            Ok(Redirect::to(&format!("/contacts/{id}?done=test")).into_response())
        }
        // Too many tests lately: the contact's page again, saying when to retry.
        Err(e @ ApiError::RateLimited { .. }) => {
            let c = app.store.contact(session.account.id, id).await?;
            let page = contact_page(&app, &session, &c, None, Some(&e.to_string())).await?;
            Ok((StatusCode::TOO_MANY_REQUESTS, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /contacts/{id}/delete`.
pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Post { session, .. }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let id = super::path_id::<ContactId>(&id)?;
    app.store.delete_contact(session.account.id, id).await?;
    let target = id.to_string();
    crate::audit::record(
        &app,
        session.account.id,
        &session,
        "contact.delete",
        Some(&target),
        None,
    )
    .await;
    Ok(Redirect::to("/contacts?done=deleted").into_response())
}

/// `GET /contacts/rules` (the address bar after a refused rule): the list.
pub(crate) async fn rules() -> Redirect {
    Redirect::to("/contacts#rules")
}

/// `POST /contacts/rules`.
pub(crate) async fn create_rule(
    State(app): State<Arc<App>>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let account = session.account.id;
    let draft = RuleDraft::from_form(&form);
    let checked = match (draft.contact.parse::<ContactId>(), draft.events.is_empty()) {
        (Err(_), _) => Err(("Pick a contact.".to_string(), Vec::new())),
        (_, true) => Err((
            "Pick at least one event, or “All events”.".to_string(),
            Vec::new(),
        )),
        (Ok(contact), false) => match (draft.followups(), scope(&app, account, &draft).await?) {
            (Err(m), _) => Err((m, Vec::new())),
            (_, Scope::Refused(m, choices)) => Err((m, choices)),
            (Ok(f), Scope::All) => Ok((contact, None, f)),
            (Ok(f), Scope::One(id)) => Ok((contact, Some(id), f)),
        },
    };
    let refused = match checked {
        Err(r) => r,
        Ok((contact, agent, followups)) => {
            let added = match add_rule(&app, account, &session, contact, agent, &draft.events).await
            {
                Ok(rule) => crate::contacts::set_followups(&app, account, rule, &followups).await,
                Err(e) => Err(e),
            };
            match added {
                Ok(_) => return Ok(Redirect::to("/contacts?done=rule#rules").into_response()),
                Err(ApiError::NotFound) => (
                    "That contact or agent does not exist (any more): pick another.".to_string(),
                    Vec::new(),
                ),
                Err(e) => (form_message(e)?, Vec::new()),
            }
        }
    };
    let (message, choices) = refused;
    let forms = ListForms {
        rule: draft,
        rule_error: Some(message),
        choices,
        ..ListForms::default()
    };
    let page = list_page(&app, &session, forms, None).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

/// `POST /contacts/rules/{id}/delete`.
pub(crate) async fn delete_rule(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Post { session, .. }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let id: RuleId = id.parse().map_err(|_| ConsoleError::NotFound)?;
    app.store.delete_rule(session.account.id, id).await?;
    let target = id.to_string();
    crate::audit::record(
        &app,
        session.account.id,
        &session,
        "rule.delete",
        Some(&target),
        None,
    )
    .await;
    Ok(Redirect::to("/contacts?done=rule-deleted#rules").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_agents_resolve_or_say_why() {
        let m = [
            ("web", Some("web-1.example")),
            ("Web", Some("web-2.example")),
            ("webshop", Some("shop.example")),
            ("alpha-office", Some("alpha.example")),
        ];
        // (typed, matches, total, expected index or error start)
        let cases = [
            ("WEBSHOP", &m[..3], 3, Ok(2)),
            ("shop.example", &m[2..3], 1, Ok(0)),
            ("SHOP.example", &m[..3], 3, Ok(2)),
            // Two agents named "web" (any case): ambiguous.
            ("web", &m[..3], 3, Err("3 agents match “web”")),
            ("alpha", &m[3..], 1, Ok(0)),
            (
                "nothing",
                &m[..0],
                0,
                Err("No agent's name or hostname contains “nothing”"),
            ),
            // More matches than shown, none exact.
            ("e", &m[..2], 4000, Err("4000 agents match “e”")),
            // Only one shown but more exist: not a unique match.
            ("alpha", &m[3..], 2, Err("2 agents match")),
        ];
        for (typed, matches, total, expected) in cases {
            match (pick_agent(typed, matches, total), expected) {
                (Ok(i), Ok(e)) => assert_eq!(i, e, "{typed}"),
                (Err(m), Err(e)) => assert!(m.starts_with(e), "{typed}: {m}"),
                (got, e) => panic!("{typed}: got {got:?}, expected {e:?}"),
            }
        }
    }

    #[test]
    fn rule_forms_keep_what_was_typed() {
        let f = Form::parse(
            b"contact=c1&scope=one&agent=+alpha+&agent_id=&event=service_down&event=agent_back",
        )
        .unwrap();
        let d = RuleDraft::from_form(&f);
        assert_eq!(d.contact, "c1");
        assert!(d.one_agent());
        assert_eq!(d.agent, "alpha");
        assert_eq!(d.events, ["service_down", "agent_back"]);
        assert!(d.has_event("agent_back") && !d.has_event("*"));
        let d = RuleDraft::from_form(&Form::parse(b"contact=c1").unwrap());
        assert!(!d.one_agent());
        assert!(d.events.is_empty());
        assert!(RuleDraft::default().has_event("*"));
    }

    #[test]
    fn event_labels() {
        let all: Vec<String> = rule_event_kinds().map(|k| k.as_str().into()).collect();
        for (events, label) in [
            (all.clone(), "All events"),
            (
                vec!["agent_back".into(), "x.y".into(), "service_down".into()],
                "Service down, Agent back, x.y",
            ),
            (vec!["test".into()], "Test notification"),
            (vec!["custom.kind".into()], "custom.kind"),
            (
                all[1..].to_vec(),
                "Service down, Service recovered, Target unreachable, Target reachable again, \
                 Agent not communicating, Agent back, Scanning suspended, Scanning disabled, \
                 New device on the network, Compliance status changed, Maintenance started, \
                 Maintenance ended, Listening program changed",
            ),
        ] {
            assert_eq!(events_label(&events), label, "{events:?}");
        }
    }

    #[test]
    fn contact_forms_become_bodies() {
        let f = Form::parse(b"name=+Ops+&channel=webhook&address=+https%3A%2F%2Fh.example%2Fx+")
            .unwrap();
        let body = ContactDraft::from_form(&f).body();
        assert_eq!(
            (
                body.name.as_str(),
                body.channel.as_str(),
                body.address.as_str()
            ),
            ("Ops", "webhook", "https://h.example/x")
        );
        assert_eq!(ContactDraft::default().channel, "email");
        // The chosen channel's generated fields; other channels' are ignored.
        let f = Form::parse(
            b"name=Chat&channel=telegram&address=-1001234&telegram.bot_token=123%3Aabc\
              &telegram.base_url=&pushover.app_token=nope",
        )
        .unwrap();
        let body = ContactDraft::from_form(&f).body();
        assert_eq!(body.address, "-1001234");
        assert_eq!(
            body.fields,
            BTreeMap::from([("bot_token".to_string(), "123:abc".to_string())])
        );
        assert!(crate::contacts::check(&body).is_ok());
    }

    #[test]
    fn the_form_has_every_channel_and_field_but_no_secret() {
        let c = Contact {
            id: ContactId::random(),
            account_id: AccountId::random(),
            name: "Chat".into(),
            channel: Channel::Telegram,
            address: r#"{"bot_token":"123:SECRET","chat_id":"-1001234"}"#.into(),
            created_at: 0,
        };
        let d = ContactDraft::of(&c);
        assert_eq!(d.address, "-1001234");
        let html = contact_fields(&d).into_string();
        assert!(!html.contains("SECRET"), "{html}");
        for ch in Channel::ALL {
            assert!(html.contains(&format!("<option value=\"{ch}\"")), "{ch}");
            for f in &ch.fields()[1..] {
                assert!(
                    html.contains(&format!("name=\"{ch}.{}\"", f.name)),
                    "{ch}.{}",
                    f.name
                );
            }
        }
        assert!(
            html.contains("type=\"password\" name=\"telegram.bot_token\""),
            "{html}"
        );
    }

    #[test]
    fn deliveries_read_as_people_expect() {
        let d = |state, attempts, last_error: Option<&str>, payload| Delivery {
            id: vigil_store::OutboxId::random(),
            contact_id: ContactId::random(),
            dedupe_key: "test:x".into(),
            payload,
            state,
            attempts,
            last_error: last_error.map(String::from),
            created_at: 100,
            sent_at: None,
            next_attempt_at: (state == DeliveryState::Queued).then_some(200),
        };
        let title = serde_json::json!({"event": "test", "title": "Test notification for Ops"});
        let bare = serde_json::json!({"event": "service_down"});
        for (delivery, badge, shown, soon) in [
            (
                d(DeliveryState::Queued, 0, None, title.clone()),
                "queued",
                "Test notification for Ops",
                true,
            ),
            (
                d(DeliveryState::Queued, 1, None, bare.clone()),
                "sending",
                "Service down",
                true,
            ),
            (
                d(DeliveryState::Queued, 2, Some("503"), bare.clone()),
                "retrying",
                "Service down",
                true,
            ),
            (
                d(DeliveryState::Sent, 1, None, serde_json::json!({})),
                "sent",
                "test:x",
                false,
            ),
            (
                d(DeliveryState::Failed, 3, Some("550"), bare),
                "failed",
                "Service down",
                false,
            ),
        ] {
            assert!(
                delivery_badge(&delivery)
                    .into_string()
                    .contains(&format!(">{badge}<")),
                "{delivery:?}"
            );
            assert_eq!(delivery_title(&delivery), shown);
            assert_eq!(due_soon(&delivery, 180), soon, "{delivery:?}");
            assert!(!due_soon(&delivery, 100), "due in 100 s is not soon");
        }
    }

    #[test]
    fn contact_names_are_escaped() {
        let c = Contact {
            id: ContactId::random(),
            account_id: AccountId::random(),
            name: "<script>alert(1)</script>".into(),
            channel: Channel::Webhook,
            address: "https://h.example/\"><img src=x>".into(),
            created_at: 0,
        };
        let d = ContactDraft::of(&c);
        let html = contact_fields(&d).into_string();
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
