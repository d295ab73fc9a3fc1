//! The side-effect ledger: every side effect a consumer performs (a content
//! item created in Amplience, a file written to the Trading Grid mailbox) is
//! claimed here by a deterministic key before it is performed, and marked done
//! with its outcome after.
//!
//! The claim is an atomic unique insert, so two owners of one partition during
//! a rebalance (or two replicas replaying the same topic) never both perform
//! it. A claim carries a lease: when its owner dies before finishing, the
//! claim expires and the next attempt takes it over, so nothing is lost. A
//! crash between performing the effect and marking it done is caught on the
//! target side, where the same key is the delivery key or the file name.

use std::time::Duration;

use sqlx::{AnyPool, Row};

use crate::{now_millis, StoreError};

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This owner may perform the side effect now.
    Claimed,
    /// Performed before: the recorded outcome. When it is not `reported` yet, the
    /// report is now this owner's to make (its performer died before making it).
    Done(Performed),
    /// Another owner holds a live claim, to perform or to report (a rebalance in
    /// progress): try again later.
    Busy { owner: String, expires_in_ms: i64 },
}

/// A side effect's recorded outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Performed {
    /// The id on the target (content item id, file name).
    pub external_id: String,
    /// `created`, `updated` or `already_done` (found on the target).
    pub outcome: String,
    pub performed_at_ms: i64,
    /// Whether its DeliveryPerformed event was acknowledged by Kafka.
    pub reported: bool,
    /// What its report names besides the target id (the flow's own JSON), for a late report.
    pub details: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SideEffects {
    pool: AnyPool,
}

impl SideEffects {
    pub(crate) fn new(pool: AnyPool) -> Self {
        SideEffects { pool }
    }

    /// Claims `key` for `owner` for `lease`, unless it was performed or is
    /// claimed by a live owner. The same owner claiming again renews its lease.
    pub async fn claim(&self, key: &str, owner: &str, lease: Duration) -> Result<Claim, StoreError> {
        let now = now_millis();
        let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let inserted = sqlx::query(
            "INSERT INTO side_effects (effect_key, owner, claimed_until, state, claimed_at)
             VALUES ($1, $2, $3, 'claimed', $4) ON CONFLICT (effect_key) DO NOTHING",
        )
        .bind(key)
        .bind(owner)
        .bind(until)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("claiming a side effect"))?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Claimed);
        }
        // Taken over only if still unfinished and its lease has run out (or it is ours).
        let unfinished = "state = 'claimed'";
        if self.take_over(key, owner, unfinished, until, now).await? {
            return Ok(Claim::Claimed);
        }
        // Performed but not yet reported: reporting is the performer's until its lease runs out
        // (it is about to report), then anyone's (it died before reporting).
        let unreported = "state = 'done' AND reported_at IS NULL";
        let reporting = self.take_over(key, owner, unreported, until, now).await?;
        let row = sqlx::query(
            "SELECT state, owner, claimed_until, external_id, outcome, performed_at, reported_at, details FROM side_effects
             WHERE effect_key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("reading a side-effect claim"))?
        .ok_or_else(|| StoreError::Vanished { what: "side effect", key: key.to_owned() })?;
        let read = |e| StoreError::Query { what: "reading a side-effect claim", source: e };
        let state: String = row.try_get(0).map_err(read)?;
        let reported = row.try_get::<Option<i64>, _>(6).map_err(read)?.is_some();
        if state == "done" && (reported || reporting) {
            return Ok(Claim::Done(performed_from(&row, 3).map_err(read)?));
        }
        let claimed_until: i64 = row.try_get(2).map_err(read)?;
        Ok(Claim::Busy { owner: row.try_get(1).map_err(read)?, expires_in_ms: (claimed_until - now).max(0) })
    }

    /// Gives `key` to `owner` for its lease if its row matches `condition`
    /// (a fixed SQL fragment) and its claim ran out or is `owner`'s already.
    async fn take_over(
        &self,
        key: &str,
        owner: &str,
        condition: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let statement = format!(
            "UPDATE side_effects SET owner = $2, claimed_until = $3, claimed_at = $4
             WHERE effect_key = $1 AND {condition} AND (claimed_until < $4 OR owner = $2)"
        );
        let taken = sqlx::query(&statement)
            .bind(key)
            .bind(owner)
            .bind(until)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("taking over a side-effect claim"))?;
        Ok(taken.rows_affected() == 1)
    }

    /// Marks `key` performed by `owner`, who keeps the claim for another
    /// `lease` to report it. Returns false when the claim was no longer this
    /// owner's (it expired and was taken over): the effect was still performed
    /// once on the target, found there by its key, and the new owner reports it.
    pub async fn complete(
        &self,
        key: &str,
        owner: &str,
        performed: &Performed,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let until = now_millis().saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let done = sqlx::query(
            "UPDATE side_effects SET state = 'done', external_id = $3, outcome = $4, performed_at = $5,
             claimed_until = $6, details = $7
             WHERE effect_key = $1 AND owner = $2 AND state = 'claimed'",
        )
        .bind(key)
        .bind(owner)
        .bind(&performed.external_id)
        .bind(&performed.outcome)
        .bind(performed.performed_at_ms)
        .bind(until)
        .bind(&performed.details)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("recording a side effect"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that the DeliveryPerformed event of `key` was acknowledged by Kafka.
    pub async fn mark_reported(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE side_effects SET reported_at = $2 WHERE effect_key = $1 AND state = 'done'")
            .bind(key)
            .bind(now_millis())
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("recording a side effect as reported"))?;
        Ok(())
    }

    /// Gives a claim up (the attempt failed): the next attempt claims it at once.
    pub async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM side_effects WHERE effect_key = $1 AND owner = $2 AND state = 'claimed'")
            .bind(key)
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("releasing a side-effect claim"))?;
        Ok(())
    }

    /// Whether `key` was ever claimed (performed, being performed, or begun by
    /// an owner that died): a flow that changed its mind since must still finish it.
    pub async fn begun(&self, key: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM side_effects WHERE effect_key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("reading a side-effect claim"))?;
        Ok(row.is_some())
    }

    /// The recorded outcome of `key`, if performed.
    pub async fn get(&self, key: &str) -> Result<Option<Performed>, StoreError> {
        let row = sqlx::query(
            "SELECT external_id, outcome, performed_at, reported_at, details FROM side_effects
             WHERE effect_key = $1 AND state = 'done'",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("reading a side effect"))?;
        row.map(|r| performed_from(&r, 0)).transpose().map_err(StoreError::query("reading a side effect"))
    }
}

/// The outcome columns (`external_id, outcome, performed_at, reported_at, details`) from column `first` on.
fn performed_from(row: &sqlx::any::AnyRow, first: usize) -> Result<Performed, sqlx::Error> {
    Ok(Performed {
        external_id: row.try_get::<Option<String>, _>(first)?.unwrap_or_default(),
        outcome: row.try_get::<Option<String>, _>(first + 1)?.unwrap_or_default(),
        performed_at_ms: row.try_get::<Option<i64>, _>(first + 2)?.unwrap_or_default(),
        reported: row.try_get::<Option<i64>, _>(first + 3)?.is_some(),
        details: row.try_get(first + 4)?,
    })
}
