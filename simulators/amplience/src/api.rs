//! The HTTP face of the simulator: Amplience's token endpoint, Management API
//! and Delivery API on one port, plus `/__sim/*` controls for tests.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::{Form, Path, Query, Request, State},
    http::{header, HeaderMap, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, patch, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};

use gridsync_sim_support::{faults::Faults, tokens::Tokens};

use crate::{
    admin,
    hub::{Change, Hub, HubError},
    limits::Limits,
    media::{self, MediaStore},
    webhooks::WebhookSender,
};

/// A client allowed to get tokens.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: String,
}

pub struct SimState {
    pub hub: Mutex<Hub>,
    pub faults: Arc<Faults>,
    pub clients: Vec<Client>,
    pub token_ttl: Duration,
    /// Issued tokens: client id and expiry.
    tokens: Arc<Tokens>,
    pub webhooks: WebhookSender,
    /// Requests answered, by status.
    answered: Mutex<HashMap<u16, u64>>,
    /// The media CDN's assets.
    pub media: MediaStore,
    /// The Management API's request rate and the publish limit.
    pub limits: Limits,
}

pub(crate) type Shared = Arc<SimState>;

impl SimState {
    pub fn new(hub: Hub, clients: Vec<Client>, token_ttl: Duration, webhooks: WebhookSender, limits: Limits) -> Self {
        SimState {
            hub: Mutex::new(hub),
            faults: Arc::new(Faults::new(FAULT_SCOPES)),
            clients,
            token_ttl,
            tokens: Arc::default(),
            webhooks,
            answered: Mutex::default(),
            media: MediaStore::default(),
            limits,
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicked handler must not take the simulator down with it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn error(err: HubError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(err.body())).into_response()
}

/// `value` with status `ok` (no body for 204), or the error in Amplience's shape.
pub(crate) fn answer(result: Result<Value, HubError>, ok: StatusCode) -> Response {
    match result {
        Ok(_) if ok == StatusCode::NO_CONTENT => ok.into_response(),
        Ok(value) => (ok, Json(value)).into_response(),
        Err(e) => error(e),
    }
}

/// A request body as JSON; 400 in Amplience's shape when it is not.
pub(crate) fn parse(body: &Bytes) -> Result<Value, HubError> {
    serde_json::from_slice(body)
        .map_err(|e| HubError::new(400, "REQUEST_INVALID", format!("the body is not JSON: {e}")))
}

pub fn router(state: Shared) -> Router {
    let management = Router::new()
        .route("/hubs/{hub}", get(admin::get_hub))
        .route("/hubs/{hub}/workflow-states", get(workflow_states))
        .route("/hubs/{hub}/content-repositories", get(admin::list_repositories))
        .route("/hubs/{hub}/content-type-schemas", get(admin::list_schemas).post(admin::create_schema))
        .route("/hubs/{hub}/content-types", get(admin::list_types).post(admin::register_type))
        .route("/hubs/{hub}/webhooks", get(admin::list_webhooks).post(admin::create_webhook))
        .route(
            "/hubs/{hub}/webhooks/{id}",
            get(admin::get_webhook).patch(admin::update_webhook).delete(admin::delete_webhook),
        )
        .route("/content-type-schemas/{id}", get(admin::get_schema).patch(admin::update_schema))
        .route("/content-types/{id}", get(admin::get_type).patch(admin::update_type))
        .route("/content-types/{id}/schema", get(admin::get_cached_schema).patch(admin::sync_cached_schema))
        .route("/content-repositories/{repo}", get(admin::get_repository))
        .route("/content-repositories/{repo}/content-types", post(admin::assign_type))
        .route("/content-repositories/{repo}/content-types/{id}", delete(admin::unassign_type))
        .route("/content-repositories/{repo}/content-items", post(create_item).get(list_items))
        .route("/content-items/{id}", get(get_item).patch(update_item))
        .route("/content-items/{id}/workflow", patch(assign_workflow))
        .route("/content-items/{id}/publish", post(publish))
        .route("/publishing-jobs/{id}", get(publishing_job))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_rate));
    Router::new()
        .route("/oauth/token", post(token))
        .nest("/v2/content", management)
        .route("/content/id/{id}", get(delivery_by_id))
        .route("/content/key/{*key}", get(delivery_by_key))
        .route("/i/{endpoint}/{*name}", get(media::get))
        .route("/v/{endpoint}/{*name}", get(media::get))
        .layer(middleware::from_fn_with_state(state.clone(), inject_faults))
        .merge(gridsync_sim_support::faults::router(state.faults.clone()))
        .merge(gridsync_sim_support::tokens::router(state.tokens.clone()))
        .route("/__sim/webhooks", get(webhook_log))
        .route("/__sim/webhooks/{id}/redeliver", post(redeliver))
        .route("/__sim/stats", get(stats))
        .route("/__sim/demo", post(demo))
        .route("/__sim/items", get(items_by_key_prefix))
        .route("/__sim/editions", post(publish_edition))
        .route("/__sim/media/{endpoint}/{*name}", axum::routing::put(media::put))
        .route("/readyz", get(|| async { "ready\n" }))
        .with_state(state)
}

