//! The billing flow's configuration (`default-billing.toml`).

use std::{collections::BTreeMap, path::Path};

use gridsync_amplience::setup::Requirements;
use gridsync_flow::{
    config::{self, ConfigError},
    hub_check::template_keys,
    PartnerProfiles,
};
use serde::Deserialize;

/// Built in; `--config` replaces it.
pub const DEFAULT: &str = include_str!("../default-billing.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingConfig {
    pub repository_id: String,
    pub content_type_uri: String,
    pub template_repository_id: String,
    pub approved_states: Vec<String>,
    pub account_status_key_prefix: String,
    pub account_status_schema: String,
    pub reminder_offsets_days: Vec<i64>,
    pub default_payment_terms_days: i64,
    pub reminder_hour_utc: u32,
    pub tolerance: rust_decimal::Decimal,
    pub account_team_workflow_state: String,
    /// Action → template delivery key pattern (`{locale}`).
    pub templates: BTreeMap<String, String>,
    /// Partner id → action → template delivery key pattern.
    #[serde(default)]
    pub partner_templates: BTreeMap<String, BTreeMap<String, String>>,
}

impl BillingConfig {
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        config::load(path, DEFAULT, "default-billing.toml")
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
            .content_type(&self.account_status_schema, &self.repository_id)
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
    #[test]
    fn the_default_parses() {
        let config = super::BillingConfig::load(None).unwrap();
        assert_eq!(config.reminder_offsets_days, [-3, 0, 7, 14]);
        assert_eq!(config.tolerance.to_string(), "0.01");
        assert_eq!(
            config.template_key("payment-reminder", "ACME", "en-US").as_deref(),
            Some("templates/payment-reminder/en-US")
        );
    }
}
