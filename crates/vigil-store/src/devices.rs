//! The device inventory of each agent's location and its latest
//! local-network sweep (see `vigil_core::lan`).

use crate::device_events::record_device_event;
use crate::ids::{AccountId, AgentId, DeviceId};
use crate::model::{from_json, to_json, UnixTime};
use crate::validate::{self, limits};
use crate::{with_pool, Result, Store, StoreError};
use std::collections::HashMap;
use std::net::IpAddr;
use vigil_core::compliance::names::NameSource;
use vigil_core::lan::{
    merge_sweep, Coverage, Device, DeviceEvent, InventoryChange, MacAddr, Sighting,
};
use vigil_core::PortList;

/// The most devices one sweep may report (two per address of the largest
/// sweep an account may run: an IPv4 and an IPv6 neighbour of each).
pub const MAX_SIGHTINGS: usize = 2 * 65_536;

/// One finished local-network sweep, as the agent uploaded it.
#[derive(Debug, Clone)]
pub struct NewNetworkSweep<'a> {
    pub upload_id: &'a str,
    pub task_id: &'a str,
    pub started_at: UnixTime,
    pub finished_at: UnixTime,
    /// The report shown with the inventory (interfaces, networks swept and
    /// left out, the gateway), as JSON.
    pub report: &'a str,
    pub sightings: &'a [Sighting],
    /// Whether the agent saw everything it asked (see
    /// [`vigil_core::lan::merge_sweep`]).
    pub coverage: Coverage,
}

/// What storing a sweep did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepIngest {
    /// The upload id was stored before: nothing changed.
    Duplicate,
    Stored {
        changes: Vec<InventoryChange>,
        /// The whole inventory after the sweep.
        devices: Vec<Device>,
    },
}

/// The latest sweep of an agent's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSweep {
    pub upload_id: String,
    pub task_id: String,
    pub started_at: UnixTime,
    pub finished_at: UnixTime,
    pub received_at: UnixTime,
    /// JSON, as given to [`Store::ingest_network_sweep`].
    pub report: String,
}

#[derive(sqlx::FromRow)]
struct DeviceRow {
    id: String,
    mac: Option<String>,
    vendor: Option<String>,
    addresses: String,
    name: Option<String>,
    name_source: Option<String>,
    first_seen: i64,
    last_seen: i64,
    open_ports: String,
    present: bool,
    approved: bool,
    kind: Option<String>,
    authorized: Option<String>,
    monitored: bool,
}

impl TryFrom<DeviceRow> for Device {
    type Error = StoreError;

    fn try_from(r: DeviceRow) -> Result<Device> {
        let id = DeviceId::from_db(&r.id)?.to_string();
        let mac = match r.mac {
            Some(m) => Some(
                m.parse::<MacAddr>()
                    .map_err(|_| StoreError::corrupt("device MAC", &m))?,
            ),
            None => None,
        };
        let addresses: Vec<IpAddr> = from_json("device addresses", &r.addresses)?;
        let name_source = match r.name_source {
            Some(s) => Some(
                s.parse::<NameSource>()
                    .map_err(|_| StoreError::corrupt("device name source", &s))?,
            ),
            None => None,
        };
        let open_ports = parse_ports(&r.open_ports)?;
        Ok(Device {
            id,
            mac,
            vendor: r.vendor,
            addresses,
            name: r.name,
            name_source,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
            open_ports,
            present: r.present,
            approved: r.approved,
            kind: r.kind,
            authorized: match r.authorized {
                Some(text) if text.is_empty() => Some(PortList::default()),
                Some(text) => Some(
                    PortList::parse(&text)
                        .map_err(|_| StoreError::corrupt("device authorized ports", &text))?,
                ),
                None => None,
            },
            monitored: r.monitored,
        })
    }
}

/// By address (IPv4 first, in numeric order), as scanners list hosts.
fn sort_devices(devices: &mut [Device]) {
    devices.sort_by(|a, b| {
        let key = |d: &Device| d.address().map(|ip| (ip.is_ipv6(), ip));
        key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
    });
}

