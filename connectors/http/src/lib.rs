//! What gridsync's HTTP API clients (Amplience, Trading Grid Lens) share:
//! OAuth2 client-credentials tokens, a transport that retries 429, 5xx and
//! timeouts with backoff honouring `Retry-After` and refreshes a rejected
//! token once, and a client-side rate limiter. Each API keeps its own typed
//! errors through [`ApiError`].

mod rate_limit;
mod secret;
mod token;
mod transport;

use std::time::Duration;

pub use gridsync_retry::{Backoff, Jitter};
pub use rate_limit::RateLimiter;
pub use secret::Secret;
pub use token::{Grant, TokenSource, REFRESH_MARGIN};
pub use transport::{method_name, retry_after, Response, Transport, TransportStats, DEFAULT_BACKOFF};

/// The typed error of one API, built by the shared machinery.
pub trait ApiError: std::error::Error + Send + Sync + Sized + 'static {
    /// No answer: connection refused, reset, or timed out.
    fn transport(method: &'static str, url: String, source: reqwest::Error) -> Self;
    /// An error status, with the body the API sent.
    fn from_response(
        method: &'static str,
        url: String,
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Self;
    /// The token endpoint refused the client credentials.
    fn credentials(status: u16, message: String) -> Self;
    /// A 2xx answer that is not what the API documents.
    fn unexpected(method: &'static str, url: String, message: String) -> Self;
    /// Worth trying again later.
    fn is_retryable(&self) -> bool;
    /// The server's `Retry-After`, if it sent one.
    fn retry_after(&self) -> Option<Duration>;
}
