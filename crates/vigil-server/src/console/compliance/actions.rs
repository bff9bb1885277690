//! What a writer can do about an endpoint: move an agent of another
//! server here (`POST /compliance/move`, the code of
//! `POST /api/v1/compliance/move`), and install an agent where there is
//! none — an SSH push-install job (`/compliance/install`, progress at
//! `/compliance/install/{id}`) or the one-line manual command.

use super::super::error::ConsoleError;
use super::super::form::{Form, Post};
use super::super::layout::{self, Page};
use super::super::session::Session;
use super::subnav;
use crate::api::install::install_command;
use crate::api::peers::move_here;
use crate::app::App;
use crate::install::{self, Push};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use std::sync::Arc;
use vigil_proto::api::{AgentStart, InstallCommandRequest, InstallRequest, MoveRequest, SshLogin};

/// Reload a running install job this often.
const JOB_REFRESH_SECS: u32 = 2;

fn page(session: &Session, title: &str, refresh_secs: Option<u32>, body: Markup) -> Markup {
    layout::page(
        session,
        Page {
            title,
            nav: "/compliance",
            refresh_secs,
        },
        body,
    )
}

/// `POST /compliance/move`: one outcome per agent.
pub(crate) async fn move_agents(
    State(app): State<Arc<App>>,
    Post { session, form }: Post,
) -> Result<Markup, ConsoleError> {
    session.require_write()?;
    let req = MoveRequest {
        agent_ids: form.all("agent_id").into_iter().map(String::from).collect(),
        plan: None,
    };
    let outcome = move_here(&app, session.account.id, &req).await?;
    let body = html! {
        h1 { "Move agents here" }
        (subnav())
        (layout::table_wrap("Move outcomes", html! {
            table {
                thead { tr { th scope="col" { "Agent" } th scope="col" { "Outcome" } th scope="col" { "Server" } th scope="col" { "Details" } } }
                tbody {
                    @for r in &outcome.results {
                        tr {
                            td { code { (r.agent_id) } }
                            td { (layout::badge(&r.status)) }
                            td.wrap { (r.server_id.as_deref().unwrap_or("—")) }
                            td.wrap { (r.error.as_deref().unwrap_or("The other server tells the agent at its next heartbeat.")) }
                        }
                    }
                }
            }
        }))
        p { a href="/compliance/endpoints?status=managed_elsewhere" { "← Endpoints managed elsewhere" } }
    };
    Ok(page(&session, "Move agents here", None, body))
}

/// The install form's values as typed; the private key is never rendered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct InstallDraft {
    /// One address per line (or separated by spaces / commas).
    pub addresses: String,
    pub user: String,
    pub port: String,
    pub private_key: String,
    pub known_hosts: String,
    pub install_dir: String,
    pub state_dir: String,
    pub unit_dir: String,
    pub start: String,
}

impl InstallDraft {
    pub(crate) fn from_form(f: &Form) -> InstallDraft {
        let text = |name: &str| f.get(name).unwrap_or_default().trim().to_string();
        InstallDraft {
            addresses: text("addresses"),
            user: text("user"),
            port: text("port"),
            private_key: f.get("private_key").unwrap_or_default().to_string(),
            known_hosts: text("known_hosts"),
            install_dir: text("install_dir"),
            state_dir: text("state_dir"),
            unit_dir: text("unit_dir"),
            start: text("start"),
        }
    }

    fn start(&self) -> Result<AgentStart, String> {
        match self.start.as_str() {
            "" | "auto" => Ok(AgentStart::Auto),
            "systemd" => Ok(AgentStart::Systemd),
            "detached" => Ok(AgentStart::Detached),
            other => Err(format!("start: {other:?} is not auto, systemd or detached")),
        }
    }

    fn dir(text: &str) -> Option<String> {
        Some(text.to_string()).filter(|t| !t.is_empty())
    }

