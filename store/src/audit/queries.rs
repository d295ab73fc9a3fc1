//! The audit store's questions: a transaction's lineage, a partner's exchanges
//! in a time range, where approved content went.

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;
use sqlx::{any::AnyArguments, query::Query, Any, Row};

use super::{entry_of, paged, AuditEntry, AuditLog, Page, PageRequest, EVENT_COLUMNS};
use crate::StoreError;

/// Reference kinds a lineage follows from one event to the next. Content items
/// and partners are not among them: one template serves every order.
const FOLLOWED: &[&str] =
    &["correlation", "event", "po", "invoice", "shipment", "payment", "dispute", "file", "control"];

/// Most events one lineage gathers; past it the answer says it was cut short.
pub const LINEAGE_MAX_EVENTS: usize = 2_000;

/// Rounds of following references: PO → invoice → payment → 820 → its acknowledgement
/// is five; a few more for exceptions and receipts hanging off them.
const LINEAGE_MAX_ROUNDS: usize = 8;

/// Everything of one business transaction, in the order gridsync learned of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lineage {
    pub reference: String,
    /// Events in the whole lineage (every page).
    pub total: usize,
    /// More than [`LINEAGE_MAX_EVENTS`] were linked; the rest were not followed.
    pub truncated: bool,
    pub events: Page<AuditEntry>,
}

/// How many messages or packages used one version of a content item, for one partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContentUse {
    pub content_version: Option<i64>,
    pub partner: String,
    pub action: String,
    pub deliveries: i64,
    pub first_at: i64,
    pub last_at: i64,
}

