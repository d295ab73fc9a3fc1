//! The Lens client: a bearer token from `POST /v1/oauth2/tokens` (HTTP Basic
//! with the consumer key and secret, ~10 h), then GraphQL `getTransactions`
//! on `POST /visibility_transaction_search`, through the shared transport
//! (429/5xx/timeouts retried with backoff honouring `Retry-After`, one token
//! refresh on 401, a client-side rate limit).

use std::{path::PathBuf, sync::Arc, time::Duration};

use gridsync_http::{Backoff, Grant, RateLimiter, Secret, TokenSource, Transport, TransportStats, DEFAULT_BACKOFF};
use reqwest::Method;
use serde::Deserialize;

use super::{model::TransactionPage, LensError};

/// How to reach Lens. Polling is off unless `--lens-url` and a consumer key are given.
#[derive(Debug, Clone, clap::Args)]
pub struct LensArgs {
    /// Base URL of the Trading Grid APIs (`https://apigrid.opentext.com`).
    #[arg(long = "lens-url", env = "GRIDSYNC_LENS_URL")]
    pub url: Option<String>,
    /// Token endpoint (default: `<lens-url>/v1/oauth2/tokens?grant_type=client_credentials`).
    #[arg(long = "lens-token-url", env = "GRIDSYNC_LENS_TOKEN_URL")]
    pub token_url: Option<String>,
    /// Consumer key (the OAuth2 client id).
    #[arg(long = "lens-client-id", env = "GRIDSYNC_LENS_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Consumer secret (prefer the environment or the _FILE variant).
    #[arg(long = "lens-client-secret", env = "GRIDSYNC_LENS_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<Secret>,
    /// A file holding the consumer secret.
    #[arg(long = "lens-client-secret-file", env = "GRIDSYNC_LENS_CLIENT_SECRET_FILE")]
    pub client_secret_file: Option<PathBuf>,
    /// Requests per second at most.
    #[arg(long = "lens-requests-per-second", env = "GRIDSYNC_LENS_REQUESTS_PER_SECOND", default_value_t = 5.0)]
    pub requests_per_second: f64,
    /// Timeout of one request, in milliseconds.
    #[arg(long = "lens-timeout-ms", env = "GRIDSYNC_LENS_TIMEOUT_MS", default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// Attempts per request on 429, 5xx and timeouts, the first included.
    #[arg(long = "lens-max-attempts", env = "GRIDSYNC_LENS_MAX_ATTEMPTS", default_value_t = 6)]
    pub max_attempts: u32,
    /// Longest wait between attempts, `Retry-After` included, in milliseconds.
    #[arg(long = "lens-max-backoff-ms", env = "GRIDSYNC_LENS_MAX_BACKOFF_MS", default_value_t = 30_000)]
    pub max_backoff_ms: u64,
    /// The search arguments that ask for "status changed since, oldest first";
    /// `{since}` stands for the quoted instant. OpenText's collections name
    /// `sortby` and `ranges` but not their shapes: adjust to your account.
    #[arg(long = "lens-since-arguments", env = "GRIDSYNC_LENS_SINCE_ARGUMENTS", default_value = DEFAULT_SINCE_ARGUMENTS)]
    pub since_arguments: String,
}

/// The default of `--lens-since-arguments`.
pub const DEFAULT_SINCE_ARGUMENTS: &str = r#"sortby: "statusdate", ranges: [{field: "statusdate", from: {since}}]"#;

impl LensArgs {
    pub fn is_configured(&self) -> bool {
        self.url.is_some() && self.client_id.is_some()
    }

    fn secret(&self) -> Result<Secret, LensError> {
        if let Some(path) = &self.client_secret_file {
            return Secret::read_file(path)
                .map_err(|e| LensError::Config(format!("reading the consumer secret from {}: {e}", path.display())));
        }
        self.client_secret.clone().ok_or(LensError::Config("--lens-client-secret is not set".into()))
    }
}

/// One search: what to ask `getTransactions` for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// Page size.
    pub count: u32,
    pub offset: u64,
    /// Only transactions whose status changed at or after this instant (RFC 3339).
    pub status_since: Option<String>,
    /// Continue a scroll the previous page started.
    pub scrollid: Option<String>,
    /// Content keys to extract (`purchase order number`, `invoice number`, ...).
    pub content_keys: Vec<String>,
}

/// The fields gridsync reads of each transaction.
const FIELDS: &str = "transactionid correlationid editype envelopetype senderaddress receiveraddress \
    senderreference status statusdate deliverystatus deliveryreceipt fastatus fastatusdate errorcode \
    externalerrormessage arrivaltime";

