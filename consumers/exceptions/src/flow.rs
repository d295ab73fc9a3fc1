//! Flow 8 (and the exception side of flow 6): failed, rejected or
//! correction-needed exchanges become work for people, and that work closes
//! itself when the exchange succeeds later.
//!
//! - DocumentExchangeException (a warning or worse; one for information is only recorded, by
//!   the audit consumer) → one **task** per partner + exchange + kind
//!   (a workflow item in the open state, rendered from its template, with what
//!   went wrong and what to do); a repeat of the failure counts on the same
//!   task (and reopens it if it was resolved);
//! - where a customer is affected (an order or delivery document failing), a
//!   **customer communication**, once per task;
//! - where the fix is content (a partner rejected a distributed package, the
//!   exception naming its content item), that item goes back for re-approval,
//!   linked from the task;
//! - a later success of the same exchange (delivered, acknowledged, the file
//!   read) → each of its open tasks moves to the resolved state with what resolved it.

use gridsync_core::kafka::Record;
use gridsync_flow::{
    effects::Outcome, messages, partners::PartnerProfile, Audience, FlowContext, FlowError, FlowHandler, KeyedLocks,
    Messages, Send, SideEffect,
};
use gridsync_schemas::{
    events::{DocumentExchangeException, ExceptionKind, Severity},
    Event,
};
use gridsync_store::FlowRecords;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::{config::ExceptionsConfig, exchange};

/// Kind of the flow's records: one per task.
const TASK: &str = "task";
/// Kind of the flow's records: the last success of an exchange, per kind of failure it clears.
/// A success can be handled before the failure it clears (they travel on different topics, and
/// a failure may wait on a crashed instance's claim): the failure's task then resolves at once.
const SUCCESS: &str = "success";
/// How many occurrences' event ids a task keeps (to count each once).
const RECENT_EVENTS: usize = 50;

/// What the flow remembers of a task.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TaskRecord {
    item_id: String,
    partner: String,
    kind: String,
    /// `open` or `resolved`.
    state: String,
    /// Bumped when a resolved task is reopened: each opening is resolved once.
    generation: u32,
}

/// What the flow remembers of an exchange's last success.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SuccessRecord {
    /// When gridsync learned of it (the envelope's `ingested_at`), milliseconds since the epoch.
    seen_at: i64,
    /// The task's `resolution`: which event, when, what it says.
    resolution: Value,
}

pub struct Exceptions {
    pub ctx: FlowContext,
    pub tasks: Messages,
    pub messages: Messages,
    pub records: FlowRecords,
    pub config: ExceptionsConfig,
    /// Held per exchange while a failure or a success of it is handled: both read and write its
    /// task and success records, and their records can be handled at once on other partitions.
    pub exchanges: KeyedLocks,
}

impl FlowHandler for Exceptions {
    async fn handle(&self, record: &Record) -> Result<(), FlowError> {
        if let Event::DocumentExchangeException(exception) = &record.event {
            // An informational exception is a record for the audit view (a set a partner's
            // profile accepts and ignores): nothing for anyone to do, so no task.
            if exception.severity == Severity::Info {
                return Ok(());
            }
            let exchange = exchange::of_failure(exception);
            let _one_at_a_time = self.exchanges.lock(&exchange).await;
            return self.failed(record, exception, &exchange).await;
        }
        for (exchange, clears) in exchange::of_success(&record.event) {
            let _one_at_a_time = self.exchanges.lock(&exchange).await;
            self.succeeded(record, &exchange, clears).await?;
        }
        Ok(())
    }
}

impl Exceptions {
    /// The partner's profile, or a stand-in for one the profiles do not list:
    /// a failure of an unknown sender's file needs a task most of all.
    fn partner(&self, id: &str) -> PartnerProfile {
        self.ctx.partners.get(id).cloned().unwrap_or_else(|_| PartnerProfile::unlisted(id))
    }

    async fn task(&self, key: &str) -> Result<Option<TaskRecord>, FlowError> {
        self.records.get(TASK, key).await?.map(|t| serde_json::from_str(&t)).transpose().map_err(FlowError::own_record)
    }

    async fn remember(&self, key: &str, exchange: &str, task: &TaskRecord) -> Result<(), FlowError> {
        self.records.put(TASK, key, exchange, &serde_json::to_string(task).map_err(FlowError::own_record)?).await?;
        Ok(())
    }

