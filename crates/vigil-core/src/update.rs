//! Agent self-update, the server's side: whether an agent is offered the
//! build the server ships, and how its update record moves with each
//! heartbeat. Pure: the store keeps the [`Record`], the agent API applies
//! [`on_heartbeat`].

use serde::{Deserialize, Serialize};

/// Where an agent's update stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The offer went out with a heartbeat answer.
    Offered,
    /// The agent downloads, checks or runs the new build on trial.
    Installing,
    /// The agent runs the offered version.
    Updated,
    /// The agent refused the build or put its old one back; it is not
    /// offered that version again.
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Offered => "offered",
            State::Installing => "installing",
            State::Updated => "updated",
            State::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [
            State::Offered,
            State::Installing,
            State::Updated,
            State::Failed,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// An agent's update record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Rolled out to this agent, not installed yet.
    pub requested: bool,
    /// The version the state is about.
    pub version: Option<String>,
    pub state: Option<State>,
    /// The agent's words (why it failed).
    pub detail: Option<String>,
    pub updated_at: Option<i64>,
}

/// What the agent said about its update in a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report<'a> {
    Installing { version: &'a str },
    Failed { version: &'a str, detail: &'a str },
}

/// One heartbeat of an agent that can update itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat<'a> {
    /// The version it runs.
    pub running: &'a str,
    /// The version of the build the server ships for its platform, if any.
    pub build: Option<&'a str>,
    /// The account updates every agent automatically.
    pub auto: bool,
    pub report: Option<Report<'a>>,
    pub now: i64,
}

/// The outcome of a heartbeat: offer the build or not, and the record to
/// store if it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub offer: bool,
    pub record: Option<Record>,
}

/// Applies a heartbeat to the record: the agent's report, then whether it
/// runs the version it was offered, then whether to offer the build.
pub fn on_heartbeat(record: &Record, hb: &Heartbeat<'_>) -> Decision {
    let mut next = record.clone();
    let set = |next: &mut Record, version: &str, state: State, detail: Option<&str>| {
        next.version = Some(version.to_string());
        next.state = Some(state);
        next.detail = detail.map(str::to_string);
        next.updated_at = Some(hb.now);
    };
    match hb.report {
        Some(Report::Installing { version }) => set(&mut next, version, State::Installing, None),
        Some(Report::Failed { version, detail }) => {
            set(&mut next, version, State::Failed, Some(detail))
        }
        None => {}
    }
    let waiting = matches!(next.state, Some(State::Offered | State::Installing));
    if waiting && next.version.as_deref() == Some(hb.running) {
        set(&mut next, hb.running, State::Updated, None);
        next.requested = false;
    }
    let offer = match hb.build {
        Some(build) => {
            let failed_this =
                next.state == Some(State::Failed) && next.version.as_deref() == Some(build);
            build != hb.running && (next.requested || hb.auto) && !failed_this
        }
        None => false,
    };
    if offer {
        let build = hb.build.unwrap_or_default();
        let told = next.version.as_deref() == Some(build)
            && matches!(next.state, Some(State::Offered | State::Installing));
        if !told {
            set(&mut next, build, State::Offered, None);
        }
    }
    // A rollout to an agent that runs the build already is done.
    if next.requested && hb.build == Some(hb.running) {
        next.requested = false;
    }
    let record = (next != *record).then_some(next);
    Decision { offer, record }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb<'a>(running: &'a str, report: Option<Report<'a>>) -> Heartbeat<'a> {
        Heartbeat {
            running,
            build: Some("0.3.0"),
            auto: false,
            report,
            now: 100,
        }
    }

    #[test]
    fn nothing_is_offered_unless_rolled_out_or_automatic() {
        let d = on_heartbeat(&Record::default(), &hb("0.2.0", None));
        assert_eq!(
            d,
            Decision {
                offer: false,
                record: None
            }
        );
        let auto = Heartbeat {
            auto: true,
            ..hb("0.2.0", None)
        };
        let d = on_heartbeat(&Record::default(), &auto);
        assert!(d.offer);
        let r = d.record.expect("record");
        assert_eq!(
            (r.version.as_deref(), r.state),
            (Some("0.3.0"), Some(State::Offered))
        );
        // Without a build for the agent's platform: nothing.
        let none = Heartbeat {
            build: None,
            auto: true,
            ..hb("0.2.0", None)
        };
        assert!(!on_heartbeat(&Record::default(), &none).offer);
    }

    #[test]
    fn a_rollout_goes_from_offered_to_updated() {
        let requested = Record {
            requested: true,
            ..Record::default()
        };
        let d = on_heartbeat(&requested, &hb("0.2.0", None));
        assert!(d.offer);
        let offered = d.record.expect("offered");
        // Offered again while it works on it: the record does not churn.
        assert_eq!(
            on_heartbeat(&offered, &hb("0.2.0", None)),
            Decision {
                offer: true,
                record: None
            }
        );
        let d = on_heartbeat(
            &offered,
            &hb("0.2.0", Some(Report::Installing { version: "0.3.0" })),
        );
        let installing = d.record.expect("installing");
        assert_eq!(installing.state, Some(State::Installing));
        let d = on_heartbeat(&installing, &hb("0.3.0", None));
        assert!(!d.offer);
        let done = d.record.expect("updated");
        assert_eq!(done.state, Some(State::Updated));
        assert!(!done.requested);
    }

    #[test]
    fn a_failed_version_is_not_offered_again_until_another_build() {
        let requested = Record {
            requested: true,
            ..Record::default()
        };
        let failed = on_heartbeat(
            &requested,
            &hb(
                "0.2.0",
                Some(Report::Failed {
                    version: "0.3.0",
                    detail: "no heartbeat within 60 s",
                }),
            ),
        );
        assert!(!failed.offer);
        let r = failed.record.expect("failed");
        assert_eq!(r.state, Some(State::Failed));
        assert_eq!(r.detail.as_deref(), Some("no heartbeat within 60 s"));
        assert!(r.requested, "still wanted: a newer build will be offered");
        let newer = Heartbeat {
            build: Some("0.3.1"),
            ..hb("0.2.0", None)
        };
        assert!(on_heartbeat(&r, &newer).offer);
    }

    #[test]
    fn an_agent_already_on_the_build_needs_nothing() {
        let requested = Record {
            requested: true,
            ..Record::default()
        };
        let d = on_heartbeat(&requested, &hb("0.3.0", None));
        assert!(!d.offer);
        assert!(!d.record.expect("cleared").requested);
    }

    #[test]
    fn states_read_back() {
        for s in [
            State::Offered,
            State::Installing,
            State::Updated,
            State::Failed,
        ] {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("done"), None);
    }
}
