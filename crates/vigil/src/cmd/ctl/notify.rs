//! Alerts, and who hears about them: contacts and notification rules.

use super::table::{time, Table};
use super::{decode, name_of, print_json, query, seg, usage, Ctl};
use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use vigil_notify::{Channel, EventKind};
use vigil_proto::api::{AlertView, ContactBody, ContactView, RuleBody, RuleView};

#[derive(Debug, Subcommand, Default)]
pub(super) enum ContactsCommand {
    /// The account's contacts and how each is reached.
    #[default]
    List,
    /// Add a contact: a name, a channel and its address or fields.
    #[command(after_help = channels_help())]
    Add {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = channel_parser())]
        channel: String,
        /// The channel's first field: an email address, a webhook URL, a chat id, ...
        #[arg(long, allow_hyphen_values = true)]
        address: Option<String>,
        /// Another field of the channel, as NAME=VALUE (repeatable): see below.
        #[arg(long = "field", short = 'f', value_name = "NAME=VALUE", value_parser = field_pair)]
        fields: Vec<(String, String)>,
    },
    /// Change a contact; what is not given stays (secrets too).
    #[command(after_help = channels_help())]
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_parser = channel_parser())]
        channel: Option<String>,
        #[arg(long, allow_hyphen_values = true)]
        address: Option<String>,
        /// Another field of the channel, as NAME=VALUE (repeatable).
        #[arg(long = "field", short = 'f', value_name = "NAME=VALUE", value_parser = field_pair)]
        fields: Vec<(String, String)>,
    },
    /// Remove a contact (the rules that name it go with it).
    Remove {
        /// The contact's id.
        id: String,
    },
    /// Send a test notification to the contact.
    Test { id: String },
}

/// `--channel`'s values: the registered channels.
fn channel_parser() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        Channel::ALL
            .iter()
            .map(|c| clap::builder::PossibleValue::new(c.as_str()).help(c.label())),
    )
}

