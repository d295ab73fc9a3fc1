//! The webhook endpoint: verify, deduplicate, map, publish, and only then
//! answer 2xx. Every other answer makes Amplience send the webhook again,
//! except for input that can never succeed (forged → 401, malformed → 400),
//! which is quarantined in the dead-letter topic with its reason.

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, ConnectInfo, DefaultBodyLimit, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use futures::{
    future::{BoxFuture, Shared},
    FutureExt, StreamExt, TryStreamExt,
};
use gridsync_amplience::webhook::{self, Envelope as Webhook, Secret, SignatureError, SIGNATURE_HEADER};
use gridsync_core::kafka::{
    dead_letter::{self, Failure, Stage},
    EventProducer,
};
use gridsync_schemas::Event;
use gridsync_store::{Claim, HandledDelivery, SideEffects, WebhookDeliveries};
use serde_json::json;

use crate::{
    mapping::Mapped,
    rejected::RejectedSampler,
    resolve::{ResolveError, Resolver},
    telemetry::{Outcome, WebhookMetrics},
};

pub const WEBHOOK_PATH: &str = "/webhooks/amplience";

/// Concurrent deliveries of one id wait for each other on one of these.
const DELIVERY_LOCKS: usize = 64;

pub struct Receiver {
    pub secrets: Vec<Secret>,
    pub resolver: Resolver,
    pub deliveries: WebhookDeliveries,
    pub producer: EventProducer,
    pub dead_letter_topic: String,
    pub publish_timeout: Duration,
    pub metrics: WebhookMetrics,
    pub locks: Vec<tokio::sync::Mutex<()>>,
    /// Publishes still waiting for Kafka, by delivery id: a redelivery waits
    /// for the first attempt instead of publishing the event a second time.
    pub pending: std::sync::Mutex<HashMap<String, PendingPublish>>,
    /// Which refused requests are kept.
    pub rejected: RejectedSampler,
    /// Whether Amplience accepts gridsync's credentials.
    pub credentials: Credentials,
    /// Claims of deliveries, shared by the replicas through the store.
    pub claims: SideEffects,
    /// This replica's name in the claims.
    pub instance: String,
}

/// How long a claim of a delivery holds without renewal: the publish task renews it every
/// [`DELIVERY_RENEWAL`] while it runs, so only a crashed replica's claim runs out, and then
/// soon, well within Amplience's retries (a ten-minute lease kept a crashed replica's deliveries
/// answered 503 for ten minutes: found by the SIGKILL test).
pub const DELIVERY_LEASE: Duration = Duration::from_secs(60);

/// How often a publish in progress renews its delivery's claim.
const DELIVERY_RENEWAL: Duration = Duration::from_secs(20);

/// A webhook's events being published at once, at most (an edition may carry many items).
const PUBLISHES_IN_FLIGHT: usize = 256;

/// Amplience refusing gridsync's own credentials (revoked, wrong, expired) is an operator's
/// error, not the webhooks' fault: every webhook is answered 503 (Amplience sends it again
/// later), the producer reports itself unready, and `gridsync_amp_amplience_credentials_ok`
/// drops to 0 for an alert; a probe (`probe`) or the next webhook that resolves brings it back.
pub struct Credentials {
    pub health: gridsync_core::telemetry::Health,
    pub failing: std::sync::atomic::AtomicBool,
}

impl Credentials {
    fn failing(&self, metrics: &WebhookMetrics) {
        metrics.credentials(false);
        if !self.failing.swap(true, std::sync::atomic::Ordering::SeqCst) {
            tracing::error!("Amplience refuses gridsync's credentials: webhooks answered 503, the producer unready");
            self.health.set_ready(false);
        }
    }

    pub fn accepted(&self, metrics: &WebhookMetrics) {
        if self.failing.swap(false, std::sync::atomic::Ordering::SeqCst) {
            tracing::info!("Amplience accepts gridsync's credentials again");
            self.health.set_ready(true);
        }
        metrics.credentials(true);
    }

