//! The scope editor (`/compliance/scope`): what an assessment looks at.
//! The form is read into a [`Draft`] (kept as typed when refused), turned
//! into a [`ComplianceScope`] and checked by the same rules as
//! `PUT /api/v1/compliance/scope`.
//!
//! Trust on first use of a directory certificate no client can check by
//! name: *Check certificate* shows what the saved scope's directory
//! presents (a handshake, no bind) and *Pin this certificate* saves its
//! fingerprint in the scope, with the bind password typed again.

use super::super::error::ConsoleError;
use super::super::form::{Form, Post};
use super::super::layout::{self, Page};
use super::super::session::Session;
use crate::app::App;
use crate::compliance::service::{audit_scope, check_certificate, check_scope, start};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use std::sync::Arc;
use vigil_core::compliance::{AdBind, AdScope, AgentPorts, ComplianceScope, Dn, IpRange, IpScope};
use vigil_core::pin::CertPin;
use vigil_proto::api::AdCertificateView;
use vigil_store::{AssessmentTrigger, StoreError};

/// The editor's fields as text, from the stored scope or the refused form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Draft {
    pub ip_enabled: bool,
    /// One range per line.
    pub ranges: String,
    /// Comma-separated.
    pub agent_ports: String,
    /// Empty: no unreachable check.
    pub unreachable_port: String,
    pub on_demand: bool,
    pub resolve_names: bool,
    pub ad_enabled: bool,
    pub ad_url: String,
    pub start_tls: bool,
    /// `simple` or `gssapi`.
    pub bind: String,
    pub bind_dn: String,
    /// Typed in this request only; never rendered back.
    pub password: String,
    /// One DN per line.
    pub base_dns: String,
    pub filter: String,
    pub ca_cert: String,
    /// `sha256:…`, or empty.
    pub tls_pin: String,
}

impl Draft {
    pub(crate) fn of(scope: &ComplianceScope) -> Draft {
        let ad = scope.ad.as_ref();
        Draft {
            ip_enabled: scope.ip.enabled,
            ranges: join_lines(scope.ip.ranges.iter()),
            agent_ports: join(scope.agent_ports.as_slice().iter(), ","),
            unreachable_port: scope
                .unreachable_port
                .map(|p| p.to_string())
                .unwrap_or_default(),
            on_demand: scope.on_demand,
            resolve_names: scope.resolve_names,
            ad_enabled: ad.is_some(),
            ad_url: ad.map(|a| a.url.clone()).unwrap_or_default(),
            start_tls: ad.is_some_and(|a| a.start_tls),
            bind: match ad.map(|a| &a.bind) {
                Some(AdBind::Gssapi) => "gssapi".into(),
                _ => "simple".into(),
            },
            bind_dn: match ad.map(|a| &a.bind) {
                Some(AdBind::Simple { bind_dn }) => bind_dn.clone(),
                _ => String::new(),
            },
            password: String::new(),
            base_dns: ad
                .map(|a| join_lines(a.base_dns.iter()))
                .unwrap_or_default(),
            filter: ad.and_then(|a| a.filter.clone()).unwrap_or_default(),
            ca_cert: ad.and_then(|a| a.ca_cert.clone()).unwrap_or_default(),
            tls_pin: ad
                .and_then(|a| a.tls_pin)
                .map(|p| p.to_string())
                .unwrap_or_default(),
        }
    }

    pub(crate) fn from_form(f: &Form) -> Draft {
        let text = |name: &str| f.get(name).unwrap_or_default().trim().to_string();
        Draft {
            ip_enabled: f.get("ip_enabled").is_some(),
            ranges: text("ranges"),
            agent_ports: text("agent_ports"),
            unreachable_port: text("unreachable_port"),
            on_demand: f.get("mode") != Some("database"),
            resolve_names: f.get("resolve_names").is_some(),
            ad_enabled: f.get("ad_enabled").is_some(),
            ad_url: text("ad_url"),
            start_tls: f.get("start_tls").is_some(),
            bind: text("bind"),
            bind_dn: text("bind_dn"),
            // Passwords may start or end with spaces.
            password: f.get("ad_password").unwrap_or_default().to_string(),
            base_dns: text("base_dns"),
            filter: text("filter"),
            ca_cert: text("ca_cert"),
            tls_pin: text("tls_pin"),
        }
    }