/// The scopes of `POST /__sim/faults`: the Management API (default), the token endpoint, the
/// content CDN, the media CDN.
pub const FAULT_SCOPES: &[&str] = &["api", "token", "delivery", "media"];

/// Amplience's error body for an injected status.
fn fault_body(status: StatusCode) -> serde_json::Value {
    let code = if status == StatusCode::TOO_MANY_REQUESTS { "TOO_MANY_REQUESTS" } else { "SERVER_ERROR" };
    json!({ "errors": [{ "level": "ERROR", "code": code, "message": "injected fault" }] })
}

/// Applies the next queued fault for the request's scope, and counts answers.
async fn inject_faults(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let scope = if path.starts_with("/oauth") {
        "token"
    } else if path.starts_with("/content/") {
        "delivery"
    } else if path.starts_with("/i/") || path.starts_with("/v/") {
        "media"
    } else {
        "api"
    };
    let response = state.faults.apply(scope, request, next, fault_body).await;
    *lock(&state.answered).entry(response.status().as_u16()).or_default() += 1;
    response
}

/// 429 with `Retry-After` past the Management API's request rate (and, for publishes, past
/// the publish limit), before anything else is looked at.
async fn limit_rate(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let publish = request.method() == axum::http::Method::POST && request.uri().path().ends_with("/publish");
    match state.limits.admit(publish) {
        Ok(()) => next.run(request).await,
        Err(retry_after) => {
            let mut response = error(HubError::new(429, "TOO_MANY_REQUESTS", "rate limit exceeded"));
            response.headers_mut().insert(header::RETRY_AFTER, retry_after.into());
            response
        }
    }
}

/// The client id behind a request's bearer token; 401 when missing or expired.
#[derive(Clone)]
pub(crate) struct Actor(pub String);

async fn authenticate(State(state): State<Shared>, mut request: Request, next: Next) -> Response {
    match state.tokens.client(request.headers()) {
        Some(actor) => {
            request.extensions_mut().insert(Actor(actor));
            next.run(request).await
        }
        None => error(HubError::new(401, "UNAUTHORIZED", "missing, unknown or expired token")),
    }
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: String,
    client_id: String,
    client_secret: String,
}

async fn token(State(state): State<Shared>, Form(form): Form<TokenRequest>) -> Response {
    let known = state.clients.iter().any(|c| c.id == form.client_id && c.secret == form.client_secret);
    if form.grant_type != "client_credentials" || !known {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "invalid_client" }))).into_response();
    }
    let token = state.tokens.issue(&form.client_id, state.token_ttl);
    Json(json!({ "access_token": token, "token_type": "bearer", "expires_in": state.token_ttl.as_secs() }))
        .into_response()
}

async fn workflow_states(State(state): State<Shared>, Path(hub): Path<String>) -> Response {
    let hub_state = lock(&state.hub);
    if hub_state.hub_id != hub {
        return error(HubError::new(404, "HUB_NOT_FOUND", format!("no hub {hub}")));
    }
    Json(hub_state.states_page()).into_response()
}

fn actor(request_actor: &axum::Extension<Actor>) -> &str {
    &request_actor.0 .0
}

async fn create_item(
    State(state): State<Shared>,
    actor_ext: axum::Extension<Actor>,
    Path(repo): Path<String>,
    body: Bytes,
) -> Response {
    let created = parse(&body).and_then(|r| lock(&state.hub).create(&repo, r, actor(&actor_ext))).map(|i| json!(i));
    answer(created, StatusCode::CREATED)
}

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    #[serde(default)]
    pub page: usize,
    #[serde(default = "twenty")]
    pub size: usize,
    /// Spring's `field[,asc|desc]`, as the Management API's list links offer it (`{?page,size,sort}`).
    #[serde(default)]
    pub sort: Option<String>,
}

fn twenty() -> usize {
    20
}