fn parse_ports(text: &str) -> Result<Vec<u16>> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| StoreError::corrupt("device ports", text))
        })
        .collect()
}

fn ports_text(ports: &[u16]) -> String {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    list.join(",")
}

fn check(sweep: &NewNetworkSweep<'_>) -> Result<()> {
    validate::upload_id(sweep.upload_id)?;
    validate::printable("task id", sweep.task_id, limits::MAX_TASK_ID_LEN)?;
    if sweep.started_at < 0 || sweep.finished_at < sweep.started_at {
        return Err(StoreError::invalid(
            "sweep times must be non-negative and finish no earlier than they start",
        ));
    }
    if sweep.sightings.len() > MAX_SIGHTINGS {
        return Err(StoreError::invalid(format!(
            "a network sweep may report at most {MAX_SIGHTINGS} devices"
        )));
    }
    if sweep.report.len() > limits::MAX_PAYLOAD_LEN * 16 {
        return Err(StoreError::invalid("the sweep report is too large"));
    }
    for s in sweep.sightings {
        if s.open_ports.len() > usize::from(u16::MAX) {
            return Err(StoreError::invalid("a device lists too many open ports"));
        }
        if let Some(name) = &s.name {
            validate::printable("device name", name, limits::MAX_ENDPOINT_FIELD_LEN)?;
        }
    }
    Ok(())
}

const DEVICE_COLS: &str = "id, mac, vendor, addresses, name, name_source, first_seen, \
                           last_seen, open_ports, present, approved, kind, authorized, monitored";

/// What a user decides about a device; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevicePatch {
    pub approved: Option<bool>,
    /// `Some(None)` clears it.
    pub kind: Option<Option<String>>,
    /// `Some(None)`: the ports of its kind.
    pub authorized: Option<Option<PortList>>,
    pub monitored: Option<bool>,
}

/// The longest device kind name, in characters.
pub const MAX_DEVICE_KIND_CHARS: usize = 64;

