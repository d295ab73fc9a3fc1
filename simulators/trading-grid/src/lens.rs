//! The Lens endpoints: token, transaction search, and the `/__sim` controls.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, Mutex, PoisonError,
};

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use gridsync_sim_support::{faults::Faults, tokens::Tokens};
use gridsync_trading_grid::lens::{parse_lens_time, LensTransaction};
use serde_json::{json, Value};

use crate::SimConfig;

/// The scopes of `POST /__sim/faults`: the search (default) and the token endpoint.
pub const FAULT_SCOPES: &[&str] = &["lens", "token"];

/// What Lens knows: every transaction, by id, in the order they were recorded.
#[derive(Debug, Default)]
pub struct Ledger {
    transactions: Mutex<Vec<LensTransaction>>,
    searches: AtomicU64,
}

impl Ledger {
    /// Adds a transaction, or replaces the one with its id (a status change).
    pub fn upsert(&self, transaction: LensTransaction) {
        let mut all = self.transactions.lock().unwrap_or_else(PoisonError::into_inner);
        match all.iter_mut().find(|t| t.transactionid == transaction.transactionid) {
            Some(existing) => *existing = transaction,
            None => all.push(transaction),
        }
    }

    pub fn all(&self) -> Vec<LensTransaction> {
        self.transactions.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn get(&self, id: &str) -> Option<LensTransaction> {
        self.all().into_iter().find(|t| t.transactionid == id)
    }

    /// Searches answered so far.
    pub fn searches(&self) -> u64 {
        self.searches.load(Ordering::Relaxed)
    }
}

struct SimState {
    config: SimConfig,
    ledger: Arc<Ledger>,
    tokens: Arc<Tokens>,
    faults: Arc<Faults>,
}

type Shared = Arc<SimState>;

pub fn router(config: SimConfig, ledger: Arc<Ledger>) -> Router {
    let state =
        Arc::new(SimState { config, ledger, tokens: Arc::default(), faults: Arc::new(Faults::new(FAULT_SCOPES)) });
    Router::new()
        .route("/v1/oauth2/tokens", post(token))
        .route("/visibility_transaction_search", post(search))
        .layer(middleware::from_fn_with_state(state.clone(), inject_faults))
        .merge(gridsync_sim_support::faults::router(state.faults.clone()))
        .merge(gridsync_sim_support::tokens::router(state.tokens.clone()))
        .route("/__sim/transactions", get(list_transactions).post(add_transactions))
        .route("/__sim/stats", get(stats))
        .route("/readyz", get(|| async { "ready\n" }))
        .with_state(state)
}

fn fault_body(status: StatusCode) -> Value {
    json!({ "error": status.canonical_reason().unwrap_or("error"), "message": "injected fault" })
}

async fn inject_faults(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let scope = if request.uri().path().starts_with("/v1/oauth2") { "token" } else { "lens" };
    state.faults.apply(scope, request, next, fault_body).await
}

/// `Authorization: Basic base64(key:secret)` as (key, secret).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.get(..6).filter(|p| p.eq_ignore_ascii_case("basic ")).map(|_| value[6..].trim())?;
    let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let (key, secret) = decoded.split_once(':')?;
    Some((key.to_owned(), secret.to_owned()))
}

async fn token(State(state): State<Shared>, request: Request) -> Response {
    let query = request.uri().query().unwrap_or_default().to_owned();
    let headers = request.headers().clone();
    let body = axum::body::to_bytes(request.into_body(), 64 * 1024).await.unwrap_or_default();
    let form = String::from_utf8_lossy(&body);
    let grant = [query.as_str(), &form].iter().any(|q| q.split('&').any(|p| p == "grant_type=client_credentials"));
    let known = basic_credentials(&headers)
        .filter(|(key, secret)| state.config.consumers.iter().any(|c| &c.key == key && &c.secret == secret));
    let Some((key, _)) = known.filter(|_| grant) else {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "invalid_client" }))).into_response();
    };
    let token = state.tokens.issue(&key, state.config.token_ttl);
    Json(json!({ "access_token": token, "token_type": "Bearer", "expires_in": state.config.token_ttl.as_secs() }))
        .into_response()
}

/// The value of argument `name` in the GraphQL text: a number or a JSON-style string.
fn argument(query: &str, name: &str) -> Option<String> {
    let at = query.find(&format!("{name}: "))? + name.len() + 2;
    let rest = &query[at..];
    if rest.starts_with('"') {
        let mut strings = serde_json::Deserializer::from_str(rest).into_iter::<String>();
        return strings.next()?.ok();
    }
    Some(rest.chars().take_while(char::is_ascii_digit).collect()).filter(|s: &String| !s.is_empty())
}

async fn search(State(state): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if state.tokens.client(&headers).is_none() {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "invalid_token" }))).into_response();
    }
    state.ledger.searches.fetch_add(1, Ordering::Relaxed);
    let Some(query) = body.get("query").and_then(Value::as_str).filter(|q| q.contains("getTransactions")) else {
        return Json(json!({ "errors": [{ "message": "expected a getTransactions query" }] })).into_response();
    };
    let count: usize = argument(query, "count").and_then(|c| c.parse().ok()).unwrap_or(25).clamp(1, 1000);
    // A scroll id is the offset the next page starts at.
    let offset: usize = argument(query, "scrollid")
        .and_then(|s| s.strip_prefix("scroll-").and_then(|n| n.parse().ok()))
        .or_else(|| argument(query, "offset").and_then(|o| o.parse().ok()))
        .unwrap_or(0);
    let since = argument(query, "from").and_then(|f| parse_lens_time(&f));
    let mut matching: Vec<LensTransaction> = state
        .ledger
        .all()
        .into_iter()
        .filter(|t| match (since, t.statusdate.as_deref().and_then(parse_lens_time)) {
            (Some(since), Some(at)) => at >= since,
            (Some(_), None) => false,
            (None, _) => true,
        })
        .collect();
    matching.sort_by_key(|t| t.statusdate.as_deref().and_then(parse_lens_time));
    let total = matching.len();
    let page: Vec<LensTransaction> = matching.into_iter().skip(offset).take(count).collect();
    let next = offset + page.len();
    let scrollid = (next < total).then(|| format!("scroll-{next}"));
    Json(json!({ "data": { "getTransactions": {
        "count": page.len(), "total": total, "offset": offset, "scrollid": scrollid, "transactions": page,
    } } }))
    .into_response()
}

async fn list_transactions(State(state): State<Shared>) -> Json<Vec<LensTransaction>> {
    Json(state.ledger.all())
}

async fn add_transactions(State(state): State<Shared>, Json(transactions): Json<Vec<LensTransaction>>) -> StatusCode {
    for transaction in transactions {
        state.ledger.upsert(transaction);
    }
    StatusCode::NO_CONTENT
}

async fn stats(State(state): State<Shared>) -> Json<Value> {
    Json(json!({ "searches": state.ledger.searches(), "transactions": state.ledger.all().len() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_read_from_the_query_text() {
        let q = r#"query { getTransactions(query: {count: 50, offset: 100, ranges: [{field: "statusdate", from: "2026-11-25T10:00:00Z"}], scrollid: "scroll-\"7"}) { count } }"#;
        assert_eq!(argument(q, "count").as_deref(), Some("50"));
        assert_eq!(argument(q, "offset").as_deref(), Some("100"));
        assert_eq!(argument(q, "from").as_deref(), Some("2026-11-25T10:00:00Z"));
        assert_eq!(argument(q, "scrollid").as_deref(), Some("scroll-\"7"));
        assert_eq!(argument(q, "sortby"), None);
    }
}
