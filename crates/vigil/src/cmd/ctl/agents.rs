//! Agents, enrolling new ones, their security-scan policies and results.

use super::table::{ago, fields, now, or_dash, time, Table};
use super::{decode, policy, print_json, query, seg, usage, Ctl};
use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use vigil_core::{Plan, PolicyTarget, PortState, SecurityPolicy};
use vigil_proto::api::{
    AgentPatch, AgentView, EnrollmentView, NewEnrollment, PolicyView, ResultView,
};

#[derive(Debug, Subcommand)]
pub(super) enum AgentsCommand {
    /// The account's agents: status, plan, last contact, scan.
    List {
        /// Only the agents carrying this tag.
        #[arg(long)]
        tag: Option<String>,
    },
    /// One agent in full: facts, status, plan, policy summary, tags.
    Show {
        /// The agent's id.
        id: String,
    },
    /// Move an agent to another plan (security scans need extended).
    SetPlan {
        id: String,
        #[arg(value_enum)]
        plan: PlanArg,
    },
    /// Run the agent's security scan now.
    Scan { id: String },
    /// Remove an agent (its history is kept; its credential stops working).
    Remove { id: String },
    /// Add or remove tags (labels for maintenance windows and filters).
    Tag {
        id: String,
        /// Tags to add (lowercase letters, digits, - _ . :).
        #[arg(value_delimiter = ',')]
        add: Vec<String>,
        /// Tags to remove.
        #[arg(long, value_delimiter = ',')]
        remove: Vec<String>,
        /// Remove every tag first.
        #[arg(long)]
        clear: bool,
    },
}

/// `vigil ctl agents` alone lists them all.
impl Default for AgentsCommand {
    fn default() -> Self {
        AgentsCommand::List { tag: None }
    }
}

#[derive(Debug, Subcommand)]
pub(super) enum PolicyCommand {
    /// The agent's policy: ports, targets, interval, whether it runs.
    Show {
        /// The agent's id.
        agent: String,
    },
    /// Change the policy, or create it (then --interval is needed).
    Set {
        /// The agent's id.
        agent: String,
        /// Run the scan (needs the extended plan).
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Stop the scan; the policy is kept.
        #[arg(long)]
        disable: bool,
        /// Ports allowed to be open, e.g. 22,443,8000-8100 ("none" for none).
        #[arg(long)]
        authorized: Option<String>,
        /// Ports expected to be open (alert when one is not; "none" for none).
        #[arg(long)]
        monitored: Option<String>,
        /// What to scan: agent_host, observed_address, a hostname/IP,
        /// local_network (the agent sweeps its own subnets for devices) or a
        /// CIDR block/range added to that sweep; repeat for more. Replaces
        /// the current targets [new policy default: agent_host].
        #[arg(long = "target")]
        targets: Vec<String>,
        /// An interface left out of the local-network sweep by default
        /// (container bridge, tunnel, ...) to include; repeat for more.
        /// Replaces the current list ("none" clears it).
        #[arg(long = "include-interface")]
        include_interfaces: Vec<String>,
        /// Minutes between scans (members: 15, 30, 60, 120, 360, 720 or 1440).
        #[arg(long)]
        interval: Option<u32>,
        /// Alert when an authorized port is served by another program than
        /// in the scan before (on the agent's own host; off by default).
        #[arg(long, value_name = "on|off", value_parser = on_off)]
        process_change_alerts: Option<bool>,
    },
}

/// `on` or `off`.
fn on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("{other:?}: write on or off")),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum PlanArg {
    Community,
    Extended,
}

impl From<PlanArg> for Plan {
    fn from(p: PlanArg) -> Plan {
        match p {
            PlanArg::Community => Plan::Community,
            PlanArg::Extended => Plan::Extended,
        }
    }
}

