//! Deployment keys: reusable, expiring, revocable enrollment secrets
//! (`vgd_…`) for mass roll-outs, where one secret baked into a GPO or an
//! MSI command line enrolls many machines.
//!
//! A single-use token ([`Store::redeem_enrollment`]) names its agent in
//! advance; a key cannot, so each agent it enrolls is named after the
//! hostname the agent reports. Every use is recorded (key, agent, time,
//! peer address, hostname) so an operator can see what a key enrolled
//! before and after revoking it. Like enrollment tokens, only the SHA-256
//! of the secret is stored.

use crate::agents::AgentRow;
use crate::error::found;
use crate::ids::{AccountId, AgentId, DeploymentKeyId};
use crate::model::{parse_plan, plan_str, UnixTime};
use crate::secret::{new_token, token_hash, AGENT_CREDENTIAL_PREFIX, DEPLOYMENT_KEY_PREFIX};
use crate::validate::{self, limits};
use crate::{with_pool, Agent, Pool, Result, Store, StoreError};
use std::time::Duration;
use vigil_core::Plan;

/// Longest a deployment key may live: 365 days.
pub const MAX_DEPLOYMENT_KEY_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// A deployment key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentKey {
    pub id: DeploymentKeyId,
    pub account_id: AccountId,
    pub name: String,
    /// The plan of every agent it enrolls.
    pub plan: Plan,
    pub created_at: UnixTime,
    /// Enrollments are refused from this second on.
    pub expires_at: UnixTime,
    /// How many agents it may enroll; `None`: no limit.
    pub max_uses: Option<u64>,
    /// How many it enrolled.
    pub use_count: u64,
    pub last_used_at: Option<UnixTime>,
    pub revoked_at: Option<UnixTime>,
}

/// One enrollment made with a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentKeyUse {
    pub key_id: DeploymentKeyId,
    pub agent_id: AgentId,
    pub used_at: UnixTime,
    /// The address the enrollment came from, as the server saw it.
    pub peer_addr: Option<String>,
    /// The hostname the agent reported.
    pub hostname: Option<String>,
}

/// What [`Store::create_deployment_key`] needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewDeploymentKey<'a> {
    pub name: &'a str,
    pub plan: Plan,
    /// Lifetime from `now`: 1 second to [`MAX_DEPLOYMENT_KEY_TTL`].
    pub ttl: Duration,
    /// At least 1; `None` for no limit.
    pub max_uses: Option<u64>,
}

/// The enrolling machine, as [`Store::redeem_deployment_key`] records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyUse<'a> {
    pub now: UnixTime,
    /// The peer address of the enroll request.
    pub peer_addr: &'a str,
    /// The hostname from the agent's facts; names the agent (empty: the
    /// peer address does).
    pub hostname: &'a str,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    account_id: String,
    name: String,
    plan: String,
    created_at: i64,
    expires_at: i64,
    max_uses: Option<i64>,
    use_count: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

const KEY_COLS: &str = "id, account_id, name, plan, created_at, expires_at, max_uses, \
                        use_count, last_used_at, revoked_at";

impl TryFrom<KeyRow> for DeploymentKey {
    type Error = StoreError;

