//! The audit store (flow 7): every event of every topic and every dead letter,
//! append-only. Recording is idempotent on the event id (on topic, partition and
//! offset for a dead letter), so replaying the topics into an empty store
//! rebuilds the same answers, and replaying them into a full one adds nothing.
//!
//! Each event carries its business references (PO, invoice, shipment, payment,
//! outbound file, control number, the event that caused it, ...): the lineage
//! of a transaction is found by following them from event to event.

mod effects;
mod open;
mod queries;

use std::collections::HashSet;

use serde::Serialize;
use sqlx::{any::AnyRow, AnyPool, Row};

pub use effects::{CausedEffect, Recording, MAX_EFFECTS};
pub use open::{OpenItem, OpenItems, READ_CONFIRMATION_REQUIRED};
pub use queries::{ContentUse, Lineage, LINEAGE_MAX_EVENTS};

use crate::{now_millis, Backend, StoreError};

/// Values of an `audit_events` row as recorded.
const RECORDED_COLUMNS: usize = 19;
/// Columns of an `audit_dead_letters` row.
const DEAD_LETTER_COLUMNS: usize = 15;
/// Rows per INSERT: a statement handed to the database costs about what a row costs. On SQLite
/// the parameters are anonymous (`?`, see `Backend::parameters`): named ones made binding cost
/// the square of a statement's parameters, which had kept statements to 16 rows. Only a full
/// statement is kept prepared: every shorter length is a statement of its own, and keeping them
/// all (up to a hundred a connection) held ~45 MiB of the audit consumer (soak, docs/BENCHMARKS.md).
const EVENTS_PER_STATEMENT: usize = 100;
const REFS_PER_STATEMENT: usize = 250;

/// The event ids of `chunk` recorded already.
async fn recorded_ids(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    chunk: &[AuditEntry],
) -> Result<HashSet<String>, sqlx::Error> {
    let sql = format!(
        "SELECT event_id FROM audit_events WHERE event_id IN {}",
        placeholders(Backend::Sqlite, 1, chunk.len())
    );
    let mut query = sqlx::query(&sql).persistent(chunk.len() == EVENTS_PER_STATEMENT);
    for entry in chunk {
        query = query.bind(&entry.event_id);
    }
    query.fetch_all(&mut **tx).await?.iter().map(|row| row.try_get::<String, _>(0)).collect()
}

/// `(…), (…)`: `rows` rows of `columns` parameters, numbered from 1 where the backend numbers them.
fn placeholders(backend: Backend, rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * (columns * 3 + 4));
    for row in 0..rows {
        out.push_str(if row == 0 { "(" } else { ", (" });
        out.push_str(&backend.parameters(row * columns + 1, columns));
        out.push(')');
    }
    out
}

/// Most rows one answer holds, whatever was asked.
pub const MAX_PAGE: u32 = 500;

/// How far back a partner's exchanges go when no start is given: 30 days.
pub const DEFAULT_PARTNER_WINDOW_MS: i64 = 30 * 24 * 3_600_000;

/// How far back "what is open" looks when no start is given: 90 days.
pub const DEFAULT_OPEN_WINDOW_MS: i64 = 90 * 24 * 3_600_000;

/// One event as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub event_id: String,
    pub event_type: String,
    pub source_system: String,
    pub partner: String,
    pub business_key: String,
    pub correlation_id: String,
    /// When it happened at its source, milliseconds since the epoch.
    pub occurred_at: i64,
    /// When gridsync learned of it (read it, or performed it), milliseconds since the epoch.
    pub seen_at: i64,
    /// One line saying what happened, for people.
    pub summary: String,
    /// A side effect's action (DeliveryPerformed).
    pub action: Option<String>,
    /// A status, acknowledgement verdict or exception kind.
    pub status: Option<String>,
    /// An invoice's due date, milliseconds since the epoch.
    pub due_at: Option<i64>,
    /// The approved content the event is about or used, and its version.
    pub content_item_id: Option<String>,
    pub content_version: Option<i64>,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The whole event as JSON.
    pub body: String,
    /// Business references, followed by lineage queries.
    pub refs: Vec<AuditRef>,
}