impl Ctl {
    pub(super) async fn agents(&self, cmd: AgentsCommand) -> Result<()> {
        match cmd {
            AgentsCommand::List { tag } => {
                let q = query(&tag.map(|t| ("tag", t)).into_iter().collect::<Vec<_>>());
                let answer = self.api.get(&format!("/agents{q}")).await?;
                self.show(answer, |agents: Vec<AgentView>| agents_table(&agents))
            }
            AgentsCommand::Show { id } => {
                let answer = self.api.get(&format!("/agents/{}", seg(&id))).await?;
                if self.json {
                    print_json(&answer);
                    return Ok(());
                }
                let agent: AgentView = decode(answer)?;
                print!("{}", agent_fields(&agent));
                match self
                    .api
                    .get_optional(&format!("/agents/{}/policy", seg(&id)))
                    .await?
                {
                    Some(v) => {
                        let view: PolicyView = decode(v)?;
                        println!("\nsecurity scan policy:\n{}", policy::render(&view));
                    }
                    None => println!("\nno security scan policy"),
                }
                Ok(())
            }
            AgentsCommand::Tag {
                id,
                add,
                remove,
                clear,
            } => {
                let path = format!("/agents/{}", seg(&id));
                let current: AgentView = decode(self.api.get(&path).await?)?;
                let mut tags = if clear { Vec::new() } else { current.tags };
                tags.retain(|t| !remove.contains(t));
                tags.extend(add);
                let patch = AgentPatch {
                    tags: Some(tags),
                    ..AgentPatch::default()
                };
                let answer = self.api.patch(&path, &patch).await?;
                self.show(answer, |a: AgentView| {
                    format!("agent {} tags: {}\n", a.name, tags_text(&a.tags))
                })
            }
            AgentsCommand::SetPlan { id, plan } => {
                let patch = AgentPatch {
                    plan: Some(plan.into()),
                    ..AgentPatch::default()
                };
                let answer = self
                    .api
                    .patch(&format!("/agents/{}", seg(&id)), &patch)
                    .await?;
                self.show(answer, |a: AgentView| {
                    format!(
                        "agent {} is on the {} plan; security scan: {}\n",
                        a.name,
                        a.plan,
                        policy::scan_text(&a.scan)
                    )
                })
            }
            AgentsCommand::Scan { id } => {
                self.api
                    .post_empty(&format!("/agents/{}/scan", seg(&id)))
                    .await?;
                self.done(format!("security scan of agent {id} queued"));
                Ok(())
            }
            AgentsCommand::Remove { id } => {
                self.api.delete(&format!("/agents/{}", seg(&id))).await?;
                self.done(format!("removed agent {id}"));
                Ok(())
            }
        }
    }

    pub(super) async fn enroll(
        &self,
        name: String,
        plan: Plan,
        ttl_minutes: Option<u32>,
    ) -> Result<()> {
        let req = NewEnrollment {
            name: name.clone(),
            plan,
            ttl_minutes,
        };
        let answer = self.api.post("/enrollments", &req).await?;
        self.show(answer, |e: EnrollmentView| {
            format!(
                "Enrollment token for agent {name:?} ({plan} plan), single use, valid until {}.\n\
                 Run this on the machine to monitor:\n\n  {}\n",
                time(e.expires_at),
                e.command
            )
        })
    }

    pub(super) async fn policy(&self, cmd: PolicyCommand) -> Result<()> {
        match cmd {
            PolicyCommand::Show { agent } => self.policy_show(&agent).await,
            PolicyCommand::Set {
                agent,
                enable,
                disable,
                authorized,
                monitored,
                targets,
                include_interfaces,
                interval,
                process_change_alerts,
            } => {
                let enabled = match (enable, disable) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                };
                let mut changes = policy::Changes::parse(
                    enabled,
                    authorized.as_deref(),
                    monitored.as_deref(),
                    &targets,
                    interval,
                )?;
                changes.include_interfaces(&include_interfaces);
                changes.process_change_alerts = process_change_alerts;
                self.policy_set(&agent, changes).await
            }
        }
    }

    async fn policy_show(&self, agent: &str) -> Result<()> {
        let path = format!("/agents/{}/policy", seg(agent));
        match self.api.get_optional(&path).await? {
            Some(answer) => self.show(answer, |v: PolicyView| policy::render(&v)),
            None => {
                // No policy, or no such agent: this call says which.
                self.api.get(&format!("/agents/{}", seg(agent))).await?;
                Err(usage(format!(
                    "agent {agent} has no security scan policy yet: create one with \
                     `vigil ctl policy set {agent} --interval MINUTES`"
                )))
            }
        }
    }

    async fn policy_set(&self, agent: &str, changes: policy::Changes) -> Result<()> {
        let path = format!("/agents/{}/policy", seg(agent));
        let current: Option<SecurityPolicy> = match self.api.get_optional(&path).await? {
            Some(v) => Some(decode::<PolicyView>(v)?.policy),
            None => {
                self.api.get(&format!("/agents/{}", seg(agent))).await?;
                None
            }
        };
        let new = changes.apply(current)?;
        let answer = self.api.put(&path, &new).await?;
        self.show(answer, |v: PolicyView| {
            format!(
                "saved the security scan policy of agent {agent}\n{}",
                policy::render(&v)
            )
        })
    }

    pub(super) async fn results(&self, agent: &str, limit: Option<u32>) -> Result<()> {
        let q = query(
            &limit
                .map(|l| ("limit", l.to_string()))
                .into_iter()
                .collect::<Vec<_>>(),
        );
        let answer = self
            .api
            .get(&format!("/agents/{}/results{q}", seg(agent)))
            .await?;
        self.show(answer, |results: Vec<ResultView>| {
            if results.is_empty() {
                return format!("no security scan results for agent {agent} yet\n");
            }
            results
                .iter()
                .map(result_text)
                .collect::<Vec<_>>()
                .join("\n")
        })
    }
}