    fn try_from(r: KeyRow) -> Result<DeploymentKey> {
        let count = |what: &str, v: i64| {
            u64::try_from(v).map_err(|_| StoreError::corrupt(what, &v.to_string()))
        };
        Ok(DeploymentKey {
            id: DeploymentKeyId::from_db(&r.id)?,
            account_id: AccountId::from_db(&r.account_id)?,
            name: r.name,
            plan: parse_plan(&r.plan)?,
            created_at: r.created_at,
            expires_at: r.expires_at,
            max_uses: r.max_uses.map(|m| count("max_uses", m)).transpose()?,
            use_count: count("use_count", r.use_count)?,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct UseRow {
    key_id: String,
    agent_id: String,
    used_at: i64,
    peer_addr: Option<String>,
    hostname: Option<String>,
}

impl TryFrom<UseRow> for DeploymentKeyUse {
    type Error = StoreError;

    fn try_from(r: UseRow) -> Result<DeploymentKeyUse> {
        Ok(DeploymentKeyUse {
            key_id: DeploymentKeyId::from_db(&r.key_id)?,
            agent_id: AgentId::from_db(&r.agent_id)?,
            used_at: r.used_at,
            peer_addr: r.peer_addr,
            hostname: r.hostname,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: String,
    account_id: String,
    plan: String,
}

#[derive(sqlx::FromRow)]
struct StateRow {
    expires_at: i64,
    revoked_at: Option<i64>,
    max_uses: Option<i64>,
    use_count: i64,
}

/// The agent's name: the reported hostname, else the peer address, else a
/// fixed name; cut to the longest name the store takes.
fn agent_name(hostname: &str, peer_addr: &str) -> String {
    [hostname, peer_addr]
        .iter()
        .map(|s| {
            s.trim()
                .chars()
                .take(limits::MAX_NAME_CHARS)
                .collect::<String>()
        })
        .find_map(|s| validate::name("agent name", &s).ok())
        .unwrap_or_else(|| "deployed agent".to_string())
}

/// A recorded fact: empty or unfit text is stored as NULL rather than
/// failing an enrollment the key already admitted.
fn fact(value: &str) -> Option<&str> {
    validate::text("fact", value, limits::MAX_AGENT_FIELD_LEN)
        .ok()
        .map(|()| value)
}

impl Store {
    /// Creates a deployment key at `now`; returns it and its secret
    /// (`vgd_…`, shown once).
    pub async fn create_deployment_key(
        &self,
        account: AccountId,
        new: &NewDeploymentKey<'_>,
        now: UnixTime,
    ) -> Result<(DeploymentKey, String)> {
        let name = validate::name("deployment key name", new.name)?;
        if new.ttl.is_zero() || new.ttl > MAX_DEPLOYMENT_KEY_TTL {
            return Err(StoreError::invalid(format!(
                "deployment key lifetime must be between 1 second and {} days",
                MAX_DEPLOYMENT_KEY_TTL.as_secs() / 86_400
            )));
        }
        let ttl = i64::try_from(new.ttl.as_secs().max(1))
            .map_err(|_| StoreError::invalid("deployment key lifetime is too long"))?;
        let max_uses = match new.max_uses {
            None => None,
            Some(m) => match i64::try_from(m) {
                Ok(m) if m > 0 => Some(m),
                _ => {
                    return Err(StoreError::invalid(format!(
                        "max_uses must be between 1 and {}",
                        i64::MAX
                    )))
                }
            },
        };
        let secret = new_token(DEPLOYMENT_KEY_PREFIX)?;
        let sql = format!(
            "INSERT INTO deployment_keys \
             (id, account_id, name, key_hash, plan, created_at, expires_at, max_uses) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {KEY_COLS}"
        );
        let row = with_pool!(self, pool => sqlx::query_as::<_, KeyRow>(&sql)
            .bind(DeploymentKeyId::random().db())
            .bind(account.db())
            .bind(&name)
            .bind(&secret.hash)
            .bind(plan_str(new.plan))
            .bind(now)
            .bind(now.saturating_add(ttl))
            .bind(max_uses)
            .fetch_one(pool)
            .await)?;
        Ok((row.try_into()?, secret.plaintext))
    }

    /// One key of the account.
    pub async fn deployment_key(
        &self,
        account: AccountId,
        key: DeploymentKeyId,
    ) -> Result<DeploymentKey> {
        let sql =
            format!("SELECT {KEY_COLS} FROM deployment_keys WHERE id = $1 AND account_id = $2");
        let row = with_pool!(self, pool => sqlx::query_as::<_, KeyRow>(&sql)
            .bind(key.db())
            .bind(account.db())
            .fetch_optional(pool)
            .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// The account's keys, newest first, revoked and expired ones included.
    pub async fn deployment_keys(&self, account: AccountId) -> Result<Vec<DeploymentKey>> {
        let sql = format!(
            "SELECT {KEY_COLS} FROM deployment_keys WHERE account_id = $1 \
             ORDER BY created_at DESC, id"
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, KeyRow>(&sql)
            .bind(account.db())
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(DeploymentKey::try_from).collect()
    }

    /// The enrollments made with a key, newest first, at most `limit`
    /// (1 to 1000). Another account's key is [`StoreError::NotFound`].
    pub async fn deployment_key_uses(
        &self,
        account: AccountId,
        key: DeploymentKeyId,
        limit: u32,
    ) -> Result<Vec<DeploymentKeyUse>> {
        let limit = validate::limit(limit)?;
        self.deployment_key(account, key).await?;
        let rows = with_pool!(self, pool => sqlx::query_as::<_, UseRow>(
            "SELECT key_id, agent_id, used_at, peer_addr, hostname FROM deployment_key_uses \
             WHERE key_id = $1 AND account_id = $2 ORDER BY used_at DESC, agent_id LIMIT $3",
        )
        .bind(key.db())
        .bind(account.db())
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(DeploymentKeyUse::try_from).collect()
    }

    /// Revokes a key at `now`: it enrolls nothing more. Agents it enrolled
    /// stay. Revoking a revoked key keeps the first time.
    pub async fn revoke_deployment_key(
        &self,
        account: AccountId,
        key: DeploymentKeyId,
        now: UnixTime,
    ) -> Result<()> {
        let done = with_pool!(self, pool => sqlx::query(
            "UPDATE deployment_keys SET revoked_at = COALESCE(revoked_at, $3) \
             WHERE id = $1 AND account_id = $2",
        )
        .bind(key.db())
        .bind(account.db())
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        found(done)
    }

    /// Enrolls an agent with a deployment key: in one transaction counts
    /// the use (only while the key is not revoked, not expired and under
    /// its `max_uses`), creates the agent with a fresh credential exactly
    /// as [`Store::redeem_enrollment`] does, named after the hostname, and
    /// records the use. Returns the agent and its credential (`vga_…`).
    /// Of concurrent enrollments past `max_uses`, the extra ones fail.
    ///
    /// Errors: [`StoreError::NotFound`] for an unknown or malformed key,
    /// [`StoreError::Invalid`] saying "revoked", "expired" or "used up".
    pub async fn redeem_deployment_key(
        &self,
        plaintext: &str,
        used: &KeyUse<'_>,
    ) -> Result<(Agent, String)> {
        let Some(hash) = token_hash(DEPLOYMENT_KEY_PREFIX, plaintext) else {
            return Err(StoreError::NotFound);
        };
        let now = used.now;
        let credential = new_token(AGENT_CREDENTIAL_PREFIX)?;
        let agent_id = AgentId::random();
        let name = agent_name(used.hostname, used.peer_addr);

        const CLAIM: &str = "UPDATE deployment_keys \
             SET use_count = use_count + 1, last_used_at = $2 \
             WHERE key_hash = $1 AND revoked_at IS NULL AND expires_at > $2 \
             AND (max_uses IS NULL OR use_count < max_uses) \
             RETURNING id, account_id, plan";
        const RECORD: &str = "INSERT INTO deployment_key_uses \
             (agent_id, account_id, key_id, used_at, peer_addr, hostname) \
             VALUES ($1, $2, $3, $4, $5, $6)";

        // As in `redeem_enrollment`: SQLite takes the write lock up front;
        // on PostgreSQL the conditional UPDATE locks the key's row and a
        // concurrent enrollment re-checks `use_count` after it.
        macro_rules! redeem {
            ($tx:expr) => {{
                let mut tx = $tx;
                let claimed = sqlx::query_as::<_, ClaimRow>(CLAIM)
                    .bind(&hash)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                match claimed {
                    None => {
                        tx.rollback().await?;
                        None
                    }
                    Some(k) => {
                        let detail = format!(
                            "{} with a deployment key",
                            crate::agent_events::enrolled_detail(&name, &k.plan)
                        );
                        let row = crate::agents::insert_enrolled_agent!(
                            tx,
                            agent_id.db(),
                            &k.account_id,
                            &name,
                            &k.plan,
                            &credential.hash,
                            now,
                            &detail
                        );
                        sqlx::query(RECORD)
                            .bind(agent_id.db())
                            .bind(&k.account_id)
                            .bind(&k.id)
                            .bind(now)
                            .bind(fact(used.peer_addr))
                            .bind(fact(used.hostname))
                            .execute(&mut *tx)
                            .await?;
                        tx.commit().await?;
                        Some(row)
                    }
                }
            }};
        }
        let created: Option<AgentRow> = match &self.inner.pool {
            Pool::Sqlite(pool) => redeem!(pool.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(pool) => redeem!(pool.begin().await?),
        };
        if let Some(row) = created {
            return Ok((row.try_into()?, credential.plaintext));
        }

        // Say why.
        let state = with_pool!(self, pool => sqlx::query_as::<_, StateRow>(
            "SELECT expires_at, revoked_at, max_uses, use_count FROM deployment_keys \
             WHERE key_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(pool)
        .await)?;
        match state {
            None => Err(StoreError::NotFound),
            Some(s) if s.revoked_at.is_some() => {
                Err(StoreError::invalid("deployment key was revoked"))
            }
            Some(s) if s.expires_at <= now => {
                Err(StoreError::invalid("deployment key has expired"))
            }
            Some(StateRow {
                max_uses: Some(max),
                use_count,
                ..
            }) if use_count >= max => Err(StoreError::invalid(format!(
                "deployment key is used up: it enrolled its {max} agents"
            ))),
            // Changed in between (revoked and restored cannot happen).
            Some(_) => Err(StoreError::invalid("deployment key is used up")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_are_named_after_the_host() {
        assert_eq!(agent_name(" web-01 ", "198.51.100.7"), "web-01");
        assert_eq!(agent_name("", "198.51.100.7"), "198.51.100.7");
        assert_eq!(agent_name("bad\u{7}", ""), "deployed agent");
        let long = "h".repeat(300);
        assert_eq!(
            agent_name(&long, "x").chars().count(),
            limits::MAX_NAME_CHARS
        );
        assert_eq!(fact(""), None);
        assert_eq!(fact("ok"), Some("ok"));
    }
}
