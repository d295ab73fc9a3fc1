//! Durable timers: what a flow must do at a time (a payment reminder on its
//! date, an acknowledgement that is overdue), kept in the store so that it
//! survives restarts and fires once however many replicas run.
//!
//! A timer belongs to a `subject` (e.g. an invoice): settling the subject
//! cancels its pending timers. Firing claims the timer with a lease (an atomic
//! update, so one replica wins); the firer marks it fired after its work, and
//! a firer that dies leaves the claim to expire and the timer to fire again
//! (the work itself is idempotent on the target). Due times are compared with
//! the caller's clock, leases with the real one.

use std::time::Duration;

use sqlx::{any::AnyRow, AnyPool, Row};

use crate::{now_millis, StoreError};

/// A timer to schedule, or one that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// Unique, deterministic (scheduling it again is a no-op).
    pub key: String,
    /// What it does (`payment-reminder`, `ack-overdue`, ...).
    pub kind: String,
    /// What settles it (`invoice/ACME/INV-1`).
    pub subject: String,
    /// Milliseconds since the epoch, by the flow's clock.
    pub due_at_ms: i64,
    /// What the firer needs, as the flow encodes it (JSON).
    pub payload: String,
}

/// A timer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerState {
    Pending,
    Fired,
    Cancelled,
}

impl TimerState {
    fn parse(text: &str) -> Self {
        match text {
            "fired" => TimerState::Fired,
            "cancelled" => TimerState::Cancelled,
            _ => TimerState::Pending,
        }
    }
}

/// The timers of one flow.
#[derive(Debug, Clone)]
pub struct Timers {
    pool: AnyPool,
    flow: String,
}

const COLUMNS: &str = "timer_key, kind, subject, due_at, payload";

fn timer_from(row: &AnyRow) -> Result<Timer, sqlx::Error> {
    Ok(Timer {
        key: row.try_get(0)?,
        kind: row.try_get(1)?,
        subject: row.try_get(2)?,
        due_at_ms: row.try_get(3)?,
        payload: row.try_get(4)?,
    })
}

impl Timers {
    pub(crate) fn new(pool: AnyPool, flow: &str) -> Self {
        Timers { pool, flow: flow.to_owned() }
    }

    /// Schedules `timer` unless its key is known (pending, fired or cancelled);
    /// returns whether it is new.
    pub async fn schedule(&self, timer: &Timer) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO flow_timers (timer_key, flow, kind, subject, due_at, payload, state, claimed_until)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0) ON CONFLICT (timer_key) DO NOTHING",
        )
        .bind(&timer.key)
        .bind(&self.flow)
        .bind(&timer.kind)
        .bind(&timer.subject)
        .bind(timer.due_at_ms)
        .bind(&timer.payload)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("scheduling a timer"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Cancels the pending timers of `subject` (of one `kind`, or all), saying
    /// why; returns how many. A timer being fired is not cancelled: its firer
    /// may have begun its work (or died doing it), so it fires to the end and
    /// its work decides, knowing the subject is settled, what is left to finish.
    pub async fn cancel(&self, subject: &str, kind: Option<&str>, because: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE flow_timers SET state = 'cancelled', settled_at = $4, settled_because = $5
             WHERE flow = $1 AND subject = $2 AND ($3 = '' OR kind = $3) AND state = 'pending' AND owner IS NULL",
        )
        .bind(&self.flow)
        .bind(subject)
        .bind(kind.unwrap_or(""))
        .bind(now_millis())
        .bind(because)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("cancelling timers"))?;
        Ok(done.rows_affected())
    }

    /// Claims up to `limit` pending timers due by `now_ms` (the flow's clock)
    /// for `owner`, for `lease`: the ones no live owner holds.
    pub async fn claim_due(
        &self,
        now_ms: i64,
        owner: &str,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<Timer>, StoreError> {
        let real_now = now_millis();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM flow_timers WHERE flow = $1 AND state = 'pending' AND due_at <= $2
             AND claimed_until < $3 ORDER BY due_at LIMIT $4"
        ))
        .bind(&self.flow)
        .bind(now_ms)
        .bind(real_now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("finding due timers"))?;
        let until = real_now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let mut claimed = Vec::new();
        for row in rows {
            let timer = timer_from(&row).map_err(StoreError::query("reading a timer"))?;
            let taken = sqlx::query(
                "UPDATE flow_timers SET owner = $2, claimed_until = $3
                 WHERE timer_key = $1 AND state = 'pending' AND claimed_until < $4",
            )
            .bind(&timer.key)
            .bind(owner)
            .bind(until)
            .bind(real_now)
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("claiming a timer"))?;
            if taken.rows_affected() == 1 {
                claimed.push(timer);
            }
        }
        Ok(claimed)
    }

    /// Marks `key` fired by `owner`; false when its claim was lost meanwhile.
    pub async fn fired(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE flow_timers SET state = 'fired', settled_at = $3, settled_because = 'fired'
             WHERE timer_key = $1 AND owner = $2 AND state = 'pending'",
        )
        .bind(key)
        .bind(owner)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("marking a timer fired"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up `owner`'s claim on `key` (its work failed): it may be claimed
    /// again `after` from now.
    pub async fn release(&self, key: &str, owner: &str, after: Duration) -> Result<(), StoreError> {
        let retry_at = now_millis().saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX));
        sqlx::query("UPDATE flow_timers SET claimed_until = $3, owner = NULL WHERE timer_key = $1 AND owner = $2")
            .bind(key)
            .bind(owner)
            .bind(retry_at - 1)
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("releasing a timer"))?;
        Ok(())
    }

    /// The timers of `subject` with their states, by due time.
    pub async fn of_subject(&self, subject: &str) -> Result<Vec<(Timer, TimerState)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, state FROM flow_timers WHERE flow = $1 AND subject = $2 ORDER BY due_at, timer_key"
        ))
        .bind(&self.flow)
        .bind(subject)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("reading timers"))?;
        rows.iter()
            .map(|row| Ok((timer_from(row)?, TimerState::parse(&row.try_get::<String, _>(5)?))))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::query("reading timers"))
    }

    /// How many timers of each kind are pending: for metrics.
    pub async fn pending_by_kind(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) FROM flow_timers WHERE flow = $1 AND state = 'pending' GROUP BY kind ORDER BY kind",
        )
        .bind(&self.flow)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("counting timers"))?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::query("counting timers"))
    }
}
