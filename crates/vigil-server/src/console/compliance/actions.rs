//! What a writer can do about an endpoint: move an agent of another
//! server here (`POST /compliance/move`, the code of
//! `POST /api/v1/compliance/move`), and install an agent where there is
//! none — an SSH push-install job (`/compliance/install`, progress at
//! `/compliance/install/{id}`) or the one-line manual command: `curl … | sh`
//! for Linux, a PowerShell line for Windows, both when the endpoint's OS is
//! unknown (`?platform=` from the endpoint list says which).

use super::super::error::ConsoleError;
use super::super::form::{Form, Post};
use super::super::layout::{self, Page};
use super::super::session::Session;
use super::subnav;
use crate::app::App;
use crate::install::service::{audit_install, install_command};
use crate::install::{self, Push};
use crate::peers::move_here;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use std::sync::Arc;
use vigil_proto::api::{
    AgentPlatform, AgentStart, InstallCommandRequest, InstallRequest, MoveRequest, SshLogin,
};

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
    let outcome = move_here(&app, session.account.id, &session, &req).await?;
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
    pub windows_install_dir: String,
    pub windows_state_dir: String,
    /// `linux`, `windows`, or empty (unknown: both are offered).
    pub platform: String,
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
            windows_install_dir: text("windows_install_dir"),
            windows_state_dir: text("windows_state_dir"),
            platform: platform_hint(f.get("platform").unwrap_or_default()).to_string(),
        }
    }

    fn offers_linux(&self) -> bool {
        self.platform != "windows"
    }

    fn offers_windows(&self) -> bool {
        self.platform != "linux"
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
            windows_install_dir: Self::dir(&self.windows_install_dir),
            windows_state_dir: Self::dir(&self.windows_state_dir),
        })
    }

    /// The API's manual-command request (same layout) for `platform`.
    pub(crate) fn to_command_request(
        &self,
        platform: AgentPlatform,
    ) -> Result<InstallCommandRequest, String> {
        Ok(match platform {
            AgentPlatform::Linux => InstallCommandRequest {
                install_dir: Self::dir(&self.install_dir),
                state_dir: Self::dir(&self.state_dir),
                unit_dir: Self::dir(&self.unit_dir),
                start: self.start()?,
                ..Default::default()
            },
            AgentPlatform::Windows => InstallCommandRequest {
                install_dir: Self::dir(&self.windows_install_dir),
                state_dir: Self::dir(&self.windows_state_dir),
                platform,
                ..Default::default()
            },
        })
    }
}

/// `windows`, `linux` or empty, from a `platform` field.
fn platform_hint(text: &str) -> &'static str {
    match text.trim() {
        "windows" => "windows",
        "linux" => "linux",
        _ => "",
    }
}

/// The platform an endpoint's OS (AD `operatingSystem`) points to: empty
/// when unknown, so the install page offers both commands.
pub(crate) fn platform_of_os(os: Option<&str>) -> &'static str {
    match os.map(str::trim).filter(|o| !o.is_empty()) {
        None => "",
        Some(o) if o.to_ascii_lowercase().contains("windows") => "windows",
        Some(_) => "linux",
    }
}

fn layout_fields(d: &InstallDraft) -> Markup {
    html! {
        @if d.offers_linux() { (linux_fields(d)) } @else { (linux_hidden(d)) }
        @if d.offers_windows() {
            label for="windows_install_dir" { "Windows install directory" }
            input #windows_install_dir type="text" name="windows_install_dir" value=(d.windows_install_dir) placeholder="%ProgramFiles%\\Vigil";
            label for="windows_state_dir" { "Windows state directory" }
            input #windows_state_dir type="text" name="windows_state_dir" value=(d.windows_state_dir) placeholder="%ProgramData%\\Vigil\\agent";
        } @else {
            (windows_hidden(d))
        }
        input type="hidden" name="platform" value=(d.platform);
    }
}

/// A form that asks for the one-line install command of `command_platform`,
/// carrying the draft's directories.
fn command_form(
    session: &Session,
    d: &InstallDraft,
    command_platform: &str,
    hint: Option<&str>,
    label: &str,
) -> Markup {
    html! {
        form.stack method="post" action="/compliance/install-command" {
            (session.csrf_field())
            (linux_hidden(d))
            (windows_hidden(d))
            input type="hidden" name="platform" value=(d.platform);
            input type="hidden" name="command_platform" value=(command_platform);
            @if let Some(hint) = hint { p.hint { (hint) } }
            button type="submit" { (label) }
        }
    }
}

fn linux_hidden(d: &InstallDraft) -> Markup {
    html! {
        input type="hidden" name="install_dir" value=(d.install_dir);
        input type="hidden" name="state_dir" value=(d.state_dir);
        input type="hidden" name="unit_dir" value=(d.unit_dir);
        input type="hidden" name="start" value=(d.start);
    }
}

