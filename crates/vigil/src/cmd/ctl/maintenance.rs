//! `vigil ctl maintenance`: planned windows in which agents are scanned and
//! alerts shown, but nobody is notified; what is still wrong when a window
//! ends is notified once.

use super::table::{or_dash, time, Table};
use super::{decode, print_json, seg, usage, Ctl};
use anyhow::Result;
use clap::{Args, Subcommand};
use vigil_core::maintenance::{Occurrence, Schedule, Scope, Window};
use vigil_proto::api::MaintenanceView;

#[derive(Debug, Subcommand, Default)]
pub(super) enum MaintenanceCommand {
    /// The account's windows, whether each is open now and when it opens next.
    #[default]
    List,
    /// Add a window: one-off (--start/--end), weekly (--days/--from/--to) or
    /// cron (--cron/--duration), for the account, --agent ids or a --tag.
    Add(WindowArgs),
    /// Replace a window's settings (give them all again).
    Set {
        /// The window's id.
        id: String,
        #[command(flatten)]
        window: WindowArgs,
    },
    /// Delete a window.
    Remove {
        /// The window's id.
        id: String,
    },
}

#[derive(Debug, Args)]
pub(super) struct WindowArgs {
    #[arg(long)]
    name: String,
    /// IANA time zone of the times given (Europe/Paris, America/New_York, UTC).
    #[arg(long, default_value = "UTC")]
    time_zone: String,
    /// One-off: start, YYYY-MM-DDTHH:MM local to --time-zone.
    #[arg(long, requires = "end", conflicts_with_all = ["days", "cron"])]
    start: Option<String>,
    /// One-off: end, YYYY-MM-DDTHH:MM.
    #[arg(long, requires = "start")]
    end: Option<String>,
    /// Weekly: days, 0 (Sunday) to 6 (Saturday), e.g. 0,6.
    #[arg(long, value_delimiter = ',', requires_all = ["from", "to"], conflicts_with = "cron")]
    days: Vec<u8>,
    /// Weekly: from HH:MM.
    #[arg(long)]
    from: Option<String>,
    /// Weekly: to HH:MM (earlier than --from: ends the next day).
    #[arg(long)]
    to: Option<String>,
    /// Cron: five fields, e.g. "0 2 * * 0" (Sundays 02:00).
    #[arg(long, requires = "duration")]
    cron: Option<String>,
    /// Cron: how long each occurrence lasts, in minutes.
    #[arg(long)]
    duration: Option<u32>,
    /// Only these agents (ids; repeat or separate with commas).
    #[arg(long = "agent", value_delimiter = ',', conflicts_with = "tag")]
    agents: Vec<String>,
    /// Only the agents carrying this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Tell the contacts when the window starts and ends (rules for the
    /// maintenance_started / maintenance_ended events).
    #[arg(long)]
    notify: bool,
}

impl WindowArgs {
    fn window(self) -> Result<Window> {
        let tz = self.time_zone;
        let schedule = match (self.start, self.end, self.days.is_empty(), self.cron) {
            (Some(start), Some(end), true, None) => Schedule::Once {
                start,
                end,
                time_zone: tz,
            },
            (None, None, false, None) => Schedule::Weekly {
                days: self.days,
                from: self.from.unwrap_or_default(),
                to: self.to.unwrap_or_default(),
                time_zone: tz,
            },
            (None, None, true, Some(expr)) => Schedule::Cron {
                expr,
                duration_minutes: self.duration.unwrap_or_default(),
                time_zone: tz,
            },
            _ => {
                return Err(usage(
                    "say when: --start and --end, or --days with --from and --to, or --cron with --duration",
                ))
            }
        };
        let scope = match (self.agents.is_empty(), self.tag) {
            (true, None) => Scope::Account,
            (false, None) => Scope::Agents {
                agents: self.agents,
            },
            (true, Some(tag)) => Scope::Tag { tag },
            (false, Some(_)) => return Err(usage("give --agent or --tag, not both")),
        };
        Ok(Window {
            name: self.name,
            schedule,
            scope,
            notify_start_end: self.notify,
        })
    }
}

fn when(s: &Schedule) -> String {
    match s {
        Schedule::Once {
            start,
            end,
            time_zone,
        } => format!("{start} to {end} {time_zone}"),
        Schedule::Weekly {
            days,
            from,
            to,
            time_zone,
        } => {
            let names: Vec<&str> = days
                .iter()
                .filter_map(|d| vigil_core::compliance::schedule::WEEKDAYS.get(usize::from(*d)))
                .map(|d| &d[..3])
                .collect();
            format!("{} {from}-{to} {time_zone}", names.join(","))
        }
        Schedule::Cron {
            expr,
            duration_minutes,
            time_zone,
        } => format!("cron \"{expr}\" for {duration_minutes} min {time_zone}"),
    }
}

fn scope(s: &Scope) -> String {
    match s {
        Scope::Account => "all agents".into(),
        Scope::Agents { agents } => format!("{} agent(s)", agents.len()),
        Scope::Tag { tag } => format!("tag {tag}"),
    }
}

fn span(o: &Occurrence) -> String {
    format!("{} to {}", time(o.start), time(o.end))
}

impl Ctl {
    pub(super) async fn maintenance(&self, cmd: MaintenanceCommand) -> Result<()> {
        match cmd {
            MaintenanceCommand::List => {
                let answer = self.api.get("/maintenance").await?;
                self.show(answer, |windows: Vec<MaintenanceView>| {
                    let mut t =
                        Table::new(&["ID", "NAME", "WHEN", "FOR", "AGENTS", "OPEN NOW", "NEXT"]);
                    for w in windows {
                        t.row(vec![
                            w.id,
                            w.window.name.clone(),
                            when(&w.window.schedule),
                            scope(&w.window.scope),
                            w.agents.to_string(),
                            or_dash(w.open.as_ref().map(span)),
                            or_dash(w.next.as_ref().map(span)),
                        ]);
                    }
                    t.render()
                })
            }
            MaintenanceCommand::Add(args) => {
                let body = args.window()?;
                let answer = self.api.post("/maintenance", &body).await?;
                self.saved(answer, "added")
            }
            MaintenanceCommand::Set { id, window } => {
                let body = window.window()?;
                let answer = self
                    .api
                    .put(&format!("/maintenance/{}", seg(&id)), &body)
                    .await?;
                self.saved(answer, "saved")
            }
            MaintenanceCommand::Remove { id } => {
                self.api
                    .delete(&format!("/maintenance/{}", seg(&id)))
                    .await?;
                self.done(format!("removed maintenance window {id}"));
                Ok(())
            }
        }
    }

    fn saved(&self, answer: serde_json::Value, verb: &str) -> Result<()> {
        if self.json {
            print_json(&answer);
            return Ok(());
        }
        let w: MaintenanceView = decode(answer)?;
        let state = match (&w.open, &w.next) {
            (Some(o), _) => format!("open now, until {}", time(o.end)),
            (None, Some(n)) => format!("next opens {}", time(n.start)),
            (None, None) => "no occurrence ahead".into(),
        };
        self.done(format!(
            "{verb} maintenance window {:?} (id {}): {}, {}; covers {} agent(s)",
            w.window.name,
            w.id,
            when(&w.window.schedule),
            state,
            w.agents
        ));
        Ok(())
    }
}
