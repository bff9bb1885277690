//! Enrollment tokens and agents.

use crate::error::found;
use crate::ids::{AccountId, AgentId, EnrollmentId};
use crate::model::{health_str, now_unix, parse_health, parse_plan, plan_str, UnixTime};
use crate::secret::{
    hashes_equal, new_token, token_hash, AGENT_CREDENTIAL_PREFIX, ENROLLMENT_TOKEN_PREFIX,
};
use crate::validate::{self, limits};
use crate::{with_pool, Agent, Heartbeat, Pool, Result, Store, StoreError};
use std::time::Duration;
use vigil_core::{AgentHealth, Plan};

/// Last-contact times (unix seconds, inclusive; `None`: open-ended), as
/// [`vigil_core::contact_range`] gives them for an agent health.
pub type ContactRange = (Option<u64>, Option<u64>);

/// Which agents a page lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentQuery {
    /// Case-insensitive, anywhere in the name or hostname; empty for all.
    pub search: String,
    /// Only agents whose last contact (or, never seen, enrollment) falls in
    /// one of these ranges; `None` for all, an empty list matches nothing.
    pub contact: Option<Vec<ContactRange>>,
    /// Only agents carrying this tag; `None` for all.
    pub tag: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AgentRow {
    id: String,
    account_id: String,
    name: String,
    plan: String,
    enrolled_at: i64,
    last_seen_at: Option<i64>,
    public_addr: Option<String>,
    version: Option<String>,
    os: Option<String>,
    hostname: Option<String>,
    removed_at: Option<i64>,
    last_health: String,
    tags: String,
}

impl TryFrom<AgentRow> for Agent {
    type Error = StoreError;

    fn try_from(r: AgentRow) -> Result<Agent> {
        Ok(Agent {
            id: AgentId::from_db(&r.id)?,
            account_id: AccountId::from_db(&r.account_id)?,
            name: r.name,
            plan: parse_plan(&r.plan)?,
            enrolled_at: r.enrolled_at,
            last_seen_at: r.last_seen_at,
            public_addr: r.public_addr,
            version: r.version,
            os: r.os,
            hostname: r.hostname,
            removed_at: r.removed_at,
            last_health: parse_health(&r.last_health)?,
            tags: serde_json::from_str(&r.tags)
                .map_err(|_| StoreError::corrupt("agent tags", &r.tags))?,
        })
    }
}

/// The agent columns, optionally qualified by a table alias.
macro_rules! agent_cols {
    () => {
        "id, account_id, name, plan, enrolled_at, last_seen_at, public_addr, version, os, \
         hostname, removed_at, last_health, tags"
    };
    ($a:literal) => {
        concat!(
            $a,
            ".id, ",
            $a,
            ".account_id, ",
            $a,
            ".name, ",
            $a,
            ".plan, ",
            $a,
            ".enrolled_at, ",
            $a,
            ".last_seen_at, ",
            $a,
            ".public_addr, ",
            $a,
            ".version, ",
            $a,
            ".os, ",
            $a,
            ".hostname, ",
            $a,
            ".removed_at, ",
            $a,
            ".last_health, ",
            $a,
            ".tags"
        )
    };
}

/// Creates an enrolling agent (row and "enrolled" history entry) inside a
/// redeem's transaction `$tx`: single-use tokens and deployment keys
/// enroll alike. `$detail` is the history entry's text. Evaluates to the
/// new [`AgentRow`]; `.await`s inside, so use it in an async fn.
macro_rules! insert_enrolled_agent {
    ($tx:expr, $agent_id:expr, $account:expr, $name:expr, $plan:expr, $credential_hash:expr, $now:expr, $detail:expr) => {{
        let row = sqlx::query_as::<_, $crate::agents::AgentRow>($crate::agents::INSERT_ENROLLED)
            .bind($agent_id)
            .bind($account)
            .bind($name)
            .bind($plan)
            .bind($credential_hash)
            .bind($now)
            .fetch_one(&mut *$tx)
            .await?;
        let event = $crate::NewAgentEvent {
            at: $now,
            kind: vigil_core::history::AgentEventKind::Enrolled,
            actor: $crate::SYSTEM_ACTOR,
            detail: $detail,
        };
        $crate::agent_events::insert_event!(&mut *$tx, $account, $agent_id, &event).await?;
        row
    }};
}
pub(crate) use insert_enrolled_agent;

