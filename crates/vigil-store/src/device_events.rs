//! The history of each device of a location's inventory: when it joined,
//! moved to other addresses, left and returned
//! ([`vigil_core::lan::DeviceEvent`]).
//!
//! [`Store::ingest_network_sweep`] records one event per change of the
//! sweep in the sweep's own transaction ([`record_device_event!`]), so the
//! history never disagrees with the inventory. Growth is bounded per
//! device: adding an event deletes those older than the newest
//! [`DEVICE_EVENTS_KEPT`] (a device that comes and goes every sweep would
//! otherwise add a row per sweep forever). Events go with their device,
//! agent and account (foreign keys, `ON DELETE CASCADE`).

use crate::ids::{AccountId, AgentId, DeviceId};
use crate::model::from_json;
use crate::validate;
use crate::{with_pool, Result, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use vigil_core::lan::{DeviceEvent, DeviceEventKind};

/// How many events each device keeps (the newest).
pub const DEVICE_EVENTS_KEPT: i64 = 100;

/// The `detail` column: what an event says beyond its kind.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Detail {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<IpAddr>,
}

/// Adds an event (`$1` account, `$2` agent, `$3` device, `$4` at, `$5`
/// kind, `$6` detail) as the device's newest; returns its `seq`.
pub(crate) const INSERT: &str = "INSERT INTO device_events \
         (account_id, agent_id, device_id, seq, at, kind, detail) \
     SELECT $1, $2, $3, COALESCE(MAX(seq), 0) + 1, $4, $5, $6 \
     FROM device_events WHERE device_id = $3 \
     RETURNING seq";

/// Deletes the device's (`$1`) events up to `seq` `$2`.
pub(crate) const PRUNE: &str = "DELETE FROM device_events WHERE device_id = $1 AND seq <= $2";

/// Records `$event` (a [`DeviceEvent`] whose device is `$device`, a
/// [`DeviceId`]) for `$account`'s `$agent` in the transaction `$tx`, and
/// deletes what falls out of the device's kept history. Evaluates to a
/// `Result<()>` of the caller's error type.
macro_rules! record_device_event {
    ($tx:ident, $account:expr, $agent:expr, $device:expr, $event:expr) => {{
        let e: &vigil_core::lan::DeviceEvent = $event;
        let detail = $crate::model::to_json(
            "device event detail",
            &$crate::device_events::Detail {
                from: e.from.clone(),
                to: e.to.clone(),
            },
        )?;
        let device: $crate::ids::DeviceId = $device;
        let seq: i64 = sqlx::query_scalar($crate::device_events::INSERT)
            .bind($account.db())
            .bind($agent.db())
            .bind(device.db())
            .bind(e.at)
            .bind(e.kind.as_str())
            .bind(&detail)
            .fetch_one(&mut *$tx)
            .await?;
        if seq > $crate::device_events::DEVICE_EVENTS_KEPT {
            sqlx::query($crate::device_events::PRUNE)
                .bind(device.db())
                .bind(seq - $crate::device_events::DEVICE_EVENTS_KEPT)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use record_device_event;

#[derive(sqlx::FromRow)]
struct EventRow {
    at: i64,
    kind: String,
    detail: String,
}

impl Store {
    /// The device's history, newest first: at most `limit` (1 to 1000)
    /// events of the newest [`DEVICE_EVENTS_KEPT`].
    pub async fn device_history(
        &self,
        account: AccountId,
        agent: AgentId,
        device: DeviceId,
        limit: u32,
    ) -> Result<Vec<DeviceEvent>> {
        let limit = validate::limit(limit)?;
        // Another account's (or agent's) device is not found, like none.
        self.device(account, agent, device).await?;
        let rows = with_pool!(self, pool => sqlx::query_as::<_, EventRow>(
            "SELECT at, kind, detail FROM device_events \
             WHERE device_id = $1 AND agent_id = $2 AND account_id = $3 \
             ORDER BY seq DESC LIMIT $4",
        )
        .bind(device.db())
        .bind(agent.db())
        .bind(account.db())
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        rows.into_iter()
            .map(|r| {
                let kind = DeviceEventKind::parse(&r.kind)
                    .ok_or_else(|| StoreError::corrupt("device event kind", &r.kind))?;
                let detail: Detail = from_json("device event detail", &r.detail)?;
                Ok(DeviceEvent {
                    device_id: device.to_string(),
                    at: r.at,
                    kind,
                    from: detail.from,
                    to: detail.to,
                })
            })
            .collect()
    }
}
