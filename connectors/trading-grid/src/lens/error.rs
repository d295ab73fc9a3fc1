//! Typed errors of the Lens API.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LensError {
    /// No answer: connection refused, reset, or timed out.
    #[error("{method} {url}: {source}")]
    Transport {
        method: &'static str,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// Lens answered with an error status.
    #[error("{method} {url}: HTTP {status}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Api { method: &'static str, url: String, status: u16, message: String, retry_after: Option<Duration> },
    /// The token endpoint refused the consumer key and secret.
    #[error("the Trading Grid token endpoint refused the consumer key: HTTP {status}: {message}")]
    Credentials { status: u16, message: String },
    /// A 2xx answer that is not what the API documents.
    #[error("{method} {url}: unexpected response: {message}")]
    Unexpected { method: &'static str, url: String, message: String },
    /// GraphQL answered 200 with errors instead of data.
    #[error("Lens search: {}", .0.join("; "))]
    GraphQl(Vec<String>),
    #[error("Lens configuration: {0}")]
    Config(String),
}

impl gridsync_http::ApiError for LensError {
    fn transport(method: &'static str, url: String, source: reqwest::Error) -> Self {
        LensError::Transport { method, url, source }
    }

    fn from_response(
        method: &'static str,
        url: String,
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Self {
        let message = String::from_utf8_lossy(body).chars().take(300).collect::<String>().trim().to_owned();
        LensError::Api { method, url, status, message, retry_after }
    }

    fn credentials(status: u16, message: String) -> Self {
        LensError::Credentials { status, message }
    }

    fn unexpected(method: &'static str, url: String, message: String) -> Self {
        LensError::Unexpected { method, url, message }
    }

    /// No answer, rate limited, or a server error.
    fn is_retryable(&self) -> bool {
        match self {
            LensError::Transport { .. } => true,
            LensError::Api { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            LensError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