/// The GraphQL text of a search. Arguments are written inline (JSON string
/// literals are valid GraphQL strings); `since_arguments` (with `{since}`)
/// asks for changes since an instant, oldest first, so a poller can keep a
/// watermark; `scroll: true` asks for a scroll id.
pub(crate) fn graphql(query: &SearchQuery, since_arguments: &str) -> String {
    let quote = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let mut arguments =
        vec![format!("count: {}", query.count), format!("offset: {}", query.offset), "scroll: true".to_owned()];
    if let Some(since) = &query.status_since {
        arguments.push(since_arguments.replace("{since}", &quote(since)));
    }
    if let Some(scrollid) = &query.scrollid {
        arguments.push(format!("scrollid: {}", quote(scrollid)));
    }
    let keys = query.content_keys.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
    format!(
        "query {{ getTransactions(query: {{{}}}) {{ count total offset scrollid transactions {{ {FIELDS} \
         contentkeys(names: [{keys}]) {{ name value }} }} }} }}",
        arguments.join(", ")
    )
}

#[derive(Deserialize)]
struct GraphQlResponse {
    #[serde(default)]
    data: Option<GraphQlData>,
    #[serde(default)]
    errors: Vec<GraphQlErrorEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphQlData {
    get_transactions: Option<TransactionPage>,
}

#[derive(Deserialize)]
struct GraphQlErrorEntry {
    #[serde(default)]
    message: String,
}

pub struct LensClient {
    transport: Transport<LensError>,
    search_url: String,
    since_arguments: String,
}

impl LensClient {
    pub fn new(args: &LensArgs) -> Result<Self, LensError> {
        let url = args.url.as_deref().ok_or(LensError::Config("--lens-url is not set".into()))?.trim_end_matches('/');
        let client_id = args.client_id.clone().ok_or(LensError::Config("--lens-client-id is not set".into()))?;
        let token_url =
            args.token_url.clone().unwrap_or_else(|| format!("{url}/v1/oauth2/tokens?grant_type=client_credentials"));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(args.timeout_ms))
            .user_agent(concat!("gridsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LensError::Config(format!("building the HTTP client: {e}")))?;
        let tokens = Arc::new(TokenSource::new(http.clone(), token_url, Grant::Basic, client_id, args.secret()?));
        let retry = Backoff { max: Duration::from_millis(args.max_backoff_ms), ..DEFAULT_BACKOFF }
            .giving_up_after(args.max_attempts.max(1));
        let limiter = RateLimiter::new(args.requests_per_second, 2);
        Ok(LensClient {
            transport: Transport::new(http, Some(tokens), limiter, retry),
            search_url: format!("{url}/visibility_transaction_search"),
            since_arguments: args.since_arguments.clone(),
        })
    }

    pub fn stats(&self) -> &TransportStats {
        self.transport.stats()
    }

    /// One page of transactions.
    pub async fn search(&self, query: &SearchQuery) -> Result<TransactionPage, LensError> {
        let body = serde_json::json!({ "query": graphql(query, &self.since_arguments) });
        let response = self.transport.send(Method::POST, &self.search_url, Some(&body), None).await?;
        let answer: GraphQlResponse = response.json("POST", &self.search_url)?;
        if !answer.errors.is_empty() {
            return Err(LensError::GraphQl(answer.errors.into_iter().map(|e| e.message).collect()));
        }
        answer.data.and_then(|d| d.get_transactions).ok_or_else(|| LensError::Unexpected {
            method: "POST",
            url: self.search_url.clone(),
            message: "no data.getTransactions in the answer".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_quotes_values_and_asks_for_content_keys() {
        let query = SearchQuery {
            count: 50,
            offset: 100,
            status_since: Some("2026-11-25T10:00:00Z".into()),
            scrollid: Some("abc\"def".into()),
            content_keys: vec!["purchase order number".into()],
        };
        let text = graphql(&query, DEFAULT_SINCE_ARGUMENTS);
        assert!(text.starts_with("query { getTransactions(query: {count: 50, offset: 100, scroll: true, sortby: \"statusdate\", ranges: [{field: \"statusdate\", from: \"2026-11-25T10:00:00Z\"}], scrollid: \"abc\\\"def\"}) { count total offset scrollid transactions { transactionid "), "{text}");
        let custom = graphql(&query, "filters: {statusdate: {gte: {since}}}");
        assert!(
            custom.contains("scroll: true, filters: {statusdate: {gte: \"2026-11-25T10:00:00Z\"}}, scrollid"),
            "{custom}"
        );
        assert!(text.ends_with("contentkeys(names: [\"purchase order number\"]) { name value } } } }"), "{text}");
    }
}