fn field_pair(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

/// Every channel with its fields, for `--help`.
fn channels_help() -> String {
    let mut out = String::from("Channels and their fields (the first is --address):\n");
    for c in Channel::ALL {
        out.push_str(&format!("  {} ({})\n", c.as_str(), c.label()));
        for f in c.fields() {
            let need = match (f.required, f.default) {
                (true, _) => "required".to_string(),
                (false, Some(d)) => format!("default {d}"),
                (false, None) => "optional".to_string(),
            };
            out.push_str(&format!(
                "    {:<12} {}, {need}: {}\n",
                f.name,
                f.kind.as_str(),
                f.help
            ));
        }
    }
    out
}

/// The `--field`s for `channel`, checked by name (the server checks the values).
fn fields_for(
    channel: &str,
    given: Vec<(String, String)>,
) -> Result<std::collections::BTreeMap<String, String>> {
    let Ok(c) = channel.parse::<Channel>() else {
        return Ok(given.into_iter().collect());
    };
    for (name, _) in &given {
        if c.spec().field(name).is_none() {
            let known: Vec<&str> = c.fields().iter().map(|f| f.name).collect();
            return Err(usage(format!(
                "{channel} has no field {name:?}: its fields are {}",
                known.join(", ")
            )));
        }
    }
    Ok(given.into_iter().collect())
}

#[derive(Debug, Subcommand, Default)]
pub(super) enum RulesCommand {
    /// The account's rules: which events of which agents go to whom.
    #[default]
    List,
    /// Add a rule: a contact, the events, optionally agents, reminders, escalation.
    Add {
        /// The contact to notify.
        #[arg(long)]
        contact: String,
        /// Only this agent's events (default: every agent).
        #[arg(long)]
        agent: Option<String>,
        /// Event kinds, comma-separated, or '*' (quoted) for all.
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// Repeat the notice of an open, unacknowledged alert every N minutes (at least 5).
        #[arg(long, value_name = "MINUTES")]
        remind_every: Option<u32>,
        /// Escalate: after MINUTES unacknowledged, notify these contacts too
        /// (MINUTES:CONTACT[,CONTACT…]); repeat for more steps, earliest first.
        #[arg(long = "escalate", value_name = "MINUTES:CONTACTS", value_parser = parse_step)]
        escalate: Vec<vigil_core::followup::EscalationStep>,
    },
    /// Remove a rule.
    Remove {
        /// The rule's id.
        id: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum AlertStatusArg {
    Open,
    Resolved,
    All,
}

impl Ctl {
    pub(super) async fn alerts(&self, status: AlertStatusArg, agent: Option<String>) -> Result<()> {
        let mut pairs = vec![("status", name_of(status))];
        if let Some(agent) = agent {
            pairs.push(("agent", agent));
        }
        let answer = self.api.get(&format!("/alerts{}", query(&pairs))).await?;
        self.show(answer, |alerts: Vec<AlertView>| {
            if alerts.is_empty() {
                return match status {
                    AlertStatusArg::All => "no alerts\n".into(),
                    s => format!("no {} alerts\n", name_of(s)),
                };
            }
            let mut t = Table::new(&["RAISED", "STATUS", "TITLE"]);
            for a in &alerts {
                let status = match (a.status.as_str(), a.resolved_at, a.flapping) {
                    ("resolved", Some(at), _) => format!("resolved {}", time(at)),
                    (s, _, true) => format!("{s}, flapping"),
                    (s, _, false) => s.to_string(),
                };
                t.row(vec![time(a.raised_at), status, a.title.clone()]);
            }
            t.render()
        })
    }

    pub(super) async fn contacts(&self, cmd: ContactsCommand) -> Result<()> {
        match cmd {
            ContactsCommand::List => {
                let answer = self.api.get("/contacts").await?;
                self.show(answer, |contacts: Vec<ContactView>| {
                    if contacts.is_empty() {
                        return "no contacts yet; add one with `vigil ctl contacts add`\n".into();
                    }
                    let mut t = Table::new(&["ID", "NAME", "CHANNEL", "ADDRESS"]);
                    for c in contacts {
                        let address = shown_address(&c);
                        t.row(vec![c.id, c.name, c.channel, address]);
                    }
                    t.render()
                })
            }
            ContactsCommand::Add {
                name,
                channel,
                address,
                fields,
            } => {
                let body = ContactBody {
                    fields: fields_for(&channel, fields)?,
                    name,
                    channel,
                    address: address.unwrap_or_default(),
                };
                let answer = self.api.post("/contacts", &body).await?;
                self.show(answer, |c: ContactView| {
                    format!(
                        "added contact {} ({} {}), id {}\n",
                        c.name,
                        c.channel,
                        shown_address(&c),
                        c.id
                    )
                })
            }
            ContactsCommand::Update {
                id,
                name,
                channel,
                address,
                fields,
            } => {
                if name.is_none() && channel.is_none() && address.is_none() && fields.is_empty() {
                    return Err(usage(
                        "nothing to change: give --name, --channel, --address or --field",
                    ));
                }
                let path = format!("/contacts/{}", seg(&id));
                let current: ContactView = decode(self.api.get(&path).await?)?;
                let same_channel = channel.as_ref().is_none_or(|c| *c == current.channel);
                let channel = channel.unwrap_or(current.channel);
                // The fields shown stay; secrets stay on the server unless given.
                let mut all = if same_channel {
                    current.fields
                } else {
                    Default::default()
                };
                all.extend(fields_for(&channel, fields)?);
                let address = match address {
                    Some(a) => a,
                    None if same_channel => current.address,
                    None => String::new(),
                };
                if let Ok(c) = channel.parse::<Channel>() {
                    // The address is the first field: not twice.
                    let first = c.spec().primary().name;
                    if !address.is_empty() {
                        all.remove(first);
                    }
                }
                let body = ContactBody {
                    name: name.unwrap_or(current.name),
                    channel,
                    address,
                    fields: all,
                };
                let answer = self.api.put(&path, &body).await?;
                self.show(answer, |c: ContactView| {
                    format!(
                        "updated contact {} ({} {})\n",
                        c.name,
                        c.channel,
                        shown_address(&c)
                    )
                })
            }
            ContactsCommand::Remove { id } => {
                self.api.delete(&format!("/contacts/{}", seg(&id))).await?;
                self.done(format!("removed contact {id}"));
                Ok(())
            }
            ContactsCommand::Test { id } => {
                self.api
                    .post_empty(&format!("/contacts/{}/test", seg(&id)))
                    .await?;
                self.done(format!(
                    "test notification to contact {id} queued; it goes out within seconds"
                ));
                Ok(())
            }
        }
    }

    pub(super) async fn rules(&self, cmd: RulesCommand) -> Result<()> {
        match cmd {
            RulesCommand::List => {
                let answer = self.api.get("/rules").await?;
                if self.json {
                    print_json(&answer);
                    return Ok(());
                }
                let rules: Vec<RuleView> = decode(answer)?;
                if rules.is_empty() {
                    println!("no notification rules yet; add one with `vigil ctl rules add`");
                    return Ok(());
                }
                let contacts: Vec<ContactView> = decode(self.api.get("/contacts").await?)?;
                let contact_name = |id: &str| {
                    contacts
                        .iter()
                        .find(|c| c.id == id)
                        .map_or_else(|| id.to_string(), |c| c.name.clone())
                };
                let mut t = Table::new(&["ID", "CONTACT", "AGENT", "EVENTS", "UNTIL ACKNOWLEDGED"]);
                for r in rules {
                    let then = followups_text(&r);
                    t.row(vec![
                        r.id,
                        contact_name(&r.contact_id),
                        r.agent_id.unwrap_or_else(|| "all agents".into()),
                        events_text(&r.events),
                        if then.is_empty() {
                            "-".into()
                        } else {
                            then.trim_start_matches("; ").to_string()
                        },
                    ]);
                }
                print!("{}", t.render());
                Ok(())
            }
            RulesCommand::Add {
                contact,
                agent,
                events,
                remind_every,
                escalate,
            } => {
                let events = events
                    .into_iter()
                    .map(|e| e.trim().to_string())
                    .filter(|e| !e.is_empty())
                    .map(|e| if e == "all" { "*".into() } else { e })
                    .collect();
                let body = RuleBody {
                    contact_id: contact,
                    agent_id: agent,
                    events,
                    remind_every_minutes: remind_every,
                    escalation: escalate,
                };
                let answer = self.api.post("/rules", &body).await?;
                self.show(answer, |r: RuleView| {
                    format!(
                        "added rule {}: {} of {} go to contact {}{}\n",
                        r.id,
                        events_text(&r.events),
                        r.agent_id
                            .as_ref()
                            .map_or("all agents".into(), |a| format!("agent {a}")),
                        r.contact_id,
                        followups_text(&r)
                    )
                })
            }
            RulesCommand::Remove { id } => {
                self.api.delete(&format!("/rules/{}", seg(&id))).await?;
                self.done(format!("removed rule {id}"));
                Ok(())
            }
        }
    }
}

/// Webhook URLs are secrets (anyone who has one can post): tables show
/// scheme and host only; `--json` has the whole address.
fn shown_address(c: &ContactView) -> String {
    if c.address.starts_with("http://") || c.address.starts_with("https://") {
        vigil_notify::destination::redact_url(&c.address)
    } else {
        c.address.clone()
    }
}

/// `*` when a rule names every event kind (what `*` expands to).
fn events_text(events: &[String]) -> String {
    let every = EventKind::ALL
        .iter()
        .filter(|k| **k != EventKind::Test)
        .all(|k| events.iter().any(|e| e == k.as_str()));
    if every {
        "* (every event)".into()
    } else {
        events.join(",")
    }
}

/// `MINUTES:CONTACT[,CONTACT…]` of `--escalate`.
fn parse_step(text: &str) -> Result<vigil_core::followup::EscalationStep, String> {
    let (minutes, contacts) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: write MINUTES:CONTACT[,CONTACT…], e.g. 15:ID"))?;
    let after_minutes = minutes
        .trim()
        .parse()
        .map_err(|_| format!("{minutes:?} is not a whole number of minutes"))?;
    let contacts = contacts
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    Ok(vigil_core::followup::EscalationStep {
        after_minutes,
        contacts,
    })
}

/// "; reminds every 10 min; escalates after 15 min to …", or nothing.
fn followups_text(r: &RuleView) -> String {
    let mut out = String::new();
    if let Some(m) = r.remind_every_minutes {
        out.push_str(&format!("; reminds every {m} min until acknowledged"));
    }
    for s in &r.escalation {
        out.push_str(&format!(
            "; escalates after {} min to {}",
            s.after_minutes,
            s.contacts.join(", ")
        ));
    }
    out
}