    async fn failed(
        &self,
        record: &Record,
        exception: &DocumentExchangeException,
        exchange: &str,
    ) -> Result<(), FlowError> {
        let envelope = &exception.envelope;
        let partner = self.partner(&envelope.trading_partner_id);
        let kind = exception.kind.as_str();
        let task_key = format!("{exchange}/{kind}");
        let guidance = self.config.guidance.get(kind).cloned().unwrap_or_default();
        let mut context = messages::context(record, &partner)?;
        context["task"] = json!({ "kind": kind, "exchange": exchange, "guidance": guidance });
        let first_seen = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let extra: Map<String, Value> = [(
            "task".to_owned(),
            json!({
                "key": task_key,
                "kind": kind,
                "severity": exception.severity.as_str(),
                "exchange": exchange,
                "reason": exception.reason,
                "guidance": guidance,
                "documentType": exception.document_type,
                "quarantinePath": exception.quarantine_path,
                "details": exception.details,
                "occurrences": 1,
                "recentEvents": [envelope.event_id],
                "firstSeen": first_seen,
                "lastSeen": first_seen,
            }),
        )]
        .into_iter()
        .collect();
        let send = Send {
            action: "exception-task",
            template_key: &self.config.messages.template("exception-task", &partner)?,
            audience: Audience::AccountTeam(&self.config.open_state),
            context: &context,
            extra,
            once_per: Some(task_key.clone()),
        };
        let opened = self.tasks.send(&self.ctx.effects, record, &partner, send).await?;
        let mut task = match self.task(&task_key).await? {
            Some(task) => task,
            None => {
                let task = TaskRecord {
                    item_id: opened.external_id.clone(),
                    partner: partner.id.clone(),
                    kind: kind.to_owned(),
                    state: "open".into(),
                    generation: 0,
                };
                self.remember(&task_key, exchange, &task).await?;
                task
            }
        };
        // Every occurrence counts once on the task; a resolved task that fails again reopens.
        let reopen = task.state == "resolved";
        let effect = SideEffect::amplience("exception-occurrence", partner.contacts.account_team.clone());
        let client = &self.tasks.client;
        let item_id = task.item_id.clone();
        self.ctx
            .effects
            .perform(record, &effect, |_| async move {
                let mut counted = false;
                let mut updated = client
                    .update_item(&item_id, |item| {
                        counted = count_occurrence(&mut item.body, &envelope.event_id, &exception.reason);
                    })
                    .await?;
                if reopen {
                    updated = client.assign_workflow_state(&item_id, &self.config.open_state).await?;
                }
                Ok(self.outcome(updated, counted))
            })
            .await?;
        if reopen {
            task.state = "open".into();
            task.generation += 1;
            self.remember(&task_key, exchange, &task).await?;
        }
        // The task is open here. The exchange already succeeded after this failure (its success
        // was handled first): resolved at once.
        let success = self.success(&task_key).await?;
        if let Some(success) = success.filter(|s| s.seen_at > envelope.ingested_at.millis()) {
            self.resolve(record, &task_key, exchange, &mut task, &success.resolution).await?;
        }
        let document = exception
            .document_type
            .clone()
            .or_else(|| envelope.trading_grid_document.as_ref().map(|d| d.document_type.clone()))
            .unwrap_or_default();
        if self.config.customer_documents.contains(&document) && self.config.customer_kinds.iter().any(|k| k == kind) {
            let send = Send {
                action: "exception-customer-notice",
                template_key: &self.config.messages.template("exception-customer-notice", &partner)?,
                audience: Audience::Customer,
                context: &context,
                extra: Map::new(),
                once_per: Some(format!("{task_key}#{}", task.generation)),
            };
            self.messages.send(&self.ctx.effects, record, &partner, send).await?;
        }
        if let Some(content_item) = exception.details.get("content_item_id") {
            self.revise(record, &partner, &task_key, &task, content_item).await?;
        }
        Ok(())
    }

    /// Sends the partner content a partner rejected back for re-approval, and links it from the task.
    async fn revise(
        &self,
        record: &Record,
        partner: &PartnerProfile,
        task_key: &str,
        task: &TaskRecord,
        content_item: &str,
    ) -> Result<(), FlowError> {
        let effect = SideEffect::amplience("content-revision", partner.contacts.account_team.clone())
            .once_per(format!("{task_key}#{}", task.generation));
        let client = &self.tasks.client;
        self.ctx
            .effects
            .perform(record, &effect, |_| async move {
                let reopened = client.assign_workflow_state(content_item, &self.config.revision_state).await?;
                let revision = json!({
                    "contentItemId": reopened.id,
                    "version": reopened.version,
                    "state": self.config.revision_state,
                });
                let updated = client
                    .update_item(&task.item_id, |item| {
                        if let Value::Object(body) = &mut item.body {
                            body.insert("revision".into(), revision.clone());
                        }
                    })
                    .await?;
                Ok(self.outcome(updated, true))
            })
            .await?;
        Ok(())
    }

