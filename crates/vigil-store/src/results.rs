//! Uploaded scan results, stored idempotently.

use crate::ids::{AccountId, AgentId, ScanResultId};
use crate::model::now_unix;
use crate::validate::{self, limits};
use crate::{
    with_pool, Ingested, NewScanResult, PortResult, Result, ScanResult, Store, StoreError,
};

#[derive(sqlx::FromRow)]
struct ResultRow {
    id: String,
    account_id: String,
    agent_id: String,
    upload_id: String,
    target: String,
    started_at: i64,
    finished_at: i64,
    ports: String,
    received_at: i64,
    addr: Option<String>,
    task_id: Option<String>,
    probed_count: Option<i64>,
    probed_ports: Option<String>,
    filtered_count: Option<i64>,
    unreachable_count: Option<i64>,
}

/// A stored count (`what` names it in the error).
fn count(what: &str, n: Option<i64>) -> Result<Option<u32>> {
    n.map(|n| u32::try_from(n).map_err(|_| StoreError::corrupt(what, &n.to_string())))
        .transpose()
}

impl TryFrom<ResultRow> for ScanResult {
    type Error = StoreError;

    fn try_from(r: ResultRow) -> Result<ScanResult> {
        let ports: Vec<PortResult> =
            serde_json::from_str(&r.ports).map_err(|_| StoreError::corrupt("ports", &r.ports))?;
        Ok(ScanResult {
            id: ScanResultId::from_db(&r.id)?,
            account_id: AccountId::from_db(&r.account_id)?,
            agent_id: AgentId::from_db(&r.agent_id)?,
            upload_id: r.upload_id,
            target: r.target,
            started_at: r.started_at,
            finished_at: r.finished_at,
            ports,
            received_at: r.received_at,
            addr: r.addr,
            task_id: r.task_id,
            probed_count: count("probed count", r.probed_count)?,
            probed_ports: r.probed_ports,
            not_listed: vigil_core::NotListed {
                filtered: count("filtered count", r.filtered_count)?,
                unreachable: count("unreachable count", r.unreachable_count)?,
            },
        })
    }
}

/// How the probed ports are stored: their count, their port list when it
/// is short enough to show, and the filtered and unreachable ports counted
/// but not listed.
struct ProbedRow {
    count: Option<i64>,
    list: Option<String>,
    filtered: Option<i64>,
    unreachable: Option<i64>,
}

fn probed(result: &NewScanResult<'_>) -> ProbedRow {
    let Some(probed) = result.probed else {
        return ProbedRow {
            count: None,
            list: None,
            filtered: None,
            unreachable: None,
        };
    };
    let text = probed.ports.to_string();
    ProbedRow {
        count: Some(i64::try_from(probed.ports.len()).unwrap_or(i64::MAX)),
        list: (text.len() <= limits::MAX_PROBED_PORTS_LEN).then_some(text),
        filtered: Some(probed.filtered_not_listed.into()),
        unreachable: Some(probed.unreachable_not_listed.into()),
    }
}

fn check(result: &NewScanResult<'_>) -> Result<String> {
    validate::upload_id(result.upload_id)?;
    validate::target(result.target)?;
    if let Some(addr) = result.addr {
        validate::printable("address", addr, limits::MAX_ADDR_LEN)?;
    }
    if let Some(task_id) = result.task_id {
        validate::printable("task id", task_id, limits::MAX_TASK_ID_LEN)?;
    }
    if result.started_at < 0 || result.finished_at < result.started_at {
        return Err(StoreError::invalid(
            "scan times must be non-negative and finish no earlier than they start",
        ));
    }
    if result.ports.len() > limits::MAX_PORTS_PER_RESULT {
        return Err(StoreError::invalid(format!(
            "a scan result may list at most {} ports",
            limits::MAX_PORTS_PER_RESULT
        )));
    }
    serde_json::to_string(result.ports)
        .map_err(|e| StoreError::invalid(format!("cannot serialize ports: {e}")))
}

