//! How every request to an API is sent: rate limited, authenticated when the
//! API needs it (one refresh on 401), and retried on 429, 5xx and timeouts
//! with exponential backoff and full jitter, honouring `Retry-After`, a
//! bounded number of times.

use std::{sync::Arc, time::Duration};

use gridsync_retry::{retry_bounded, Backoff, Jitter, Verdict};
use reqwest::{header::HeaderMap, Method};

use crate::{rate_limit::RateLimiter, token::TokenSource, ApiError};

/// How an API request is retried by default: from 200 ms, doubling to 30 s, full jitter (callers
/// of one API contend for its rate limit), eight attempts in all.
pub const DEFAULT_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(200), Duration::from_secs(30)).with_jitter(Jitter::Full).giving_up_after(8);

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// A sent request's successful answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json<T: serde::de::DeserializeOwned, E: ApiError>(&self, method: &'static str, url: &str) -> Result<T, E> {
        serde_json::from_slice(&self.body).map_err(|e| E::unexpected(method, url.to_owned(), e.to_string()))
    }
}

/// Counts of what the transport did, for metrics and tests.
#[derive(Debug, Default)]
pub struct TransportStats {
    pub retries: std::sync::atomic::AtomicU64,
    pub token_refreshes: std::sync::atomic::AtomicU64,
    /// Answers by HTTP status (0: no answer: refused, reset, timed out).
    responses: std::sync::Mutex<std::collections::BTreeMap<u16, u64>>,
}

impl TransportStats {
    fn answered(&self, status: u16) {
        let mut responses = self.responses.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *responses.entry(status).or_default() += 1;
    }

    /// How many requests were answered with each status so far (0: no answer).
    pub fn responses(&self) -> std::collections::BTreeMap<u16, u64> {
        self.responses.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// The shared sending machinery of one API client; `E` is the API's error.
#[derive(Debug)]
pub struct Transport<E> {
    http: reqwest::Client,
    tokens: Option<Arc<TokenSource<E>>>,
    limiter: Arc<RateLimiter>,
    retry: Backoff,
    stats: Arc<TransportStats>,
}

// Not derived: `E` itself need not be `Clone`.
impl<E> Clone for Transport<E> {
    fn clone(&self) -> Self {
        Transport {
            http: self.http.clone(),
            tokens: self.tokens.clone(),
            limiter: self.limiter.clone(),
            retry: self.retry,
            stats: self.stats.clone(),
        }
    }
}

impl<E: ApiError> Transport<E> {
    pub fn new(
        http: reqwest::Client,
        tokens: Option<Arc<TokenSource<E>>>,
        limiter: RateLimiter,
        retry: Backoff,
    ) -> Self {
        Transport { http, tokens, limiter: Arc::new(limiter), retry, stats: Arc::default() }
    }

    pub fn stats(&self) -> &TransportStats {
        &self.stats
    }

    /// What spaces the requests (its rate may change: a share of a budget).
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// Sends `method url` with an optional JSON body until it succeeds, fails
    /// for good, or the attempts run out (the last error is returned).
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
        extra_limiter: Option<&RateLimiter>,
    ) -> Result<Response, E> {
        let name = method_name(&method);
        let refreshed = std::sync::atomic::AtomicBool::new(false);
        let send = || async {
            match self.attempt(method.clone(), name, url, body, extra_limiter).await {
                Ok(response) => Ok(response),
                Err(Attempt::Unauthorized(token)) if !refreshed.swap(true, std::sync::atomic::Ordering::Relaxed) => {
                    // Expired or revoked early: one new token, then the same request again.
                    self.stats.token_refreshes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Some(tokens) = &self.tokens {
                        tokens.invalidate(&token).await;
                    }
                    self.attempt(method.clone(), name, url, body, extra_limiter)
                        .await
                        .map_err(|a| a.into_error(name, url))
                }
                Err(other) => Err(other.into_error(name, url)),
            }
        };
        let classify = |error: &E, attempt: u32| {
            if !error.is_retryable() {
                return Verdict::GiveUp;
            }
            tracing::warn!(%error, attempt, "request failed; retrying");
            self.stats.retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Verdict::Retry { after: error.retry_after() }
        };
        retry_bounded(&self.retry, send, classify).await
    }

    async fn attempt(
        &self,
        method: Method,
        name: &'static str,
        url: &str,
        body: Option<&serde_json::Value>,
        extra_limiter: Option<&RateLimiter>,
    ) -> Result<Response, Attempt<E>> {
        self.limiter.acquire().await;
        if let Some(limiter) = extra_limiter {
            limiter.acquire().await;
        }
        let mut request = self.http.request(method, url);
        let mut token = None;
        if let Some(tokens) = &self.tokens {
            let value = tokens.token().await.map_err(Attempt::Failed)?;
            request = request.bearer_auth(&value);
            token = Some(value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |source| Attempt::Failed(E::transport(name, url.to_owned(), source));
        let response = request.send().await.map_err(|e| {
            self.stats.answered(0);
            transport(e)
        })?;
        let status = response.status().as_u16();
        self.stats.answered(status);
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        match (status, token) {
            (200..=299, _) => Ok(Response { status, headers, body }),
            (401, Some(token)) => Err(Attempt::Unauthorized(token)),
            _ => Err(Attempt::Failed(E::from_response(name, url.to_owned(), status, retry_after(&headers), &body))),
        }
    }
}

enum Attempt<E> {
    /// 401 with this token.
    Unauthorized(String),
    Failed(E),
}

impl<E: ApiError> Attempt<E> {
    /// The failure as the API's error: a 401 as the API answered it.
    fn into_error(self, name: &'static str, url: &str) -> E {
        match self {
            Attempt::Unauthorized(_) => E::from_response(name, url.to_owned(), 401, None, b""),
            Attempt::Failed(error) => error,
        }
    }
}

pub fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "REQUEST",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        headers.insert(reqwest::header::RETRY_AFTER, soon.parse().unwrap());
        let parsed = retry_after(&headers).unwrap();
        assert!(parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120), "{parsed:?}");
        headers.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
