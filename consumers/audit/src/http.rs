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
//! - `GET /login`, `POST /login` (a token, for a session cookie), `POST /logout`
//!
//! Every list takes `cursor` (the previous answer's `next`) and `limit` (at most 500). With
//! tokens ([`crate::access`]), every route but the login form and the style sheet needs one; a
//! token for some partners sees only what concerns them (the rest is filtered out, or `403`
//! where the request names another partner), and dead letters are for those who see every
//! partner.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Extension, Form, Json, Router,
};
use chrono::DateTime;
use gridsync_store::audit::{AuditLog, PageRequest, DEFAULT_OPEN_WINDOW_MS, DEFAULT_PARTNER_WINDOW_MS};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::{
    access::{self, Access, Grant},
    page,
};

/// What the handlers share: the store, and who may read it.
#[derive(Clone)]
pub struct View {
    pub log: AuditLog,
    pub access: Arc<Access>,
}

fn forbidden(what: &str) -> ApiError {
    ApiError(StatusCode::FORBIDDEN, format!("this token does not see {what}"))
}

/// Keeps what `grant` sees of a lineage.
fn visible_lineage(mut lineage: gridsync_store::audit::Lineage, grant: &Grant) -> gridsync_store::audit::Lineage {
    if !grant.sees_all() {
        lineage.events.items.retain(|e| grant.sees(&e.partner));
        lineage.total = lineage.events.items.len();
    }
    lineage
}

/// Keeps what `grant` sees of the open items.
fn visible_open(mut open: gridsync_store::audit::OpenItems, grant: &Grant) -> gridsync_store::audit::OpenItems {
    for list in [
        &mut open.unacknowledged_documents,
        &mut open.unread_packages,
        &mut open.unresolved_tasks,
        &mut open.overdue_invoices,
    ] {
        list.retain(|item| grant.sees(&item.partner));
    }
    open
}

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

async fn lineage(
    State(view): State<View>,
    Extension(grant): Extension<Grant>,
    Query(q): Query<LineageQuery>,
) -> ApiResult {
    if let Some(partner) = q.partner.as_deref().filter(|p| !grant.sees(p)) {
        return Err(forbidden(&format!("partner {partner}")));
    }
    let page = PageRequest { cursor: q.cursor, limit: q.limit };
    json(visible_lineage(view.log.lineage(&q.reference, q.partner.as_deref(), &page).await?, &grant))
}

async fn partner(
    State(view): State<View>,
    Extension(grant): Extension<Grant>,
    Path(partner): Path<String>,
    Query(q): Query<RangeQuery>,
) -> ApiResult {
    if !grant.sees(&partner) {
        return Err(forbidden(&format!("partner {partner}")));
    }
    let to = q.to.as_deref().map(|t| parse_time("to", t)).transpose()?.unwrap_or_else(|| now_ms() + 1);
    let from = q.from.as_deref().map(|t| parse_time("from", t)).transpose()?.unwrap_or(to - DEFAULT_PARTNER_WINDOW_MS);
    let page = PageRequest { cursor: q.cursor, limit: q.limit };
    json(serde_json::json!({
        "partner": partner,
        "from": from,
        "to": to,
        "events": view.log.partner_activity(&partner, from, to, &page).await?,
    }))
}

