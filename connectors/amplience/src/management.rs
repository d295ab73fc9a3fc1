//! The Content Management API client: content items (create, read, update
//! with optimistic concurrency, list), workflow states by label, publishing.

use std::{path::PathBuf, sync::Arc, time::Duration};

use hashlink::LruCache;

use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use gridsync_http::{method_name, Backoff, Grant, RateLimiter, Secret, TransportStats, DEFAULT_BACKOFF};

use crate::{
    error::AmplienceError,
    model::{ContentItem, NewContentItem, Page, WorkflowState},
    TokenSource, Transport,
};

pub const DEFAULT_API_URL: &str = "https://api.amplience.net/v2/content";
pub const DEFAULT_TOKEN_URL: &str = "https://auth.amplience.net/oauth/token";

/// Re-reads of an item whose update keeps meeting a newer version.
const MAX_CONFLICT_RETRIES: u32 = 5;
/// Page size when scanning a repository.
const SCAN_PAGE_SIZE: u32 = 100;
/// Item ids remembered by delivery key. Most keys are an order's own items, made once and
/// never asked for again; unbounded, they held ~0.35 KiB an order for the life of the process
/// (the soak's growth). The keys asked for again (a customer's suppression item) stay as the
/// most recently used; a key that has fallen out costs a create refused as a duplicate and a scan.
pub const DEFAULT_REMEMBERED_KEYS: usize = 4096;

