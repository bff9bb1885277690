//! Agent self-update records (see [`vigil_core::update`]): which agents an
//! owner rolled the server's agent build out to, how each update went, and
//! whether an account updates every agent automatically.

use crate::ids::{AccountId, AgentId};
use crate::{with_pool, Result, Store, StoreError, UnixTime};
use std::collections::HashMap;
use vigil_core::update::{Record, State};

/// Which agents a rollout is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    All,
    Tag(String),
    Agents(Vec<AgentId>),
}

#[derive(sqlx::FromRow)]
struct Row {
    agent_id: String,
    requested: bool,
    version: Option<String>,
    state: Option<String>,
    detail: Option<String>,
    updated_at: Option<i64>,
}

impl Row {
    fn into_record(self) -> Result<(AgentId, Record)> {
        let state = match self.state.as_deref() {
            None => None,
            Some(s) => Some(State::parse(s).ok_or_else(|| StoreError::corrupt("update state", s))?),
        };
        Ok((
            AgentId::from_db(&self.agent_id)?,
            Record {
                requested: self.requested,
                version: self.version,
                state,
                detail: self.detail,
                updated_at: self.updated_at,
            },
        ))
    }
}

const COLS: &str = "agent_id, requested, version, state, detail, updated_at";

impl Store {
    /// The agent's update record (empty if it never had one).
    pub async fn agent_update(&self, account: AccountId, agent: AgentId) -> Result<Record> {
        let sql =
            format!("SELECT {COLS} FROM agent_updates WHERE agent_id = $1 AND account_id = $2");
        let row = with_pool!(self, pool => sqlx::query_as::<_, Row>(&sql)
            .bind(agent.db())
            .bind(account.db())
            .fetch_optional(pool)
            .await)?;
        Ok(match row {
            Some(row) => row.into_record()?.1,
            None => Record::default(),
        })
    }

    /// The agent's update record and whether its account updates every
    /// agent: one query, as each heartbeat asks.
    pub async fn update_status(
        &self,
        account: AccountId,
        agent: AgentId,
    ) -> Result<(Record, bool)> {
        #[derive(sqlx::FromRow)]
        struct Status {
            auto: Option<bool>,
            requested: Option<bool>,
            version: Option<String>,
            state: Option<String>,
            detail: Option<String>,
            updated_at: Option<i64>,
        }
        let sql =
            "SELECT (SELECT auto_update FROM update_settings WHERE account_id = $2) AS auto, \
             u.requested, u.version, u.state, u.detail, u.updated_at \
             FROM (SELECT 1 AS one) AS one \
             LEFT JOIN agent_updates u ON u.agent_id = $1 AND u.account_id = $2";
        let s = with_pool!(self, pool => sqlx::query_as::<_, Status>(sql)
            .bind(agent.db())
            .bind(account.db())
            .fetch_one(pool)
            .await)?;
        let (_, record) = Row {
            agent_id: agent.db(),
            requested: s.requested.unwrap_or(false),
            version: s.version,
            state: s.state,
            detail: s.detail,
            updated_at: s.updated_at,
        }
        .into_record()?;
        Ok((record, s.auto.unwrap_or(false)))
    }

    /// Every update record of the account's agents, by agent.
    pub async fn agent_updates(&self, account: AccountId) -> Result<HashMap<AgentId, Record>> {
        let sql = format!("SELECT {COLS} FROM agent_updates WHERE account_id = $1");
        let rows = with_pool!(self, pool => sqlx::query_as::<_, Row>(&sql)
            .bind(account.db())
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(Row::into_record).collect()
    }

    /// Stores an agent's update record.
    pub async fn put_agent_update(
        &self,
        account: AccountId,
        agent: AgentId,
        record: &Record,
    ) -> Result<()> {
        let sql = "INSERT INTO agent_updates \
             (agent_id, account_id, requested, version, state, detail, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (agent_id) DO UPDATE SET requested = excluded.requested, \
             version = excluded.version, state = excluded.state, detail = excluded.detail, \
             updated_at = excluded.updated_at";
        with_pool!(self, pool => sqlx::query(sql)
            .bind(agent.db())
            .bind(account.db())
            .bind(record.requested)
            .bind(record.version.as_deref())
            .bind(record.state.map(State::as_str))
            .bind(record.detail.as_deref())
            .bind(record.updated_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Rolls the server's build out to the account's agents `to` (not
    /// removed ones): each is offered it at its next heartbeat. A failed
    /// earlier attempt is forgotten, so the build is offered again (the
    /// agent itself still refuses a version that failed on it). Returns
    /// how many agents it is for.
    pub async fn request_updates(
        &self,
        account: AccountId,
        to: &Rollout,
        now: UnixTime,
    ) -> Result<u64> {
        let agents = self.agents(account).await?;
        let chosen: Vec<AgentId> = match to {
            Rollout::All => agents.iter().map(|a| a.id).collect(),
            Rollout::Tag(tag) => {
                let tag = tag.trim().to_lowercase();
                agents
                    .iter()
                    .filter(|a| a.tags.contains(&tag))
                    .map(|a| a.id)
                    .collect()
            }
            Rollout::Agents(ids) => {
                for id in ids {
                    if !agents.iter().any(|a| a.id == *id) {
                        return Err(StoreError::NotFound);
                    }
                }
                ids.clone()
            }
        };
        let mut records = self.agent_updates(account).await?;
        for id in &chosen {
            let mut record = records.remove(id).unwrap_or_default();
            record.requested = true;
            if record.state == Some(State::Failed) {
                record.state = None;
                record.detail = None;
            }
            record.updated_at = Some(now);
            self.put_agent_update(account, *id, &record).await?;
        }
        Ok(chosen.len() as u64)
    }

    /// Whether the account gives every agent the server's build.
    pub async fn auto_update(&self, account: AccountId) -> Result<bool> {
        let on = with_pool!(self, pool => sqlx::query_scalar::<_, bool>(
            "SELECT auto_update FROM update_settings WHERE account_id = $1",
        )
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        Ok(on.unwrap_or(false))
    }

    pub async fn set_auto_update(&self, account: AccountId, on: bool) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO update_settings (account_id, auto_update) VALUES ($1, $2) \
             ON CONFLICT (account_id) DO UPDATE SET auto_update = excluded.auto_update",
        )
        .bind(account.db())
        .bind(on)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }
}