/// `removed` for a removed agent (whose last health no longer matters).
fn health_text(a: &AgentView) -> String {
    match a.removed_at {
        Some(_) => "removed".into(),
        None => a.health.as_str().into(),
    }
}

fn agents_table(agents: &[AgentView]) -> String {
    if agents.is_empty() {
        return "no agents yet; enroll one with `vigil ctl enroll --name NAME`\n".into();
    }
    let now = now();
    let mut t = Table::new(&[
        "ID",
        "NAME",
        "PLAN",
        "HEALTH",
        "SCAN",
        "LAST SEEN",
        "ADDRESS",
        "TAGS",
    ]);
    for a in agents {
        let health = health_text(a);
        let scan = match &a.maintenance {
            Some(_) => format!("{} (maintenance)", a.scan.state),
            None => a.scan.state.clone(),
        };
        t.row(vec![
            a.id.clone(),
            a.name.clone(),
            a.plan.to_string(),
            health,
            scan,
            or_dash(a.last_seen_at.map(|at| ago(at, now))),
            or_dash(a.public_addr.as_ref()),
            tags_text(&a.tags),
        ]);
    }
    t.render()
}

fn agent_fields(a: &AgentView) -> String {
    let now = now();
    let mut pairs = vec![
        ("id", a.id.clone()),
        ("name", a.name.clone()),
        ("plan", a.plan.to_string()),
        ("health", health_text(a)),
        ("security scan", policy::scan_text(&a.scan)),
        (
            "last seen",
            or_dash(
                a.last_seen_at
                    .map(|at| format!("{} ({})", time(at), ago(at, now))),
            ),
        ),
        ("address", or_dash(a.public_addr.as_ref())),
        ("hostname", or_dash(a.hostname.as_ref())),
        ("os", or_dash(a.os.as_ref())),
        ("version", or_dash(a.version.as_ref())),
        ("enrolled", time(a.enrolled_at)),
    ];
    pairs.push(("tags", tags_text(&a.tags)));
    if let Some(m) = &a.maintenance {
        pairs.push((
            "maintenance",
            format!(
                "{:?} until {} (alerts shown, notifications held)",
                m.name,
                time(m.until)
            ),
        ));
    }
    if let Some(at) = a.removed_at {
        pairs.push(("removed", time(at)));
    }
    fields(&pairs)
}

fn tags_text(tags: &[String]) -> String {
    if tags.is_empty() {
        "-".into()
    } else {
        tags.join(",")
    }
}