    /// The API's push-install request.
    pub(crate) fn to_request(&self) -> Result<InstallRequest, String> {
        let port = match self.port.as_str() {
            "" => 22,
            p => p
                .parse()
                .map_err(|_| format!("SSH port: {p:?} is not a port (1 to 65535)"))?,
        };
        Ok(InstallRequest {
            addresses: self
                .addresses
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect(),
            ssh: SshLogin {
                user: Some(self.user.clone())
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| "root".into()),
                port,
                private_key: self.private_key.clone(),
                known_hosts: Self::dir(&self.known_hosts),
            },
            plan: None,
            install_dir: Self::dir(&self.install_dir),
            state_dir: Self::dir(&self.state_dir),
            unit_dir: Self::dir(&self.unit_dir),
            start: self.start()?,
        })
    }

    /// The API's manual-command request (same layout).
    pub(crate) fn to_command_request(&self) -> Result<InstallCommandRequest, String> {
        Ok(InstallCommandRequest {
            install_dir: Self::dir(&self.install_dir),
            state_dir: Self::dir(&self.state_dir),
            unit_dir: Self::dir(&self.unit_dir),
            start: self.start()?,
            ..Default::default()
        })
    }
}

fn layout_fields(d: &InstallDraft) -> Markup {
    html! {
        label for="install_dir" { "Install directory" }
        input #install_dir type="text" name="install_dir" value=(d.install_dir) placeholder="/opt/vigil";
        label for="state_dir" { "State directory" }
        input #state_dir type="text" name="state_dir" value=(d.state_dir) placeholder="/var/lib/vigil-agent";
        label for="unit_dir" { "systemd unit directory" }
        input #unit_dir type="text" name="unit_dir" value=(d.unit_dir) placeholder="/etc/systemd/system";
        label for="start" { "Start the agent" }
        select #start name="start" {
            @for (v, l) in [("auto", "Automatically (systemd if present)"), ("systemd", "With systemd"), ("detached", "Detached process")] {
                option value=(v) selected[d.start == v] { (l) }
            }
        }
    }
}

fn install_page(
    session: &Session,
    d: &InstallDraft,
    error: Option<&str>,
    command: Option<&str>,
) -> Markup {
    let body = html! {
        h1 { "Install agents" }
        (subnav())
        (layout::error(error))
        section.section aria-labelledby="push-h" {
            h2 #push-h { "Push install over SSH" }
            form.stack method="post" action="/compliance/install" {
                (session.csrf_field())
                label for="addresses" { "Addresses (one per line)" }
                textarea #addresses name="addresses" rows="3" { (d.addresses) }
                label for="user" { "SSH user" }
                input #user type="text" name="user" value=(if d.user.is_empty() { "root" } else { &d.user }) autocomplete="off";
                label for="port" { "SSH port" }
                input #port type="number" name="port" min="1" max="65535" value=(if d.port.is_empty() { "22" } else { &d.port });
                label for="private_key" { "Private key (used for this job only, never stored)" }
                textarea #private_key name="private_key" rows="4" autocomplete="off" spellcheck="false" {}
                label for="known_hosts" { "known_hosts lines (optional; without them host keys are accepted on first use)" }
                textarea #known_hosts name="known_hosts" rows="2" { (d.known_hosts) }
                (layout_fields(d))
                button type="submit" { "Start install" }
            }
        }
        section.section aria-labelledby="manual-h" {
            h2 #manual-h { "Or run a command on the host" }
            @if let Some(c) = command {
                p.flash.ok role="status" { "A single-use token valid for one day is in this command. Run it as root on the host:" }
                pre.command #install-command { (c) }
                button type="button" data-copy="install-command" hidden { "Copy command" }
            } @else {
                form.stack method="post" action="/compliance/install-command" {
                    (session.csrf_field())
                    input type="hidden" name="install_dir" value=(d.install_dir);
                    input type="hidden" name="state_dir" value=(d.state_dir);
                    input type="hidden" name="unit_dir" value=(d.unit_dir);
                    input type="hidden" name="start" value=(d.start);
                    button type="submit" { "Create install command" }
                }
            }
        }
    };
    page(session, "Install agents", None, body)
}

