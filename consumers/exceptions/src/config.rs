//! The exceptions flow's configuration (`default-exceptions.toml`).

use std::{collections::BTreeMap, path::Path};

use gridsync_amplience::setup::Requirements;
use gridsync_flow::{
    config::{self, ConfigError},
    MessageConfig, PartnerProfiles,
};
use serde::Deserialize;

/// Built in; `--config` replaces it.
pub const DEFAULT: &str = include_str!("../default-exceptions.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionsConfig {
    /// Repositories, approved states and templates, as every messaging flow has them.
    #[serde(flatten)]
    pub messages: MessageConfig,
    pub task_content_type_uri: String,
    pub message_content_type_uri: String,
    pub open_state: String,
    pub resolved_state: String,
    pub revision_state: String,
    pub customer_documents: Vec<String>,
    pub customer_kinds: Vec<String>,
    /// Exception kind (`FA_REJECTED`) → what to do.
    pub guidance: BTreeMap<String, String>,
}

impl ExceptionsConfig {
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        config::load(path, DEFAULT, "default-exceptions.toml")
    }

    /// What the flow needs of the Amplience hub, for `partners`.
    pub fn requirements(&self, partners: &PartnerProfiles) -> Requirements {
        let types = [self.task_content_type_uri.as_str(), self.message_content_type_uri.as_str()];
        let states = [&self.open_state, &self.resolved_state, &self.revision_state];
        self.messages.requirements(types, states, partners)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_parses_and_guides_every_kind() {
        let config = super::ExceptionsConfig::load(None).unwrap();
        for kind in gridsync_schemas::events::ExceptionKind::ALL {
            assert!(config.guidance.contains_key(kind.as_str()), "no guidance for {kind:?}");
        }
    }
}
