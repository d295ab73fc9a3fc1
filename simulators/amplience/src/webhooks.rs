//! The webhook sender: signs each delivery exactly as Amplience does (base64
//! HMAC-SHA256 of the raw body) and POSTs it to the configured URL, retrying
//! on failure; deliveries go one at a time, in order. Every delivery is kept
//! so that a test can send it again (same id), as a retrying Amplience would.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use gridsync_amplience::webhook::{sign, Secret, SIGNATURE_HEADER};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::hub::Change;

/// Where webhooks go.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: Secret,
}

/// What became of one delivery.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryLog {
    pub id: String,
    pub name: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub delivered: bool,
}

#[derive(Debug, Clone)]
struct Outgoing {
    id: String,
    name: String,
    body: Vec<u8>,
}

#[derive(Clone, Default)]
pub struct WebhookSender {
    queue: Option<mpsc::UnboundedSender<Outgoing>>,
    log: Arc<Mutex<Vec<DeliveryLog>>>,
    sent: Arc<Mutex<BTreeMap<String, Outgoing>>>,
    sequence: Arc<std::sync::atomic::AtomicU64>,
}

/// Attempts per delivery before the sender gives up on it.
const MAX_ATTEMPTS: u32 = 10;

impl WebhookSender {
    /// A sender to `target`, or one that sends nothing.
    pub fn start(target: Option<WebhookTarget>) -> Self {
        let mut sender = WebhookSender::default();
        if let Some(target) = target {
            let (tx, rx) = mpsc::unbounded_channel();
            sender.queue = Some(tx);
            tokio::spawn(deliver_all(target, rx, sender.log.clone()));
        }
        sender
    }

    pub fn log(&self) -> Vec<DeliveryLog> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The envelope of `change`, queued for delivery; returns its id.
    pub fn send(&self, change: &Change) -> Option<String> {
        let (name, payload) = match change {
            Change::WorkflowUpdated(item) => ("dynamic-content.content-item.workflow.updated", json!(item)),
            Change::Published { item, snapshot_id, by } => (
                "dynamic-content.snapshot.published",
                json!({
                    "id": snapshot_id,
                    "createdFrom": "content-item",
                    "createdBy": by,
                    "createdDate": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "type": "USER",
                    "rootContentItem": {
                        "id": item.id,
                        "label": item.label,
                        "contentTypeUri": item.schema(),
                    },
                }),
            ),
            // Each slot names its content item, as a custom payload template lists them.
            Change::EditionPublished { edition_id, name, items, by } => (
                "dynamic-content.edition.published",
                json!({
                    "id": edition_id,
                    "name": name,
                    "publishedBy": by,
                    "publishedDate": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "slots": items.iter().map(|item| json!({
                        "id": item.id, "label": item.label, "contentTypeUri": item.schema(),
                    })).collect::<Vec<_>>(),
                }),
            ),
        };
        let id = uuid::Uuid::new_v4().to_string();
        let envelope = json!({
            "id": id,
            "name": name,
            "sequenceId": self.sequence.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
            "requestId": uuid::Uuid::new_v4().to_string(),
            "resource": Value::Null,
            "payload": payload,
        });
        let body = serde_json::to_vec(&envelope).ok()?;
        self.enqueue(Outgoing { id: id.clone(), name: name.to_owned(), body })?;
        Some(id)
    }

    /// Sends delivery `id` again, byte for byte.
    pub fn redeliver(&self, id: &str) -> bool {
        let Some(outgoing) = self.sent.lock().ok().and_then(|s| s.get(id).cloned()) else {
            return false;
        };
        self.enqueue(outgoing).is_some()
    }

    fn enqueue(&self, outgoing: Outgoing) -> Option<()> {
        let queue = self.queue.as_ref()?;
        if let Ok(mut sent) = self.sent.lock() {
            sent.insert(outgoing.id.clone(), outgoing.clone());
        }
        queue.send(outgoing).ok()
    }
}

async fn deliver_all(
    target: WebhookTarget,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    log: Arc<Mutex<Vec<DeliveryLog>>>,
) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
    while let Some(outgoing) = queue.recv().await {
        let signature = sign(&outgoing.body, &target.secret);
        let mut entry = DeliveryLog {
            id: outgoing.id.clone(),
            name: outgoing.name.clone(),
            attempts: 0,
            last_status: None,
            delivered: false,
        };
        while entry.attempts < MAX_ATTEMPTS && !entry.delivered {
            entry.attempts += 1;
            let result = http
                .post(&target.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, &signature)
                .body(outgoing.body.clone())
                .send()
                .await;
            entry.last_status = result.as_ref().ok().map(|r| r.status().as_u16());
            entry.delivered = result.is_ok_and(|r| r.status().is_success());
            if !entry.delivered {
                tokio::time::sleep(Duration::from_millis(200 << entry.attempts.min(5))).await;
            }
        }
        tracing::info!(id = %entry.id, name = %entry.name, attempts = entry.attempts, delivered = entry.delivered, "webhook");
        if let Ok(mut log) = log.lock() {
            log.push(entry);
        }
    }
}
