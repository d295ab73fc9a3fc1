//! `/metrics`, `/healthz` and `/readyz`.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

use axum::{extract::State, http::StatusCode, routing::get, Router};
use tokio_util::sync::CancellationToken;

use super::{ConsumerStatus, Metrics};

/// Readiness, flipped by the component: ready once it can do its work,
/// unready again while it shuts down; while unready, why (when it knows).
/// A consumer's status beside it, for `/status`.
#[derive(Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
    waiting_for: Arc<Mutex<Option<String>>>,
    consumer: ConsumerStatus,
}

impl Health {
    /// What the component's consumer loop (if it runs one) is doing.
    pub fn consumer(&self) -> &ConsumerStatus {
        &self.consumer
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// What the component waits for before it can be ready (`None`: nothing it can name).
    pub fn waiting_for(&self, reason: Option<String>) {
        *self.waiting_for.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = reason;
    }

    fn reason(&self) -> Option<String> {
        self.waiting_for.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    health: Health,
}

async fn metrics(State(state): State<AppState>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    if state.health.is_ready() {
        return (StatusCode::OK, "ready\n".into());
    }
    match state.health.reason() {
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
        None => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into()),
    }
}

/// `/status`: the component, whether it is ready (and if not, why), and its consumer's state.
async fn status(State(state): State<AppState>) -> axum::Json<serde_json::Value> {
    let ready = state.health.is_ready();
    axum::Json(serde_json::json!({
        "component": state.metrics.component(),
        "ready": ready,
        "waiting_for": if ready { None } else { state.health.reason() },
        "consumer": state.health.consumer.snapshot(),
    }))
}

/// The telemetry routes, for components that serve more routes on the same port.
pub fn router(metrics: Metrics, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(self::metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .with_state(AppState { metrics, health })
}

/// Binds `addr` and serves the telemetry routes until `shutdown`, under the limits every
/// listener has ([`crate::serve`]). Returns the bound address (useful with port 0) and the
/// server task.
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    health: Health,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    crate::serve::bind(addr, router(metrics, health), crate::serve::Limits::default(), shutdown).await
}
