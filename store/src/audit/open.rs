//! What is still open, as far as the recorded events tell: documents sent and
//! never acknowledged, packages never read, exception tasks never resolved,
//! invoices past due with no payment recorded.

use serde::Serialize;
use sqlx::Row;

use super::{AuditLog, MAX_PAGE};
use crate::StoreError;

/// One open thing, and the event that opened it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenItem {
    pub event_id: String,
    pub partner: String,
    /// The document, package, task or invoice: an outbound file name, an Amplience item id, an invoice number.
    pub subject: String,
    pub summary: String,
    pub since: i64,
}

/// Everything open, each list oldest first and bounded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OpenItems {
    pub unacknowledged_documents: Vec<OpenItem>,
    pub unread_packages: Vec<OpenItem>,
    pub unresolved_tasks: Vec<OpenItem>,
    pub overdue_invoices: Vec<OpenItem>,
}

/// Documents gridsync sent (numbered, so a control-number reference) with no
/// functional acknowledgement from that partner naming the number.
const UNACKNOWLEDGED: &str = "SELECT e.event_id, e.partner, x.ref_value, e.summary, e.occurred_at
     FROM audit_events e JOIN audit_refs r ON r.event_id = e.event_id AND r.ref_kind = 'control'
         JOIN audit_refs x ON x.event_id = e.event_id AND x.ref_kind = 'file'
     WHERE e.event_type = 'DeliveryPerformed' AND e.occurred_at >= $2 AND NOT EXISTS (
         SELECT 1 FROM audit_refs a JOIN audit_events f ON f.event_id = a.event_id
         WHERE a.ref_value = r.ref_value AND a.ref_kind = 'control' AND a.partner = r.partner
           AND f.event_type = 'FunctionalAckReceived')
     ORDER BY e.occurred_at, e.event_id LIMIT $1";

/// The status of approved or published content whose packages must be confirmed read.
pub const READ_CONFIRMATION_REQUIRED: &str = "READ_CONFIRMATION_REQUIRED";

/// Packages of content that asks for a read confirmation, with none in Lens for their file.
const UNREAD: &str = "SELECT e.event_id, e.partner, r.ref_value, e.summary, e.occurred_at
     FROM audit_events e JOIN audit_refs r ON r.event_id = e.event_id AND r.ref_kind = 'file'
     WHERE e.action = 'partner-package' AND e.occurred_at >= $2 AND EXISTS (
         SELECT 1 FROM audit_events c WHERE c.content_item_id = e.content_item_id
           AND c.content_version = e.content_version AND c.status = 'READ_CONFIRMATION_REQUIRED')
       AND NOT EXISTS (
         SELECT 1 FROM audit_refs a JOIN audit_events s ON s.event_id = a.event_id
         WHERE a.ref_value = r.ref_value AND a.ref_kind = 'file' AND a.partner = r.partner
           AND s.status = 'READ_CONFIRMED')
     ORDER BY e.occurred_at, e.event_id LIMIT $1";

/// Exception tasks opened in Amplience (their item id: the `external` reference) never resolved.
const UNRESOLVED: &str = "SELECT e.event_id, e.partner, r.ref_value, e.summary, e.occurred_at
     FROM audit_events e JOIN audit_refs r ON r.event_id = e.event_id AND r.ref_kind = 'external'
     WHERE e.action = 'exception-occurrence' AND e.occurred_at >= $2 AND NOT EXISTS (
         SELECT 1 FROM audit_refs a JOIN audit_events t ON t.event_id = a.event_id
         WHERE a.ref_value = r.ref_value AND a.ref_kind = 'external' AND t.action = 'task-resolved'
           AND t.occurred_at >= e.occurred_at)
     ORDER BY e.occurred_at, e.event_id LIMIT $1";

/// Invoices due before now with no payment or remittance recorded against them.
const OVERDUE: &str = "SELECT e.event_id, e.partner, e.business_key, e.summary, e.occurred_at
     FROM audit_events e
     WHERE e.event_type = 'InvoiceReceived' AND e.occurred_at >= $2 AND e.due_at < $3 AND NOT EXISTS (
         SELECT 1 FROM audit_refs a JOIN audit_refs i ON i.event_id = e.event_id AND i.ref_kind = 'invoice'
             JOIN audit_events p ON p.event_id = a.event_id
         WHERE a.ref_value = i.ref_value AND a.ref_kind = 'invoice' AND a.partner = e.partner
           AND p.event_type IN ('PaymentConfirmed', 'RemittanceAdviceReceived'))
     ORDER BY e.due_at, e.event_id LIMIT $1";

impl AuditLog {
    /// What is open at `now_ms` of what happened since `since_ms`, at most `limit` of each kind.
    /// Finding what was never closed reads every opening event of the window (indexed by kind
    /// and time): a window bounds the work, however long the store's history.
    pub async fn open_items(&self, now_ms: i64, since_ms: i64, limit: u32) -> Result<OpenItems, StoreError> {
        let limit = i64::from(limit.clamp(1, MAX_PAGE));
        Ok(OpenItems {
            unacknowledged_documents: self.open(UNACKNOWLEDGED, limit, since_ms, None).await?,
            unread_packages: self.open(UNREAD, limit, since_ms, None).await?,
            unresolved_tasks: dedupe_subjects(self.open(UNRESOLVED, limit, since_ms, None).await?),
            overdue_invoices: self.open(OVERDUE, limit, since_ms, Some(now_ms)).await?,
        })
    }

    async fn open(
        &self,
        sql: &str,
        limit: i64,
        since_ms: i64,
        now_ms: Option<i64>,
    ) -> Result<Vec<OpenItem>, StoreError> {
        let what = "reading what is open";
        let mut query = sqlx::query(sql).bind(limit).bind(since_ms);
        if let Some(now) = now_ms {
            query = query.bind(now);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(StoreError::query(what))?;
        rows.iter()
            .map(|r| {
                Ok(OpenItem {
                    event_id: r.try_get(0)?,
                    partner: r.try_get(1)?,
                    subject: r.try_get(2)?,
                    summary: r.try_get(3)?,
                    since: r.try_get(4)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::query(what))
    }
}

/// A task opened by several occurrences is one open task: its first occurrence.
fn dedupe_subjects(items: Vec<OpenItem>) -> Vec<OpenItem> {
    let mut seen = std::collections::HashSet::new();
    items.into_iter().filter(|i| seen.insert(i.subject.clone())).collect()
}
