//! Webhooks: the hub's subscriptions (`/hubs/{hub}/webhooks`: label, events,
//! handlers, secret, active) and the sender, which signs each delivery exactly
//! as Amplience does (base64 HMAC-SHA256 of the raw body) and POSTs it to the
//! handlers of every active subscription to its event, retrying on failure;
//! deliveries go one at a time, in order. Every delivery is kept so that a
//! test can send it again (same id), as a retrying Amplience would.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use gridsync_amplience::webhook::{sign, Secret, SIGNATURE_HEADER};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::hub::{Change, HubError};

/// The events a hub sends webhooks for.
pub const EVENTS: &[&str] = &[
    "dynamic-content.content-item.created",
    "dynamic-content.content-item.updated",
    "dynamic-content.content-item.assigned",
    "dynamic-content.content-item.workflow.updated",
    "dynamic-content.edition.scheduled",
    "dynamic-content.edition.unscheduled",
    "dynamic-content.edition.published",
    "dynamic-content.snapshot.published",
];

/// A subscription made when the simulator starts (every event), as if someone had created it.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: Secret,
}

/// A webhook subscription, as `/hubs/{hub}/webhooks` holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Subscription {
    #[serde(default)]
    pub id: Option<String>,
    pub label: String,
    pub events: Vec<String>,
    pub handlers: Vec<String>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub headers: Option<Vec<Value>>,
    #[serde(default)]
    pub filters: Option<Vec<Value>>,
    #[serde(default)]
    pub custom_payload: Option<Value>,
}

fn yes() -> bool {
    true
}

/// `PATCH /hubs/{hub}/webhooks/{id}`: any of a subscription's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SubscriptionChange {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub handlers: Option<Vec<String>>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub headers: Option<Vec<Value>>,
    #[serde(default)]
    pub filters: Option<Vec<Value>>,
    #[serde(default)]
    pub custom_payload: Option<Value>,
}

impl Subscription {
    /// Refuses what the hub refuses: no label, an unknown event, a handler that is no URL,
    /// a secret-less subscription (Amplience signs every delivery).
    fn check(&self) -> Result<(), HubError> {
        let invalid = |message: String| Err(HubError::new(400, "WEBHOOK_INVALID", message));
        if self.label.trim().is_empty() {
            return invalid("label must not be blank".into());
        }
        if self.events.is_empty() {
            return invalid("events must name at least one event".into());
        }
        if let Some(unknown) = self.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
            return invalid(format!("unknown event {unknown}; events are {EVENTS:?}"));
        }
        if self.handlers.is_empty() {
            return invalid("handlers must name at least one URL".into());
        }
        if let Some(bad) = self.handlers.iter().find(|h| reqwest::Url::parse(h).is_err()) {
            return invalid(format!("handler {bad} is not a URL"));
        }
        if self.secret.as_deref().is_none_or(|s| s.is_empty()) {
            return invalid("secret is required".into());
        }
        Ok(())
    }

    fn to_json(&self, hub_id: &str) -> Value {
        let mut value = json!(self);
        value["_links"] = json!({ "self": { "href": format!(
            "/v2/content/hubs/{hub_id}/webhooks/{}", self.id.as_deref().unwrap_or_default()) } });
        value
    }
}

/// The hub's subscriptions.
#[derive(Clone, Default)]
pub struct Subscriptions(Arc<Mutex<Vec<Subscription>>>);

