//! Alerts, and who hears about them: contacts and notification rules.

use super::table::{time, Table};
use super::{decode, name_of, print_json, query, seg, usage, Ctl};
use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use vigil_notify::EventKind;
use vigil_proto::api::{AlertView, ContactBody, ContactView, RuleBody, RuleView};

#[derive(Debug, Subcommand)]
pub(super) enum ContactsCommand {
    List,
    Add {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        channel: ChannelArg,
        /// An email address, or the URL of the webhook / ntfy topic.
        #[arg(long)]
        address: String,
    },
    /// Change a contact; what is not given stays.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum)]
        channel: Option<ChannelArg>,
        #[arg(long)]
        address: Option<String>,
    },
    Remove {
        id: String,
    },
    /// Send a test notification to the contact.
    Test {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum RulesCommand {
    List,
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
    },
    Remove {
        id: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum AlertStatusArg {
    Open,
    Resolved,
    All,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum ChannelArg {
    Email,
    Webhook,
    Slack,
    Teams,
    Discord,
    Ntfy,
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
            } => {
                let body = ContactBody {
                    name,
                    channel: name_of(channel),
                    address,
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
            } => {
                if name.is_none() && channel.is_none() && address.is_none() {
                    return Err(usage(
                        "nothing to change: give --name, --channel or --address",
                    ));
                }
                let path = format!("/contacts/{}", seg(&id));
                let current: ContactView = decode(self.api.get(&path).await?)?;
                let body = ContactBody {
                    name: name.unwrap_or(current.name),
                    channel: channel.map(name_of).unwrap_or(current.channel),
                    address: address.unwrap_or(current.address),
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
                let mut t = Table::new(&["ID", "CONTACT", "AGENT", "EVENTS"]);
                for r in rules {
                    t.row(vec![
                        r.id,
                        contact_name(&r.contact_id),
                        r.agent_id.unwrap_or_else(|| "all agents".into()),
                        events_text(&r.events),
                    ]);
                }
                print!("{}", t.render());
                Ok(())
            }
            RulesCommand::Add {
                contact,
                agent,
                events,
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
                };
                let answer = self.api.post("/rules", &body).await?;
                self.show(answer, |r: RuleView| {
                    format!(
                        "added rule {}: {} of {} go to contact {}\n",
                        r.id,
                        events_text(&r.events),
                        r.agent_id
                            .map_or("all agents".into(), |a| format!("agent {a}")),
                        r.contact_id
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
    if c.channel == "email" {
        c.address.clone()
    } else {
        vigil_notify::destination::redact_url(&c.address)
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