    /// Resolves the open tasks of `exchange` whose kind the success `clears`, saying what resolved it,
    /// and remembers the success for a failure handled after it.
    async fn succeeded(&self, record: &Record, exchange: &str, clears: &[ExceptionKind]) -> Result<(), FlowError> {
        let source = record.event.envelope();
        let resolution = json!({
            "eventId": source.event_id,
            "eventType": source.event_type,
            "at": source.occurred_at.to_datetime().map(|t| t.to_rfc3339()),
            "what": resolution_text(&record.event),
        });
        let success = SuccessRecord { seen_at: source.ingested_at.millis(), resolution };
        let body = serde_json::to_string(&success).map_err(FlowError::own_record)?;
        for kind in clears {
            self.records.put(SUCCESS, &format!("{exchange}/{}", kind.as_str()), exchange, &body).await?;
        }
        for (task_key, text) in self.records.of_subject(TASK, exchange).await? {
            let mut task: TaskRecord = serde_json::from_str(&text).map_err(FlowError::own_record)?;
            if task.state != "open" || !clears.iter().any(|k| k.as_str() == task.kind) {
                continue;
            }
            self.resolve(record, &task_key, exchange, &mut task, &success.resolution).await?;
        }
        Ok(())
    }

    /// The last success of the exchange and kind of `task_key`, if one was handled.
    async fn success(&self, task_key: &str) -> Result<Option<SuccessRecord>, FlowError> {
        let found = self.records.get(SUCCESS, task_key).await?;
        found.map(|s| serde_json::from_str(&s)).transpose().map_err(FlowError::own_record)
    }

    /// Moves an open task to the resolved state with its `resolution`, once per opening.
    async fn resolve(
        &self,
        record: &Record,
        task_key: &str,
        exchange: &str,
        task: &mut TaskRecord,
        resolution: &Value,
    ) -> Result<(), FlowError> {
        let partner = self.partner(&task.partner);
        let effect = SideEffect::amplience("task-resolved", partner.contacts.account_team.clone())
            .once_per(format!("{task_key}#{}", task.generation));
        let client = &self.tasks.client;
        let item_id = task.item_id.clone();
        self.ctx
            .effects
            .perform(record, &effect, |_| async move {
                client
                    .update_item(&item_id, |item| {
                        if let Value::Object(body) = &mut item.body {
                            body.insert("resolution".into(), resolution.clone());
                        }
                    })
                    .await?;
                let resolved = client.assign_workflow_state(&item_id, &self.config.resolved_state).await?;
                Ok(self.outcome(resolved, true))
            })
            .await?;
        task.state = "resolved".into();
        self.remember(task_key, exchange, task).await
    }

    fn outcome(&self, item: gridsync_amplience::ContentItem, changed: bool) -> Outcome {
        Outcome::of_item(item, self.tasks.hub_id.clone(), &self.tasks.content_type_uri, changed)
    }
}

/// Counts `event_id` on the task body once; returns whether it was new.
fn count_occurrence(body: &mut Value, event_id: &str, reason: &str) -> bool {
    let Some(task) = body.get_mut("task").and_then(Value::as_object_mut) else { return false };
    let recent = task.entry("recentEvents").or_insert_with(|| json!([]));
    if !recent.is_array() {
        *recent = json!([]);
    }
    let Some(list) = recent.as_array_mut() else { return false };
    if list.iter().any(|id| id == event_id) {
        return false;
    }
    list.push(json!(event_id));
    if list.len() > RECENT_EVENTS {
        list.remove(0);
    }
    let count = task.get("occurrences").and_then(Value::as_u64).unwrap_or(0) + 1;
    task.insert("occurrences".into(), json!(count));
    task.insert("lastSeen".into(), json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
    task.insert("reason".into(), json!(reason));
    true
}

/// What a success says, for the resolved task.
fn resolution_text(event: &Event) -> String {
    match event {
        Event::DocumentStatusChanged(s) => {
            format!("Trading Grid reports the {} {}", s.document_type, s.status.as_str())
        }
        Event::FunctionalAckReceived(a) => format!("the partner acknowledged it: {}", a.status.as_str()),
        other => format!(
            "the document was received and processed: {} {}",
            other.event_type().name(),
            other.envelope().business_key
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_occurrence_counts_once() {
        let mut body = json!({ "task": { "occurrences": 1, "recentEvents": ["e1"] } });
        assert!(!count_occurrence(&mut body, "e1", "first"));
        assert!(count_occurrence(&mut body, "e2", "again"));
        assert!(!count_occurrence(&mut body, "e2", "again"));
        assert_eq!(body["task"]["occurrences"], 2);
        assert_eq!(body["task"]["reason"], "again");
    }
}
