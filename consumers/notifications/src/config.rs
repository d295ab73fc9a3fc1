//! The notifications flow's configuration (`default-notifications.toml`).

use std::{collections::BTreeMap, path::Path};

use gridsync_amplience::setup::Requirements;
use gridsync_flow::{
    config::{self, ConfigError},
    hub_check::template_keys,
    PartnerProfiles,
};
use serde::Deserialize;

/// Built in; `--config` replaces it.
pub const DEFAULT: &str = include_str!("../default-notifications.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    pub repository_id: String,
    pub content_type_uri: String,
    pub template_repository_id: String,
    pub approved_states: Vec<String>,
    pub suppression_key_prefix: String,
    pub suppression_days: i64,
    pub post_purchase_delay_hours: i64,
    pub account_team_workflow_state: String,
    /// Action → template delivery key pattern (`{locale}`).
    pub templates: BTreeMap<String, String>,
    /// Partner id → action → template delivery key pattern.
    #[serde(default)]
    pub partner_templates: BTreeMap<String, BTreeMap<String, String>>,
}

impl NotificationsConfig {
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        config::load(path, DEFAULT, "default-notifications.toml")
    }

    /// The template key for `action` for `partner` in `locale`, if configured.
    pub fn template_key(&self, action: &str, partner: &str, locale: &str) -> Option<String> {
        config::template_key(&self.templates, &self.partner_templates, action, partner, locale)
    }

    /// What the flow needs of the Amplience hub, for `partners`.
    pub fn requirements(&self, partners: &PartnerProfiles) -> Requirements {
        let mut needs = Requirements::default();
        needs
            .content_type(&self.content_type_uri, &self.repository_id)
            .content_type(crate::flow::SUPPRESSION_SCHEMA, &self.repository_id)
            .workflow_states(self.approved_states.iter().chain([&self.account_team_workflow_state]))
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
    use super::*;

    #[test]
    fn the_default_parses_and_partners_may_override_a_template() {
        let mut config = NotificationsConfig::load(None).unwrap();
        assert_eq!(
            config.template_key("order-confirmation", "ACME", "en-US").as_deref(),
            Some("templates/order-confirmation/en-US")
        );
        config.partner_templates.insert("ACME".into(), [("order-confirmation".into(), "acme/oc".into())].into());
        assert_eq!(config.template_key("order-confirmation", "ACME", "en-US").as_deref(), Some("acme/oc"));
        assert_eq!(config.template_key("nothing", "ACME", "en-US"), None);
    }
}