/// How to reach and use the Management API.
#[derive(Debug, Clone, clap::Args)]
pub struct ManagementArgs {
    /// Base URL of the Content Management API.
    #[arg(long = "amplience-api-url", env = "GRIDSYNC_AMPLIENCE_API_URL", default_value = DEFAULT_API_URL)]
    pub api_url: String,
    /// OAuth2 token endpoint.
    #[arg(long = "amplience-token-url", env = "GRIDSYNC_AMPLIENCE_TOKEN_URL", default_value = DEFAULT_TOKEN_URL)]
    pub token_url: String,
    /// The hub (24 hex characters) whose workflow states are used.
    #[arg(long = "amplience-hub-id", env = "GRIDSYNC_AMPLIENCE_HUB_ID")]
    pub hub_id: Option<String>,
    /// OAuth2 client id.
    #[arg(long = "amplience-client-id", env = "GRIDSYNC_AMPLIENCE_CLIENT_ID")]
    pub client_id: Option<String>,
    /// OAuth2 client secret (prefer the environment or the _FILE variant).
    #[arg(long = "amplience-client-secret", env = "GRIDSYNC_AMPLIENCE_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<Secret>,
    /// A file holding the client secret.
    #[arg(long = "amplience-client-secret-file", env = "GRIDSYNC_AMPLIENCE_CLIENT_SECRET_FILE")]
    pub client_secret_file: Option<PathBuf>,
    /// Requests per second this client sends at most (0: no limit).
    #[arg(
        long = "amplience-requests-per-second",
        env = "GRIDSYNC_AMPLIENCE_REQUESTS_PER_SECOND",
        default_value_t = 20.0
    )]
    pub requests_per_second: f64,
    /// Publish requests per minute (Amplience allows 100 publishes and unpublishes a minute).
    #[arg(
        long = "amplience-publishes-per-minute",
        env = "GRIDSYNC_AMPLIENCE_PUBLISHES_PER_MINUTE",
        default_value_t = 90
    )]
    pub publishes_per_minute: u32,
    /// Timeout of one request, in milliseconds.
    #[arg(long = "amplience-timeout-ms", env = "GRIDSYNC_AMPLIENCE_TIMEOUT_MS", default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// Attempts per request on 429, 5xx and timeouts, the first included.
    #[arg(long = "amplience-max-attempts", env = "GRIDSYNC_AMPLIENCE_MAX_ATTEMPTS", default_value_t = 8)]
    pub max_attempts: u32,
    /// Longest wait between attempts, `Retry-After` included, in milliseconds.
    #[arg(long = "amplience-max-backoff-ms", env = "GRIDSYNC_AMPLIENCE_MAX_BACKOFF_MS", default_value_t = 30_000)]
    pub max_backoff_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("Amplience Management API: {0} is not set")]
    Missing(&'static str),
    #[error("reading the Amplience client secret from {path}: {source}")]
    SecretFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("building the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

impl ManagementArgs {
    /// Whether credentials were given at all (the client is optional in some binaries).
    pub fn is_configured(&self) -> bool {
        self.client_id.is_some()
    }

    fn secret(&self) -> Result<Secret, ConfigError> {
        if let Some(path) = &self.client_secret_file {
            return Secret::read_file(path).map_err(|source| ConfigError::SecretFile { path: path.clone(), source });
        }
        self.client_secret.clone().ok_or(ConfigError::Missing("--amplience-client-secret"))
    }

    pub fn retry_policy(&self) -> Backoff {
        Backoff { max: Duration::from_millis(self.max_backoff_ms), ..DEFAULT_BACKOFF }
            .giving_up_after(self.max_attempts.max(1))
    }
}

/// Whether `ensure_item` made the item or found it.
#[derive(Debug, Clone, PartialEq)]
pub enum Ensured {
    Created(ContentItem),
    Existing(ContentItem),
}

impl Ensured {
    pub fn item(&self) -> &ContentItem {
        match self {
            Ensured::Created(item) | Ensured::Existing(item) => item,
        }
    }
}

pub struct ManagementClient {
    transport: Transport,
    publishes: RateLimiter,
    api_url: String,
    hub_id: Option<String>,
    tokens: Arc<TokenSource>,
    /// Workflow states of the hub, read once (and again for an unknown label or id).
    states: Mutex<Vec<WorkflowState>>,
    /// Items found or created by delivery key, so repeats skip the lookup; the most recently
    /// used `DEFAULT_REMEMBERED_KEYS`.
    by_delivery_key: Mutex<LruCache<String, String>>,
}

impl ManagementClient {
    pub fn new(args: &ManagementArgs) -> Result<Self, ConfigError> {
        let client_id = args.client_id.clone().ok_or(ConfigError::Missing("--amplience-client-id"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(args.timeout_ms))
            .user_agent(concat!("gridsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ConfigError::Http)?;
        let tokens =
            Arc::new(TokenSource::new(http.clone(), args.token_url.clone(), Grant::Form, client_id, args.secret()?));
        let limiter = RateLimiter::new(args.requests_per_second, 5);
        Ok(ManagementClient {
            transport: Transport::new(http, Some(tokens.clone()), limiter, args.retry_policy()),
            publishes: RateLimiter::per_minute(args.publishes_per_minute, 5),
            api_url: args.api_url.trim_end_matches('/').to_owned(),
            hub_id: args.hub_id.clone(),
            tokens,
            states: Mutex::new(Vec::new()),
            by_delivery_key: Mutex::new(LruCache::new(DEFAULT_REMEMBERED_KEYS)),
        })
    }

    /// Remembers at most `keys` item ids by delivery key (`DEFAULT_REMEMBERED_KEYS` otherwise).
    pub fn remembering_keys(self, keys: usize) -> Self {
        ManagementClient { by_delivery_key: Mutex::new(LruCache::new(keys.max(1))), ..self }
    }

    /// How many item ids are remembered by delivery key now.
    pub async fn remembered_keys(&self) -> usize {
        self.by_delivery_key.lock().await.len()
    }

    /// The hub this client works in, if configured.
    pub fn hub_id(&self) -> Option<&str> {
        self.hub_id.as_deref()
    }

    /// The client id: items this client changes carry it as their author.
    pub fn client_id(&self) -> &str {
        self.tokens.client_id()
    }

    pub fn stats(&self) -> &TransportStats {
        self.transport.stats()
    }

    /// What spaces this client's requests: its rate is this process's share of the hub's budget.
    pub fn limiter(&self) -> &RateLimiter {
        self.transport.limiter()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_url)
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(String, Value), AmplienceError> {
        let url = self.url(path);
        let name = method_name(&method);
        let response = self.transport.send(method, &url, body, None).await?;
        let value =
            if response.body.is_empty() { Value::Null } else { response.json::<_, AmplienceError>(name, &url)? };
        Ok((url, value))
    }

    async fn item_call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<ContentItem, AmplienceError> {
        let name = method_name(&method);
        let (url, value) = self.call(method, path, body).await?;
        serde_json::from_value(value).map_err(|e| AmplienceError::Unexpected {
            method: name,
            url,
            message: format!("content item: {e}"),
        })
    }

    pub async fn get_item(&self, id: &str) -> Result<ContentItem, AmplienceError> {
        self.item_call(Method::GET, &format!("/content-items/{id}"), None).await
    }

    /// Creates an item in `repository_id`. Prefer `ensure_item` for items with a delivery key.
    pub async fn create_item(&self, repository_id: &str, item: &NewContentItem) -> Result<ContentItem, AmplienceError> {
        let path = format!("/content-repositories/{repository_id}/content-items");
        self.item_call(Method::POST, &path, Some(&item.to_request())).await
    }

    /// Creates the item unless one with its delivery key exists (a retry, a
    /// replay, a crash after the create): exactly one item per key.
    pub async fn ensure_item(&self, repository_id: &str, item: &NewContentItem) -> Result<Ensured, AmplienceError> {
        let key =
            item.delivery_key.as_ref().map(|k| k.as_str().to_owned()).ok_or_else(|| AmplienceError::Unexpected {
                method: "POST",
                url: self.url("/content-items"),
                message: "ensure_item needs a delivery key".into(),
            })?;
        if let Some(id) = self.by_delivery_key.lock().await.get(&key).cloned() {
            match self.get_item(&id).await {
                Ok(existing) => return Ok(Ensured::Existing(existing)),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        let ensured = match self.create_item(repository_id, item).await {
            Ok(created) => Ensured::Created(created),
            // Amplience refuses a second item with a key in use: find the first one.
            Err(e) if e.is_conflict() || e.codes().iter().any(|c| c.contains("DELIVERY_KEY")) => {
                match self.find_by_delivery_key(repository_id, &key).await? {
                    Some(existing) => Ensured::Existing(existing),
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        self.by_delivery_key.lock().await.insert(key, ensured.item().id.clone());
        Ok(ensured)
    }

    /// One page (0-based) of a repository's items.
    pub async fn list_items(
        &self,
        repository_id: &str,
        page: u32,
        size: u32,
    ) -> Result<Page<ContentItem>, AmplienceError> {
        self.get_page(&format!("/content-repositories/{repository_id}/content-items"), "content-items", page, size)
            .await
    }

    /// One HAL page of the list at `path`, its items under `_embedded[embedded]`.
    async fn get_page<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        embedded: &str,
        page: u32,
        size: u32,
    ) -> Result<Page<T>, AmplienceError> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let (url, value) = self.call(Method::GET, &format!("{path}{separator}page={page}&size={size}"), None).await?;
        Page::from_hal(&value, embedded).map_err(|message| AmplienceError::Unexpected { method: "GET", url, message })
    }

    /// Every item of the list at `path`, following the pages.
    pub(crate) async fn all_pages<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        embedded: &str,
    ) -> Result<Vec<T>, AmplienceError> {
        let mut items = Vec::new();
        for number in 0.. {
            let page = self.get_page(path, embedded, number, SCAN_PAGE_SIZE).await?;
            let last = page.is_last();
            items.extend(page.items);
            if last {
                break;
            }
        }
        Ok(items)
    }

    /// Every item of a repository, following the pages.
    pub async fn all_items(&self, repository_id: &str) -> Result<Vec<ContentItem>, AmplienceError> {
        self.all_pages(&format!("/content-repositories/{repository_id}/content-items"), "content-items").await
    }

    /// The item of `repository_id` whose delivery key is `key`, by scanning the pages, newest first.
    pub async fn find_by_delivery_key(
        &self,
        repository_id: &str,
        key: &str,
    ) -> Result<Option<ContentItem>, AmplienceError> {
        // Newest first: the item met here is most often one a replica created a moment ago (both
        // made the same key at once), found on the first page instead of after every older one.
        let path = format!("/content-repositories/{repository_id}/content-items");
        for number in 0.. {
            let page: Page<ContentItem> = self
                .get_page(&format!("{path}?sort=createdDate,desc"), "content-items", number, SCAN_PAGE_SIZE)
                .await?;
            if let Some(found) = page.items.iter().find(|i| i.delivery_key() == Some(key)) {
                return Ok(Some(found.clone()));
            }
            if page.is_last() {
                break;
            }
        }
        Ok(None)
    }

    /// Applies `change` to the item's current state and saves it with the
    /// version it read; when someone saved in between (409), reads again and
    /// re-applies, a bounded number of times. A change that leaves the label and
    /// body as they were saves nothing.
    pub async fn update_item(
        &self,
        id: &str,
        change: impl FnMut(&mut ContentItem),
    ) -> Result<ContentItem, AmplienceError> {
        self.update_item_saved(id, change).await.map(|(item, _)| item)
    }

    /// [`Self::update_item`], and whether it saved the item (false: the change was there already).
    pub async fn update_item_saved(
        &self,
        id: &str,
        mut change: impl FnMut(&mut ContentItem),
    ) -> Result<(ContentItem, bool), AmplienceError> {
        let path = format!("/content-items/{id}");
        for _ in 0..=MAX_CONFLICT_RETRIES {
            let mut item = self.get_item(id).await?;
            let (label, body) = (item.label.clone(), item.body.clone());
            change(&mut item);
            // Nothing to write (a change already there, seen again): not sent, so the item's
            // version and its history stay as they are.
            if item.label == label && item.body == body {
                return Ok((item, false));
            }
            let body = json!({ "label": item.label, "body": item.body, "version": item.version });
            match self.item_call(Method::PATCH, &path, Some(&body)).await {
                Err(e) if e.is_conflict() => tracing::info!(id, "content item changed meanwhile; re-applying"),
                other => return other.map(|item| (item, true)),
            }
        }
        Err(AmplienceError::ConflictPersisted { id: id.to_owned(), attempts: MAX_CONFLICT_RETRIES })
    }

    /// `PATCH /content-items/{id}` with `request` (which carries the version it was made from):
    /// the item as saved, or the 409 of a newer version. [`Self::update_item`] reads first;
    /// this is for a caller that knows the version it changes.
    pub async fn patch_item(&self, id: &str, request: &Value) -> Result<ContentItem, AmplienceError> {
        self.item_call(Method::PATCH, &format!("/content-items/{id}"), Some(request)).await
    }

    /// The hub's workflow states.
    pub async fn workflow_states(&self) -> Result<Vec<WorkflowState>, AmplienceError> {
        let hub = self.hub()?;
        self.all_pages(&format!("/hubs/{hub}/workflow-states"), "workflow-states").await
    }

    /// Looks a state up in the cache, reading the hub's states again once if absent.
    async fn find_state(
        &self,
        matches: impl Fn(&WorkflowState) -> bool,
    ) -> Result<Option<WorkflowState>, AmplienceError> {
        let mut states = self.states.lock().await;
        if let Some(found) = states.iter().find(|s| matches(s)) {
            return Ok(Some(found.clone()));
        }
        *states = self.workflow_states().await?;
        Ok(states.iter().find(|s| matches(s)).cloned())
    }

    /// The id of the workflow state labelled `label` (case-insensitive).
    pub async fn workflow_state_id(&self, label: &str) -> Result<String, AmplienceError> {
        self.find_state(|s| s.label.eq_ignore_ascii_case(label))
            .await?
            .map(|s| s.id)
            .ok_or_else(|| AmplienceError::UnknownWorkflowState(label.to_owned()))
    }

    /// The label of the workflow state `id`, if the hub has it.
    pub async fn workflow_state_label(&self, id: &str) -> Result<Option<String>, AmplienceError> {
        Ok(self.find_state(|s| s.id == id).await?.map(|s| s.label))
    }

    /// Moves the item to the workflow state labelled `label`.
    pub async fn assign_workflow_state(&self, id: &str, label: &str) -> Result<ContentItem, AmplienceError> {
        let state = self.workflow_state_id(label).await?;
        let path = format!("/content-items/{id}/workflow");
        for _ in 0..=MAX_CONFLICT_RETRIES {
            let item = self.get_item(id).await?;
            if item.workflow_state() == Some(state.as_str()) {
                return Ok(item);
            }
            let body = json!({ "version": item.version, "state": state });
            match self.item_call(Method::PATCH, &path, Some(&body)).await {
                Err(e) if e.is_conflict() => continue,
                other => return other,
            }
        }
        Err(AmplienceError::ConflictPersisted { id: id.to_owned(), attempts: MAX_CONFLICT_RETRIES })
    }

    /// Publishes the item's current version; returns the publishing job's URL.
    pub async fn publish(&self, id: &str) -> Result<Option<String>, AmplienceError> {
        let url = self.url(&format!("/content-items/{id}/publish"));
        let response = self.transport.send(Method::POST, &url, None, Some(&self.publishes)).await?;
        Ok(response.headers.get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()).map(str::to_owned))
    }
}
