//! The billing flow's configuration (`default-billing.toml`).

use std::path::Path;

use gridsync_amplience::setup::Requirements;
use gridsync_flow::{
    config::{self, ConfigError},
    MessageConfig, PartnerProfiles,
};
use serde::Deserialize;

/// Built in; `--config` replaces it.
pub const DEFAULT: &str = include_str!("../default-billing.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingConfig {
    /// Repositories, approved states and templates, as every messaging flow has them.
    #[serde(flatten)]
    pub messages: MessageConfig,
    pub content_type_uri: String,
    pub account_status_key_prefix: String,
    pub account_status_schema: String,
    pub reminder_offsets_days: Vec<i64>,
    pub default_payment_terms_days: i64,
    pub reminder_hour_utc: u32,
    pub tolerance: rust_decimal::Decimal,
    pub account_team_workflow_state: String,
}

impl BillingConfig {
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        config::load(path, DEFAULT, "default-billing.toml")
    }

    /// What the flow needs of the Amplience hub, for `partners`.
    pub fn requirements(&self, partners: &PartnerProfiles) -> Requirements {
        let types = [self.content_type_uri.as_str(), self.account_status_schema.as_str()];
        self.messages.requirements(types, [&self.account_team_workflow_state], partners)
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
            config.messages.template_key("payment-reminder", "ACME", "en-US").as_deref(),
            Some("templates/payment-reminder/en-US")
        );
    }
}
