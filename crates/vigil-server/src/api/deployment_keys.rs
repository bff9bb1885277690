//! Deployment keys (`/deployment-keys`): reusable, expiring, revocable
//! enrollment secrets for mass roll-outs. The secret (`vgd_…`) goes in the
//! `token` field of the agent API's enroll call, so agents and the MSI
//! need nothing new; see `agent_api::enroll`.
//!
//! Admins and owners create and revoke keys; viewers list them. The secret
//! is answered once, at creation.

use crate::app::App;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, Query};
use crate::ids;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use vigil_core::Plan;
use vigil_proto::api::{
    DeploymentKeyCreated, DeploymentKeyState, DeploymentKeyUseView, DeploymentKeyView,
    NewDeploymentKey,
};
use vigil_store::{now_unix, DeploymentKey, DeploymentKeyId, DeploymentKeyUse, UnixTime};

/// Longest lifetime the API gives a key, in days.
const MAX_DAYS: u32 = 365;
/// Uses listed unless `?limit=` says otherwise.
const DEFAULT_USES_LIMIT: u32 = 100;

fn state(k: &DeploymentKey, now: UnixTime) -> DeploymentKeyState {
    if k.revoked_at.is_some() {
        DeploymentKeyState::Revoked
    } else if k.expires_at <= now {
        DeploymentKeyState::Expired
    } else if k.max_uses.is_some_and(|max| k.use_count >= max) {
        DeploymentKeyState::UsedUp
    } else {
        DeploymentKeyState::Active
    }
}

fn view(k: &DeploymentKey, now: UnixTime) -> DeploymentKeyView {
    DeploymentKeyView {
        id: k.id.to_string(),
        name: k.name.clone(),
        plan: k.plan,
        state: state(k, now),
        created_at: k.created_at,
        expires_at: k.expires_at,
        max_uses: k.max_uses,
        use_count: k.use_count,
        last_used_at: k.last_used_at,
        revoked_at: k.revoked_at,
    }
}

fn use_view(u: &DeploymentKeyUse) -> DeploymentKeyUseView {
    DeploymentKeyUseView {
        agent_id: u.agent_id.to_string(),
        used_at: u.used_at,
        peer_addr: u.peer_addr.clone(),
        hostname: u.hostname.clone(),
    }
}

pub(crate) async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(req): Json<NewDeploymentKey>,
) -> Result<(StatusCode, axum::Json<DeploymentKeyCreated>), ApiError> {
    caller.can_write()?;
    if !(1..=MAX_DAYS).contains(&req.expires_in_days) {
        return Err(ApiError::Invalid(format!(
            "expires_in_days {} is out of range: use 1 to {MAX_DAYS}",
            req.expires_in_days
        )));
    }
    if req.max_uses == Some(0) {
        return Err(ApiError::Invalid(
            "max_uses must be at least 1; leave it out for no limit".into(),
        ));
    }
    let now = now_unix();
    let (key, secret) = app
        .store
        .create_deployment_key(
            caller.account.id,
            &vigil_store::NewDeploymentKey {
                name: &req.name,
                plan: req.plan.unwrap_or(Plan::Community),
                ttl: Duration::from_secs(u64::from(req.expires_in_days) * 86_400),
                max_uses: req.max_uses,
            },
            now,
        )
        .await?;
    tracing::info!(key = %key.id, name = %key.name, by = %caller.user.email, "deployment key created");
    let detail = serde_json::json!({"id": key.id.to_string(), "plan": key.plan,
        "expires_at": key.expires_at, "max_uses": key.max_uses});
    crate::audit::record(
        &app,
        caller.account.id,
        &caller,
        "deployment_key.create",
        Some(&key.name),
        Some(detail),
    )
    .await;
    let pin = app.pin.to_string();
    Ok((
        StatusCode::CREATED,
        axum::Json(DeploymentKeyCreated {
            command: crate::agents::enroll_command(&app, &secret),
            msiexec: format!(
                "msiexec /i vigil-agent.msi SERVER={} TOKEN={secret} PIN={pin} /qn",
                app.agent_url
            ),
            secret,
            key: view(&key, now),
            server_url: app.agent_url.clone(),
            pin,
        }),
    ))
}

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<axum::Json<Vec<DeploymentKeyView>>, ApiError> {
    let now = now_unix();
    let keys = app.store.deployment_keys(caller.account.id).await?;
    Ok(axum::Json(keys.iter().map(|k| view(k, now)).collect()))
}

#[derive(Debug, Deserialize)]
pub(crate) struct UsesQuery {
    limit: Option<u32>,
}

pub(crate) async fn uses(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<UsesQuery>,
) -> Result<axum::Json<Vec<DeploymentKeyUseView>>, ApiError> {
    let id: DeploymentKeyId = ids::parse("deployment key", &id)?;
    let limit = q.limit.unwrap_or(DEFAULT_USES_LIMIT);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::Invalid(format!(
            "limit {limit} is out of range: use 1 to 1000"
        )));
    }
    let uses = app
        .store
        .deployment_key_uses(caller.account.id, id, limit)
        .await?;
    Ok(axum::Json(uses.iter().map(use_view).collect()))
}

/// Revokes the key: it enrolls no more agents; those it enrolled stay.
pub(crate) async fn revoke(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.can_write()?;
    let id: DeploymentKeyId = ids::parse("deployment key", &id)?;
    app.store
        .revoke_deployment_key(caller.account.id, id, now_unix())
        .await?;
    tracing::info!(key = %id, by = %caller.user.email, "deployment key revoked");
    crate::audit::record(
        &app,
        caller.account.id,
        &caller,
        "deployment_key.revoke",
        Some(&id.to_string()),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_store::AccountId;

    #[test]
    fn states() {
        let key = DeploymentKey {
            id: DeploymentKeyId::random(),
            account_id: AccountId::random(),
            name: "k".into(),
            plan: Plan::Community,
            created_at: 0,
            expires_at: 100,
            max_uses: Some(2),
            use_count: 1,
            last_used_at: None,
            revoked_at: None,
        };
        assert_eq!(state(&key, 99), DeploymentKeyState::Active);
        assert_eq!(state(&key, 100), DeploymentKeyState::Expired);
        let used_up = DeploymentKey {
            use_count: 2,
            ..key.clone()
        };
        assert_eq!(state(&used_up, 0), DeploymentKeyState::UsedUp);
        let revoked = DeploymentKey {
            revoked_at: Some(5),
            ..used_up
        };
        assert_eq!(state(&revoked, 200), DeploymentKeyState::Revoked);
    }
}