fn windows_hidden(d: &InstallDraft) -> Markup {
    html! {
        input type="hidden" name="windows_install_dir" value=(d.windows_install_dir);
        input type="hidden" name="windows_state_dir" value=(d.windows_state_dir);
    }
}

fn linux_fields(d: &InstallDraft) -> Markup {
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

/// A created command and the platform it is for.
struct Created<'a> {
    command: &'a str,
    platform: AgentPlatform,
}

fn install_page(
    session: &Session,
    d: &InstallDraft,
    error: Option<&str>,
    command: Option<Created<'_>>,
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
                @if c.platform == AgentPlatform::Windows {
                    p.flash.ok role="status" { "A single-use token valid for one day is in this command. Run it on the Windows host in PowerShell started with Run as Administrator:" }
                } @else {
                    p.flash.ok role="status" { "A single-use token valid for one day is in this command. Run it as root on the host:" }
                }
                pre.command #install-command { (c.command) }
                button type="button" data-copy="install-command" hidden { "Copy command" }
            } @else {
                @if d.offers_linux() {
                    (command_form(session, d, "linux",
                        d.offers_windows().then_some("Linux: a curl line to run as root."),
                        "Create install command"))
                }
                @if d.offers_windows() {
                    (command_form(session, d, "windows",
                        Some("Windows: a line for PowerShell run as Administrator (Windows PowerShell 5.1 or later)."),
                        "Create PowerShell install command"))
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
        platform: platform_hint(query.get("platform").unwrap_or_default()).to_string(),
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
        .and_then(|r| Push::check(&r).map_err(|e| e.to_string()))
        .and_then(|p| {
            p.check_policy(&app.cfg.net_policy)
                .map(|()| p)
                .map_err(|e| e.to_string())
        });
    match checked {
        Ok(push) => match install::start(&app, session.account.id, push).await {
            Ok(job) => {
                audit_install(&app, session.account.id, &session, &job).await;
                Ok(Redirect::to(&format!("/compliance/install/{}", job.id)).into_response())
            }
            Err(install::InstallError::Store(e)) => Err(e.into()),
            Err(e) => {
                let page = install_page(&session, &draft, Some(&e.to_string()), None);
                Ok((StatusCode::SERVICE_UNAVAILABLE, page).into_response())
            }
        },
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
    let platform = match form.get("command_platform").unwrap_or_default() {
        "windows" => AgentPlatform::Windows,
        _ => AgentPlatform::Linux,
    };
    let req = match draft.to_command_request(platform) {
        Ok(r) => r,
        Err(m) => {
            let page = install_page(&session, &draft, Some(&m), None);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    match install_command(&app, session.account.id, &req).await {
        Ok(view) => {
            crate::audit::record(
                &app,
                session.account.id,
                &session,
                "install.command",
                None,
                None,
            )
            .await;
            let created = Created {
                command: &view.command,
                platform,
            };
            Ok(install_page(&session, &draft, None, Some(created)).into_response())
        }
        Err(crate::http::error::ApiError::Invalid(m)) => {
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
    let job = install::job(&app, session.account.id, &id)
        .await?
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
            .to_command_request(AgentPlatform::Linux)
            .unwrap_err()
            .starts_with("start:"));
    }

    #[test]
    fn windows_fields_become_windows_requests() {
        let form = Form::parse(
            b"install_dir=%2Fopt%2Fv&windows_install_dir=D%3A%5CVigil&windows_state_dir=\
              &platform=windows&start=later",
        )
        .unwrap();
        let d = InstallDraft::from_form(&form);
        assert!(d.offers_windows() && !d.offers_linux());
        let r = d.to_command_request(AgentPlatform::Windows).unwrap();
        assert_eq!(r.platform, AgentPlatform::Windows);
        assert_eq!(r.install_dir.as_deref(), Some("D:\\Vigil"));
        assert_eq!(
            (r.state_dir, r.unit_dir, r.start),
            (None, None, AgentStart::Auto)
        );
        let push = d.to_request();
        assert!(
            push.is_err(),
            "the Linux start field is still checked for a push"
        );
        let form = Form::parse(b"addresses=x&windows_install_dir=D%3A%5CVigil").unwrap();
        let push = InstallDraft::from_form(&form).to_request().unwrap();
        assert_eq!(push.windows_install_dir.as_deref(), Some("D:\\Vigil"));
        let odd = Form::parse(b"platform=beos").unwrap();
        let d = InstallDraft::from_form(&odd);
        assert!(d.offers_linux() && d.offers_windows(), "unknown: both");
    }

    #[test]
    fn the_os_tells_the_platform() {
        for (os, platform) in [
            (None, ""),
            (Some(" "), ""),
            (Some("Windows Server 2022 Standard"), "windows"),
            (Some("windows 10 pro"), "windows"),
            (Some("Ubuntu"), "linux"),
        ] {
            assert_eq!(platform_of_os(os), platform, "{os:?}");
        }
    }
}
