//! Settings shared by every binary: command-line flags with environment
//! fallbacks (12-factor), and librdkafka properties passed straight through.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf};

use rdkafka::ClientConfig;

/// Where the local broker listens unless told otherwise.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";
/// Environment prefix of librdkafka pass-through properties.
pub const KAFKA_ENV_PREFIX: &str = "GRIDSYNC_KAFKA_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--kafka-option {0:?} is not key=value")]
    NotKeyValue(String),
    #[error("{var} names a secret file {path} that cannot be read: {source}")]
    SecretFile {
        var: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Kafka connection settings.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Bootstrap servers, comma-separated.
    #[arg(long, global = true, env = "GRIDSYNC_BROKERS", default_value = DEFAULT_BROKERS)]
    pub brokers: String,

    /// Extra librdkafka property, `key=value`, repeatable (e.g.
    /// `security.protocol=SASL_SSL`). Also taken from `GRIDSYNC_KAFKA_<KEY>`
    /// variables (`SASL_USERNAME` → `sasl.username`); `GRIDSYNC_KAFKA_<KEY>_FILE`
    /// reads the value from a file, for secrets. Flags win over the environment.
    #[arg(long = "kafka-option", global = true, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub kafka_options: Vec<(String, String)>,

    /// Prefix for every topic and consumer group name, to share a cluster or
    /// isolate a test run.
    #[arg(long, global = true, env = "GRIDSYNC_TOPIC_PREFIX", default_value = "")]
    pub topic_prefix: String,

    /// Confluent Schema Registry URL. When set, producers write the Confluent
    /// wire format (`00` + schema id); consumers read both framings regardless.
    #[arg(long, global = true, env = "GRIDSYNC_SCHEMA_REGISTRY_URL")]
    pub schema_registry_url: Option<String>,
}

fn parse_key_value(s: &str) -> Result<(String, String), ConfigError> {
    s.split_once('=')
        .filter(|(k, _)| !k.trim().is_empty())
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .ok_or_else(|| ConfigError::NotKeyValue(s.to_owned()))
}

impl KafkaArgs {
    /// Settings for `brokers` with nothing else set; for tests and tools.
    pub fn for_brokers(brokers: impl Into<String>) -> Self {
        KafkaArgs {
            brokers: brokers.into(),
            kafka_options: Vec::new(),
            topic_prefix: String::new(),
            schema_registry_url: None,
        }
    }

    /// The librdkafka properties: bootstrap servers, then the environment, then flags.
    pub fn properties(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        self.properties_from(std::env::vars())
    }

    fn properties_from(
        &self,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut props = BTreeMap::from([("bootstrap.servers".to_owned(), self.brokers.clone())]);
        for (var, value) in env {
            let Some(suffix) = var.strip_prefix(KAFKA_ENV_PREFIX) else {
                continue;
            };
            let (suffix, value) = match suffix.strip_suffix("_FILE") {
                Some(key) => {
                    let secret = std::fs::read_to_string(&value).map_err(|source| ConfigError::SecretFile {
                        var: var.clone(),
                        path: value.into(),
                        source,
                    })?;
                    (key, secret.trim_end_matches(['\n', '\r']).to_owned())
                }
                None => (suffix, value),
            };
            props.insert(suffix.to_ascii_lowercase().replace('_', "."), value);
        }
        for (key, value) in &self.kafka_options {
            props.insert(key.clone(), value.clone());
        }
        Ok(props)
    }

    /// A librdkafka config: a component's `defaults`, then every configured
    /// property, then `overrides` (the settings the component's guarantees depend on).
    pub fn client_config(
        &self,
        defaults: &[(&str, &str)],
        overrides: &[(&str, &str)],
    ) -> Result<ClientConfig, ConfigError> {
        let mut config = ClientConfig::new();
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in self.properties()? {
            config.set(key, value);
        }
        for (key, value) in overrides {
            config.set(*key, *value);
        }
        Ok(config)
    }

    /// Properties for logging, secrets masked.
    pub fn redacted_properties(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        Ok(self
            .properties()?
            .into_iter()
            .map(|(k, v)| {
                let v = if is_secret(&k) { "***".to_owned() } else { v };
                (k, v)
            })
            .collect())
    }
}

/// Whether a librdkafka property holds a secret that must never be logged.
pub fn is_secret(key: &str) -> bool {
    ["password", "secret", "pem", "jaas", "token", "oauthbearer.config", "credentials"].iter().any(|s| key.contains(s))
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Telemetry settings.
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryArgs {
    /// Address of the HTTP server for `/metrics`, `/healthz` and `/readyz`
    /// (default: 127.0.0.1 and the binary's own port, listed in the README).
    #[arg(long, env = "GRIDSYNC_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Log format.
    #[arg(long, env = "GRIDSYNC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter (tracing `EnvFilter` syntax), e.g. `info,gridsync_core=debug`.
    #[arg(long, env = "GRIDSYNC_LOG", default_value = "info")]
    pub log: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_maps_to_librdkafka_keys_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("password");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let mut args = KafkaArgs::for_brokers("b1:9092,b2:9092");
        args.kafka_options = vec![("security.protocol".into(), "SASL_SSL".into())];
        let env = vec![
            ("GRIDSYNC_KAFKA_SECURITY_PROTOCOL".to_owned(), "PLAINTEXT".to_owned()),
            ("GRIDSYNC_KAFKA_SASL_USERNAME".to_owned(), "svc".to_owned()),
            ("GRIDSYNC_KAFKA_SASL_PASSWORD_FILE".to_owned(), secret.display().to_string()),
            ("UNRELATED".to_owned(), "x".to_owned()),
        ];
        let props = args.properties_from(env.into_iter()).unwrap();
        assert_eq!(props["bootstrap.servers"], "b1:9092,b2:9092");
        assert_eq!(props["security.protocol"], "SASL_SSL");
        assert_eq!(props["sasl.username"], "svc");
        assert_eq!(props["sasl.password"], "s3cret");
        assert_eq!(props.len(), 4);
    }

    #[test]
    fn unreadable_secret_file_is_a_clear_error() {
        let args = KafkaArgs::for_brokers("b:9092");
        let env = vec![("GRIDSYNC_KAFKA_SASL_PASSWORD_FILE".to_owned(), "/nonexistent/pw".to_owned())];
        let err = args.properties_from(env.into_iter()).unwrap_err();
        assert!(err.to_string().contains("GRIDSYNC_KAFKA_SASL_PASSWORD_FILE"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_and_bad_options_refused() {
        assert!(is_secret("sasl.password") && is_secret("ssl.key.password") && is_secret("ssl.key.pem"));
        assert!(!is_secret("sasl.username") && !is_secret("bootstrap.servers"));
        assert!(parse_key_value("no-equals").is_err());
        assert_eq!(parse_key_value("a.b=c=d").unwrap(), ("a.b".into(), "c=d".into()));
    }
}
