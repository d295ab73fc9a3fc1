//! The distribution flow's configuration (`default-distribution.toml`).

use std::path::Path;

use gridsync_amplience::setup::Requirements;
use gridsync_flow::config::{self, ConfigError};
use serde::Deserialize;

/// Built in; `--config` replaces it.
pub const DEFAULT: &str = include_str!("../default-distribution.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributionConfig {
    pub on_approval: Vec<String>,
    pub repository_id: String,
    pub status_key_prefix: String,
    pub status_schema: String,
    pub read_window_hours: i64,
    /// Workflow states that withdraw content: a version not yet sent is then not sent.
    pub withdrawn_states: Vec<String>,
    /// The largest attachment fetched for a package; a larger one fails the package.
    pub max_attachment_bytes: u64,
}

impl DistributionConfig {
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        config::load(path, DEFAULT, "default-distribution.toml")
    }

    /// What the flow needs of the Amplience hub.
    pub fn requirements(&self) -> Requirements {
        let mut needs = Requirements::default();
        needs.content_type(&self.status_schema, &self.repository_id);
        needs
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_parses() {
        let config = super::DistributionConfig::load(None).unwrap();
        assert_eq!(config.on_approval.len(), 3);
        assert_eq!(config.read_window_hours, 72);
    }
}
