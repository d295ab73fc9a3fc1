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
//! - `GET /?q=<reference>`: the search page and a transaction's timeline; `GET /events/<id>`;
//!   `GET /partners/<id>`: a partner's open items and exchanges
//! - `format=csv` on `/api/lineage` and `/api/partners/<id>`: the events as CSV
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

/// What the handlers share: the store, who may read it, and partners' names.
#[derive(Clone)]
pub struct View {
    pub log: AuditLog,
    pub access: Arc<Access>,
    pub names: Arc<page::Names>,
}

/// The open items `grant` sees, of the default window: the counts every page shows.
async fn open_items(log: &AuditLog, grant: &Grant, limit: u32) -> Result<gridsync_store::audit::OpenItems, ApiError> {
    let now = now_ms();
    Ok(visible_open(log.open_items(now, now - DEFAULT_OPEN_WINDOW_MS, limit).await?, grant))
}

/// A table as CSV (`name.csv`); a cell that a spreadsheet would run as a formula is made text.
fn csv_table(name: &str, header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> Response {
    fn cell(value: &str) -> String {
        let value =
            if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value.to_owned() };
        if value.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", value.replace('"', "\"\""))
        } else {
            value
        }
    }
    let mut out = header.join(",");
    out.push_str("\r\n");
    for row in rows {
        out.push_str(&row.iter().map(|v| cell(v)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    let disposition = format!("attachment; filename=\"{name}.csv\"");
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, disposition)], out)
        .into_response()
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// `entries` as CSV, one event a row.
fn csv(entries: &[gridsync_store::audit::AuditEntry], name: &str) -> Response {
    let header = [
        "event_id",
        "event_type",
        "source_system",
        "partner",
        "business_key",
        "seen_at",
        "occurred_at",
        "status",
        "action",
        "content_item_id",
        "content_version",
        "summary",
    ];
    let rows = entries.iter().map(|e| {
        vec![
            e.event_id.clone(),
            e.event_type.clone(),
            e.source_system.clone(),
            e.partner.clone(),
            e.business_key.clone(),
            iso(e.seen_at),
            iso(e.occurred_at),
            e.status.clone().unwrap_or_default(),
            e.action.clone().unwrap_or_default(),
            e.content_item_id.clone().unwrap_or_default(),
            e.content_version.map(|v| v.to_string()).unwrap_or_default(),
            e.summary.clone(),
        ]
    });
    csv_table(name, &header, rows)
}

/// Whether the answer is asked for as CSV (`format=csv`); JSON otherwise.
fn wants_csv(format: Option<&str>) -> Result<bool, ApiError> {
    match format {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(other) => Err(ApiError(StatusCode::BAD_REQUEST, format!("format={other:?}: csv or json"))),
    }
}

fn forbidden(what: &str) -> ApiError {
    ApiError(StatusCode::FORBIDDEN, format!("this token does not see {what}"))
}

/// The lineage of `reference` as `grant` sees it, each event with its references, in causal
/// order ([`crate::order`]).
async fn visible_lineage(
    log: &AuditLog,
    reference: &str,
    partner: Option<&str>,
    page: &PageRequest,
    grant: &Grant,
) -> Result<gridsync_store::audit::Lineage, ApiError> {
    let mut lineage = log.lineage(reference, partner, page).await?;
    if !grant.sees_all() {
        lineage.events.items.retain(|e| grant.sees(&e.partner));
        lineage.total = lineage.events.items.len();
    }
    log.with_refs(&mut lineage.events.items).await?;
    let items = std::mem::take(&mut lineage.events.items);
    lineage.events.items = crate::order::causal(items).into_iter().map(|placed| placed.entry).collect();
    Ok(lineage)
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
    /// `csv` or `json` (the default).
    pub format: Option<String>,
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
    /// `csv` or `json` (the default).
    format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
    /// `csv` or `json` (the default).
    format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    consumer: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
    /// `csv` or `json` (the default).
    format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    q: Option<String>,
    partner: Option<String>,
    cursor: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Only events gridsync learned of on or after this day (`YYYY-MM-DD`, UTC).
    from: Option<String>,
    /// ... and on or before this day.
    to: Option<String>,
    /// Only events of this flow (its number, as the report lists the flows).
    flow: Option<String>,
    /// `1`: every open item read, not the first of each list.
    all: Option<String>,
}

