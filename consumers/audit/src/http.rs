//! The audit view over HTTP: a JSON API for programs and a server-rendered
//! page for people, both answering from the audit store, every answer paged.
//!
//! - `GET /api/lineage?ref=<PO, invoice, shipment, payment, file, event id>[&partner=]`
//! - `GET /api/partners/<partner>?from=<RFC 3339>&to=<RFC 3339>`
//! - `GET /api/content/<content item id>`: versions sent, to whom, and the events
//! - `GET /api/open[?since=<RFC 3339>]`: unacknowledged documents, unread packages, unresolved
//!   tasks, overdue invoices, of the last 90 days by default
//! - `GET /api/dead-letters[?consumer=]`
//! - `GET /api/events/<event id>`
//! - `GET /?q=<reference>`: the search page and a transaction's timeline; `GET /events/<id>`
//!
//! Every list takes `cursor` (the previous answer's `next`) and `limit` (at most 500).

use std::net::SocketAddr;

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
    routing::get,
    Json, Router,
};
use chrono::DateTime;
use gridsync_store::audit::{AuditLog, PageRequest, DEFAULT_OPEN_WINDOW_MS, DEFAULT_PARTNER_WINDOW_MS};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::page;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

impl Paging {
    fn request(&self) -> PageRequest {
        PageRequest { cursor: self.cursor.clone(), limit: self.limit }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineageQuery {
    #[serde(rename = "ref")]
    reference: String,
    partner: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    consumer: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    q: Option<String>,
    partner: Option<String>,
    cursor: Option<String>,
}

/// A failed request: its status and a JSON `{"error": ...}`.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<gridsync_store::StoreError> for ApiError {
    fn from(e: gridsync_store::StoreError) -> Self {
        tracing::warn!(error = %e, "audit query failed");
        ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

type ApiResult = Result<Response, ApiError>;

fn json(value: impl serde::Serialize) -> ApiResult {
    Ok(Json(value).into_response())
}

/// Milliseconds since the epoch of an RFC 3339 time, or a 400 naming the parameter.
pub fn parse_time(name: &str, value: &str) -> Result<i64, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("{name}={value:?} is not an RFC 3339 time: {e}")))
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn lineage(State(log): State<AuditLog>, Query(q): Query<LineageQuery>) -> ApiResult {
    let page = PageRequest { cursor: q.cursor, limit: q.limit };
    json(log.lineage(&q.reference, q.partner.as_deref(), &page).await?)
}

async fn partner(State(log): State<AuditLog>, Path(partner): Path<String>, Query(q): Query<RangeQuery>) -> ApiResult {
    let to = q.to.as_deref().map(|t| parse_time("to", t)).transpose()?.unwrap_or_else(|| now_ms() + 1);
    let from = q.from.as_deref().map(|t| parse_time("from", t)).transpose()?.unwrap_or(to - DEFAULT_PARTNER_WINDOW_MS);
    let page = PageRequest { cursor: q.cursor, limit: q.limit };
    json(serde_json::json!({
        "partner": partner,
        "from": from,
        "to": to,
        "events": log.partner_activity(&partner, from, to, &page).await?,
    }))
}

async fn content(State(log): State<AuditLog>, Path(id): Path<String>, Query(q): Query<Paging>) -> ApiResult {
    let page = q.request();
    json(serde_json::json!({
        "content_item_id": id,
        "uses": log.content_uses(&id, &page).await?,
        "events": log.content_events(&id, &page).await?,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenQuery {
    since: Option<String>,
    limit: Option<u32>,
}

async fn open(State(log): State<AuditLog>, Query(q): Query<OpenQuery>) -> ApiResult {
    let now = now_ms();
    let since = q.since.as_deref().map(|t| parse_time("since", t)).transpose()?.unwrap_or(now - DEFAULT_OPEN_WINDOW_MS);
    json(log.open_items(now, since, q.limit.unwrap_or(100)).await?)
}

async fn dead_letters(State(log): State<AuditLog>, Query(q): Query<DeadLetterQuery>) -> ApiResult {
    let page = PageRequest { cursor: q.cursor, limit: q.limit };
    json(log.dead_letters(q.consumer.as_deref(), &page).await?)
}

async fn event(State(log): State<AuditLog>, Path(id): Path<String>) -> ApiResult {
    match log.event(&id).await? {
        Some(entry) => json(entry),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no event {id} is recorded"))),
    }
}

async fn search_page(State(log): State<AuditLog>, Query(q): Query<SearchQuery>) -> Result<Html<String>, ApiError> {
    let reference = q.q.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let page = PageRequest { cursor: q.cursor.clone(), limit: Some(200) };
    let lineage = match reference {
        Some(r) => Some(log.lineage(r, q.partner.as_deref(), &page).await?),
        None => None,
    };
    let uses = match reference {
        Some(r) => log.content_uses(r, &PageRequest::first(100)).await?.items,
        None => Vec::new(),
    };
    let open = log.open_items(now_ms(), now_ms() - DEFAULT_OPEN_WINDOW_MS, 20).await?;
    Ok(Html(page::search(reference, q.partner.as_deref(), lineage.as_ref(), &uses, &open)))
}

async fn event_page(State(log): State<AuditLog>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match log.event(&id).await? {
        Some(entry) => Ok(Html(page::event(&entry)).into_response()),
        None => Ok((StatusCode::NOT_FOUND, Html(page::not_found(&id))).into_response()),
    }
}

pub fn router(log: AuditLog) -> Router {
    Router::new()
        .route("/", get(search_page))
        .route("/events/{id}", get(event_page))
        .route("/api/lineage", get(lineage))
        .route("/api/partners/{partner}", get(partner))
        .route("/api/content/{id}", get(content))
        .route("/api/open", get(open))
        .route("/api/dead-letters", get(dead_letters))
        .route("/api/events/{id}", get(event))
        .with_state(log)
}

/// Serves the audit view on `addr` until `shutdown`; returns the address bound.
pub async fn serve(
    addr: SocketAddr,
    log: AuditLog,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(log);
    let task = tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
    });
    Ok((bound, task))
}
