//! The Amplience producer's flags (each also an environment variable).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use gridsync_amplience::{management::ManagementArgs, Backoff, Secret};

#[derive(Debug, clap::Args)]
pub struct WebhookArgs {
    /// Address of the webhook endpoint (`POST /webhooks/amplience`).
    #[arg(long, env = "GRIDSYNC_AMP_LISTEN", default_value = "127.0.0.1:9466")]
    pub listen: SocketAddr,
    /// The webhook secret configured in Amplience.
    #[arg(long, env = "GRIDSYNC_AMP_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<Secret>,
    /// A file holding the webhook secret (instead of --webhook-secret).
    #[arg(long, env = "GRIDSYNC_AMP_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// The previous webhook secret, still accepted while a rotation completes.
    #[arg(long, env = "GRIDSYNC_AMP_WEBHOOK_SECRET_PREVIOUS", hide_env_values = true)]
    pub webhook_secret_previous: Option<Secret>,
    /// A file holding the previous webhook secret (instead of --webhook-secret-previous).
    #[arg(long, env = "GRIDSYNC_AMP_WEBHOOK_SECRET_PREVIOUS_FILE")]
    pub webhook_secret_previous_file: Option<PathBuf>,
    /// Largest webhook body accepted, in bytes (Amplience sends at most 200 KB).
    #[arg(long, env = "GRIDSYNC_AMP_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    /// How long a webhook waits for Kafka's acknowledgement before the answer is 503.
    #[arg(long, env = "GRIDSYNC_AMP_PUBLISH_TIMEOUT_MS", default_value_t = 10_000)]
    pub publish_timeout_ms: u64,
    /// Where handled delivery ids are kept (`sqlite://file.db` or `postgres://...`;
    /// share one PostgreSQL database between replicas).
    #[arg(long, env = "GRIDSYNC_AMP_STORE_URL", default_value = "sqlite://amp-producer.db")]
    pub store_url: String,
    /// How long handled delivery ids are remembered, in days (Amplience
    /// retries within hours; a replay after longer is deduplicated downstream
    /// by its deterministic event id).
    #[arg(long, env = "GRIDSYNC_AMP_STORE_RETENTION_DAYS", default_value_t = 30)]
    pub store_retention_days: u32,
    /// The mapping file (content types and workflow states); default: the built-in one.
    #[arg(long, env = "GRIDSYNC_AMP_MAPPING")]
    pub mapping: Option<PathBuf>,
    /// Base URL of the Content Delivery API, e.g. https://<hub>.cdn.content.amplience.net.
    #[arg(long = "amplience-delivery-url", env = "GRIDSYNC_AMPLIENCE_DELIVERY_URL")]
    pub delivery_url: Option<String>,
    #[command(flatten)]
    pub management: ManagementArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error("no webhook secret: set GRIDSYNC_AMP_WEBHOOK_SECRET or GRIDSYNC_AMP_WEBHOOK_SECRET_FILE")]
    NoSecret,
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mapping file {path}: {message}")]
    Mapping { path: String, message: String },
}

impl WebhookArgs {
    /// The current secret, then the previous one during a rotation.
    pub fn secrets(&self) -> Result<Vec<Secret>, ArgsError> {
        let read =
            |path: &PathBuf| Secret::read_file(path).map_err(|source| ArgsError::Read { path: path.clone(), source });
        let current = match (&self.webhook_secret_file, &self.webhook_secret) {
            (Some(path), _) => read(path)?,
            (None, Some(secret)) => secret.clone(),
            (None, None) => return Err(ArgsError::NoSecret),
        };
        let previous = match (&self.webhook_secret_previous_file, &self.webhook_secret_previous) {
            (Some(path), _) => Some(read(path)?),
            (None, secret) => secret.clone(),
        };
        Ok(std::iter::once(current).chain(previous).collect())
    }

    pub fn mapping(&self) -> Result<crate::mapping::MappingConfig, ArgsError> {
        let (path, text) = match &self.mapping {
            Some(path) => (
                path.display().to_string(),
                std::fs::read_to_string(path).map_err(|source| ArgsError::Read { path: path.clone(), source })?,
            ),
            None => ("(built-in)".to_owned(), crate::mapping::DEFAULT_MAPPING.to_owned()),
        };
        crate::mapping::MappingConfig::parse(&text).map_err(|message| ArgsError::Mapping { path, message })
    }

    pub fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.publish_timeout_ms)
    }

    pub fn delivery_retry(&self) -> Backoff {
        // A webhook is answered within seconds; Amplience retries the rest.
        self.management.retry_policy().giving_up_after(3)
    }
}
