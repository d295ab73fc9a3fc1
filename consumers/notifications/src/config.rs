//! The notifications flow's configuration (`default-notifications.toml`).

use std::path::Path;

use gridsync_amplience::setup::Requirements;
use gridsync_flow::{
    config::{self, ConfigError},
    MessageConfig, PartnerProfiles,
};
use serde::Deserialize;

/// Built in; `--config` replaces it.
pub const DEFAULT: &str = include_str!("../default-notifications.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Repositories, approved states and templates, as every messaging flow has them.
    #[serde(flatten)]
    pub messages: MessageConfig,
    pub content_type_uri: String,
    pub suppression_key_prefix: String,
    pub suppression_days: i64,
    pub post_purchase_delay_hours: i64,
    pub account_team_workflow_state: String,
}

impl NotificationsConfig {
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        config::load(path, DEFAULT, "default-notifications.toml")
    }

    /// What the flow needs of the Amplience hub, for `partners`.
    pub fn requirements(&self, partners: &PartnerProfiles) -> Requirements {
        let types = [self.content_type_uri.as_str(), crate::flow::SUPPRESSION_SCHEMA];
        self.messages.requirements(types, [&self.account_team_workflow_state], partners)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_parses_and_partners_may_override_a_template() {
        let mut config = NotificationsConfig::load(None).unwrap();
        assert_eq!(
            config.messages.template_key("order-confirmation", "ACME", "en-US").as_deref(),
            Some("templates/order-confirmation/en-US")
        );
        config
            .messages
            .partner_templates
            .insert("ACME".into(), [("order-confirmation".into(), "acme/oc".into())].into());
        assert_eq!(config.messages.template_key("order-confirmation", "ACME", "en-US").as_deref(), Some("acme/oc"));
        assert_eq!(config.messages.template_key("nothing", "ACME", "en-US"), None);
    }
}