    /// The scope, before the shared checks ([`check_scope`]); an error
    /// names the field.
    pub(crate) fn to_scope(&self) -> Result<ComplianceScope, String> {
        let ranges = lines(&self.ranges)
            .map(|r| IpRange::parse(r).map_err(|e| format!("IP ranges: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let ports = parse_ports(&self.agent_ports).map_err(|e| format!("agent ports: {e}"))?;
        let agent_ports = AgentPorts::new(ports).map_err(|e| format!("agent ports: {e}"))?;
        let unreachable_port = match self.unreachable_port.as_str() {
            "" => None,
            p => Some(parse_port(p).map_err(|e| format!("unreachable-check port: {e}"))?),
        };
        let ad = if self.ad_enabled {
            let bind = match self.bind.as_str() {
                "gssapi" => AdBind::Gssapi,
                _ => AdBind::Simple {
                    bind_dn: self.bind_dn.clone(),
                },
            };
            let base_dns = lines(&self.base_dns)
                .map(|d| Dn::parse(d).map_err(|e| format!("base DNs: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            let tls_pin = match self.tls_pin.as_str() {
                "" => None,
                p => Some(
                    p.parse::<CertPin>()
                        .map_err(|e| format!("pinned certificate: {e}"))?,
                ),
            };
            Some(AdScope {
                url: self.ad_url.clone(),
                start_tls: self.start_tls,
                bind,
                base_dns,
                filter: Some(self.filter.clone()).filter(|f| !f.is_empty()),
                ca_cert: Some(self.ca_cert.clone()).filter(|c| !c.is_empty()),
                tls_pin,
            })
        } else {
            None
        };
        Ok(ComplianceScope {
            ad,
            ip: IpScope {
                enabled: self.ip_enabled,
                ranges,
            },
            agent_ports,
            unreachable_port,
            on_demand: self.on_demand,
            resolve_names: self.resolve_names,
        })
    }

    /// The password to store: `None` keeps the stored one (an empty field,
    /// or a bind that takes none).
    fn password(&self) -> Option<&str> {
        let simple = self.ad_enabled && self.bind != "gssapi";
        Some(self.password.as_str()).filter(|p| simple && !p.is_empty())
    }
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

fn join<T: ToString>(items: impl Iterator<Item = T>, sep: &str) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(sep)
}

fn join_lines<T: ToString>(items: impl Iterator<Item = T>) -> String {
    join(items, "\n")
}

fn parse_port(text: &str) -> Result<u16, String> {
    text.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{text:?} is not a port (1 to 65535)"))
}

/// Ports separated by commas or spaces.
pub(crate) fn parse_ports(text: &str) -> Result<Vec<u16>, String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(parse_port)
        .collect()
}

fn page(
    session: &Session,
    draft: &Draft,
    has_password: bool,
    error: Option<&str>,
    done: Option<&str>,
) -> Markup {
    page_with(session, draft, has_password, error, done, None)
}

fn page_with(
    session: &Session,
    draft: &Draft,
    has_password: bool,
    error: Option<&str>,
    done: Option<&str>,
    certificate: Option<&AdCertificateView>,
) -> Markup {
    let body = html! {
        p { a href="/compliance" { "← Compliance" } }
        h1 { "Compliance scope" }
        (layout::flash(done))
        @if session.can_write() {
            (layout::error(error))
            @if let Some(c) = certificate { (certificate_section(session, draft, c)) }
            (editor(session, draft, has_password))
            @if draft.ad_enabled && (draft.ad_url.to_ascii_lowercase().starts_with("ldaps://") || draft.start_tls) {
                form method="post" action="/compliance/scope/certificate" {
                    (session.csrf_field())
                    button type="submit" { "Check the directory's certificate" }
                    p.hint { "Connects to the saved directory URL and shows the certificate it presents (no bind), to pin it when no CA can vouch for its name." }
                }
            }
        } @else {
            p.hint { "Viewers may only read; ask an admin or owner of the account to change the scope." }
            (read_only(draft))
        }
    };
    layout::page(
        session,
        Page {
            title: "Compliance scope",
            nav: "/compliance",
            refresh_secs: None,
        },
        body,
    )
}

fn read_only(d: &Draft) -> Markup {
    let or_none = |s: &str| {
        if s.is_empty() {
            "none".to_string()
        } else {
            s.replace('\n', ", ")
        }
    };
    html! {
        dl.facts {
            dt { "IP scope" } dd { (if d.ip_enabled { "enabled" } else { "disabled" }) }
            dt { "IP ranges" } dd { (or_none(&d.ranges)) }
            dt { "Agent ports" } dd { (d.agent_ports) }
            dt { "Unreachable check" } dd { (if d.unreachable_port.is_empty() { "off".to_string() } else { format!("port {}", d.unreachable_port) }) }
            dt { "Mode" } dd { (if d.on_demand { "on demand" } else { "database only" }) }
            dt { "Names for addresses" } dd { (if d.resolve_names { "reverse DNS and NetBIOS" } else { "off" }) }
            dt { "Active Directory" } dd { (if d.ad_enabled { d.ad_url.as_str() } else { "not used" }) }
            @if d.ad_enabled {
                dt { "Bind" } dd { (if d.bind == "gssapi" { "Kerberos (GSSAPI)".to_string() } else { format!("simple, as {}", d.bind_dn) }) }
                dt { "Base DNs" } dd { (or_none(&d.base_dns)) }
                dt { "Filter" } dd { (or_none(&d.filter)) }
            }
        }
    }
}

fn editor(session: &Session, d: &Draft, has_password: bool) -> Markup {
    html! {
        form.stack method="post" action="/compliance/scope" {
            (session.csrf_field())
            fieldset {
                legend { "IP ranges" }
                label.check for="ip_enabled" {
                    input #ip_enabled type="checkbox" name="ip_enabled" value="on" checked[d.ip_enabled];
                    "Assess IP ranges"
                }
                label for="ranges" { "IP ranges (one per line)" }
                textarea #ranges name="ranges" rows="4" aria-describedby="ranges-hint" { (d.ranges) }
                p.hint #ranges-hint { "CIDR (198.51.100.0/24), a range (10.0.0.1-10.0.0.99) or one address; at most 65,536 addresses in all." }
            }
            fieldset {
                legend { "Probing" }
                label for="agent_ports" { "Agent ports" }
                input #agent_ports type="text" name="agent_ports" value=(d.agent_ports) aria-describedby="agent-ports-hint";
                p.hint #agent-ports-hint { "Comma-separated ports Vigil agents listen on (default 47760)." }
                label for="unreachable_port" { "Unreachable-check port" }
                input #unreachable_port type="number" name="unreachable_port" min="1" max="65535"
                    value=(d.unreachable_port) aria-describedby="unreachable-hint";
                p.hint #unreachable-hint { "A machine that answers on no agent port and not on this port is unreachable; empty turns the check off." }
                label.check for="mode-live" {
                    input #mode-live type="radio" name="mode" value="on_demand" checked[d.on_demand];
                    "On demand (contact every endpoint)"
                }
                label.check for="mode-db" {
                    input #mode-db type="radio" name="mode" value="database" checked[!d.on_demand];
                    "Database only (from the last on-demand assessment)"
                }
                label.check for="resolve_names" {
                    input #resolve_names type="checkbox" name="resolve_names" value="on" checked[d.resolve_names];
                    "Find names for addresses (reverse DNS, NetBIOS)"
                }
            }
            fieldset {
                legend { "Active Directory" }
                label.check for="ad_enabled" {
                    input #ad_enabled type="checkbox" name="ad_enabled" value="on" checked[d.ad_enabled];
                    "Read computers from Active Directory"
                }
                label for="ad_url" { "Directory URL" }
                input #ad_url type="text" name="ad_url" value=(d.ad_url) placeholder="ldaps://dc1.example.test";
                label.check for="start_tls" {
                    input #start_tls type="checkbox" name="start_tls" value="on" checked[d.start_tls];
                    "StartTLS (for ldap:// URLs)"
                }
                label for="bind" { "Bind method" }
                select #bind name="bind" {
                    option value="simple" selected[d.bind != "gssapi"] { "Simple bind (DN and password)" }
                    option value="gssapi" selected[d.bind == "gssapi"] { "Kerberos (GSSAPI, the server's ticket)" }
                }
                label for="bind_dn" { "Bind DN or user" }
                input #bind_dn type="text" name="bind_dn" value=(d.bind_dn) autocomplete="off";
                label for="ad_password" { "Bind password" }
                input #ad_password type="password" name="ad_password" autocomplete="new-password" aria-describedby="password-hint";
                p.hint #password-hint {
                    @if has_password { "A password is stored; leave empty to keep it (enter it again when you change the URL, bind DN, CA certificate or pinned certificate)." }
                    @else { "No password stored." }
                }
                label for="base_dns" { "Base DNs (one per line)" }
                textarea #base_dns name="base_dns" rows="3" { (d.base_dns) }
                label for="filter" { "Extra LDAP filter (optional)" }
                input #filter type="text" name="filter" value=(d.filter) placeholder="(!(userAccountControl:1.2.840.113556.1.4.803:=2))";
                label for="ca_cert" { "CA certificate (PEM, optional)" }
                textarea #ca_cert name="ca_cert" rows="4" { (d.ca_cert) }
                label for="tls_pin" { "Pinned certificate (optional)" }
                input #tls_pin type="text" name="tls_pin" value=(d.tls_pin) placeholder="sha256:…" aria-describedby="pin-hint";
                p.hint #pin-hint { "The SHA-256 fingerprint of the directory's own certificate: when set, it alone is trusted, whatever its names (e.g. a Samba DC's certificate without subjectAltName)." }
            }
            div.search {
                button type="submit" name="action" value="save" { "Save only" }
                button type="submit" name="action" value="reassess" { "Save and re-assess" }
            }
        }
    }
}

pub(crate) async fn show(
    State(app): State<Arc<App>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Markup, ConsoleError> {
    let query = Form::query(query)?;
    let done = match query.get("done") {
        Some("saved") => Some("Scope saved."),
        Some("pinned") => {
            Some("Certificate pinned: the directory is trusted by this fingerprint only.")
        }
        _ => None,
    };
    let (scope, has_password) = app
        .store
        .compliance_scope(session.account.id)
        .await?
        .unwrap_or_default();
    Ok(page(&session, &Draft::of(&scope), has_password, None, done))
}

pub(crate) async fn save(
    State(app): State<Arc<App>>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let account = session.account.id;
    let draft = Draft::from_form(&form);
    let checked = match draft.to_scope() {
        Ok(s) => check_scope(&app, account, &s)
            .await
            .map(|()| s)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    let saved = match checked {
        // A refusal by the store (e.g. the AD connection changed and the
        // password field is empty) is shown on the form too.
        Ok(scope) => match app
            .store
            .put_compliance_scope(account, &scope, draft.password())
            .await
        {
            Err(StoreError::Invalid(message)) => Err(message),
            other => {
                other?;
                audit_scope(&app, account, &session, &scope, draft.password().is_some()).await;
                Ok(())
            }
        },
        Err(message) => Err(message),
    };
    if let Err(message) = saved {
        let has_password = app
            .store
            .compliance_scope(account)
            .await?
            .is_some_and(|(_, p)| p);
        let page = page(&session, &draft, has_password, Some(&message), None);
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    if form.get("action") == Some("reassess") {
        start(&app, account, &session, AssessmentTrigger::ScopeSaved).await?;
        return Ok(Redirect::to("/compliance?done=started").into_response());
    }
    Ok(Redirect::to("/compliance/scope?done=saved").into_response())
}

/// What the directory presented, and the form that pins it.
fn certificate_section(session: &Session, d: &Draft, c: &AdCertificateView) -> Markup {
    html! {
        section aria-label="Directory certificate" {
            h2 { "Directory certificate" }
            dl.facts {
                dt { "URL" } dd { (c.url) }
                dt { "SHA-256 fingerprint" } dd { code #fingerprint { (c.fingerprint) } }
                dt { "Trusted" } dd {
                    @if c.trusted { @if c.pinned { "yes (pinned)" } @else { "yes" } }
                    @else { "no: " (c.problem.as_deref().unwrap_or("unknown reason")) }
                }
            }
            @if !c.pinned {
                p.hint { "Compare the fingerprint with the one on the domain controller (e.g. `openssl x509 -in cert.pem -noout -fingerprint -sha256`) before you pin it." }
                form method="post" action="/compliance/scope/pin" {
                    (session.csrf_field())
                    input type="hidden" name="fingerprint" value=(c.fingerprint);
                    @if d.bind != "gssapi" {
                        label for="pin_password" { "Bind password (needed again: the directory's trust changes)" }
                        input #pin_password type="password" name="ad_password" autocomplete="new-password" required;
                    }
                    button type="submit" { "Pin this certificate" }
                }
            }
        }
    }
}

/// `POST /compliance/scope/certificate`: the scope page with what the
/// saved directory presents.
pub(crate) async fn certificate(
    State(app): State<Arc<App>>,
    Post { session, .. }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let account = session.account.id;
    let (scope, has_password) = app
        .store
        .compliance_scope(account)
        .await?
        .unwrap_or_default();
    let draft = Draft::of(&scope);
    let page = match check_certificate(&app, account).await {
        Ok(c) => page_with(&session, &draft, has_password, None, None, Some(&c)),
        Err(e) => {
            let page = page(&session, &draft, has_password, Some(&e.to_string()), None);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    Ok(page.into_response())
}

/// `POST /compliance/scope/pin`: pins the fingerprint the admin confirmed
/// in the saved AD scope (with the bind password again).
pub(crate) async fn pin(
    State(app): State<Arc<App>>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let account = session.account.id;
    let (mut scope, has_password) = app
        .store
        .compliance_scope(account)
        .await?
        .unwrap_or_default();
    let password = form.get("ad_password").filter(|p| !p.is_empty());
    let pinned = match (
        scope.ad.as_mut(),
        form.get("fingerprint")
            .unwrap_or_default()
            .parse::<CertPin>(),
    ) {
        (None, _) => Err("the saved scope has no Active Directory part".to_string()),
        (_, Err(e)) => Err(e.to_string()),
        (Some(ad), Ok(pin)) => {
            ad.tls_pin = Some(pin);
            match check_scope(&app, account, &scope).await {
                Err(e) => Err(e.to_string()),
                Ok(()) => match app
                    .store
                    .put_compliance_scope(account, &scope, password)
                    .await
                {
                    Err(StoreError::Invalid(message)) => Err(message),
                    other => {
                        other?;
                        audit_scope(&app, account, &session, &scope, password.is_some()).await;
                        Ok(())
                    }
                },
            }
        }
    };
    if let Err(message) = pinned {
        let (saved, _) = app
            .store
            .compliance_scope(account)
            .await?
            .unwrap_or_default();
        let page = page(
            &session,
            &Draft::of(&saved),
            has_password,
            Some(&message),
            None,
        );
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    Ok(Redirect::to("/compliance/scope?done=pinned").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_comma_or_space_separated() {
        assert_eq!(
            parse_ports("47760, 47761 8000").unwrap(),
            [47760, 47761, 8000]
        );
        assert_eq!(parse_ports("").unwrap(), Vec::<u16>::new());
        assert!(parse_ports("0").unwrap_err().contains("\"0\""));
        assert!(parse_ports("80,http").unwrap_err().contains("http"));
        assert!(parse_ports("70000").is_err());
    }

    #[test]
    fn forms_become_scopes_and_back() {
        let form = Form::parse(
            b"ip_enabled=on&ranges=198.51.100.0%2F26%0D%0A%0D%0A10.0.0.1-10.0.0.9%0D%0A\
              &agent_ports=47760%2C47761&unreachable_port=&mode=on_demand\
              &ad_enabled=on&ad_url=ldaps%3A%2F%2Fdc1.example.test&bind=simple\
              &bind_dn=svc%40example.test&ad_password=+s3cret+\
              &base_dns=OU%3DPCs%2CDC%3Dexample%2CDC%3Dtest%0D%0ADC%3Dother&filter=&ca_cert=",
        )
        .unwrap();
        let draft = Draft::from_form(&form);
        let scope = draft.to_scope().unwrap();
        assert!(scope.ip.enabled);
        assert_eq!(scope.ip.ranges.len(), 2);
        assert_eq!(scope.agent_ports.as_slice(), [47760, 47761]);
        assert_eq!(scope.unreachable_port, None, "empty turns the check off");
        assert!(scope.on_demand);
        let ad = scope.ad.as_ref().unwrap();
        assert_eq!(ad.base_dns.len(), 2);
        assert_eq!(ad.filter, None);
        assert_eq!(ad.ca_cert, None);
        assert_eq!(draft.password(), Some(" s3cret "));
        scope.validate().unwrap();
        let again = Draft::of(&scope);
        assert_eq!(again.password, "", "the password is never rendered");
        assert_eq!(again.to_scope().unwrap(), scope, "round trip");
        assert_eq!(again.password(), None, "empty keeps the stored password");
    }

    #[test]
    fn refused_fields_are_named() {
        let bad = |body: &[u8]| {
            Draft::from_form(&Form::parse(body).unwrap())
                .to_scope()
                .unwrap_err()
        };
        assert!(bad(b"ranges=198.51.100.0%2F33&agent_ports=1").starts_with("IP ranges:"));
        assert!(bad(b"agent_ports=").starts_with("agent ports:"));
        assert!(bad(b"agent_ports=1&unreachable_port=x").starts_with("unreachable-check port:"));
        assert!(bad(b"agent_ports=1&ad_enabled=on&base_dns=not+a+dn").starts_with("base DNs:"));
        let db = Draft::from_form(&Form::parse(b"agent_ports=1&mode=database").unwrap());
        assert!(!db.to_scope().unwrap().on_demand);
    }
}
