//! Who shares an Amplience hub's request budget: every process using the hub
//! heartbeats a row here, and takes an equal share of the budget among the
//! members seen within the last heartbeats. Scaling a consumer out (or adding
//! a component) lowers every member's share instead of multiplying the load.

use sqlx::{AnyPool, Row};

use crate::{now_millis, StoreError};

#[derive(Debug, Clone)]
pub struct HubBudget {
    pool: AnyPool,
}

impl HubBudget {
    pub(crate) fn new(pool: AnyPool) -> Self {
        HubBudget { pool }
    }

    /// Records `member` as alive on `hub_id` and answers how many members were seen within
    /// `window_ms` (this one included); forgets members silent for an hour.
    pub async fn heartbeat(&self, hub_id: &str, member: &str, window_ms: i64) -> Result<u64, StoreError> {
        let now = now_millis();
        sqlx::query(
            "INSERT INTO hub_budget_members (hub_id, member, seen_at) VALUES ($1, $2, $3)
             ON CONFLICT (hub_id, member) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(hub_id)
        .bind(member)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("recording a hub budget member"))?;
        sqlx::query("DELETE FROM hub_budget_members WHERE seen_at < $1")
            .bind(now - 3_600_000)
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("forgetting silent hub budget members"))?;
        let row = sqlx::query("SELECT COUNT(*) FROM hub_budget_members WHERE hub_id = $1 AND seen_at >= $2")
            .bind(hub_id)
            .bind(now - window_ms)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::query("counting hub budget members"))?;
        let count: i64 = row.try_get(0).map_err(StoreError::query("counting hub budget members"))?;
        Ok(u64::try_from(count).unwrap_or(0).max(1))
    }

    /// `member` stops sharing (it is shutting down): the others' shares grow at their next heartbeat.
    pub async fn leave(&self, hub_id: &str, member: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM hub_budget_members WHERE hub_id = $1 AND member = $2")
            .bind(hub_id)
            .bind(member)
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("leaving the hub budget"))?;
        Ok(())
    }
}
