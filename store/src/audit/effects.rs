//! What the flows did, for a report: every side effect since a time beside the event that
//! caused it (so that the time from source event to side effect can be told), and how long
//! events took to reach the audit store itself.

use serde::Serialize;
use sqlx::Row;

use super::{entry_at, AuditEntry, AuditLog, EVENT_COLUMNS, EVENT_COLUMN_COUNT};
use crate::StoreError;

/// Most side effects (and recorded events) one report reads: the newest are kept.
pub const MAX_EFFECTS: i64 = 20_000;

/// A side effect (`DeliveryPerformed`) and the event that caused it, when that is recorded too.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CausedEffect {
    pub effect: AuditEntry,
    pub cause: Option<AuditEntry>,
}

/// How events since a time reached the audit store.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Recording {
    /// Events recorded (at most [`MAX_EFFECTS`] are looked at).
    pub events: usize,
    /// Distinct event types and source systems among them.
    pub event_types: usize,
    pub source_systems: Vec<String>,
    /// Milliseconds from gridsync learning of each event to the audit store recording it, sorted.
    pub delays_ms: Vec<i64>,
}

impl AuditLog {
    /// The side effects recorded as happening at or after `since_ms` (milliseconds since the
    /// epoch), oldest first, each with the event named as its source.
    pub async fn effects_since(&self, since_ms: i64) -> Result<Vec<CausedEffect>, StoreError> {
        let what = "reading side effects";
        let cause_columns = EVENT_COLUMNS.replace("e.", "c.");
        let sql = format!(
            "SELECT {EVENT_COLUMNS}, {cause_columns} FROM audit_events e
             LEFT JOIN audit_refs r ON r.event_id = e.event_id AND r.ref_kind = 'event' AND r.ref_value <> e.event_id
             LEFT JOIN audit_events c ON c.event_id = r.ref_value
             WHERE e.event_type = 'DeliveryPerformed' AND e.seen_at >= $1
             ORDER BY e.seen_at DESC, e.event_id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(since_ms)
            .bind(MAX_EFFECTS)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(what))?;
        let mut effects = rows
            .iter()
            .map(|row| {
                let cause_id: Option<String> = row.try_get(EVENT_COLUMN_COUNT)?;
                let cause = cause_id.is_some().then(|| entry_at(row, EVENT_COLUMN_COUNT)).transpose()?;
                Ok(CausedEffect { effect: entry_at(row, 0)?, cause })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::query(what))?;
        effects.reverse();
        Ok(effects)
    }

    /// How the events gridsync learned of at or after `since_ms` reached the audit store.
    pub async fn recording_since(&self, since_ms: i64) -> Result<Recording, StoreError> {
        let what = "reading recorded events";
        let rows = sqlx::query(
            "SELECT event_type, source_system, recorded_at - seen_at FROM audit_events WHERE seen_at >= $1
             ORDER BY seen_at DESC LIMIT $2",
        )
        .bind(since_ms)
        .bind(MAX_EFFECTS)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(what))?;
        let mut types = std::collections::BTreeSet::new();
        let mut systems = std::collections::BTreeSet::new();
        let mut delays_ms = Vec::with_capacity(rows.len());
        for row in &rows {
            types.insert(row.try_get::<String, _>(0).map_err(StoreError::query(what))?);
            systems.insert(row.try_get::<String, _>(1).map_err(StoreError::query(what))?);
            delays_ms.push(row.try_get::<i64, _>(2).map_err(StoreError::query(what))?.max(0));
        }
        delays_ms.sort_unstable();
        Ok(Recording {
            events: rows.len(),
            event_types: types.len(),
            source_systems: systems.into_iter().collect(),
            delays_ms,
        })
    }
}