/// Milliseconds of the start of `day` (`YYYY-MM-DD`, UTC), plus `days`; a 400 naming `name`.
fn day_start(name: &str, day: &str, days: i64) -> Result<i64, ApiError> {
    let date = chrono::NaiveDate::parse_from_str(day.trim(), "%Y-%m-%d")
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("{name}={day:?} is not a day (YYYY-MM-DD): {e}")))?;
    let start = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis()).unwrap_or_default();
    Ok(start + days * 24 * 3600 * 1000)
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
    let csv_wanted = wants_csv(q.format.as_deref())?;
    let page = PageRequest { cursor: q.cursor, limit: q.limit };
    let lineage = visible_lineage(&view.log, &q.reference, q.partner.as_deref(), &page, &grant).await?;
    if csv_wanted {
        return Ok(csv(&lineage.events.items, &format!("lineage-{}", safe_name(&q.reference))));
    }
    json(lineage)
}

/// `text` as part of a file name.
fn safe_name(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
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
    let events = view.log.partner_activity(&partner, from, to, &page).await?;
    if wants_csv(q.format.as_deref())? {
        return Ok(csv(&events.items, &format!("partner-{}", safe_name(&partner))));
    }
    json(serde_json::json!({
        "partner": partner,
        "from": from,
        "to": to,
        "from_time": iso(from),
        "to_time": iso(to),
        "events": events,
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
    if wants_csv(q.format.as_deref())? {
        return Ok(csv(&events.items, &format!("content-{}", safe_name(&id))));
    }
    json(serde_json::json!({ "content_item_id": id, "uses": uses, "events": events }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenQuery {
    since: Option<String>,
    limit: Option<u32>,
    /// `csv` or `json` (the default).
    format: Option<String>,
}

async fn open(State(view): State<View>, Extension(grant): Extension<Grant>, Query(q): Query<OpenQuery>) -> ApiResult {
    let now = now_ms();
    let since = q.since.as_deref().map(|t| parse_time("since", t)).transpose()?.unwrap_or(now - DEFAULT_OPEN_WINDOW_MS);
    let open = visible_open(view.log.open_items(now, since, q.limit.unwrap_or(100)).await?, &grant);
    if wants_csv(q.format.as_deref())? {
        let lists = [
            ("unacknowledged_document", &open.unacknowledged_documents),
            ("unread_package", &open.unread_packages),
            ("unresolved_task", &open.unresolved_tasks),
            ("overdue_invoice", &open.overdue_invoices),
        ];
        let rows = lists.into_iter().flat_map(|(what, items)| {
            items.iter().map(move |i| {
                vec![
                    what.to_owned(),
                    i.partner.clone(),
                    i.subject.clone(),
                    iso(i.since),
                    i.event_id.clone(),
                    i.summary.clone(),
                ]
            })
        });
        return Ok(csv_table("open", &["open", "partner", "subject", "since", "event_id", "summary"], rows));
    }
    json(open)
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
    let letters = view.log.dead_letters(q.consumer.as_deref(), &page).await?;
    if wants_csv(q.format.as_deref())? {
        let header = [
            "consumer",
            "failed_at",
            "stage",
            "error_class",
            "error_message",
            "original_topic",
            "original_partition",
            "original_offset",
            "key",
            "topic",
            "partition",
            "offset",
        ];
        let rows = letters.items.iter().map(|l| {
            vec![
                l.consumer.clone(),
                l.failed_at.clone(),
                l.stage.clone(),
                l.error_class.clone(),
                l.error_message.clone(),
                l.original_topic.clone().unwrap_or_default(),
                l.original_partition.map(|p| p.to_string()).unwrap_or_default(),
                l.original_offset.map(|o| o.to_string()).unwrap_or_default(),
                l.key.clone().unwrap_or_default(),
                l.topic.clone(),
                l.partition.to_string(),
                l.offset.to_string(),
            ]
        });
        return Ok(csv_table("dead-letters", &header, rows));
    }
    json(letters)
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
    let nonempty = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    let (event_type, from, to) = (nonempty(&q.event_type), nonempty(&q.from), nonempty(&q.to));
    let flow = match nonempty(&q.flow) {
        Some(n) => Some(n.parse::<u8>().ok().filter(|n| crate::flows::flow(*n).is_some()).ok_or_else(|| {
            let known = crate::flows::flows().len();
            ApiError(StatusCode::BAD_REQUEST, format!("flow={n:?} is not a flow (1 to {known})"))
        })?),
        None => None,
    };
    let from_ms = from.as_deref().map(|d| day_start("from", d, 0)).transpose()?;
    let to_ms = to.as_deref().map(|d| day_start("to", d, 1)).transpose()?;
    let lineage = match reference {
        Some(r) => {
            let mut lineage = visible_lineage(log, r, partner, &page, &grant).await?;
            // The flows each event belongs to, a side effect's by the event that caused it.
            let of_flow: std::collections::HashSet<String> = match flow {
                Some(flow) => {
                    let by_id: std::collections::HashMap<&str, &gridsync_store::audit::AuditEntry> =
                        lineage.events.items.iter().map(|e| (e.event_id.as_str(), e)).collect();
                    let cause = |e: &gridsync_store::audit::AuditEntry| {
                        crate::order::cause_of(e).and_then(|id| by_id.get(id).copied())
                    };
                    lineage
                        .events
                        .items
                        .iter()
                        .filter(|e| crate::flows::flows_of(e, cause(e)).contains(&flow))
                        .map(|e| e.event_id.clone())
                        .collect()
                }
                None => Default::default(),
            };
            // The filters narrow what is shown; the order stays the transaction's.
            lineage.events.items.retain(|e| {
                flow.is_none_or(|_| of_flow.contains(&e.event_id))
                    && event_type.as_ref().is_none_or(|t| &e.event_type == t)
                    && from_ms.is_none_or(|f| e.seen_at >= f)
                    && to_ms.is_none_or(|t| e.seen_at < t)
            });
            lineage.total = lineage.events.items.len();
            Some(lineage)
        }
        None => None,
    };
    let mut uses = match reference {
        Some(r) => log.content_uses(r, &PageRequest::first(100)).await?.items,
        None => Vec::new(),
    };
    uses.retain(|u| grant.sees(&u.partner));
    let open = open_items(log, &grant, page::OPEN_FETCHED as u32).await?;
    let form = page::SearchForm {
        reference,
        partner,
        event_type: event_type.as_deref(),
        flow,
        all: q.all.as_deref() == Some("1"),
        from: from.as_deref(),
        to: to.as_deref(),
    };
    Ok(Html(page::search(&form, lineage.as_ref(), &uses, &open, &view.names)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerPageQuery {
    cursor: Option<String>,
}

async fn partner_page(
    State(view): State<View>,
    Extension(grant): Extension<Grant>,
    Path(partner): Path<String>,
    Query(q): Query<PartnerPageQuery>,
) -> Result<Response, ApiError> {
    if !grant.sees(&partner) {
        return Err(forbidden(&format!("partner {partner}")));
    }
    let to = now_ms() + 1;
    let page = PageRequest { cursor: q.cursor, limit: Some(100) };
    let events = view.log.partner_activity(&partner, to - DEFAULT_PARTNER_WINDOW_MS, to, &page).await?;
    let latencies = view.log.acknowledgement_latencies(&partner, to - DEFAULT_PARTNER_WINDOW_MS, to).await?;
    let header = open_items(&view.log, &grant, page::OPEN_FETCHED as u32).await?;
    let mut theirs = header.clone();
    for list in [
        &mut theirs.unacknowledged_documents,
        &mut theirs.unread_packages,
        &mut theirs.unresolved_tasks,
        &mut theirs.overdue_invoices,
    ] {
        list.retain(|item| item.partner == partner);
    }
    let page = page::PartnerPage { partner: &partner, events: &events, latencies: &latencies, open: &theirs };
    Ok(Html(page::partner_page(&page, &header, &view.names)).into_response())
}

async fn event_page(
    State(view): State<View>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match view.log.event(&id).await?.filter(|e| grant.sees(&e.partner)) {
        Some(entry) => {
            let open = open_items(&view.log, &grant, page::OPEN_FETCHED as u32).await?;
            Ok(Html(page::event(&entry, &open, &view.names)).into_response())
        }
        None => Ok((StatusCode::NOT_FOUND, Html(page::not_found(&id))).into_response()),
    }
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], page::STYLE).into_response()
}

async fn local_time() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], page::LOCAL_TIME).into_response()
}

async fn login_form(State(view): State<View>) -> Response {
    if !view.access.requires_login() {
        return Redirect::to("/").into_response();
    }
    Html(page::login(None, view.access.oidc().is_some())).into_response()
}

/// Off to the company's provider to sign in.
async fn oidc_login(State(view): State<View>) -> Response {
    match view.access.oidc() {
        Some(oidc) => Redirect::to(&oidc.sign_in_url()).into_response(),
        None => Redirect::to("/login").into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Back from the provider: a session for what the sign-in grants, or the login page saying why not.
async fn oidc_callback(State(view): State<View>, headers: HeaderMap, Query(back): Query<Callback>) -> Response {
    let refused = |why: String| {
        tracing::warn!(%why, "audit sign-in refused");
        (StatusCode::UNAUTHORIZED, Html(page::login(Some(&why), true))).into_response()
    };
    let Some(oidc) = view.access.oidc() else { return Redirect::to("/login").into_response() };
    let (Some(code), Some(state)) = (back.code, back.state) else {
        return refused(format!("the provider answered {}", back.error.as_deref().unwrap_or("without a code")));
    };
    match oidc.finish_sign_in(&code, &state).await {
        Ok((grant, lasts)) => {
            tracing::info!(who = %grant.name, "audit sign-in");
            let session = view.access.person_signed_in(grant, lasts);
            ([(header::SET_COOKIE, session_cookie_header(&session, &headers))], Redirect::to("/")).into_response()
        }
        Err(e) => refused(e.to_string()),
    }
}

/// The `Set-Cookie` value of a new session: Secure when the request came through TLS.
fn session_cookie_header(session: &str, headers: &HeaderMap) -> String {
    let secure = headers.get("x-forwarded-proto").is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    format!(
        "{}={session}; Path=/; HttpOnly; SameSite=Lax; Max-Age=28800{}",
        access::SESSION_COOKIE,
        if secure { "; Secure" } else { "" }
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginForm {
    token: String,
}

async fn login(State(view): State<View>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    let Some((session, grant)) = view.access.login(&form.token) else {
        tracing::warn!("audit login refused: not a valid token");
        let oidc = view.access.oidc().is_some();
        return (StatusCode::UNAUTHORIZED, Html(page::login(Some("That token is not valid."), oidc))).into_response();
    };
    tracing::info!(token = %grant.name, "audit login");
    ([(header::SET_COOKIE, session_cookie_header(&session, &headers))], Redirect::to("/")).into_response()
}

async fn logout(State(view): State<View>, headers: HeaderMap) -> Response {
    if let Some(session) = access::session_cookie(&headers) {
        view.access.logout(session);
    }
    let cookie = format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", access::SESSION_COOKIE);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

pub fn router(log: AuditLog, access: Arc<Access>, names: page::Names) -> Router {
    let view = View { log, access: access.clone(), names: Arc::new(names) };
    Router::new()
        .route("/", get(search_page))
        .route("/partners/{partner}", get(partner_page))
        .route("/events/{id}", get(event_page))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/oidc/login", get(oidc_login))
        .route("/oidc/callback", get(oidc_callback))
        .route(page::STYLE_PATH, get(style))
        .route(page::LOCAL_TIME_PATH, get(local_time))
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
    names: page::Names,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = router(log, access, names);
    gridsync_core::serve::bind(addr, app, gridsync_core::serve::Limits::default(), shutdown).await
}
