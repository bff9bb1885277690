//! What exposure trends add up ([`vigil_core::trend`]): open ports per day
//! and the spans of unauthorized-port alerts, for an account or one agent.

use crate::ids::{AccountId, AgentId};
use crate::{with_pool, Result, Store, UnixTime};

impl Store {
    /// Per UTC day (days since the epoch) from `from` on: the sum over the
    /// scanned targets of the most ports one result of the target found
    /// open that day. Days without a counted result are absent. A result
    /// counts on the day the server received it: the time an agent reports
    /// is its own clock's, which may be wrong (or made up).
    pub async fn open_ports_by_day(
        &self,
        account: AccountId,
        agent: Option<AgentId>,
        from: UnixTime,
    ) -> Result<Vec<(i64, u64)>> {
        let only_agent = if agent.is_some() {
            " AND agent_id = $3"
        } else {
            ""
        };
        let sql = format!(
            "SELECT day, CAST(SUM(most) AS BIGINT) FROM ( \
                 SELECT received_at / 86400 AS day, agent_id, target, MAX(open_count) AS most \
                 FROM scan_results \
                 WHERE account_id = $1 AND received_at >= $2 AND open_count IS NOT NULL{only_agent} \
                 GROUP BY received_at / 86400, agent_id, target) per_target \
             GROUP BY day ORDER BY day"
        );
        let rows = with_pool!(self, pool => {
            let mut q = sqlx::query_as::<_, (i64, i64)>(&sql)
                .bind(account.db())
                .bind(from);
            if let Some(a) = agent {
                q = q.bind(a.db());
            }
            q.fetch_all(pool).await
        })?;
        Ok(rows
            .into_iter()
            .map(|(d, n)| (d, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    /// `(raised, resolved)` of the unauthorized-port alerts open at some
    /// time since `from` (`resolved` is `None` while open).
    pub async fn unauthorized_spans(
        &self,
        account: AccountId,
        agent: Option<AgentId>,
        from: UnixTime,
    ) -> Result<Vec<(UnixTime, Option<UnixTime>)>> {
        let only_agent = if agent.is_some() {
            " AND agent_id = $3"
        } else {
            ""
        };
        let sql = format!(
            "SELECT raised_at, resolved_at FROM alerts \
             WHERE account_id = $1 AND kind = 'unauthorized_open' \
               AND (resolved_at IS NULL OR resolved_at >= $2){only_agent}"
        );
        let rows = with_pool!(self, pool => {
            let mut q = sqlx::query_as::<_, (i64, Option<i64>)>(&sql)
                .bind(account.db())
                .bind(from);
            if let Some(a) = agent {
                q = q.bind(a.db());
            }
            q.fetch_all(pool).await
        })?;
        Ok(rows)
    }
}