impl Subscriptions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscription>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn list(&self, hub_id: &str) -> Vec<Value> {
        self.lock().iter().map(|s| s.to_json(hub_id)).collect()
    }

    pub fn get(&self, hub_id: &str, id: &str) -> Result<Value, HubError> {
        self.lock()
            .iter()
            .find(|s| s.id.as_deref() == Some(id))
            .map(|s| s.to_json(hub_id))
            .ok_or_else(|| HubError::new(404, "WEBHOOK_NOT_FOUND", format!("no webhook {id}")))
    }

    pub fn create(&self, hub_id: &str, mut subscription: Subscription) -> Result<Value, HubError> {
        subscription.check()?;
        subscription.id = Some(format!("{:024x}", uuid::Uuid::new_v4().as_u128() >> 32));
        let created = subscription.to_json(hub_id);
        self.lock().push(subscription);
        Ok(created)
    }

    pub fn update(&self, hub_id: &str, id: &str, change: SubscriptionChange) -> Result<Value, HubError> {
        let mut all = self.lock();
        let current = all
            .iter_mut()
            .find(|s| s.id.as_deref() == Some(id))
            .ok_or_else(|| HubError::new(404, "WEBHOOK_NOT_FOUND", format!("no webhook {id}")))?;
        let mut updated = current.clone();
        macro_rules! take {
            ($($field:ident),*) => { $(if let Some(v) = change.$field { updated.$field = v; })* };
        }
        take!(label, events, handlers, active);
        macro_rules! take_optional {
            ($($field:ident),*) => { $(if change.$field.is_some() { updated.$field = change.$field; })* };
        }
        take_optional!(secret, method, headers, filters, custom_payload);
        updated.check()?;
        *current = updated;
        Ok(current.to_json(hub_id))
    }

    pub fn delete(&self, id: &str) -> Result<(), HubError> {
        let mut all = self.lock();
        let before = all.len();
        all.retain(|s| s.id.as_deref() != Some(id));
        if all.len() == before {
            return Err(HubError::new(404, "WEBHOOK_NOT_FOUND", format!("no webhook {id}")));
        }
        Ok(())
    }

    /// Where a delivery of `event` goes: each handler of each active subscription to it, with its secret.
    fn targets(&self, event: &str) -> Vec<(String, Secret)> {
        self.lock()
            .iter()
            .filter(|s| s.active && s.events.iter().any(|e| e == event))
            .flat_map(|s| {
                let secret = Secret::new(s.secret.as_deref().unwrap_or_default());
                s.handlers.iter().map(move |h| (h.clone(), secret.clone()))
            })
            .collect()
    }
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
    pub subscriptions: Subscriptions,
    queue: Option<mpsc::UnboundedSender<Outgoing>>,
    log: Arc<Mutex<Vec<DeliveryLog>>>,
    sent: Arc<Mutex<BTreeMap<String, Outgoing>>>,
    sequence: Arc<std::sync::atomic::AtomicU64>,
}

/// Attempts per delivery before the sender gives up on it.
const MAX_ATTEMPTS: u32 = 10;

impl WebhookSender {
    /// A sender to the hub's subscriptions, `target` among them from the start if given.
    pub fn start(target: Option<WebhookTarget>) -> Self {
        let mut sender = WebhookSender::default();
        if let Some(target) = target {
            sender.subscriptions.lock().push(Subscription {
                id: Some(format!("{:024x}", 1)),
                label: "amp-sim --webhook-url".into(),
                events: EVENTS.iter().map(|e| (*e).to_owned()).collect(),
                handlers: vec![target.url],
                active: true,
                secret: Some(target.secret.expose().to_owned()),
                method: None,
                headers: None,
                filters: None,
                custom_payload: None,
            });
        }
        let (tx, rx) = mpsc::unbounded_channel();
        sender.queue = Some(tx);
        tokio::spawn(deliver_all(sender.subscriptions.clone(), rx, sender.log.clone()));
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
    subscriptions: Subscriptions,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    log: Arc<Mutex<Vec<DeliveryLog>>>,
) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
    while let Some(outgoing) = queue.recv().await {
        for (url, secret) in subscriptions.targets(&outgoing.name) {
            let entry = deliver(&http, &url, &secret, &outgoing).await;
            tracing::info!(id = %entry.id, name = %entry.name, url, attempts = entry.attempts, delivered = entry.delivered, "webhook");
            if let Ok(mut log) = log.lock() {
                log.push(entry);
            }
        }
    }
}

/// One delivery to one handler, retried until it is answered 2xx or the attempts run out.
async fn deliver(http: &reqwest::Client, url: &str, secret: &Secret, outgoing: &Outgoing) -> DeliveryLog {
    let signature = sign(&outgoing.body, secret);
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
            .post(url)
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
    entry
}
