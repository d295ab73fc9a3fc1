//! The exceptions flow's configuration (`default-exceptions.toml`).

use std::{collections::BTreeMap, path::Path};

use gridsync_amplience::setup::Requirements;
use gridsync_flow::{
    config::{self, ConfigError},
    hub_check::template_keys,
    PartnerProfiles,
};
use serde::Deserialize;

/// Built in; `--config` replaces it.
pub const DEFAULT: &str = include_str!("../default-exceptions.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionsConfig {
    pub repository_id: String,
    pub task_content_type_uri: String,
    pub message_content_type_uri: String,
    pub template_repository_id: String,
    pub approved_states: Vec<String>,
    pub open_state: String,
    pub resolved_state: String,
    pub revision_state: String,
    pub customer_documents: Vec<String>,
    pub customer_kinds: Vec<String>,
    pub templates: BTreeMap<String, String>,
    #[serde(default)]
    pub partner_templates: BTreeMap<String, BTreeMap<String, String>>,
    /// Exception kind (`FA_REJECTED`) → what to do.
    pub guidance: BTreeMap<String, String>,
}

impl ExceptionsConfig {
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        config::load(path, DEFAULT, "default-exceptions.toml")
    }

    pub fn template_key(&self, action: &str, partner: &str, locale: &str) -> Option<String> {
        config::template_key(&self.templates, &self.partner_templates, action, partner, locale)
    }

    /// What the flow needs of the Amplience hub, for `partners`.
    pub fn requirements(&self, partners: &PartnerProfiles) -> Requirements {
        let mut needs = Requirements::default();
        let states = [&self.open_state, &self.resolved_state, &self.revision_state];
        needs
            .content_type(&self.task_content_type_uri, &self.repository_id)
            .content_type(&self.message_content_type_uri, &self.repository_id)
            .workflow_states(self.approved_states.iter().chain(states))
            .templates(
                &self.template_repository_id,
                &self.approved_states,
                template_keys(&self.templates, &self.partner_templates, partners),
            );
        needs
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