/// `GET /compliance/install?addr=…`: the form, addresses prefilled.
pub(crate) async fn install_form(
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let query = Form::query(query)?;
    let draft = InstallDraft {
        addresses: query.all("addr").join("\n"),
        ..Default::default()
    };
    Ok(install_page(&session, &draft, None, None).into_response())
}

/// `POST /compliance/install`: starts the job, shows its progress.
pub(crate) async fn push(
    State(app): State<Arc<App>>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let draft = InstallDraft::from_form(&form);
    let checked = draft
        .to_request()
        .and_then(|r| Push::check(&r).map_err(|e| e.to_string()));
    match checked {
        Ok(push) => {
            let job = install::start(&app, session.account.id, push);
            Ok(Redirect::to(&format!("/compliance/install/{}", job.id)).into_response())
        }
        Err(m) => {
            let page = install_page(&session, &draft, Some(&m), None);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

/// `POST /compliance/install-command`: the one-line command.
pub(crate) async fn command(
    State(app): State<Arc<App>>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let draft = InstallDraft::from_form(&form);
    let req = match draft.to_command_request() {
        Ok(r) => r,
        Err(m) => {
            let page = install_page(&session, &draft, Some(&m), None);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    match install_command(&app, session.account.id, &req).await {
        Ok(view) => Ok(install_page(&session, &draft, None, Some(&view.command)).into_response()),
        Err(crate::api::error::ApiError::Invalid(m)) => {
            let page = install_page(&session, &draft, Some(&m), None);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /compliance/install/{id}`: a job's progress, per host.
pub(crate) async fn job(
    State(app): State<Arc<App>>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Markup, ConsoleError> {
    let job = app
        .install
        .job(session.account.id, &id)
        .ok_or(ConsoleError::NotFound)?;
    let running = job.state == "running";
    let body = html! {
        h1 { "Install job" }
        (subnav())
        dl.facts {
            dt { "State" } dd #job-state { (layout::badge(&job.state)) }
            dt { "Started" } dd { (layout::time(job.created_at)) }
            dt { "Finished" } dd { (layout::maybe_time(job.finished_at)) }
        }
        (layout::table_wrap("Install hosts", html! {
            table {
                thead { tr { th scope="col" { "Address" } th scope="col" { "State" } th scope="col" { "Agent" } th scope="col" { "Details" } } }
                tbody {
                    @for h in &job.hosts {
                        tr {
                            td { (h.address) }
                            td { (layout::badge(&h.state)) }
                            td { @if let Some(a) = &h.agent_id { a href={ "/agents/" (a) } { code { (a) } } } @else { "—" } }
                            td.wrap { (h.error.as_deref().or(h.message.as_deref()).unwrap_or("")) }
                        }
                    }
                }
            }
        }))
    };
    Ok(page(
        &session,
        "Install job",
        running.then_some(JOB_REFRESH_SECS),
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_forms_become_requests() {
        let form = Form::parse(
            b"addresses=198.51.100.20%0D%0A198.51.100.50&user=&port=&private_key=KEY%0A\
              &known_hosts=&install_dir=%2Fopt%2Fv&state_dir=&unit_dir=&start=detached",
        )
        .unwrap();
        let r = InstallDraft::from_form(&form).to_request().unwrap();
        assert_eq!(r.addresses, ["198.51.100.20", "198.51.100.50"]);
        assert_eq!((r.ssh.user.as_str(), r.ssh.port), ("root", 22));
        assert_eq!(r.ssh.private_key, "KEY\n");
        assert_eq!(r.ssh.known_hosts, None);
        assert_eq!(r.install_dir.as_deref(), Some("/opt/v"));
        assert_eq!(r.start, AgentStart::Detached);
        let bad = Form::parse(b"addresses=x&port=ssh").unwrap();
        assert!(InstallDraft::from_form(&bad)
            .to_request()
            .unwrap_err()
            .starts_with("SSH port:"));
        let bad = Form::parse(b"start=later").unwrap();
        assert!(InstallDraft::from_form(&bad)
            .to_command_request()
            .unwrap_err()
            .starts_with("start:"));
    }
}