impl Store {
    /// Stores a finished local-network sweep once per `(agent, upload_id)`
    /// and merges its sightings into the agent's inventory
    /// ([`vigil_core::lan::merge`]; `vendor_of` names the vendor of a new
    /// MAC). The sweep becomes the agent's latest. Devices the merge did
    /// not change are not written; each change is added to its device's
    /// history ([`Store::device_history`]) in the same transaction.
    pub async fn ingest_network_sweep(
        &self,
        account: AccountId,
        agent: AgentId,
        sweep: &NewNetworkSweep<'_>,
        now: UnixTime,
        vendor_of: impl Fn(MacAddr) -> Option<String>,
    ) -> Result<SweepIngest> {
        check(sweep)?;
        let out = crate::in_account_tx!(self, account, |tx| {
            let fresh = sqlx::query(
                "INSERT INTO network_uploads (agent_id, account_id, upload_id, received_at) \
                 SELECT id, account_id, $3, $4 FROM agents WHERE id = $1 AND account_id = $2 \
                 ON CONFLICT (agent_id, upload_id) DO NOTHING",
            )
            .bind(agent.db())
            .bind(account.db())
            .bind(sweep.upload_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if fresh == 0 {
                let known: Option<String> = sqlx::query_scalar(
                    "SELECT upload_id FROM network_uploads \
                     WHERE agent_id = $1 AND account_id = $2 AND upload_id = $3",
                )
                .bind(agent.db())
                .bind(account.db())
                .bind(sweep.upload_id)
                .fetch_optional(&mut *tx)
                .await?;
                if known.is_none() {
                    return Err(StoreError::NotFound);
                }
                SweepIngest::Duplicate
            } else {
                let rows = sqlx::query_as::<_, DeviceRow>(&format!(
                    "SELECT {DEVICE_COLS} FROM devices WHERE agent_id = $1 AND account_id = $2 \
                     ORDER BY first_seen, id"
                ))
                .bind(agent.db())
                .bind(account.db())
                .fetch_all(&mut *tx)
                .await?;
                let mut devices = rows
                    .into_iter()
                    .map(Device::try_from)
                    .collect::<Result<Vec<_>>>()?;
                let before: HashMap<String, Device> =
                    devices.iter().map(|d| (d.id.clone(), d.clone())).collect();
                let changes = merge_sweep(
                    &mut devices,
                    sweep.sightings,
                    now,
                    sweep.coverage,
                    || DeviceId::random().to_string(),
                    vendor_of,
                );
                for d in &devices {
                    if before.get(&d.id) == Some(d) {
                        continue;
                    }
                    let id: DeviceId =
                        d.id.parse()
                            .map_err(|_| StoreError::corrupt("device id", &d.id))?;
                    let addresses = to_json("device addresses", &d.addresses)?;
                    let ip = d.address().map(|a| a.to_string()).unwrap_or_default();
                    sqlx::query(
                        "INSERT INTO devices (id, account_id, agent_id, mac, vendor, addresses, \
                             ip, name, name_source, first_seen, last_seen, open_ports, present) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                         ON CONFLICT (id) DO UPDATE SET mac = excluded.mac, \
                             vendor = excluded.vendor, addresses = excluded.addresses, \
                             ip = excluded.ip, name = excluded.name, \
                             name_source = excluded.name_source, \
                             last_seen = excluded.last_seen, \
                             open_ports = excluded.open_ports, present = excluded.present \
                         WHERE devices.account_id = excluded.account_id",
                    )
                    .bind(id.db())
                    .bind(account.db())
                    .bind(agent.db())
                    .bind(d.mac.map(|m| m.to_string()))
                    .bind(&d.vendor)
                    .bind(&addresses)
                    .bind(&ip)
                    .bind(&d.name)
                    .bind(d.name_source.map(|s| s.as_str()))
                    .bind(d.first_seen)
                    .bind(d.last_seen)
                    .bind(ports_text(&d.open_ports))
                    .bind(d.present)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(
                    "INSERT INTO network_sweeps (agent_id, account_id, upload_id, task_id, \
                         started_at, finished_at, received_at, report) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (agent_id) DO UPDATE SET upload_id = excluded.upload_id, \
                         task_id = excluded.task_id, started_at = excluded.started_at, \
                         finished_at = excluded.finished_at, received_at = excluded.received_at, \
                         report = excluded.report \
                     WHERE network_sweeps.account_id = excluded.account_id",
                )
                .bind(agent.db())
                .bind(account.db())
                .bind(sweep.upload_id)
                .bind(sweep.task_id)
                .bind(sweep.started_at)
                .bind(sweep.finished_at)
                .bind(now)
                .bind(sweep.report)
                .execute(&mut *tx)
                .await?;
                for change in &changes {
                    let event = DeviceEvent::of(change, now);
                    let device: DeviceId = event
                        .device_id
                        .parse()
                        .map_err(|_| StoreError::corrupt("device id", &event.device_id))?;
                    record_device_event!(tx, account, agent, device, &event);
                }
                sort_devices(&mut devices);
                SweepIngest::Stored { changes, devices }
            }
        });
        Ok(out)
    }

    /// Applies a user's decisions to a device; returns it as it is now.
    pub async fn update_device(
        &self,
        account: AccountId,
        agent: AgentId,
        device: DeviceId,
        patch: &DevicePatch,
    ) -> Result<Device> {
        if let Some(Some(kind)) = &patch.kind {
            validate::text("device kind", kind, MAX_DEVICE_KIND_CHARS * 4)?;
            if kind.trim().is_empty() || kind.chars().count() > MAX_DEVICE_KIND_CHARS {
                return Err(StoreError::invalid(format!(
                    "a device kind has 1 to {MAX_DEVICE_KIND_CHARS} characters"
                )));
            }
        }
        let current = self.device(account, agent, device).await?;
        let approved = patch.approved.unwrap_or(current.approved);
        let kind = patch.kind.clone().unwrap_or(current.kind);
        let authorized = patch.authorized.clone().unwrap_or(current.authorized);
        let monitored = patch.monitored.unwrap_or(current.monitored);
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE devices SET approved = $1, kind = $2, authorized = $3, monitored = $4 \
             WHERE id = $5 AND agent_id = $6 AND account_id = $7",
        )
        .bind(approved)
        .bind(&kind)
        .bind(authorized.as_ref().map(ToString::to_string))
        .bind(monitored)
        .bind(device.db())
        .bind(agent.db())
        .bind(account.db())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        crate::error::found(n)?;
        self.device(account, agent, device).await
    }

    /// Whether the agent already uploaded the network sweep `upload_id`.
    pub async fn has_network_upload(
        &self,
        account: AccountId,
        agent: AgentId,
        upload_id: &str,
    ) -> Result<bool> {
        let found = with_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT upload_id FROM network_uploads \
             WHERE agent_id = $1 AND upload_id = $2 AND account_id = $3",
        )
        .bind(agent.db())
        .bind(upload_id)
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        Ok(found.is_some())
    }