impl AuditLog {
    /// The lineage of the transaction `reference` names (a PO, invoice, shipment or payment
    /// number, a file name, an event id), of `partner` or of any: every event linked to it
    /// through shared references, in the order gridsync learned of them.
    pub async fn lineage(
        &self,
        reference: &str,
        partner: Option<&str>,
        page: &PageRequest,
    ) -> Result<Lineage, StoreError> {
        let what = "following a lineage";
        let q = |e| StoreError::Query { what, source: e };
        let mut found: HashSet<String> = HashSet::new();
        let seeds = sqlx::query(
            "SELECT DISTINCT event_id FROM audit_refs WHERE ref_value = $1 AND ($2 = '' OR partner = $2) LIMIT $3",
        )
        .bind(reference)
        .bind(partner.unwrap_or(""))
        .bind(i64::try_from(LINEAGE_MAX_EVENTS).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(q)?;
        let mut frontier: Vec<String> =
            seeds.iter().map(|r| r.try_get::<String, _>(0)).collect::<Result<_, _>>().map_err(q)?;
        found.extend(frontier.iter().cloned());
        let mut followed: HashSet<(String, String, String)> = HashSet::new();
        let mut truncated = false;
        for _ in 0..LINEAGE_MAX_ROUNDS {
            if frontier.is_empty() {
                break;
            }
            let mut next = Vec::new();
            for refs_of in frontier.chunks(500) {
                let kinds = placeholders(refs_of.len() + 1, FOLLOWED.len());
                let sql = format!(
                    "SELECT ref_kind, ref_value, partner FROM audit_refs WHERE event_id IN ({}) AND ref_kind IN ({kinds})",
                    placeholders(1, refs_of.len())
                );
                let mut query = sqlx::query(&sql);
                for id in refs_of {
                    query = query.bind(id);
                }
                for kind in FOLLOWED {
                    query = query.bind(*kind);
                }
                for r in query.fetch_all(&self.pool).await.map_err(q)? {
                    let link: (String, String, String) =
                        (r.try_get(0).map_err(q)?, r.try_get(1).map_err(q)?, r.try_get(2).map_err(q)?);
                    if !followed.insert(link.clone()) {
                        continue;
                    }
                    let linked = sqlx::query(
                        "SELECT event_id FROM audit_refs WHERE ref_value = $1 AND ref_kind = $2 AND partner = $3 LIMIT $4",
                    )
                    .bind(&link.1)
                    .bind(&link.0)
                    .bind(&link.2)
                    .bind(i64::try_from(LINEAGE_MAX_EVENTS).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(q)?;
                    for row in linked {
                        let id: String = row.try_get(0).map_err(q)?;
                        if found.len() >= LINEAGE_MAX_EVENTS {
                            truncated = true;
                            break;
                        }
                        if found.insert(id.clone()) {
                            next.push(id);
                        }
                    }
                }
            }
            frontier = next;
        }
        let total = found.len();
        let ids: BTreeSet<String> = found.into_iter().collect();
        let events = self.events_in_order(ids.into_iter().collect(), page).await?;
        Ok(Lineage { reference: reference.to_owned(), total, truncated, events })
    }

    /// A page of the events `ids`, in the order gridsync learned of them.
    async fn events_in_order(&self, ids: Vec<String>, page: &PageRequest) -> Result<Page<AuditEntry>, StoreError> {
        let what = "reading a lineage's events";
        if ids.is_empty() {
            return Ok(Page { items: Vec::new(), next: None });
        }
        let n = ids.len();
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events e WHERE e.event_id IN ({}) ORDER BY e.seen_at, e.event_id
             LIMIT ${} OFFSET ${}",
            placeholders(1, n),
            n + 1,
            n + 2
        );
        let mut query = sqlx::query(&sql);
        for id in &ids {
            query = query.bind(id);
        }
        self.page_of_events(query, page, what).await
    }

    /// The page of events `query` selects (every bind but its last two: `LIMIT`, `OFFSET`).
    async fn page_of_events<'q>(
        &self,
        query: Query<'q, Any, AnyArguments<'q>>,
        page: &PageRequest,
        what: &'static str,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let rows = query
            .bind(page.limit() + 1)
            .bind(page.offset())
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(what))?;
        let entries = rows.iter().map(entry_of).collect::<Result<Vec<_>, _>>().map_err(StoreError::query(what))?;
        Ok(paged(entries, page))
    }

    /// Everything received from or sent to `partner` from `from_ms` until before `to_ms`, oldest first.
    pub async fn partner_activity(
        &self,
        partner: &str,
        from_ms: i64,
        to_ms: i64,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events e
             WHERE e.partner = $1 AND e.occurred_at >= $2 AND e.occurred_at < $3
             ORDER BY e.occurred_at, e.event_id LIMIT $4 OFFSET $5"
        );
        let query = sqlx::query(&sql).bind(partner).bind(from_ms).bind(to_ms);
        self.page_of_events(query, page, "reading a partner's exchanges").await
    }

    /// How long `partner` took to acknowledge what gridsync sent it from `from_ms` until before
    /// `to_ms`: for each document sent (a side effect naming a control number) whose functional
    /// acknowledgement is recorded, milliseconds from sending to acknowledgement, oldest first.
    pub async fn acknowledgement_latencies(
        &self,
        partner: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let what = "reading acknowledgement latencies";
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT d.seen_at, MIN(a.seen_at) FROM audit_events d
             JOIN audit_refs dr ON dr.event_id = d.event_id AND dr.ref_kind = 'control'
             JOIN audit_refs ar ON ar.ref_kind = 'control' AND ar.ref_value = dr.ref_value AND ar.event_id <> d.event_id
             JOIN audit_events a ON a.event_id = ar.event_id AND a.event_type = 'FunctionalAckReceived'
             WHERE d.event_type = 'DeliveryPerformed' AND d.partner = $1 AND d.seen_at >= $2 AND d.seen_at < $3
             GROUP BY d.event_id, d.seen_at ORDER BY d.seen_at",
        )
        .bind(partner)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(what))?;
        Ok(rows.into_iter().map(|(sent, acknowledged)| (acknowledged - sent).max(0)).collect())
    }

    /// Which versions of the content item `content_item_id` went out, in which side effects, to whom.
    pub async fn content_uses(
        &self,
        content_item_id: &str,
        page: &PageRequest,
    ) -> Result<Page<ContentUse>, StoreError> {
        let what = "reading where content went";
        let rows = sqlx::query(
            "SELECT content_version, partner, action, COUNT(*), MIN(occurred_at), MAX(occurred_at) FROM audit_events
             WHERE content_item_id = $1 AND event_type = 'DeliveryPerformed'
             GROUP BY content_version, partner, action ORDER BY content_version, partner, action LIMIT $2 OFFSET $3",
        )
        .bind(content_item_id)
        .bind(page.limit() + 1)
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(what))?;
        let uses = rows
            .iter()
            .map(|r| {
                Ok(ContentUse {
                    content_version: r.try_get(0)?,
                    partner: r.try_get(1)?,
                    action: r.try_get(2)?,
                    deliveries: r.try_get(3)?,
                    first_at: r.try_get(4)?,
                    last_at: r.try_get(5)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::query(what))?;
        Ok(paged(uses, page))
    }

    /// The events about or using the content item `content_item_id` (its approvals and
    /// publications, and the messages and packages made from it), oldest first.
    pub async fn content_events(
        &self,
        content_item_id: &str,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events e WHERE e.content_item_id = $1
             ORDER BY e.occurred_at, e.event_id LIMIT $2 OFFSET $3"
        );
        self.page_of_events(sqlx::query(&sql).bind(content_item_id), page, "reading a content item's events").await
    }
}

/// `$first, $first+1, ...`: `count` numbered placeholders.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}