async fn content(
    State(view): State<View>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
    Query(q): Query<Paging>,
) -> ApiResult {
    let page = q.request();
    let mut uses = view.log.content_uses(&id, &page).await?;
    uses.items.retain(|u| grant.sees(&u.partner));
    let mut events = view.log.content_events(&id, &page).await?;
    events.items.retain(|e| grant.sees(&e.partner));
    json(serde_json::json!({ "content_item_id": id, "uses": uses, "events": events }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenQuery {
    since: Option<String>,
    limit: Option<u32>,
}

async fn open(State(view): State<View>, Extension(grant): Extension<Grant>, Query(q): Query<OpenQuery>) -> ApiResult {
    let now = now_ms();
    let since = q.since.as_deref().map(|t| parse_time("since", t)).transpose()?.unwrap_or(now - DEFAULT_OPEN_WINDOW_MS);
    json(visible_open(view.log.open_items(now, since, q.limit.unwrap_or(100)).await?, &grant))
}

async fn dead_letters(
    State(view): State<View>,
    Extension(grant): Extension<Grant>,
    Query(q): Query<DeadLetterQuery>,
) -> ApiResult {
    if !grant.sees_all() {
        return Err(forbidden("dead letters (they may concern any partner)"));
    }
    let page = PageRequest { cursor: q.cursor, limit: q.limit };
    json(view.log.dead_letters(q.consumer.as_deref(), &page).await?)
}

async fn event(State(view): State<View>, Extension(grant): Extension<Grant>, Path(id): Path<String>) -> ApiResult {
    match view.log.event(&id).await?.filter(|e| grant.sees(&e.partner)) {
        Some(entry) => json(entry),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no event {id} is recorded"))),
    }
}

async fn search_page(
    State(view): State<View>,
    Extension(grant): Extension<Grant>,
    Query(q): Query<SearchQuery>,
) -> Result<Response, ApiError> {
    if let Some(partner) = q.partner.as_deref().filter(|p| !p.is_empty() && !grant.sees(p)) {
        return Err(forbidden(&format!("partner {partner}")));
    }
    let log = &view.log;
    let reference = q.q.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let partner = q.partner.as_deref().filter(|p| !p.is_empty());
    let page = PageRequest { cursor: q.cursor.clone(), limit: Some(200) };
    let lineage = match reference {
        Some(r) => Some(visible_lineage(log.lineage(r, partner, &page).await?, &grant)),
        None => None,
    };
    let mut uses = match reference {
        Some(r) => log.content_uses(r, &PageRequest::first(100)).await?.items,
        None => Vec::new(),
    };
    uses.retain(|u| grant.sees(&u.partner));
    let open = visible_open(log.open_items(now_ms(), now_ms() - DEFAULT_OPEN_WINDOW_MS, 20).await?, &grant);
    Ok(Html(page::search(reference, partner, lineage.as_ref(), &uses, &open)).into_response())
}

async fn event_page(
    State(view): State<View>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match view.log.event(&id).await?.filter(|e| grant.sees(&e.partner)) {
        Some(entry) => Ok(Html(page::event(&entry)).into_response()),
        None => Ok((StatusCode::NOT_FOUND, Html(page::not_found(&id))).into_response()),
    }
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], page::STYLE).into_response()
}

async fn login_form(State(view): State<View>) -> Response {
    if !view.access.requires_login() {
        return Redirect::to("/").into_response();
    }
    Html(page::login(false)).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginForm {
    token: String,
}

async fn login(State(view): State<View>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    let Some((session, grant)) = view.access.login(&form.token) else {
        tracing::warn!("audit login refused: not a valid token");
        return (StatusCode::UNAUTHORIZED, Html(page::login(true))).into_response();
    };
    tracing::info!(token = %grant.name, "audit login");
    // Secure when the request came through TLS (an ingress says so); a loopback run has none.
    let secure = headers.get("x-forwarded-proto").is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age=28800{}",
        access::SESSION_COOKIE,
        if secure { "; Secure" } else { "" }
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

async fn logout(State(view): State<View>, headers: HeaderMap) -> Response {
    if let Some(session) = access::session_cookie(&headers) {
        view.access.logout(session);
    }
    let cookie = format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", access::SESSION_COOKIE);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

pub fn router(log: AuditLog, access: Arc<Access>) -> Router {
    let view = View { log, access: access.clone() };
    Router::new()
        .route("/", get(search_page))
        .route("/events/{id}", get(event_page))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route(page::STYLE_PATH, get(style))
        .route("/api/lineage", get(lineage))
        .route("/api/partners/{partner}", get(partner))
        .route("/api/content/{id}", get(content))
        .route("/api/open", get(open))
        .route("/api/dead-letters", get(dead_letters))
        .route("/api/events/{id}", get(event))
        .with_state(view)
        .layer(axum::middleware::from_fn_with_state(access, access::guard))
}

/// Serves the audit view on `addr` until `shutdown`, under the limits every listener has;
/// returns the address bound.
pub async fn serve(
    addr: SocketAddr,
    log: AuditLog,
    access: Arc<Access>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    gridsync_core::serve::bind(addr, router(log, access), gridsync_core::serve::Limits::default(), shutdown).await
}
