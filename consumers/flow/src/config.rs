//! What every flow's configuration file shares: how it is read (the built-in
//! default unless `--config` names a file; unknown keys refused by each
//! flow's `deny_unknown_fields`), and which template renders an action for a
//! partner.

use std::{collections::BTreeMap, path::Path};

use serde::de::DeserializeOwned;

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

/// The template delivery key for `action` for `partner` in `locale`: the
/// partner's own if it has one, else the flow's (`{locale}` filled in).
pub fn template_key(
    templates: &BTreeMap<String, String>,
    partner_templates: &BTreeMap<String, BTreeMap<String, String>>,
    action: &str,
    partner: &str,
    locale: &str,
) -> Option<String> {
    partner_templates
        .get(partner)
        .and_then(|own| own.get(action))
        .or_else(|| templates.get(action))
        .map(|pattern| pattern.replace("{locale}", locale))
}
