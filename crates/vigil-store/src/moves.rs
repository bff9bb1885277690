//! Move instructions on the source server: "tell this agent to re-enroll
//! with that server". An agent has at most one (the latest request
//! replaces the previous one); it is handed out with the agent's
//! heartbeats while pending, and completed when the agent reports that it
//! moved, which removes the agent here.

use crate::error::found;
use crate::ids::{AccountId, AgentId};
use crate::model::{now_unix, UnixTime};
use crate::validate;
use crate::{with_pool, Agent, Result, Store, StoreError};

/// Longest enrollment token or pin accepted, in bytes.
const MAX_SECRET_LEN: usize = 512;
/// Longest server ID accepted, in bytes.
const MAX_SERVER_ID_LEN: usize = 128;

/// Where an agent is told to go.
#[derive(Clone, PartialEq, Eq)]
pub struct MoveOrder<'a> {
    /// The destination's agent URL.
    pub server_url: &'a str,
    /// The destination's certificate pin.
    pub pin: &'a str,
    /// A single-use enrollment token of the destination.
    pub enrollment_token: &'a str,
    /// When the instruction stops being handed out.
    pub expires_at: UnixTime,
}

/// An agent's latest move instruction. `Debug` does not show the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AgentMove {
    pub agent_id: AgentId,
    pub account_id: AccountId,
    pub server_url: String,
    pub pin: String,
    /// Empty once the agent moved.
    pub enrollment_token: String,
    pub requested_at: UnixTime,
    pub expires_at: UnixTime,
    pub moved_at: Option<UnixTime>,
    /// The server ID the agent reported it moved to.
    pub moved_to: Option<String>,
}

impl AgentMove {
    /// Still to be handed to the agent at `now`.
    pub fn is_pending(&self, now: UnixTime) -> bool {
        self.moved_at.is_none() && self.expires_at > now
    }
}

impl std::fmt::Debug for AgentMove {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentMove")
            .field("agent_id", &self.agent_id)
            .field("server_url", &self.server_url)
            .field("requested_at", &self.requested_at)
            .field("expires_at", &self.expires_at)
            .field("moved_at", &self.moved_at)
            .field("moved_to", &self.moved_to)
            .finish_non_exhaustive()
    }
}

#[derive(sqlx::FromRow)]
struct MoveRow {
    agent_id: String,
    account_id: String,
    server_url: String,
    pin: String,
    enrollment_token: String,
    requested_at: i64,
    expires_at: i64,
    moved_at: Option<i64>,
    moved_to: Option<String>,
}

impl TryFrom<MoveRow> for AgentMove {
    type Error = StoreError;

    fn try_from(r: MoveRow) -> Result<AgentMove> {
        Ok(AgentMove {
            agent_id: AgentId::from_db(&r.agent_id)?,
            account_id: AccountId::from_db(&r.account_id)?,
            server_url: r.server_url,
            pin: r.pin,
            enrollment_token: r.enrollment_token,
            requested_at: r.requested_at,
            expires_at: r.expires_at,
            moved_at: r.moved_at,
            moved_to: r.moved_to,
        })
    }
}

const MOVE_COLS: &str = "agent_id, account_id, server_url, pin, enrollment_token, \
                         requested_at, expires_at, moved_at, moved_to";

impl Store {
    /// Records a move instruction for an agent that is not removed,
    /// replacing any earlier one.
    pub async fn request_agent_move(
        &self,
        account: AccountId,
        agent: AgentId,
        order: &MoveOrder<'_>,
    ) -> Result<AgentMove> {
        let server_url = validate::url(order.server_url)?;
        validate::printable("pin", order.pin, MAX_SECRET_LEN)?;
        validate::printable("enrollment token", order.enrollment_token, MAX_SECRET_LEN)?;
        let now = now_unix();
        if order.expires_at <= now {
            return Err(StoreError::invalid("a move instruction must expire later"));
        }
        if self.agent(account, agent).await?.is_removed() {
            return Err(StoreError::invalid(
                "the agent was removed; only an enrolled agent can move",
            ));
        }
        let sql = format!(
            "INSERT INTO agent_moves ({MOVE_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL) \
             ON CONFLICT (agent_id) DO UPDATE SET server_url = excluded.server_url, \
                 pin = excluded.pin, enrollment_token = excluded.enrollment_token, \
                 requested_at = excluded.requested_at, expires_at = excluded.expires_at, \
                 moved_at = NULL, moved_to = NULL \
             WHERE agent_moves.account_id = excluded.account_id \
             RETURNING {MOVE_COLS}"
        );
        let row = with_pool!(self, pool => sqlx::query_as::<_, MoveRow>(&sql)
            .bind(agent.db())
            .bind(account.db())
            .bind(server_url.trim_end_matches('/'))
            .bind(order.pin)
            .bind(order.enrollment_token)
            .bind(now)
            .bind(order.expires_at)
            .fetch_optional(pool)
            .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// The agent's latest move instruction, pending or not.
    pub async fn agent_move(
        &self,
        account: AccountId,
        agent: AgentId,
    ) -> Result<Option<AgentMove>> {
        let sql =
            format!("SELECT {MOVE_COLS} FROM agent_moves WHERE agent_id = $1 AND account_id = $2");
        let row = with_pool!(self, pool => sqlx::query_as::<_, MoveRow>(&sql)
            .bind(agent.db())
            .bind(account.db())
            .fetch_optional(pool)
            .await)?;
        row.map(AgentMove::try_from).transpose()
    }

    /// The instruction to hand to the agent at `now`, if one is pending.
    pub async fn pending_agent_move(
        &self,
        account: AccountId,
        agent: AgentId,
        now: UnixTime,
    ) -> Result<Option<AgentMove>> {
        Ok(self
            .agent_move(account, agent)
            .await?
            .filter(|m| m.is_pending(now)))
    }

    /// The agent reports that it is enrolled with `server_id` now: in one
    /// transaction the instruction is completed (its token cleared) and the
    /// agent removed. [`StoreError::NotFound`] if it was never told to move.
    pub async fn complete_agent_move(
        &self,
        account: AccountId,
        agent: AgentId,
        server_id: &str,
        now: UnixTime,
    ) -> Result<Agent> {
        validate::printable("server ID", server_id, MAX_SERVER_ID_LEN)?;
        let n = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE agent_moves SET moved_at = COALESCE(moved_at, $3), \
                     moved_to = COALESCE(moved_to, $4), enrollment_token = '' \
                 WHERE agent_id = $1 AND account_id = $2",
            )
            .bind(agent.db())
            .bind(account.db())
            .bind(now)
            .bind(server_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                sqlx::query(
                    "UPDATE agents SET removed_at = COALESCE(removed_at, $3) \
                     WHERE id = $1 AND account_id = $2",
                )
                .bind(agent.db())
                .bind(account.db())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            n
        });
        found(n)?;
        self.agent(account, agent).await
    }
}
