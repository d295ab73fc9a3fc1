//! What every flow's configuration file shares: how it is read (the built-in
//! default unless `--config` names a file; unknown keys refused by each
//! flow's `deny_unknown_fields`), and what flows writing messages configure alike
//! ([`MessageConfig`]: repositories, approved states, which template renders an action for a
//! partner).

use std::{collections::BTreeMap, path::Path};

use gridsync_amplience::setup::Requirements;
use serde::{de::DeserializeOwned, Deserialize};

use crate::{FlowError, PartnerProfile, PartnerProfiles};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: toml::de::Error,
    },
}

/// Reads the flow's configuration from `path`, or `default` (built in, shown as `default_name`).
pub fn load<T: DeserializeOwned>(path: Option<&Path>, default: &str, default_name: &str) -> Result<T, ConfigError> {
    let (text, shown) = match path {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.display().to_string(), source })?,
            p.display().to_string(),
        ),
        None => (default.to_owned(), default_name.to_owned()),
    };
    toml::from_str(&text).map_err(|source| ConfigError::Parse { path: shown, source })
}

/// What every flow that writes messages from approved templates configures alike, flattened
/// into its own configuration file (its keys stand beside the flow's own, and an unknown key is
/// still refused).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageConfig {
    /// The repository the flow's items are created in.
    pub repository_id: String,
    /// The repository its templates are in.
    pub template_repository_id: String,
    /// The workflow states in which a template version counts as approved.
    pub approved_states: Vec<String>,
    /// Action → template delivery key pattern (`{locale}`).
    pub templates: BTreeMap<String, String>,
    /// Partner id → action → template delivery key pattern.
    #[serde(default)]
    pub partner_templates: BTreeMap<String, BTreeMap<String, String>>,
}

impl MessageConfig {
    /// The template delivery key for `action` for `partner` in `locale`: the partner's own if it
    /// has one, else the flow's (`{locale}` filled in).
    pub fn template_key(&self, action: &str, partner: &str, locale: &str) -> Option<String> {
        self.partner_templates
            .get(partner)
            .and_then(|own| own.get(action))
            .or_else(|| self.templates.get(action))
            .map(|pattern| pattern.replace("{locale}", locale))
    }

    /// The template key of `action` for `partner`; a record needing an unconfigured one is invalid.
    pub fn template(&self, action: &str, partner: &PartnerProfile) -> Result<String, FlowError> {
        self.template_key(action, &partner.id, &partner.locale)
            .ok_or_else(|| FlowError::Invalid(format!("no template configured for {action:?}")))
    }

    /// What these messages need of the hub: each of `content_types` in the repository, the
    /// approved states and `states`, and each action's template for every partner's locale.
    pub fn requirements<'a>(
        &'a self,
        content_types: impl IntoIterator<Item = &'a str>,
        states: impl IntoIterator<Item = &'a String>,
        partners: &PartnerProfiles,
    ) -> Requirements {
        let mut needs = Requirements::default();
        for content_type in content_types {
            needs.content_type(content_type, &self.repository_id);
        }
        let keys = partners.all().flat_map(|partner| {
            self.templates.keys().filter_map(move |action| self.template_key(action, &partner.id, &partner.locale))
        });
        needs.workflow_states(self.approved_states.iter().chain(states)).templates(
            &self.template_repository_id,
            &self.approved_states,
            keys,
        );
        needs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flow's own file: its keys beside the shared ones.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Flow {
        #[serde(flatten)]
        messages: MessageConfig,
        reminder_days: i64,
    }

    const FILE: &str = r#"
        repository_id = "content"
        template_repository_id = "templates"
        approved_states = ["Approved"]
        reminder_days = 3
        [templates]
        reminder = "templates/reminder/{locale}"
        [partner_templates.ACME]
        reminder = "acme/reminder"
    "#;

    #[test]
    fn shared_keys_stand_beside_the_flows_own_and_an_unknown_key_is_still_refused() {
        let flow: Flow = toml::from_str(FILE).unwrap();
        assert_eq!((flow.messages.repository_id.as_str(), flow.reminder_days), ("content", 3));
        assert_eq!(
            flow.messages.template_key("reminder", "GLOBEX", "de-DE").as_deref(),
            Some("templates/reminder/de-DE")
        );
        assert_eq!(flow.messages.template_key("reminder", "ACME", "de-DE").as_deref(), Some("acme/reminder"));
        assert_eq!(flow.messages.template_key("invoice", "ACME", "de-DE"), None);
        let stray = format!("bogus = 1\n{FILE}");
        let refused = toml::from_str::<Flow>(&stray).unwrap_err().to_string();
        assert!(refused.contains("unknown field `bogus`"), "{refused}");
        let typo = FILE.replace("reminder_days", "reminder_dayz");
        let refused = toml::from_str::<Flow>(&typo).unwrap_err().to_string();
        assert!(refused.contains("reminder_days"), "{refused}");
        let missing = FILE.replace("approved_states", "# approved_states");
        assert!(toml::from_str::<Flow>(&missing).unwrap_err().to_string().contains("approved_states"));
    }
}