/// A business reference of an event: `po` 4500012345, `invoice` INV-1, `event` <its id>, ...
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AuditRef {
    pub kind: String,
    pub value: String,
}

impl AuditRef {
    pub fn new(kind: &str, value: impl Into<String>) -> Self {
        AuditRef { kind: kind.to_owned(), value: value.into() }
    }
}

/// One dead letter as recorded: where it came from, why it failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetterEntry {
    /// The dead-letter topic and the record's place in it.
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The consumer or producer that refused it.
    pub consumer: String,
    pub stage: String,
    pub error_class: String,
    pub error_message: String,
    pub failed_at: String,
    pub original_topic: Option<String>,
    pub original_partition: Option<i32>,
    pub original_offset: Option<i64>,
    pub key: Option<String>,
    pub payload_bytes: i64,
}

impl DeadLetterEntry {
    /// What makes it the same dead letter: the same consumer's refusal of the same original
    /// record (dead-lettered again by a replay), or else the same place in its topic.
    fn letter_key(&self) -> String {
        match (&self.original_topic, self.original_partition, self.original_offset) {
            (Some(topic), Some(partition), Some(offset)) => format!("{}|{topic}|{partition}|{offset}", self.consumer),
            _ => format!("{}|{}|{}", self.topic, self.partition, self.offset),
        }
    }
}

/// A page of an answer, and where the next one starts (`None`: this was the last).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Which page to answer: after `cursor` (from the previous page's `next`), at most `limit`.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

impl PageRequest {
    pub fn first(limit: u32) -> Self {
        PageRequest { cursor: None, limit: Some(limit) }
    }

    fn limit(&self) -> i64 {
        i64::from(self.limit.unwrap_or(100).clamp(1, MAX_PAGE))
    }

    /// The cursor as an offset into a bounded answer.
    fn offset(&self) -> i64 {
        self.cursor.as_deref().and_then(|c| c.parse().ok()).unwrap_or(0).max(0)
    }
}

/// The audit store's tables.
#[derive(Debug, Clone)]
pub struct AuditLog {
    pool: AnyPool,
    backend: Backend,
}

const EVENT_COLUMNS: &str = "e.event_id, e.event_type, e.source_system, e.partner, e.business_key, e.correlation_id, \
     e.occurred_at, e.seen_at, e.summary, e.action, e.status, e.due_at, e.content_item_id, e.content_version, e.topic, \
     e.partition_no, e.record_offset, e.body";
/// How many columns [`EVENT_COLUMNS`] selects: where a second event's start in a joined row.
const EVENT_COLUMN_COUNT: usize = column_count(EVENT_COLUMNS);

/// The columns of a comma-separated list.
const fn column_count(columns: &str) -> usize {
    let bytes = columns.as_bytes();
    let (mut at, mut count) = (0, 1);
    while at < bytes.len() {
        if bytes[at] == b',' {
            count += 1;
        }
        at += 1;
    }
    count
}

impl AuditLog {
    pub(crate) fn new(pool: AnyPool, backend: Backend) -> Self {
        AuditLog { pool, backend }
    }

    /// Records `entry` and its references unless its event id is recorded; returns whether it was new.
    pub async fn record(&self, entry: &AuditEntry) -> Result<bool, StoreError> {
        Ok(self.record_all(std::slice::from_ref(entry)).await? == 1)
    }

    /// Records `entries` in one transaction (an import, a benchmark's fill), each unless its
    /// event id is recorded; returns how many were new.
    pub async fn record_all(&self, entries: &[AuditEntry]) -> Result<u64, StoreError> {
        Ok(self.record_each(entries).await?.into_iter().filter(|new| *new).count() as u64)
    }