impl Store {
    /// Stores an uploaded scan result once per `(agent, upload_id)`: a retry
    /// with the same upload id (even concurrent with the first upload)
    /// returns [`Ingested::Duplicate`] with the first upload's id and stores
    /// nothing. The unique constraint decides, not a prior lookup.
    pub async fn ingest_result(
        &self,
        account: AccountId,
        agent: AgentId,
        result: &NewScanResult<'_>,
    ) -> Result<Ingested> {
        let ports = check(result)?;
        let probed = probed(result);
        let open_count = i64::try_from(
            result
                .ports
                .iter()
                .filter(|p| p.state == vigil_core::PortState::Open)
                .count(),
        )
        .unwrap_or(i64::MAX);
        let id = ScanResultId::random();
        let inserted = with_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "INSERT INTO scan_results (id, account_id, agent_id, upload_id, target, \
                 started_at, finished_at, ports, received_at, addr, task_id, probed_count, \
                 probed_ports, open_count, filtered_count, unreachable_count) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (agent_id, upload_id) DO NOTHING RETURNING id",
        )
        .bind(id.db())
        .bind(account.db())
        .bind(agent.db())
        .bind(result.upload_id)
        .bind(result.target)
        .bind(result.started_at)
        .bind(result.finished_at)
        .bind(&ports)
        .bind(now_unix())
        .bind(result.addr)
        .bind(result.task_id)
        .bind(probed.count)
        .bind(probed.list.as_deref())
        .bind(open_count)
        .bind(probed.filtered)
        .bind(probed.unreachable)
        .fetch_optional(pool)
        .await)?;
        if inserted.is_some() {
            return Ok(Ingested::New(id));
        }
        // The upload id exists: the first upload (committed, since the insert
        // waited for it) wins. Filter by account so another tenant learns nothing.
        let existing = with_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT id FROM scan_results WHERE agent_id = $1 AND upload_id = $2 AND account_id = $3",
        )
        .bind(agent.db())
        .bind(result.upload_id)
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        match existing {
            Some(id) => Ok(Ingested::Duplicate(ScanResultId::from_db(&id)?)),
            None => Err(StoreError::NotFound),
        }
    }

    /// Whether the agent already uploaded `upload_id` (a re-send after a
    /// lost answer, which is answered "duplicate" even once its task is
    /// closed).
    pub async fn has_upload(
        &self,
        account: AccountId,
        agent: AgentId,
        upload_id: &str,
    ) -> Result<bool> {
        let found = with_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT id FROM scan_results WHERE agent_id = $1 AND upload_id = $2 AND account_id = $3",
        )
        .bind(agent.db())
        .bind(upload_id)
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        Ok(found.is_some())
    }

    /// The account's most recent results over all its agents (by finish
    /// time), at most `limit` (1 to 1000).
    pub async fn recent_results(&self, account: AccountId, limit: u32) -> Result<Vec<ScanResult>> {
        let limit = validate::limit(limit)?;
        let rows = with_pool!(self, pool => sqlx::query_as::<_, ResultRow>(
            "SELECT id, account_id, agent_id, upload_id, target, started_at, finished_at, \
                 ports, received_at, addr, task_id, probed_count, probed_ports, \
                 filtered_count, unreachable_count \
             FROM scan_results WHERE account_id = $1 \
             ORDER BY finished_at DESC, received_at DESC, id LIMIT $2",
        )
        .bind(account.db())
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(ScanResult::try_from).collect()
    }

    /// The agent's most recent results (by finish time), at most `limit` (1 to 1000).
    pub async fn results(
        &self,
        account: AccountId,
        agent: AgentId,
        limit: u32,
    ) -> Result<Vec<ScanResult>> {
        let limit = validate::limit(limit)?;
        self.ensure_agent(account, agent).await?;
        let rows = with_pool!(self, pool => sqlx::query_as::<_, ResultRow>(
            "SELECT id, account_id, agent_id, upload_id, target, started_at, finished_at, \
                 ports, received_at, addr, task_id, probed_count, probed_ports, \
                 filtered_count, unreachable_count \
             FROM scan_results WHERE agent_id = $1 AND account_id = $2 \
             ORDER BY finished_at DESC, received_at DESC, id LIMIT $3",
        )
        .bind(agent.db())
        .bind(account.db())
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(ScanResult::try_from).collect()
    }

    /// The agent's most recent results of one target (its policy target
    /// key, as stored), newest first, at most `limit` (1 to 1000).
    pub async fn target_results(
        &self,
        account: AccountId,
        agent: AgentId,
        target: &str,
        limit: u32,
    ) -> Result<Vec<ScanResult>> {
        let limit = validate::limit(limit)?;
        let rows = with_pool!(self, pool => sqlx::query_as::<_, ResultRow>(
            "SELECT id, account_id, agent_id, upload_id, target, started_at, finished_at, \
                 ports, received_at, addr, task_id, probed_count, probed_ports, \
                 filtered_count, unreachable_count \
             FROM scan_results WHERE agent_id = $1 AND account_id = $2 AND target = $3 \
             ORDER BY finished_at DESC, received_at DESC, id LIMIT $4",
        )
        .bind(agent.db())
        .bind(account.db())
        .bind(target)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(ScanResult::try_from).collect()
    }
}
