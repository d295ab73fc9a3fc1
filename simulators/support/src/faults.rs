//! Faults a test or a developer injects into a simulator: each applies to
//! the next requests of its scope, in order, so a scenario ("three 429s, then
//! a slow answer") plays out exactly.

use std::{
    collections::VecDeque,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

/// One fault, as posted to a simulator's `POST /__sim/faults`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Answer with this status instead (401, 429, 500, 503, ...).
    #[serde(default)]
    pub status: Option<u16>,
    /// `Retry-After` seconds sent with the status.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Delay the answer by this long (then answer normally, or with `status`).
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Answer normally but cut the body off after this many bytes, as a
    /// dropped connection does (the `Content-Length` still announces it all).
    #[serde(default)]
    pub truncate_after_bytes: Option<u64>,
    /// How many requests the fault applies to.
    #[serde(default = "one")]
    pub count: u32,
    /// Which requests: one of the simulator's scopes, or `any`; the
    /// simulator's main API when absent.
    #[serde(default)]
    pub scope: Option<String>,
}

fn one() -> u32 {
    1
}

/// What to do to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub status: Option<u16>,
    pub retry_after: Option<u64>,
    pub delay: Duration,
    pub truncate_after_bytes: Option<u64>,
}

/// The queue of a simulator's faults, with the scopes it knows.
#[derive(Debug)]
pub struct Faults {
    scopes: &'static [&'static str],
    queue: Mutex<VecDeque<(String, FaultSpec)>>,
}

impl Faults {
    /// `scopes[0]` is the default scope.
    pub fn new(scopes: &'static [&'static str]) -> Self {
        Faults { scopes, queue: Mutex::default() }
    }

    /// Queues a fault; an unknown scope is refused with the known ones.
    pub fn push(&self, spec: FaultSpec) -> Result<(), String> {
        let scope = spec.scope.clone().unwrap_or_else(|| self.scopes.first().copied().unwrap_or("any").to_owned());
        if scope != "any" && !self.scopes.contains(&scope.as_str()) {
            return Err(format!("unknown scope {scope:?}; known: any, {}", self.scopes.join(", ")));
        }
        if spec.count > 0 {
            self.queue.lock().unwrap_or_else(PoisonError::into_inner).push_back((scope, spec));
        }
        Ok(())
    }

    /// The faults still queued, each with its scope and the requests it has left.
    pub fn queued(&self) -> Vec<FaultSpec> {
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.iter().map(|(scope, spec)| FaultSpec { scope: Some(scope.clone()), ..spec.clone() }).collect()
    }

    pub fn clear(&self) {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Takes the fault for a request in `scope`, if one is queued for it.
    pub fn take(&self, scope: &str) -> Option<Fault> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let index = queue.iter().position(|(s, _)| s == scope || s == "any")?;
        let (_, spec) = queue.get_mut(index)?;
        spec.count -= 1;
        let fault = Fault {
            status: spec.status,
            retry_after: spec.retry_after,
            delay: Duration::from_millis(spec.delay_ms.unwrap_or(0)),
            truncate_after_bytes: spec.truncate_after_bytes,
        };
        if spec.count == 0 {
            queue.remove(index);
        }
        Some(fault)
    }

    /// Answers `request`: delayed and/or replaced by the next fault of
    /// `scope`, the error body in the API's own shape (`error_body`).
    pub async fn apply(
        &self,
        scope: &str,
        request: Request,
        next: Next,
        error_body: fn(StatusCode) -> serde_json::Value,
    ) -> Response {
        let Some(fault) = self.take(scope) else { return next.run(request).await };
        if !fault.delay.is_zero() {
            tokio::time::sleep(fault.delay).await;
        }
        let response = match fault.status.and_then(|s| StatusCode::from_u16(s).ok()) {
            Some(status) => {
                let mut response = (status, Json(error_body(status))).into_response();
                if let Some(seconds) = fault.retry_after {
                    response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
                }
                response
            }
            None => next.run(request).await,
        };
        match fault.truncate_after_bytes {
            Some(limit) => cut_after(response, limit),
            None => response,
        }
    }
}

/// `response` with its body ending in an error after `limit` bytes: the server
/// then drops the connection mid-body, as a failing network does.
fn cut_after(response: Response, limit: u64) -> Response {
    let (parts, body) = response.into_parts();
    let cut = futures::stream::unfold(Some((body.into_data_stream(), limit)), |state| async move {
        let (mut data, left) = state?;
        if left == 0 {
            return Some((Err(std::io::Error::other("injected fault: connection cut")), None));
        }
        match data.next().await? {
            Ok(mut chunk) => {
                chunk.truncate(usize::try_from(left).unwrap_or(usize::MAX));
                let left = left - chunk.len() as u64;
                Some((Ok(chunk), Some((data, left))))
            }
            Err(e) => Some((Err(std::io::Error::other(e)), None)),
        }
    });
    Response::from_parts(parts, Body::from_stream(cut))
}

/// `POST /__sim/faults` (queue a [`FaultSpec`]; 400 for an unknown scope), `GET /__sim/faults`
/// (those still queued: a test waits on a fault being taken rather than on a clock) and
/// `DELETE /__sim/faults` (clear them), to merge into a simulator's router.
pub fn router<S: Clone + Send + Sync + 'static>(faults: Arc<Faults>) -> Router<S> {
    async fn add(State(faults): State<Arc<Faults>>, Json(spec): Json<FaultSpec>) -> Response {
        match faults.push(spec) {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(message) => (StatusCode::BAD_REQUEST, message).into_response(),
        }
    }
    async fn clear(State(faults): State<Arc<Faults>>) -> StatusCode {
        faults.clear();
        StatusCode::NO_CONTENT
    }
    async fn queued(State(faults): State<Arc<Faults>>) -> Json<Vec<FaultSpec>> {
        Json(faults.queued())
    }
    Router::new().route("/__sim/faults", post(add).get(queued).delete(clear)).with_state(faults)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(scope: Option<&str>, count: u32, status: u16) -> FaultSpec {
        FaultSpec {
            status: Some(status),
            retry_after: None,
            delay_ms: None,
            truncate_after_bytes: None,
            count,
            scope: scope.map(str::to_owned),
        }
    }

    #[test]
    fn faults_apply_in_order_to_their_scope() {
        let faults = Faults::new(&["api", "token"]);
        faults.push(spec(None, 2, 429)).unwrap();
        faults.push(spec(Some("token"), 1, 500)).unwrap();
        faults.push(spec(Some("any"), 1, 503)).unwrap();
        assert!(faults.push(spec(Some("cdn"), 1, 500)).unwrap_err().contains("unknown scope \"cdn\""));
        assert_eq!(faults.take("token").and_then(|f| f.status), Some(500));
        assert_eq!(faults.take("api").and_then(|f| f.status), Some(429));
        assert_eq!(faults.take("api").and_then(|f| f.status), Some(429));
        assert_eq!(faults.take("token").and_then(|f| f.status), Some(503));
        assert_eq!(faults.take("api"), None);
    }
}