/// The agent row an enrollment creates.
pub(crate) const INSERT_ENROLLED: &str = concat!(
    "INSERT INTO agents (id, account_id, name, plan, credential_hash, enrolled_at, last_health) \
     VALUES ($1, $2, $3, $4, $5, $6, 'communicating') RETURNING ",
    agent_cols!()
);
pub(crate) use agent_cols;

#[derive(sqlx::FromRow)]
struct RedeemRow {
    account_id: String,
    agent_name: String,
    plan: String,
}

#[derive(sqlx::FromRow)]
struct EnrollmentStateRow {
    expires_at: i64,
    used_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct CredentialRow {
    #[sqlx(flatten)]
    agent: AgentRow,
    credential_hash: String,
}

fn optional_field(what: &str, value: Option<&str>) -> Result<()> {
    match value {
        Some(v) => validate::text(what, v, limits::MAX_AGENT_FIELD_LEN),
        None => Ok(()),
    }
}

impl Heartbeat<'_> {
    /// Checks the reported fields the way [`Store::record_heartbeat`] does,
    /// so a caller can refuse bad input before doing anything else.
    pub fn validate(&self) -> Result<()> {
        optional_field("public address", self.public_addr)?;
        optional_field("version", self.version)?;
        optional_field("os", self.os)?;
        optional_field("hostname", self.hostname)
    }
}

impl Store {
    // ----- enrollment -----------------------------------------------------