async fn list_items(State(state): State<Shared>, Path(repo): Path<String>, Query(q): Query<PageQuery>) -> Response {
    answer(lock(&state.hub).page(&repo, q.page, q.size, q.sort.as_deref()), StatusCode::OK)
}

async fn get_item(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    answer(lock(&state.hub).item(&id).map(|i| json!(i)), StatusCode::OK)
}

async fn update_item(
    State(state): State<Shared>,
    actor_ext: axum::Extension<Actor>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let updated = parse(&body).and_then(|r| lock(&state.hub).update(&id, r, actor(&actor_ext))).map(|i| json!(i));
    answer(updated, StatusCode::OK)
}

async fn assign_workflow(
    State(state): State<Shared>,
    actor_ext: axum::Extension<Actor>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let result = parse(&body).and_then(|r| lock(&state.hub).assign_workflow(&id, r, actor(&actor_ext)));
    match result {
        Ok((item, change)) => {
            state.webhooks.send(&change);
            Json(json!(item)).into_response()
        }
        Err(e) => error(e),
    }
}

async fn publish(State(state): State<Shared>, actor_ext: axum::Extension<Actor>, Path(id): Path<String>) -> Response {
    let result = lock(&state.hub).publish(&id, actor(&actor_ext));
    match result {
        Ok(change) => {
            state.webhooks.send(&change);
            let job = uuid::Uuid::new_v4();
            let mut headers = HeaderMap::new();
            if let Ok(location) = format!("/v2/content/publishing-jobs/{job}").parse() {
                headers.insert(header::LOCATION, location);
            }
            (StatusCode::ACCEPTED, headers, Body::empty()).into_response()
        }
        Err(e) => error(e),
    }
}

async fn publishing_job(Path(id): Path<String>) -> Json<Value> {
    Json(json!({ "id": id, "state": "COMPLETED" }))
}

fn delivered(content: Option<Value>, what: &str) -> Response {
    match content {
        Some(content) => Json(json!({ "content": content })).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({ "error": { "type": "CONTENT_NOT_FOUND", "message": what } })))
            .into_response(),
    }
}

async fn delivery_by_id(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    delivered(lock(&state.hub).published_by_id(&id), &format!("no published content with id {id}"))
}

async fn delivery_by_key(State(state): State<Shared>, Path(key): Path<String>) -> Response {
    delivered(lock(&state.hub).published_by_key(&key), &format!("no published content with key {key}"))
}

async fn webhook_log(State(state): State<Shared>) -> Json<Value> {
    Json(json!(state.webhooks.log()))
}

async fn redeliver(State(state): State<Shared>, Path(id): Path<String>) -> StatusCode {
    if state.webhooks.redeliver(&id) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn stats(State(state): State<Shared>) -> Json<Value> {
    let hub = lock(&state.hub);
    let answered: HashMap<String, u64> = lock(&state.answered).iter().map(|(k, v)| (k.to_string(), *v)).collect();
    Json(json!({ "creates": hub.creates, "answered": answered, "media_fetches": state.media.fetches() }))
}

/// Plays what people do in Amplience, as `demo.user`: finance confirms a
/// payment, a dispute is resolved, legal approves and publishes a contract.
/// Each change fires its webhook, as in a real hub.
#[derive(Deserialize)]
struct EditionRequest {
    name: String,
    items: Vec<String>,
    #[serde(default = "editor")]
    by: String,
}

fn editor() -> String {
    "demo.user".into()
}

/// Publishes items together as an edition, and fires `edition.published`.
async fn publish_edition(State(state): State<Shared>, Json(request): Json<EditionRequest>) -> Response {
    let change = lock(&state.hub).publish_edition(&request.name, &request.items, &request.by);
    let sent = change.map(|change| {
        let webhook = state.webhooks.send(&change);
        let Change::EditionPublished { edition_id, .. } = change else { return json!({}) };
        json!({ "edition": edition_id, "webhook": webhook })
    });
    answer(sent, StatusCode::CREATED)
}

#[derive(Deserialize)]
struct PrefixQuery {
    #[serde(default)]
    prefix: String,
}

/// Items by delivery-key prefix (`?prefix=gridsync/`), with their workflow state's label.
async fn items_by_key_prefix(State(state): State<Shared>, Query(q): Query<PrefixQuery>) -> Json<Value> {
    Json(json!({ "items": lock(&state.hub).items_with_key_prefix(&q.prefix) }))
}

async fn demo(State(state): State<Shared>) -> Response {
    let result = crate::demo::play(&state);
    answer(result.map(|ids| json!({ "items": ids })), StatusCode::CREATED)
}