    pub fn is_failing(&self) -> bool {
        self.failing.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The outcome of a publish task: the event id, or why Kafka refused it.
type PendingPublish = Shared<BoxFuture<'static, Result<String, String>>>;

impl Receiver {
    pub fn locks() -> Vec<tokio::sync::Mutex<()>> {
        (0..DELIVERY_LOCKS).map(|_| tokio::sync::Mutex::new(())).collect()
    }

    fn lock_for(&self, delivery_id: &str) -> &tokio::sync::Mutex<()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        delivery_id.hash(&mut hasher);
        &self.locks[(hasher.finish() as usize) % self.locks.len()]
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, PendingPublish>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Publishes `events` in a task of its own, which records the delivery once
    /// Kafka acknowledged them all, however long that takes: a webhook answered
    /// 503 meanwhile finds it done (or still pending) when Amplience sends it again.
    fn start_publish(self: &Arc<Self>, webhook: &Webhook, events: Vec<Event>) -> PendingPublish {
        let receiver = Arc::clone(self);
        let (delivery_id, name) = (webhook.id.clone(), webhook.name.clone());
        // Registered before the task can finish, so its removal always finds it.
        let mut pending = self.pending();
        let task = tokio::spawn(async move {
            let outcome = tokio::select! {
                outcome = receiver.publish_all(&delivery_id, &name, &events) => outcome,
                never = receiver.keep_claim(&delivery_id) => match never {},
            };
            // Under the delivery's lock: a redelivery checks the store, then the pending
            // publishes, and must find this one in one place or the other.
            let _same_delivery = receiver.lock_for(&delivery_id).lock().await;
            if let Ok(event_ids) = &outcome {
                let handled = HandledDelivery { event_id: event_ids.clone(), outcome: "published".into() };
                // Published already: failing to record only risks duplicates
                // later, with the same event ids, which consumers deduplicate.
                if let Err(e) = receiver.deliveries.record(&delivery_id, &handled).await {
                    tracing::warn!(delivery = %delivery_id, error = %e, "recording the webhook delivery");
                }
            }
            receiver.pending().remove(&delivery_id);
            receiver.release(&delivery_id).await;
            outcome
        });
        let shared = task.map(|joined| joined.unwrap_or_else(|e| Err(format!("publish task: {e}")))).boxed().shared();
        pending.insert(webhook.id.clone(), shared.clone());
        shared
    }

    /// Renews this replica's claim of a delivery while its publish runs (never returns).
    async fn keep_claim(&self, delivery_id: &str) -> std::convert::Infallible {
        loop {
            tokio::time::sleep(DELIVERY_RENEWAL).await;
            match self.claims.claim(&claim_key(delivery_id), &self.instance, DELIVERY_LEASE).await {
                Ok(Claim::Claimed) => {}
                Ok(other) => {
                    tracing::warn!(delivery = %delivery_id, claim = ?other, "the delivery's claim was taken over")
                }
                Err(e) => tracing::warn!(delivery = %delivery_id, error = %e, "renewing a webhook delivery's claim"),
            }
        }
    }

    /// Gives up this replica's claim of a delivery (handled, or to be tried again).
    async fn release(&self, delivery_id: &str) {
        if let Err(e) = self.claims.release(&claim_key(delivery_id), &self.instance).await {
            // Its lease runs out instead.
            tracing::warn!(delivery = %delivery_id, error = %e, "releasing a webhook delivery's claim");
        }
    }

    /// Publishes a webhook's events together (an edition's items: sent in order, awaited all;
    /// the idempotent producer keeps each key's order); the ids, comma-separated, or a refusal.
    async fn publish_all(&self, delivery_id: &str, name: &str, events: &[Event]) -> Result<String, String> {
        // Boxed first: a closure held across the await would not be provably Send (rust#110338).
        let publishes: Vec<BoxFuture<'_, Result<String, String>>> =
            events.iter().map(|event| self.publish_one(delivery_id, name, event).boxed()).collect();
        let ids: Vec<String> = futures::stream::iter(publishes).buffered(PUBLISHES_IN_FLIGHT).try_collect().await?;
        Ok(ids.join(","))
    }

    async fn publish_one(&self, delivery_id: &str, name: &str, event: &Event) -> Result<String, String> {
        let (event_type, event_id) = (event.event_type().name(), &event.envelope().event_id);
        let delivered = self.producer.publish(event, None).await.map_err(|e| format!("Kafka: {e}"))?;
        self.metrics.published(event_type);
        tracing::info!(delivery = %delivery_id, %name, event_type, %event_id, topic = %delivered.topic,
            partition = delivered.partition, offset = delivered.offset, "published");
        Ok(event_id.clone())
    }

    /// Waits for a publish, at most the publish timeout.
    async fn await_publish(&self, webhook: &Webhook, publish: PendingPublish) -> (Outcome, Response) {
        match tokio::time::timeout(self.publish_timeout, publish).await {
            Ok(Ok(event_id)) => {
                let body = json!({ "status": "published", "eventId": event_id });
                (Outcome::Published, reply(StatusCode::OK, body))
            }
            Ok(Err(e)) => unavailable(webhook, &e),
            Err(_) => unavailable(webhook, "Kafka did not acknowledge in time"),
        }
    }
}

pub fn router(receiver: Arc<Receiver>, max_body_bytes: usize) -> Router {
    Router::new().route(WEBHOOK_PATH, post(receive)).layer(DefaultBodyLimit::max(max_body_bytes)).with_state(receiver)
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    ConnectInfo(remote): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let (outcome, response) = handle(&receiver, remote, &headers, body).await;
    receiver.metrics.answered(outcome, started);
    response
}

async fn handle(
    receiver: &Arc<Receiver>,
    remote: std::net::SocketAddr,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> (Outcome, Response) {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            receiver.metrics.rejected("too_large");
            tracing::warn!(%remote, error = %rejection, "webhook refused: body");
            return (Outcome::Rejected, reply(rejection.status(), json!({ "error": rejection.body_text() })));
        }
    };
    let remote_address = remote.to_string();
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if let Err(e) = webhook::verify(&body, signature, &receiver.secrets) {
        let reason = match e {
            SignatureError::Missing => "signature_missing",
            SignatureError::NotBase64 => "signature_not_base64",
            SignatureError::Mismatch => "signature_mismatch",
            SignatureError::NoSecret => "no_secret_configured",
        };
        receiver.metrics.rejected(reason);
        tracing::warn!(%remote, reason, "webhook refused: signature");
        // A sample is kept for the security trail, written after the answer (see `rejected`).
        match receiver.rejected.admit(remote.ip(), Instant::now()) {
            Some(permit) => {
                receiver.metrics.rejected_sample("kept");
                let (receiver, class, message) = (Arc::clone(receiver), format!("webhook.{reason}"), e.to_string());
                tokio::spawn(async move {
                    let _ = quarantine(&receiver, &body, None, &remote.to_string(), &class, &message).await;
                    drop(permit);
                });
            }
            None => receiver.metrics.rejected_sample("dropped"),
        }
        return (Outcome::Rejected, reply(StatusCode::UNAUTHORIZED, json!({ "error": "invalid signature" })));
    }
    let webhook: Webhook = match serde_json::from_slice(&body) {
        Ok(webhook) => webhook,
        Err(e) => {
            receiver.metrics.rejected("malformed");
            let message = format!("the body is not a webhook envelope: {e}");
            tracing::warn!(%remote, %message, "webhook refused");
            return match quarantine(receiver, &body, None, &remote_address, "webhook.malformed", &message).await {
                Ok(()) => (Outcome::Rejected, reply(StatusCode::BAD_REQUEST, json!({ "error": message }))),
                Err(unavailable) => unavailable,
            };
        }
    };
    // Under the delivery's lock: what was done with it, and its claim. The lock is not held
    // while waiting for Kafka, so the publish task can take it to finish.
    let step = {
        let _same_delivery = receiver.lock_for(&webhook.id).lock().await;
        admit(receiver, &webhook, &body, &remote_address).await
    };
    match step {
        Step::Answer(outcome, response) => (outcome, response),
        Step::Await(publish) => receiver.await_publish(&webhook, publish).await,
    }
}

/// What to do with a delivery once it is admitted.
enum Step {
    Answer(Outcome, Response),
    /// Its events are being published: answer once Kafka has them.
    Await(PendingPublish),
}

impl From<(Outcome, Response)> for Step {
    fn from((outcome, response): (Outcome, Response)) -> Self {
        Step::Answer(outcome, response)
    }
}

/// Handled before: its outcome; being published here: that publish; claimed by another replica:
/// 503; else claimed here, resolved and mapped, and its publish started.
async fn admit(receiver: &Arc<Receiver>, webhook: &Webhook, body: &[u8], remote_address: &str) -> Step {
    if let Some(answer) = handled_before(receiver, webhook).await {
        return answer;
    }
    let earlier_attempt = receiver.pending().get(&webhook.id).cloned();
    if let Some(publish) = earlier_attempt {
        return Step::Await(publish);
    }
    // Replicas sharing the store: one claims the delivery (atomically, for a lease that a
    // crashed holder's claim runs out of), the others answer 503 and Amplience comes back.
    match receiver.claims.claim(&claim_key(&webhook.id), &receiver.instance, DELIVERY_LEASE).await {
        Ok(Claim::Claimed | Claim::Done(_)) => {}
        Ok(Claim::Busy { owner, expires_in_ms }) => {
            let reason = format!("being published by {owner} (its claim runs {expires_in_ms} ms more)");
            return unavailable(webhook, &reason).into();
        }
        Err(e) => return unavailable(webhook, &format!("store: {e}")).into(),
    }
    // Another replica may have finished it, and let its claim go, since the first look.
    if let Some(answer) = handled_before(receiver, webhook).await {
        receiver.release(&webhook.id).await;
        return answer;
    }
    let resolved = receiver.resolver.map(webhook).await;
    if !matches!(resolved, Err(ResolveError::Credentials(_) | ResolveError::Transient(_))) {
        receiver.credentials.accepted(&receiver.metrics);
    }
    let (outcome, handled, response) = match resolved {
        Ok(Mapped::Event(event)) => return Step::Await(receiver.start_publish(webhook, vec![*event])),
        Ok(Mapped::Events(events)) => return Step::Await(receiver.start_publish(webhook, events)),
        Ok(Mapped::Ignored(reason)) => {
            receiver.metrics.ignored(reason);
            tracing::info!(delivery = %webhook.id, name = %webhook.name, reason, "webhook ignored");
            let handled = HandledDelivery { event_id: String::new(), outcome: format!("ignored:{reason}") };
            (Outcome::Ignored, handled, reply(StatusCode::OK, json!({ "status": "ignored", "reason": reason })))
        }
        Err(ResolveError::Transient(message)) => {
            receiver.release(&webhook.id).await;
            return unavailable(webhook, &message).into();
        }
        Err(ResolveError::Credentials(message)) => {
            receiver.credentials.failing(&receiver.metrics);
            receiver.release(&webhook.id).await;
            return unavailable(webhook, &format!("Amplience refused gridsync's credentials: {message}")).into();
        }
        Err(ResolveError::Permanent(e)) => {
            tracing::warn!(delivery = %webhook.id, name = %webhook.name, error = %e, "webhook quarantined");
            if let Err(unavailable) =
                quarantine(receiver, body, Some(webhook), remote_address, "webhook.unmappable", &e.to_string()).await
            {
                receiver.release(&webhook.id).await;
                return unavailable.into();
            }
            let handled = HandledDelivery { event_id: String::new(), outcome: "quarantined".into() };
            let body = json!({ "status": "quarantined", "reason": e.to_string() });
            (Outcome::Quarantined, handled, reply(StatusCode::OK, body))
        }
    };
    if let Err(e) = receiver.deliveries.record(&webhook.id, &handled).await {
        tracing::warn!(delivery = %webhook.id, error = %e, "recording the webhook delivery");
    }
    receiver.release(&webhook.id).await;
    Step::Answer(outcome, response)
}

/// The answer to a delivery handled before (a duplicate), or to a store that cannot say.
async fn handled_before(receiver: &Receiver, webhook: &Webhook) -> Option<Step> {
    match receiver.deliveries.get(&webhook.id).await {
        Ok(Some(earlier)) => {
            tracing::info!(delivery = %webhook.id, outcome = %earlier.outcome, "duplicate webhook delivery");
            let body = json!({ "status": "duplicate", "eventId": earlier.event_id, "outcome": earlier.outcome });
            Some(Step::Answer(Outcome::Duplicate, reply(StatusCode::OK, body)))
        }
        Ok(None) => None,
        Err(e) => Some(unavailable(webhook, &format!("store: {e}")).into()),
    }
}

/// The ledger key of a delivery's claim.
fn claim_key(delivery_id: &str) -> String {
    format!("amp-producer/webhook/{delivery_id}")
}

/// 503: the input is not accepted now, and its sender will try again.
fn unavailable(webhook: &Webhook, reason: &str) -> (Outcome, Response) {
    tracing::warn!(delivery = %webhook.id, name = %webhook.name, reason, "webhook not accepted now; Amplience will retry");
    service_unavailable(reason.to_owned())
}

fn service_unavailable(error: String) -> (Outcome, Response) {
    (Outcome::Unavailable, reply(StatusCode::SERVICE_UNAVAILABLE, json!({ "error": error })))
}

/// Writes the raw body and why it was refused to the dead-letter topic; a 503
/// when even that fails, so that the input is sent again rather than lost.
async fn quarantine(
    receiver: &Receiver,
    body: &[u8],
    webhook: Option<&Webhook>,
    remote: &str,
    class: &str,
    message: &str,
) -> Result<(), (Outcome, Response)> {
    let failure = Failure {
        stage: if webhook.is_some() { Stage::Process } else { Stage::Receive },
        class: class.into(),
        message: message.into(),
    };
    let mut context = vec![("gridsync.webhook.remote", remote)];
    if let Some(webhook) = webhook {
        context.push(("gridsync.webhook.id", webhook.id.as_str()));
        context.push(("gridsync.webhook.name", webhook.name.as_str()));
    }
    let headers = dead_letter::producer_headers("amp-producer", &failure, &context);
    let key = webhook.map(|w| w.id.as_bytes());
    let sent = receiver.producer.send(&receiver.dead_letter_topic, key, Some(body), headers);
    match tokio::time::timeout(receiver.publish_timeout, sent).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(quarantine_failed(&e.to_string())),
        Err(_) => Err(quarantine_failed("Kafka did not acknowledge in time")),
    }
}

fn quarantine_failed(reason: &str) -> (Outcome, Response) {
    tracing::warn!(reason, "could not quarantine a webhook");
    service_unavailable(format!("quarantine: {reason}"))
}
