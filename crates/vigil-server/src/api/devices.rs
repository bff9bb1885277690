//! The location's devices and its latest local-network sweep.

use crate::app::App;
use crate::devices::Location;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::http::extract::Query;
use crate::ids;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use vigil_core::lan::{Device, DeviceEventKind, DeviceFilter};
use vigil_core::PortList;
use vigil_proto::api::{DevicePatchBody, DeviceView, NetworkView};
use vigil_store::{AgentId, DeviceId, DevicePatch, StoreError, DEVICE_EVENTS_KEPT};

pub(crate) fn device_view(d: &Device) -> DeviceView {
    DeviceView {
        id: d.id.clone(),
        mac: d.mac.map(|m| m.to_string()),
        vendor: d.vendor.clone(),
        address: d.address().map(|a| a.to_string()),
        addresses: d.addresses.iter().map(ToString::to_string).collect(),
        name: d.name.clone(),
        name_source: d.name_source.map(|s| s.as_str().to_string()),
        first_seen: d.first_seen,
        last_seen: d.last_seen,
        open_ports: d.open_ports.clone(),
        present: d.present,
        approved: d.approved,
        kind: d.kind.clone(),
        authorized: d.authorized.as_ref().map(ToString::to_string),
        monitored: d.monitored,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceQuery {
    /// Only devices the latest sweep saw (`true`) or missed (`false`).
    present: Option<bool>,
    /// Vendor contains this (case-insensitive).
    vendor: Option<String>,
    /// Only new devices (joined after the first sweep, not approved), or
    /// only the others.
    new: Option<bool>,
    /// Only approved (reviewed) devices, or only unreviewed ones.
    approved: Option<bool>,
    /// Only present devices with an open port their policy does not
    /// authorize, or only the others.
    unauthorized: Option<bool>,
}

impl From<DeviceQuery> for DeviceFilter {
    fn from(q: DeviceQuery) -> DeviceFilter {
        DeviceFilter {
            present: q.present,
            vendor: q.vendor,
            new: q.new,
            approved: q.approved,
            unauthorized: q.unauthorized,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQuery {
    /// The newest this many events (1 to 1000; default all kept).
    limit: Option<u32>,
}

/// One entry of a device's history (`GET …/devices/{device}/history`).
#[derive(Debug, Serialize)]
pub(crate) struct DeviceEventView {
    pub at: i64,
    pub kind: DeviceEventKind,
    /// A move's addresses before and after it (empty otherwise).
    pub from: Vec<String>,
    pub to: Vec<String>,
    /// For people, e.g. "moved from 198.51.100.10 to 198.51.100.77".
    pub detail: String,
}

/// A device's history, newest first.
#[derive(Debug, Serialize)]
pub(crate) struct DeviceHistoryView {
    pub events: Vec<DeviceEventView>,
}

/// The agent, or 404 for one of another account.
async fn agent_of(app: &App, caller: &Caller, id: &str) -> Result<AgentId, ApiError> {
    let id: AgentId = ids::parse("agent", id)?;
    app.store.agent(caller.account.id, id).await?;
    Ok(id)
}

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DeviceQuery>,
) -> Result<axum::Json<Vec<DeviceView>>, ApiError> {
    let agent = agent_of(&app, &caller, &id).await?;
    let location = Location::load(&app, caller.account.id, agent).await?;
    Ok(axum::Json(
        location
            .shown(&q.into())
            .into_iter()
            .map(|(d, _)| device_view(d))
            .collect(),
    ))
}

/// `GET /agents/{id}/devices/{device}/history`.
pub(crate) async fn history(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((id, device)): Path<(String, String)>,
    Query(q): Query<HistoryQuery>,
) -> Result<axum::Json<DeviceHistoryView>, ApiError> {
    let agent = agent_of(&app, &caller, &id).await?;
    let device: DeviceId = ids::parse("device", &device)?;
    let limit = q
        .limit
        .unwrap_or(u32::try_from(DEVICE_EVENTS_KEPT).unwrap_or(100));
    let events = app
        .store
        .device_history(caller.account.id, agent, device, limit)
        .await?;
    let text = |a: &[std::net::IpAddr]| a.iter().map(ToString::to_string).collect();
    Ok(axum::Json(DeviceHistoryView {
        events: events
            .iter()
            .map(|e| DeviceEventView {
                at: e.at,
                kind: e.kind,
                from: text(&e.from),
                to: text(&e.to),
                detail: e.summary(),
            })
            .collect(),
    }))
}

pub(crate) async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((id, device)): Path<(String, String)>,
) -> Result<axum::Json<DeviceView>, ApiError> {
    let agent = agent_of(&app, &caller, &id).await?;
    let device: DeviceId = ids::parse("device", &device)?;
    let d = app.store.device(caller.account.id, agent, device).await?;
    Ok(axum::Json(device_view(&d)))
}

pub(crate) async fn patch(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((id, device)): Path<(String, String)>,
    Json(body): Json<DevicePatchBody>,
) -> Result<axum::Json<DeviceView>, ApiError> {
    caller.can_write()?;
    let agent = agent_of(&app, &caller, &id).await?;
    let device: DeviceId = ids::parse("device", &device)?;
    let authorized = match body.authorized {
        None => None,
        Some(None) => Some(None),
        Some(Some(spec)) if spec.trim().is_empty() => Some(Some(PortList::default())),
        Some(Some(spec)) => {
            Some(Some(PortList::parse(&spec).map_err(|e| {
                ApiError::Invalid(format!("authorized: {e}"))
            })?))
        }
    };
    let patch = DevicePatch {
        approved: body.approved,
        kind: body.kind,
        authorized,
        monitored: body.monitored,
    };
    let d = crate::devices::decide(
        &app,
        caller.account.id,
        (&caller).into(),
        agent,
        device,
        &patch,
    )
    .await?;
    Ok(axum::Json(device_view(&d)))
}

pub(crate) async fn approve(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path((id, device)): Path<(String, String)>,
) -> Result<axum::Json<DeviceView>, ApiError> {
    caller.can_write()?;
    let agent = agent_of(&app, &caller, &id).await?;
    let device: DeviceId = ids::parse("device", &device)?;
    let d =
        crate::devices::approve(&app, caller.account.id, (&caller).into(), agent, device).await?;
    Ok(axum::Json(device_view(&d)))
}

pub(crate) async fn network(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<NetworkView>, ApiError> {
    let agent = agent_of(&app, &caller, &id).await?;
    let Some(sweep) = app.store.network_sweep(caller.account.id, agent).await? else {
        return Err(ApiError::from(StoreError::NotFound));
    };
    let report = crate::devices::StoredReport::of(&sweep)
        .map_err(|e| ApiError::Internal(format!("stored network sweep report: {e}")))?;
    let (devices, present) = app.store.device_counts(caller.account.id, agent).await?;
    Ok(axum::Json(NetworkView {
        started_at: sweep.started_at,
        finished_at: sweep.finished_at,
        received_at: sweep.received_at,
        interfaces: report.interfaces,
        swept: report.swept,
        skipped: report.skipped,
        gateway: report.gateway,
        incomplete: report.incomplete,
        devices: usize::try_from(devices).unwrap_or(usize::MAX),
        present: usize::try_from(present).unwrap_or(usize::MAX),
    }))
}