    /// Records `entries` in one transaction, each unless its event id is recorded: all or none
    /// (the audit consumer's batches, whose offsets are stored once this returns). Whether each
    /// was new.
    pub async fn record_each(&self, entries: &[AuditEntry]) -> Result<Vec<bool>, StoreError> {
        let what = "recording audit events";
        let mut tx = match self.backend {
            // The writer's lock from the start: what is recorded already is read under it, so it
            // still holds at the insert (a deferred transaction that has read cannot take the lock
            // once another connection wrote: the dead-letter reader, the pruning).
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .map_err(StoreError::query(what))?;
        let mut new = Vec::with_capacity(entries.len());
        let recorded_at = now_millis();
        // Many rows per statement: a statement costs about what a row costs, so a batch of
        // hundreds is one round trip per chunk instead of one per event and reference.
        for chunk in entries.chunks(EVENTS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO audit_events (event_id, event_type, source_system, partner, business_key, correlation_id,
                     occurred_at, seen_at, summary, action, status, due_at, content_item_id, content_version, topic,
                     partition_no, record_offset, recorded_at, body) VALUES ",
            );
            sql.push_str(&placeholders(self.backend, chunk.len(), RECORDED_COLUMNS));
            sql.push_str(" ON CONFLICT (event_id) DO NOTHING");
            if self.backend == Backend::Postgres {
                sql.push_str(" RETURNING event_id");
            }
            let mut query = sqlx::query(&sql).persistent(chunk.len() == EVENTS_PER_STATEMENT);
            for entry in chunk {
                query = query
                    .bind(&entry.event_id)
                    .bind(&entry.event_type)
                    .bind(&entry.source_system)
                    .bind(&entry.partner)
                    .bind(&entry.business_key)
                    .bind(&entry.correlation_id)
                    .bind(entry.occurred_at)
                    .bind(entry.seen_at)
                    .bind(&entry.summary)
                    .bind(&entry.action)
                    .bind(&entry.status)
                    .bind(entry.due_at)
                    .bind(&entry.content_item_id)
                    .bind(entry.content_version)
                    .bind(&entry.topic)
                    .bind(i64::from(entry.partition))
                    .bind(entry.offset)
                    .bind(recorded_at)
                    .bind(&entry.body);
            }
            let mut inserted: HashSet<String> = match self.backend {
                Backend::Postgres => {
                    let rows = query.fetch_all(&mut *tx).await.map_err(StoreError::query(what))?;
                    rows.iter()
                        .map(|row| row.try_get::<String, _>(0))
                        .collect::<Result<_, _>>()
                        .map_err(StoreError::query(what))?
                }
                // sqlx hands each row SQLite returns from its worker thread on its own (a wake-up
                // and a switch of threads a row: a third of the time of a backlog, by perf), so the
                // ids recorded already are asked first, under the writer's lock, and are few.
                Backend::Sqlite => {
                    let recorded = recorded_ids(&mut tx, chunk).await.map_err(StoreError::query(what))?;
                    query.execute(&mut *tx).await.map_err(StoreError::query(what))?;
                    chunk.iter().map(|e| &e.event_id).filter(|id| !recorded.contains(*id)).cloned().collect()
                }
            };
            // The first of the chunk's entries with an id inserted is the one recorded.
            let mut fresh: Vec<&AuditEntry> = Vec::with_capacity(chunk.len());
            for entry in chunk {
                let recorded = inserted.remove(&entry.event_id);
                new.push(recorded);
                if recorded {
                    fresh.push(entry);
                }
            }
            let refs: Vec<(&AuditRef, &AuditEntry)> =
                fresh.iter().flat_map(|e| e.refs.iter().map(move |r| (r, *e))).collect();
            for refs in refs.chunks(REFS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO audit_refs (ref_value, ref_kind, partner, event_id) VALUES {} ON CONFLICT DO NOTHING",
                    placeholders(self.backend, refs.len(), 4)
                );
                let mut query = sqlx::query(&sql).persistent(refs.len() == REFS_PER_STATEMENT);
                for (r, entry) in refs {
                    query = query.bind(&r.value).bind(&r.kind).bind(&entry.partner).bind(&entry.event_id);
                }
                query.execute(&mut *tx).await.map_err(StoreError::query(what))?;
            }
        }
        tx.commit().await.map_err(StoreError::query(what))?;
        Ok(new)
    }

    /// Records a dead letter unless it is recorded: the same consumer's dead letter of the
    /// same original record (dead-lettered again by a replay), or the same place in its topic.
    pub async fn record_dead_letter(&self, letter: &DeadLetterEntry) -> Result<bool, StoreError> {
        Ok(self.record_dead_letters(std::slice::from_ref(letter)).await? == 1)
    }

    /// Records `letters` in one transaction, each unless recorded (as [`Self::record_dead_letter`]);
    /// how many were new.
    pub async fn record_dead_letters(&self, letters: &[DeadLetterEntry]) -> Result<u64, StoreError> {
        let what = "recording dead letters";
        let mut tx = self.pool.begin().await.map_err(StoreError::query(what))?;
        let recorded_at = now_millis();
        let mut new = 0;
        for chunk in letters.chunks(EVENTS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO audit_dead_letters (letter_key, topic, partition_no, record_offset, consumer, stage,
                     error_class, error_message, failed_at, original_topic, original_partition, original_offset,
                     record_key, payload_bytes, recorded_at)
                 VALUES {} ON CONFLICT (letter_key) DO NOTHING",
                placeholders(self.backend, chunk.len(), DEAD_LETTER_COLUMNS)
            );
            let mut query = sqlx::query(&sql).persistent(chunk.len() == EVENTS_PER_STATEMENT);
            for letter in chunk {
                query = query
                    .bind(letter.letter_key())
                    .bind(&letter.topic)
                    .bind(i64::from(letter.partition))
                    .bind(letter.offset)
                    .bind(&letter.consumer)
                    .bind(&letter.stage)
                    .bind(&letter.error_class)
                    .bind(&letter.error_message)
                    .bind(&letter.failed_at)
                    .bind(&letter.original_topic)
                    .bind(letter.original_partition.map(i64::from))
                    .bind(letter.original_offset)
                    .bind(&letter.key)
                    .bind(letter.payload_bytes)
                    .bind(recorded_at);
            }
            new += query.execute(&mut *tx).await.map_err(StoreError::query(what))?.rows_affected();
        }
        tx.commit().await.map_err(StoreError::query(what))?;
        Ok(new)
    }

    /// Fills in the references of `entries` (lists come without them): what tells which event
    /// caused a side effect, and which document an acknowledgement is about.
    pub async fn with_refs(&self, entries: &mut [AuditEntry]) -> Result<(), StoreError> {
        let what = "reading audit references";
        let mut by_id: std::collections::HashMap<String, Vec<AuditRef>> = std::collections::HashMap::new();
        let ids: Vec<&str> = entries.iter().map(|e| e.event_id.as_str()).collect();
        for chunk in ids.chunks(500) {
            let marks = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "SELECT event_id, ref_kind, ref_value FROM audit_refs WHERE event_id IN ({marks}) ORDER BY 1, 2, 3"
            );
            let query = chunk.iter().fold(sqlx::query(&sql), |q, id| q.bind(*id));
            for row in query.fetch_all(&self.pool).await.map_err(StoreError::query(what))? {
                let read = |n: usize| row.try_get::<String, _>(n).map_err(StoreError::query(what));
                let (id, kind, value) = (read(0)?, read(1)?, read(2)?);
                by_id.entry(id).or_default().push(AuditRef { kind, value });
            }
        }
        for entry in entries {
            entry.refs = by_id.remove(&entry.event_id).unwrap_or_default();
        }
        Ok(())
    }

    /// One recorded event with its references.
    pub async fn event(&self, event_id: &str) -> Result<Option<AuditEntry>, StoreError> {
        let what = "reading an audit event";
        let row = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM audit_events e WHERE e.event_id = $1"))
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(what))?;
        let Some(row) = row else { return Ok(None) };
        let mut entry = entry_of(&row).map_err(StoreError::query(what))?;
        let refs = sqlx::query("SELECT ref_kind, ref_value FROM audit_refs WHERE event_id = $1 ORDER BY 1, 2")
            .bind(event_id)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(what))?;
        entry.refs = refs
            .iter()
            .map(|r| Ok(AuditRef { kind: r.try_get(0)?, value: r.try_get(1)? }))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::query(what))?;
        Ok(Some(entry))
    }

    /// Deletes what is past the retention: events gridsync learned of before `before_ms` (with
    /// their references) and dead letters recorded before it; returns how many of each. The
    /// personal data events carry (contact e-mails, names) is kept no longer than that.
    pub async fn prune(&self, before_ms: i64) -> Result<(u64, u64), StoreError> {
        let what = "pruning the audit store";
        let mut tx = self.pool.begin().await.map_err(StoreError::query(what))?;
        sqlx::query("DELETE FROM audit_refs WHERE event_id IN (SELECT event_id FROM audit_events WHERE seen_at < $1)")
            .bind(before_ms)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(what))?;
        let events = sqlx::query("DELETE FROM audit_events WHERE seen_at < $1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(what))?
            .rows_affected();
        let letters = sqlx::query("DELETE FROM audit_dead_letters WHERE recorded_at < $1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(what))?
            .rows_affected();
        tx.commit().await.map_err(StoreError::query(what))?;
        Ok((events, letters))
    }

    /// How many events and dead letters are recorded.
    pub async fn counts(&self) -> Result<(i64, i64), StoreError> {
        let what = "counting audit records";
        let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::query(what))?;
        let letters: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_dead_letters")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::query(what))?;
        Ok((events, letters))
    }

    /// Dead letters, newest first, of one consumer or of all.
    pub async fn dead_letters(
        &self,
        consumer: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<DeadLetterEntry>, StoreError> {
        let what = "reading dead letters";
        let rows = sqlx::query(
            "SELECT topic, partition_no, record_offset, consumer, stage, error_class, error_message, failed_at,
                    original_topic, original_partition, original_offset, record_key, payload_bytes
             FROM audit_dead_letters WHERE ($1 = '' OR consumer = $1)
             ORDER BY failed_at DESC, topic, partition_no, record_offset DESC LIMIT $2 OFFSET $3",
        )
        .bind(consumer.unwrap_or(""))
        .bind(page.limit() + 1)
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(what))?;
        let letters = rows
            .iter()
            .map(|r| {
                Ok(DeadLetterEntry {
                    topic: r.try_get(0)?,
                    partition: narrow(r.try_get(1)?),
                    offset: r.try_get(2)?,
                    consumer: r.try_get(3)?,
                    stage: r.try_get(4)?,
                    error_class: r.try_get(5)?,
                    error_message: r.try_get(6)?,
                    failed_at: r.try_get(7)?,
                    original_topic: r.try_get(8)?,
                    original_partition: r.try_get::<Option<i64>, _>(9)?.map(narrow),
                    original_offset: r.try_get(10)?,
                    key: r.try_get(11)?,
                    payload_bytes: r.try_get(12)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::query(what))?;
        Ok(paged(letters, page))
    }
}

/// The page of `rows` (fetched with one more than the limit, to know whether more follow).
fn paged<T>(mut rows: Vec<T>, page: &PageRequest) -> Page<T> {
    let limit = usize::try_from(page.limit()).unwrap_or(usize::MAX);
    let next = (rows.len() > limit).then(|| (page.offset() + page.limit()).to_string());
    rows.truncate(limit);
    Page { items: rows, next }
}

fn narrow(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(-1)
}

/// An event row (selected with [`EVENT_COLUMNS`]), without its references.
fn entry_of(r: &AnyRow) -> Result<AuditEntry, sqlx::Error> {
    entry_at(r, 0)
}

/// The event row whose [`EVENT_COLUMNS`] start at column `at` (a join selects two).
fn entry_at(r: &AnyRow, at: usize) -> Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        event_id: r.try_get(at)?,
        event_type: r.try_get(at + 1)?,
        source_system: r.try_get(at + 2)?,
        partner: r.try_get(at + 3)?,
        business_key: r.try_get(at + 4)?,
        correlation_id: r.try_get(at + 5)?,
        occurred_at: r.try_get(at + 6)?,
        seen_at: r.try_get(at + 7)?,
        summary: r.try_get(at + 8)?,
        action: r.try_get(at + 9)?,
        status: r.try_get(at + 10)?,
        due_at: r.try_get(at + 11)?,
        content_item_id: r.try_get(at + 12)?,
        content_version: r.try_get(at + 13)?,
        topic: r.try_get(at + 14)?,
        partition: narrow(r.try_get(at + 15)?),
        offset: r.try_get(at + 16)?,
        body: r.try_get(at + 17)?,
        refs: Vec::new(),
    })
}