/// One result: a heading line, then the ports that are not closed.
fn result_text(r: &ResultView) -> String {
    let shown: Vec<_> = r
        .ports
        .iter()
        .filter(|p| p.state != PortState::Closed)
        .collect();
    let target = match PolicyTarget::from_key(&r.target) {
        Ok(t) => policy::target_text(&t),
        Err(_) => r.target.clone(),
    };
    let mut out = format!(
        "{}  {}  {}  ({})\n",
        time(r.finished_at),
        target,
        or_dash(r.addr.as_ref()),
        r.probed_summary(),
    );
    if shown.is_empty() {
        if r.probed_count != Some(0) {
            out.push_str("  no port open\n");
        }
        return out;
    }
    let w = shown
        .iter()
        .map(|p| format!("{}/tcp", p.port).len())
        .max()
        .unwrap_or(0);
    for p in shown {
        let state = serde_json::to_value(p.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let port = format!("{}/tcp", p.port);
        let facts = p.details.as_ref().map(|d| d.facts()).unwrap_or_default();
        // The service name on the port's line, the other facts below it.
        match facts.iter().find(|(label, _)| *label == "Service") {
            Some((_, service)) => out.push_str(&format!("  {port:<w$}  {state:<8}  {service}\n")),
            None => out.push_str(&format!("  {port:<w$}  {state}\n")),
        }
        for (label, value) in facts.iter().filter(|(label, _)| *label != "Service") {
            out.push_str(&format!("  {:<w$}    {label}: {value}\n", ""));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_proto::api::PortView;

    #[test]
    fn results_show_the_ports_that_are_not_closed() {
        let port = |port, state| PortView {
            port,
            state,
            details: None,
        };
        let r = ResultView {
            id: "r".into(),
            agent_id: "a".into(),
            target: "host:nas.lan".into(),
            addr: Some("192.0.2.7".into()),
            started_at: 0,
            finished_at: 0,
            received_at: 0,
            ports: vec![
                port(22, PortState::Open),
                port(80, PortState::Closed),
                port(8443, PortState::Filtered),
            ],
            probed_count: Some(65535),
            probed_ports: Some("1-65535".into()),
            filtered_not_listed: Some(65530),
            unreachable_not_listed: Some(0),
        };
        let text = result_text(&r);
        assert!(
            text.contains(
                "nas.lan  192.0.2.7  (65,535 ports probed (1-65535); not shown: 65,530 filtered, 2 closed)"
            ),
            "{text}"
        );
        assert!(text.contains("\n  22/tcp    open\n"), "{text}");
        assert!(text.contains("\n  8443/tcp  filtered\n"), "{text}");
        assert!(!text.contains("80/tcp"), "{text}");

        // What listens: the service on the port's line, the rest below.
        let mut described = r.clone();
        described.ports[0].details = Some(vigil_core::listener::PortDetails {
            service: Some("ssh".into()),
            banner: Some("SSH-2.0-OpenSSH_9.2p1".into()),
            process: Some(vigil_core::listener::ProcessInfo {
                name: "sshd".into(),
                pid: 812,
                user: Some("root".into()),
                exe: Some("/usr/sbin/sshd".into()),
                cmdline: Some("sshd: /usr/sbin/sshd -D".into()),
            }),
            ..Default::default()
        });
        let text = result_text(&described);
        assert!(text.contains("\n  22/tcp    open      ssh\n"), "{text}");
        assert!(
            text.contains(
                "\n              Process: sshd: /usr/sbin/sshd -D (pid 812, user root, /usr/sbin/sshd)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("\n              Banner: SSH-2.0-OpenSSH_9.2p1\n"),
            "{text}"
        );

        // Stored before Vigil recorded what was probed: the kept ports are
        // not passed off as the sweep.
        let old = ResultView {
            probed_count: None,
            probed_ports: None,
            ..r.clone()
        };
        let text = result_text(&old);
        assert!(
            text.contains("(3 ports listed; what was probed was not recorded)"),
            "{text}"
        );
        assert!(!text.contains("scanned"), "{text}");

        // A silent address: every port filtered, counted, none listed.
        let silent = ResultView {
            ports: vec![],
            filtered_not_listed: Some(65535),
            ..r.clone()
        };
        let text = result_text(&silent);
        assert!(
            text.contains(
                "(65,535 ports probed (1-65535); not shown: 65,535 filtered)\n  no port open\n"
            ),
            "{text}"
        );

        // A target that did not resolve: nothing probed, nothing closed.
        let nothing = ResultView {
            addr: None,
            ports: vec![],
            probed_count: Some(0),
            probed_ports: Some(String::new()),
            filtered_not_listed: Some(0),
            ..r
        };
        let text = result_text(&nothing);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("(no port probed)"), "{text}");
    }
}