    /// The agent's inventory, by address.
    pub async fn devices(&self, account: AccountId, agent: AgentId) -> Result<Vec<Device>> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, DeviceRow>(&format!(
            "SELECT {DEVICE_COLS} FROM devices WHERE agent_id = $1 AND account_id = $2 \
             ORDER BY first_seen, id"
        ))
        .bind(agent.db())
        .bind(account.db())
        .fetch_all(pool)
        .await)?;
        let mut devices = rows
            .into_iter()
            .map(Device::try_from)
            .collect::<Result<Vec<_>>>()?;
        sort_devices(&mut devices);
        Ok(devices)
    }

    /// How many devices the agent's inventory holds, and how many of them
    /// the latest sweep saw.
    pub async fn device_counts(&self, account: AccountId, agent: AgentId) -> Result<(u64, u64)> {
        let (all, present) = with_pool!(self, pool => sqlx::query_as::<_, (i64, i64)>(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN present THEN 1 ELSE 0 END), 0) \
             FROM devices WHERE agent_id = $1 AND account_id = $2",
        )
        .bind(agent.db())
        .bind(account.db())
        .fetch_one(pool)
        .await)?;
        Ok((
            u64::try_from(all).unwrap_or_default(),
            u64::try_from(present).unwrap_or_default(),
        ))
    }

    /// One device of the agent's inventory.
    pub async fn device(
        &self,
        account: AccountId,
        agent: AgentId,
        device: DeviceId,
    ) -> Result<Device> {
        let row = with_pool!(self, pool => sqlx::query_as::<_, DeviceRow>(&format!(
            "SELECT {DEVICE_COLS} FROM devices WHERE id = $1 AND agent_id = $2 AND account_id = $3"
        ))
        .bind(device.db())
        .bind(agent.db())
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// When the agent's first local-network sweep was stored (the
    /// location's baseline: its devices are not new), if any.
    pub async fn network_baseline(
        &self,
        account: AccountId,
        agent: AgentId,
    ) -> Result<Option<UnixTime>> {
        let first = with_pool!(self, pool => sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MIN(received_at) FROM network_uploads WHERE agent_id = $1 AND account_id = $2",
        )
        .bind(agent.db())
        .bind(account.db())
        .fetch_one(pool)
        .await)?;
        Ok(first)
    }

    /// The agent's latest local-network sweep, if any.
    pub async fn network_sweep(
        &self,
        account: AccountId,
        agent: AgentId,
    ) -> Result<Option<StoredSweep>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            upload_id: String,
            task_id: String,
            started_at: i64,
            finished_at: i64,
            received_at: i64,
            report: String,
        }
        let row = with_pool!(self, pool => sqlx::query_as::<_, Row>(
            "SELECT upload_id, task_id, started_at, finished_at, received_at, report \
             FROM network_sweeps WHERE agent_id = $1 AND account_id = $2",
        )
        .bind(agent.db())
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        Ok(row.map(|r| StoredSweep {
            upload_id: r.upload_id,
            task_id: r.task_id,
            started_at: r.started_at,
            finished_at: r.finished_at,
            received_at: r.received_at,
            report: r.report,
        }))
    }
}
