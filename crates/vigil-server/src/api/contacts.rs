//! Contacts, notification rules, and test notifications (the checks,
//! saving and sending are in [`crate::contacts`], shared with the console).

use crate::app::App;
use crate::contacts::{add_rule, save_contact, send_test, shown_address};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::ids;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use std::sync::Arc;
use vigil_proto::api::{ContactBody, ContactView, RuleBody, RuleView};
use vigil_store::{AgentId, Contact, ContactId, NotificationRule, Role, RuleId};

/// A contact as the caller may see it: secrets never, hook URLs in full
/// only to those who may change the contact.
fn contact_view(c: &Contact, caller: &Caller) -> ContactView {
    let can_write = caller.user.role != Role::Viewer;
    let dest = c.destination().ok();
    ContactView {
        id: c.id.to_string(),
        name: c.name.clone(),
        channel: c.channel.to_string(),
        address: shown_address(c, can_write),
        fields: dest
            .as_ref()
            .map(|d| d.shown_fields(can_write))
            .unwrap_or_default(),
        secrets: dest.map(|d| d.secrets_set()).unwrap_or_default(),
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
        remind_every_minutes: r.remind_every_minutes,
        escalation: r.escalation.clone(),
    }
}

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<axum::Json<Vec<ContactView>>, ApiError> {
    let contacts = app.store.contacts(caller.account.id).await?;
    Ok(axum::Json(
        contacts.iter().map(|c| contact_view(c, &caller)).collect(),
    ))
}

pub(crate) async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<ContactView>, ApiError> {
    let id: ContactId = ids::parse("contact", &id)?;
    let c = app.store.contact(caller.account.id, id).await?;
    Ok(axum::Json(contact_view(&c, &caller)))
}

pub(crate) async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(body): Json<ContactBody>,
) -> Result<(StatusCode, axum::Json<ContactView>), ApiError> {
    caller.can_write()?;
    let c = save_contact(&app, caller.account.id, &caller, None, &body).await?;
    Ok((StatusCode::CREATED, axum::Json(contact_view(&c, &caller))))
}

pub(crate) async fn update(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<ContactBody>,
) -> Result<axum::Json<ContactView>, ApiError> {
    caller.can_write()?;
    let id: ContactId = ids::parse("contact", &id)?;
    let c = save_contact(&app, caller.account.id, &caller, Some(id), &body).await?;
    Ok(axum::Json(contact_view(&c, &caller)))
}

pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.can_write()?;
    let id: ContactId = ids::parse("contact", &id)?;
    app.store.delete_contact(caller.account.id, id).await?;
    crate::audit::record(
        &app,
        caller.account.id,
        &caller,
        "contact.delete",
        Some(&id.to_string()),
        None,
    )
    .await;
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
    send_test(&app, &caller.account, &caller.user.email, id).await?;
    crate::audit::record(
        &app,
        caller.account.id,
        &caller,
        "contact.test",
        Some(&id.to_string()),
        None,
    )
    .await;
    Ok(StatusCode::ACCEPTED)
}

pub(crate) async fn rules(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<axum::Json<Vec<RuleView>>, ApiError> {
    let rules = app.store.rules(caller.account.id).await?;
    Ok(axum::Json(rules.iter().map(rule_view).collect()))
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
    let followups = crate::contacts::Followups {
        remind_every_minutes: body.remind_every_minutes,
        escalation: body.escalation,
    };
    followups.check()?;
    let rule = add_rule(
        &app,
        caller.account.id,
        &caller,
        contact,
        agent,
        &body.events,
    )
    .await?;
    let rule = crate::contacts::set_followups(&app, caller.account.id, rule, &followups).await?;
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
    crate::audit::record(
        &app,
        caller.account.id,
        &caller,
        "rule.delete",
        Some(&id.to_string()),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