    /// Creates a single-use enrollment token valid for `ttl` (at most 30 days)
    /// and returns its plaintext (`vge_…`). Redeeming it creates an agent
    /// named `agent_name` on `plan`.
    pub async fn create_enrollment(
        &self,
        account: AccountId,
        agent_name: &str,
        plan: Plan,
        ttl: Duration,
    ) -> Result<String> {
        let name = validate::name("agent name", agent_name)?;
        let ttl = validate::ttl(ttl)?;
        let secret = new_token(ENROLLMENT_TOKEN_PREFIX)?;
        let now = now_unix();
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO enrollment_tokens \
             (id, account_id, token_hash, agent_name, plan, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(EnrollmentId::random().db())
        .bind(account.db())
        .bind(&secret.hash)
        .bind(&name)
        .bind(plan_str(plan))
        .bind(now)
        .bind(now.saturating_add(ttl))
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(secret.plaintext)
    }

    /// Redeems an enrollment token at `now`: in one transaction marks it used
    /// and creates the agent with a fresh credential. Returns the agent and
    /// the credential plaintext (`vga_…`, shown once). Of concurrent redeems
    /// of one token exactly one succeeds.
    ///
    /// Errors: [`StoreError::NotFound`] for an unknown or malformed token,
    /// [`StoreError::Invalid`] saying "already used" or "expired".
    pub async fn redeem_enrollment(
        &self,
        plaintext: &str,
        now: UnixTime,
    ) -> Result<(Agent, String)> {
        let Some(hash) = token_hash(ENROLLMENT_TOKEN_PREFIX, plaintext) else {
            return Err(StoreError::NotFound);
        };
        let credential = new_token(AGENT_CREDENTIAL_PREFIX)?;
        let agent_id = AgentId::random();

        const CLAIM: &str = "UPDATE enrollment_tokens SET used_at = $2, agent_id = $3 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
             RETURNING account_id, agent_name, plan";

        // SQLite: take the write lock up front (BEGIN IMMEDIATE) so concurrent
        // redeems queue on the busy timeout instead of failing to upgrade.
        // PostgreSQL: the conditional UPDATE locks the row; a concurrent
        // redeem waits, re-checks `used_at IS NULL` and matches nothing.
        macro_rules! redeem {
            ($tx:expr) => {{
                let mut tx = $tx;
                let claimed = sqlx::query_as::<_, RedeemRow>(CLAIM)
                    .bind(&hash)
                    .bind(now)
                    .bind(agent_id.db())
                    .fetch_optional(&mut *tx)
                    .await?;
                match claimed {
                    None => {
                        tx.rollback().await?;
                        None
                    }
                    Some(t) => {
                        let detail = crate::agent_events::enrolled_detail(&t.agent_name, &t.plan);
                        let row = insert_enrolled_agent!(
                            tx,
                            agent_id.db(),
                            &t.account_id,
                            &t.agent_name,
                            &t.plan,
                            &credential.hash,
                            now,
                            &detail
                        );
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
        let state = with_pool!(self, pool => sqlx::query_as::<_, EnrollmentStateRow>(
            "SELECT expires_at, used_at FROM enrollment_tokens WHERE token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(pool)
        .await)?;
        match state {
            None => Err(StoreError::NotFound),
            Some(s) if s.used_at.is_some() => {
                Err(StoreError::invalid("enrollment token was already used"))
            }
            Some(s) if s.expires_at <= now => {
                Err(StoreError::invalid("enrollment token has expired"))
            }
            // Unreachable unless the row changed in between; report it as used.
            Some(_) => Err(StoreError::invalid("enrollment token was already used")),
        }
    }

    // ----- agents ---------------------------------------------------------

    /// One agent of the account (removed agents included).
    pub async fn agent(&self, account: AccountId, agent: AgentId) -> Result<Agent> {
        let row = with_pool!(self, pool => sqlx::query_as::<_, AgentRow>(concat!(
            "SELECT ", agent_cols!(), " FROM agents WHERE id = $1 AND account_id = $2"
        ))
        .bind(agent.db())
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// The account's agents that are not removed, by name.
    pub async fn agents(&self, account: AccountId) -> Result<Vec<Agent>> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, AgentRow>(concat!(
            "SELECT ", agent_cols!(),
            " FROM agents WHERE account_id = $1 AND removed_at IS NULL ORDER BY name, id"
        ))
        .bind(account.db())
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(Agent::try_from).collect()
    }

    /// One page of the account's agents that are not removed, by name, and
    /// how many match in all: `search` (case-insensitive, anywhere in the
    /// name or hostname; empty for all), `offset`, `limit` (1 to 1000). For
    /// lists that must stay small with thousands of agents (the web console).
    pub async fn agents_page(
        &self,
        account: AccountId,
        search: &str,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<Agent>, u64)> {
        let query = AgentQuery {
            search: search.to_string(),
            contact: None,
            tag: None,
        };
        self.agents_query(account, &query, offset, limit).await
    }

    /// [`Store::agents_page`] with every filter of an [`AgentQuery`].
    pub async fn agents_query(
        &self,
        account: AccountId,
        query: &AgentQuery,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<Agent>, u64)> {
        let limit = validate::limit(limit)?;
        let offset =
            i64::try_from(offset).map_err(|_| StoreError::invalid("offset is too large"))?;
        let pattern = like_pattern(&query.search);
        let tag = tag_pattern(query.tag.as_deref());
        let (contact_sql, bounds) = contact_filter(query.contact.as_deref(), 4)?;
        let filter = format!(
            " FROM agents WHERE account_id = $1 AND removed_at IS NULL \
             AND (LOWER(name) LIKE $2 ESCAPE '\\' OR LOWER(COALESCE(hostname, '')) LIKE $2 ESCAPE '\\') \
             AND tags LIKE $3 ESCAPE '\\' AND {contact_sql}"
        );
        let count_sql = format!("SELECT COUNT(*){filter}");
        let total = with_pool!(self, pool => {
            let mut q = sqlx::query_scalar::<_, i64>(&count_sql)
                .bind(account.db())
                .bind(&pattern)
                .bind(&tag);
            for b in &bounds {
                q = q.bind(*b);
            }
            q.fetch_one(pool).await
        })?;
        let n = bounds.len() + 4;
        let page_sql = format!(
            "SELECT {}{filter} ORDER BY name, id LIMIT ${n} OFFSET ${}",
            agent_cols!(),
            n + 1
        );
        let rows = with_pool!(self, pool => {
            let mut q = sqlx::query_as::<_, AgentRow>(&page_sql)
                .bind(account.db())
                .bind(&pattern)
                .bind(&tag);
            for b in &bounds {
                q = q.bind(*b);
            }
            q.bind(limit).bind(offset).fetch_all(pool).await
        })?;
        let agents = rows
            .into_iter()
            .map(Agent::try_from)
            .collect::<Result<_>>()?;
        Ok((agents, u64::try_from(total).unwrap_or(0)))
    }

    /// How many agents (not removed) of `account`, or of every account,
    /// last called in (or, never seen, enrolled) within each range of
    /// `ranges` — e.g. one range per health, from
    /// [`vigil_core::contact_range`]. Counted in the database: the
    /// dashboard and the metrics do not load thousands of agents for it.
    pub async fn agent_contact_counts(
        &self,
        account: Option<AccountId>,
        ranges: &[ContactRange],
    ) -> Result<Vec<u64>> {
        let mut counts = Vec::with_capacity(ranges.len());
        for range in ranges {
            let (sql, bounds) = contact_filter(Some(std::slice::from_ref(range)), 2)?;
            let sql = format!(
                "SELECT COUNT(*) FROM agents \
                 WHERE ($1 IS NULL OR account_id = $1) AND removed_at IS NULL AND {sql}"
            );
            let n = with_pool!(self, pool => {
                let mut q = sqlx::query_scalar::<_, i64>(&sql).bind(account.map(|a| a.db()));
                for b in &bounds {
                    q = q.bind(*b);
                }
                q.fetch_one(pool).await
            })?;
            counts.push(u64::try_from(n).unwrap_or(0));
        }
        Ok(counts)
    }

    /// Every agent that is not removed, of every account (for the liveness sweeper).
    pub async fn agents_all_accounts(&self) -> Result<Vec<Agent>> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, AgentRow>(concat!(
            "SELECT ", agent_cols!(),
            " FROM agents WHERE removed_at IS NULL ORDER BY account_id, id"
        ))
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(Agent::try_from).collect()
    }

    /// How many agents are enrolled and not removed, over all accounts.
    pub async fn agent_count(&self) -> Result<u64> {
        let n = with_pool!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM agents WHERE removed_at IS NULL",
        )
        .fetch_one(pool)
        .await)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The agent if `credential` is its current credential and it is not
    /// removed; `None` otherwise.
    pub async fn authenticate_agent(
        &self,
        agent: AgentId,
        credential: &str,
    ) -> Result<Option<Agent>> {
        let Some(hash) = token_hash(AGENT_CREDENTIAL_PREFIX, credential) else {
            return Ok(None);
        };
        let row = with_pool!(self, pool => sqlx::query_as::<_, CredentialRow>(concat!(
            "SELECT ", agent_cols!(), ", credential_hash FROM agents \
             WHERE id = $1 AND removed_at IS NULL"
        ))
        .bind(agent.db())
        .fetch_optional(pool)
        .await)?;
        match row {
            Some(r) if hashes_equal(&r.credential_hash, &hash) => Ok(Some(r.agent.try_into()?)),
            _ => Ok(None),
        }
    }

    /// Records that the agent called in: `last_seen_at = hb.now`, and the
    /// reported fields that are `Some`. Does not touch `last_health` (the
    /// sweeper compares it with the new health to emit "agent back").
    pub async fn record_heartbeat(
        &self,
        account: AccountId,
        agent: AgentId,
        hb: &Heartbeat<'_>,
    ) -> Result<()> {
        hb.validate()?;
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE agents SET last_seen_at = $3, \
                 public_addr = COALESCE($4, public_addr), version = COALESCE($5, version), \
                 os = COALESCE($6, os), hostname = COALESCE($7, hostname) \
             WHERE id = $1 AND account_id = $2 AND removed_at IS NULL",
        )
        .bind(agent.db())
        .bind(account.db())
        .bind(hb.now)
        .bind(hb.public_addr)
        .bind(hb.version)
        .bind(hb.os)
        .bind(hb.hostname)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        found(n)?;
        Ok(())
    }

    /// Moves an agent to another plan.
    pub async fn set_plan(&self, account: AccountId, agent: AgentId, plan: Plan) -> Result<Agent> {
        self.update_agent(account, agent, "plan", plan_str(plan))
            .await
    }

    /// Records the health the liveness sweeper computed, and a change of it
    /// in the agent's history.
    pub async fn set_health(
        &self,
        account: AccountId,
        agent: AgentId,
        health: AgentHealth,
    ) -> Result<Agent> {
        self.set_health_recorded(account, agent, None, health)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// [`Store::set_health`] only if the stored health is still `from`:
    /// `None` when it is not, because another server replica sharing the
    /// database saw the same change first (and tells the contacts), so each
    /// change is acted on once.
    pub async fn change_health(
        &self,
        account: AccountId,
        agent: AgentId,
        from: AgentHealth,
        to: AgentHealth,
    ) -> Result<Option<Agent>> {
        self.set_health_recorded(account, agent, Some(from), to)
            .await
    }

    /// The agents (not removed, of every account) whose stored health is
    /// not what their last contact says at `now`: what the liveness sweeper
    /// must look at, found in the database rather than by loading every
    /// agent. `ranges` gives, per health, the last-contact times it stands
    /// for ([`vigil_core::contact_range`]; `None`: no time).
    pub async fn agents_with_stale_health(
        &self,
        ranges: &[(AgentHealth, Option<ContactRange>)],
        limit: u32,
    ) -> Result<Vec<Agent>> {
        let limit = validate::limit(limit)?;
        let mut parts = Vec::new();
        let mut bounds = Vec::new();
        for (health, range) in ranges {
            // Stored `health` but a last contact outside its range.
            let inside = match range {
                Some(r) => {
                    let (sql, b) = contact_filter(Some(std::slice::from_ref(r)), bounds.len() + 1)?;
                    bounds.extend(b);
                    sql
                }
                None => "FALSE".to_string(),
            };
            parts.push(format!(
                "(last_health = '{}' AND NOT {inside})",
                health_str(*health)
            ));
        }
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {} FROM agents WHERE removed_at IS NULL AND ({}) ORDER BY id LIMIT ${}",
            agent_cols!(),
            parts.join(" OR "),
            bounds.len() + 1
        );
        let rows = with_pool!(self, pool => {
            let mut q = sqlx::query_as::<_, AgentRow>(&sql);
            for b in &bounds {
                q = q.bind(*b);
            }
            q.bind(limit).fetch_all(pool).await
        })?;
        rows.into_iter().map(Agent::try_from).collect()
    }

    /// Replaces an agent's tags (normalized: trimmed, lower case, sorted,
    /// once each; see [`vigil_core::maintenance::normalize_tags`]).
    pub async fn set_tags<S: AsRef<str>>(
        &self,
        account: AccountId,
        agent: AgentId,
        tags: &[S],
    ) -> Result<Agent> {
        let tags = vigil_core::maintenance::normalize_tags(tags)
            .map_err(|e| StoreError::invalid(e.to_string()))?;
        let json = serde_json::to_string(&tags)
            .map_err(|e| StoreError::invalid(format!("cannot encode tags: {e}")))?;
        let sql = format!(
            "UPDATE agents SET tags = $3 \
             WHERE id = $1 AND account_id = $2 AND removed_at IS NULL RETURNING {}",
            agent_cols!()
        );
        let row = with_pool!(self, pool => sqlx::query_as::<_, AgentRow>(&sql)
            .bind(agent.db())
            .bind(account.db())
            .bind(&json)
            .fetch_optional(pool)
            .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Every tag the account's agents carry, sorted, once each.
    pub async fn agent_tags(&self, account: AccountId) -> Result<Vec<String>> {
        let rows = with_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT DISTINCT tags FROM agents \
             WHERE account_id = $1 AND removed_at IS NULL AND tags <> '[]'",
        )
        .bind(account.db())
        .fetch_all(pool)
        .await)?;
        let mut all: Vec<String> = rows
            .iter()
            .filter_map(|r| serde_json::from_str::<Vec<String>>(r).ok())
            .flatten()
            .collect();
        all.sort();
        all.dedup();
        Ok(all)
    }

    async fn update_agent(
        &self,
        account: AccountId,
        agent: AgentId,
        column: &'static str,
        value: &'static str,
    ) -> Result<Agent> {
        let sql = format!(
            "UPDATE agents SET {column} = $3 \
             WHERE id = $1 AND account_id = $2 AND removed_at IS NULL RETURNING {}",
            agent_cols!()
        );
        let row = with_pool!(self, pool => sqlx::query_as::<_, AgentRow>(&sql)
            .bind(agent.db())
            .bind(account.db())
            .bind(value)
            .fetch_optional(pool)
            .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Removes an agent at `now`: it stops authenticating and disappears from
    /// lists and schedules; its history stays. Removing twice keeps the first time.
    pub async fn remove_agent(
        &self,
        account: AccountId,
        agent: AgentId,
        now: UnixTime,
    ) -> Result<Agent> {
        let row = with_pool!(self, pool => sqlx::query_as::<_, AgentRow>(concat!(
            "UPDATE agents SET removed_at = COALESCE(removed_at, $3) \
             WHERE id = $1 AND account_id = $2 RETURNING ", agent_cols!()
        ))
        .bind(agent.db())
        .bind(account.db())
        .bind(now)
        .fetch_optional(pool)
        .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Fails with [`StoreError::NotFound`] unless `agent` belongs to `account`.
    pub(crate) async fn ensure_agent(&self, account: AccountId, agent: AgentId) -> Result<()> {
        let found = with_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT id FROM agents WHERE id = $1 AND account_id = $2",
        )
        .bind(agent.db())
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        found.map(|_| ()).ok_or(StoreError::NotFound)
    }
}

/// A `LIKE` pattern matching `search` anywhere, case-insensitively (the
/// column is compared in lower case), with `%`, `_` and `\` taken literally.
/// The SQL condition "last contact within one of `ranges`" with its bind
/// values, numbered from `$first`. `None`: no condition; an empty list
/// matches nothing.
fn contact_filter(ranges: Option<&[ContactRange]>, first: usize) -> Result<(String, Vec<i64>)> {
    let Some(ranges) = ranges else {
        return Ok(("TRUE".into(), Vec::new()));
    };
    let mut parts = Vec::new();
    let mut bounds = Vec::new();
    for (from, to) in ranges {
        let mut cond = vec!["TRUE".to_string()];
        for (bound, op) in [(from, ">="), (to, "<=")] {
            if let Some(t) = bound {
                let t = i64::try_from(*t).map_err(|_| StoreError::invalid("time is too large"))?;
                bounds.push(t);
                cond.push(format!(
                    "COALESCE(last_seen_at, enrolled_at) {op} ${}",
                    first + bounds.len() - 1
                ));
            }
        }
        parts.push(format!("({})", cond.join(" AND ")));
    }
    if parts.is_empty() {
        return Ok(("FALSE".into(), bounds));
    }
    Ok((format!("({})", parts.join(" OR ")), bounds))
}

/// A `LIKE` pattern matching a stored tag list (a JSON array) that holds
/// `tag` exactly; `%` (everything) for no tag filter.
fn tag_pattern(tag: Option<&str>) -> String {
    let Some(tag) = tag else {
        return "%".into();
    };
    let mut p = String::from("%\"");
    for c in tag.trim().to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\' | '"') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push_str("\"%");
    p
}

fn like_pattern(search: &str) -> String {
    let mut p = String::from("%");
    for c in search.trim().to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[cfg(test)]
mod like_tests {
    use super::like_pattern;

    #[test]
    fn search_text_is_literal_and_lower_case() {
        assert_eq!(like_pattern(""), "%%");
        assert_eq!(like_pattern(" Web "), "%web%");
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
