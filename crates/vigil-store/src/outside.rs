//! Each account's outside-scan schedule ([`vigil_core::outside`]).

use crate::ids::AccountId;
use crate::{with_pool, Result, Store, StoreError};
use vigil_core::outside::OutsideSchedule;

impl Store {
    /// The account's outside-scan schedule: the defaults until it sets one.
    pub async fn outside_schedule(&self, account: AccountId) -> Result<OutsideSchedule> {
        let row = with_pool!(self, pool => sqlx::query_as::<_, (i64, i64)>(
            "SELECT top_ports, full_range_hours FROM outside_schedules WHERE account_id = $1",
        )
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        let Some((top, hours)) = row else {
            return Ok(OutsideSchedule::default());
        };
        let number =
            |what, n: i64| u16::try_from(n).map_err(|_| StoreError::corrupt(what, &n.to_string()));
        Ok(OutsideSchedule {
            top_ports: number("top ports", top)?,
            full_range_hours: number("full range hours", hours)?,
        })
    }

    /// Sets the account's outside-scan schedule (checked first).
    pub async fn set_outside_schedule(
        &self,
        account: AccountId,
        schedule: OutsideSchedule,
    ) -> Result<OutsideSchedule> {
        let schedule = schedule
            .validated()
            .map_err(|e| StoreError::invalid(e.to_string()))?;
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO outside_schedules (account_id, top_ports, full_range_hours) \
             VALUES ($1, $2, $3) \
             ON CONFLICT (account_id) DO UPDATE SET top_ports = excluded.top_ports, \
                 full_range_hours = excluded.full_range_hours",
        )
        .bind(account.db())
        .bind(i64::from(schedule.top_ports))
        .bind(i64::from(schedule.full_range_hours))
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(schedule)
    }
}
