//! Contacts, notification rules, and test notifications.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::Json;
use super::ids;
use crate::app::App;
use crate::outbox::destination;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use std::sync::Arc;
use vigil_notify::{EventKind, Notification, Severity};
use vigil_proto::api::{ContactBody, ContactView, RuleBody, RuleView};
use vigil_store::{now_unix, AgentId, Channel, Contact, ContactId, NotificationRule, RuleId};

fn contact_view(c: &Contact) -> ContactView {
    ContactView {
        id: c.id.to_string(),
        name: c.name.clone(),
        channel: c.channel.to_string(),
        address: c.address.clone(),
        created_at: c.created_at,
    }
}

fn rule_view(r: &NotificationRule) -> RuleView {
    RuleView {
        id: r.id.to_string(),
        contact_id: r.contact_id.to_string(),
        agent_id: r.agent_id.map(|a| a.to_string()),
        events: r.events.clone(),
        created_at: r.created_at,
    }
}

fn channel(text: &str) -> Result<Channel, ApiError> {
    text.parse().map_err(|_| {
        ApiError::Invalid(format!(
            "unknown channel {text:?}: use email, webhook, slack, teams, discord or ntfy"
        ))
    })
}

/// Checks the address the way the sender will use it.
fn check(body: &ContactBody) -> Result<Channel, ApiError> {
    let channel = channel(&body.channel)?;
    let probe = Contact {
        id: ContactId::random(),
        account_id: vigil_store::AccountId::random(),
        name: body.name.clone(),
        channel,
        address: body.address.trim().to_string(),
        created_at: 0,
    };
    destination(&probe)
        .validate()
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    Ok(channel)
}

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<axum::Json<Vec<ContactView>>, ApiError> {
    let contacts = app.store.contacts(caller.account.id).await?;
    Ok(axum::Json(contacts.iter().map(contact_view).collect()))
}

pub(crate) async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<ContactView>, ApiError> {
    let id: ContactId = ids::parse("contact", &id)?;
    let c = app.store.contact(caller.account.id, id).await?;
    Ok(axum::Json(contact_view(&c)))
}

pub(crate) async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(body): Json<ContactBody>,
) -> Result<(StatusCode, axum::Json<ContactView>), ApiError> {
    caller.can_write()?;
    let channel = check(&body)?;
    let c = app
        .store
        .create_contact(caller.account.id, &body.name, channel, body.address.trim())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(contact_view(&c))))
}

pub(crate) async fn update(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<ContactBody>,
) -> Result<axum::Json<ContactView>, ApiError> {
    caller.can_write()?;
    let id: ContactId = ids::parse("contact", &id)?;
    let channel = check(&body)?;
    let c = app
        .store
        .update_contact(
            caller.account.id,
            id,
            &body.name,
            channel,
            body.address.trim(),
        )
        .await?;
    Ok(axum::Json(contact_view(&c)))
}

pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.can_write()?;
    let id: ContactId = ids::parse("contact", &id)?;
    app.store.delete_contact(caller.account.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Queues a test notification to the contact (through the outbox, like a real one).
pub(crate) async fn test(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.can_write()?;
    let id: ContactId = ids::parse("contact", &id)?;
    let contact = app.store.contact(caller.account.id, id).await?;
    let now = now_unix();
    let notification = Notification {
        event: EventKind::Test,
        severity: Severity::Info,
        account: caller.account.name.clone(),
        agent_name: "-".into(),
        agent_id: "-".into(),
        target: None,
        port: None,
        occurred_at: now.into(),
        title: format!("Test notification for {}", contact.name),
        details: format!(
            "Sent from Vigil by {} to check this contact.",
            caller.user.email
        ),
        dedupe_key: format!("test:{}", contact.id),
        console_url: app.cfg.console_url.clone(),
    };
    let payload = serde_json::to_value(&notification)
        .map_err(|e| ApiError::Internal(format!("cannot encode notification: {e}")))?;
    let key = format!("test:{}:{}", contact.id, uuid::Uuid::new_v4());
    app.store
        .enqueue(caller.account.id, contact.id, &key, &payload, now)
        .await?;
    app.outbox_wake.notify_one();
    Ok(StatusCode::ACCEPTED)
}

pub(crate) async fn rules(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<axum::Json<Vec<RuleView>>, ApiError> {
    let rules = app.store.rules(caller.account.id).await?;
    Ok(axum::Json(rules.iter().map(rule_view).collect()))
}

/// The event kinds a rule may name; `*` stands for all of them.
fn event_kinds(requested: &[String]) -> Result<Vec<String>, ApiError> {
    if requested.is_empty() {
        return Err(ApiError::Invalid(
            "a rule needs at least one event kind (or \"*\" for all)".into(),
        ));
    }
    let mut out = Vec::new();
    for e in requested {
        if e == "*" {
            out.extend(
                EventKind::ALL
                    .iter()
                    .filter(|k| **k != EventKind::Test)
                    .map(|k| k.as_str().to_string()),
            );
        } else if EventKind::ALL.iter().any(|k| k.as_str() == e) {
            out.push(e.clone());
        } else {
            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            return Err(ApiError::Invalid(format!(
                "unknown event kind {e:?}: use \"*\" or some of {}",
                known.join(", ")
            )));
        }
    }
    Ok(out)
}

pub(crate) async fn create_rule(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(body): Json<RuleBody>,
) -> Result<(StatusCode, axum::Json<RuleView>), ApiError> {
    caller.can_write()?;
    let contact: ContactId = ids::parse("contact", &body.contact_id)?;
    let agent = body
        .agent_id
        .as_deref()
        .map(|a| ids::parse::<AgentId>("agent", a))
        .transpose()?;
    let events = event_kinds(&body.events)?;
    // Foreign or missing contact/agent: the store's foreign keys say NotFound.
    app.store.contact(caller.account.id, contact).await?;
    if let Some(agent) = agent {
        app.store.agent(caller.account.id, agent).await?;
    }
    let rule = app
        .store
        .create_rule(caller.account.id, contact, agent, &events)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(rule_view(&rule))))
}

pub(crate) async fn delete_rule(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.can_write()?;
    let id: RuleId = ids::parse("rule", &id)?;
    app.store.delete_rule(caller.account.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_expands_to_every_real_event() {
        let all = event_kinds(&["*".into()]).unwrap();
        assert_eq!(all.len(), EventKind::ALL.len() - 1);
        assert!(!all.contains(&"test".to_string()));
        assert!(event_kinds(&[]).is_err());
        let err = event_kinds(&["port_open".into()]).unwrap_err();
        assert!(err.to_string().contains("unknown event kind \"port_open\""));
    }
}
