//! Typed errors of the Amplience APIs: what went wrong, and whether trying
//! again can help.

use std::time::Duration;

/// One entry of Amplience's `{"errors":[{"level","code","message"}]}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct ApiErrorEntry {
    #[serde(default)]
    pub level: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ApiErrorEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum AmplienceError {
    /// No answer: connection refused, reset, or the request timed out.
    #[error("{method} {url}: {source}")]
    Transport {
        method: &'static str,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// Amplience answered with an error status.
    #[error("{method} {url}: HTTP {status}{}", describe(.errors))]
    Api {
        method: &'static str,
        url: String,
        status: u16,
        errors: Vec<ApiErrorEntry>,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The token endpoint refused the client credentials.
    #[error("the token endpoint refused the client credentials: HTTP {status}: {message}")]
    Credentials { status: u16, message: String },
    /// A 2xx answer that is not what the API documents.
    #[error("{method} {url}: unexpected response: {message}")]
    Unexpected { method: &'static str, url: String, message: String },
    /// An update kept meeting newer versions.
    #[error("content item {id}: still conflicting after {attempts} re-reads")]
    ConflictPersisted { id: String, attempts: u32 },
    #[error("no workflow state labelled {0:?} in the hub")]
    UnknownWorkflowState(String),
    #[error(transparent)]
    DeliveryKey(#[from] crate::delivery_key::DeliveryKeyError),
    /// A media fetch ended before the length the server announced (a dropped connection).
    #[error("GET {url}: the body ended after {received} of {expected} bytes")]
    MediaTruncated { url: String, expected: u64, received: u64 },
    /// A media link gridsync will not fetch: a host not among the configured media hosts, or a
    /// private or loopback address (content editors write links; gridsync must not fetch an
    /// internal address for them).
    #[error("GET {url}: refused: {why}")]
    MediaRefused { url: String, why: String },
    /// A media file larger than the configured limit.
    #[error("GET {url}: larger than the limit of {limit} bytes")]
    MediaTooLarge { url: String, limit: u64 },
    /// Writing a fetched media file to local disk.
    #[error("writing {path}: {source}")]
    MediaFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn describe(errors: &[ApiErrorEntry]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| match (&e.code, &e.message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(one), None) | (None, Some(one)) => one.clone(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}

impl gridsync_http::ApiError for AmplienceError {
    fn transport(method: &'static str, url: String, source: reqwest::Error) -> Self {
        AmplienceError::Transport { method, url, source }
    }

    /// `{"errors":[...]}` parsed into the entries, when the body is that.
    fn from_response(
        method: &'static str,
        url: String,
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Self {
        let errors = serde_json::from_slice::<ErrorBody>(body).map(|b| b.errors).unwrap_or_default();
        AmplienceError::Api { method, url, status, errors, retry_after }
    }

    fn credentials(status: u16, message: String) -> Self {
        AmplienceError::Credentials { status, message }
    }

    fn unexpected(method: &'static str, url: String, message: String) -> Self {
        AmplienceError::Unexpected { method, url, message }
    }

    fn is_retryable(&self) -> bool {
        AmplienceError::is_retryable(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            AmplienceError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl AmplienceError {
    /// The HTTP status Amplience answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            AmplienceError::Api { status, .. } | AmplienceError::Credentials { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Worth retrying later: no answer, rate limited, or a server error. A 4xx
    /// (validation, not found, forbidden) fails the same way every time.
    pub fn is_retryable(&self) -> bool {
        match self {
            AmplienceError::Transport { .. }
            | AmplienceError::MediaTruncated { .. }
            | AmplienceError::MediaFile { .. } => true,
            AmplienceError::Api { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The codes of the entries Amplience sent.
    pub fn codes(&self) -> Vec<&str> {
        match self {
            AmplienceError::Api { errors, .. } => errors.iter().filter_map(|e| e.code.as_deref()).collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use gridsync_http::ApiError;

    use super::*;

    #[test]
    fn the_errors_body_is_parsed_into_the_message() {
        let body =
            br#"{"errors":[{"level":"ERROR","code":"CONTENT_ITEM_VERSION_CONFLICT","message":"stale version 3"}]}"#;
        let err = AmplienceError::from_response("PATCH", "http://x/content-items/1".into(), 409, None, body);
        assert_eq!(
            err.to_string(),
            "PATCH http://x/content-items/1: HTTP 409 (CONTENT_ITEM_VERSION_CONFLICT: stale version 3)"
        );
        assert!(err.is_conflict() && !err.is_retryable());
        assert_eq!(err.codes(), ["CONTENT_ITEM_VERSION_CONFLICT"]);
    }

    #[test]
    fn rate_limits_and_server_errors_are_retryable_client_errors_are_not() {
        let status = |s| AmplienceError::from_response("GET", "u".into(), s, None, b"not json");
        assert!(status(429).is_retryable());
        assert!(status(503).is_retryable());
        assert!(!status(400).is_retryable());
        assert!(!status(404).is_retryable() && status(404).is_not_found());
        assert_eq!(status(500).to_string(), "GET u: HTTP 500");
    }
}
