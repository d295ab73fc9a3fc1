//! Delivery keys of the items gridsync creates, derived from the source event
//! so that a retry or a replay finds the item the first attempt created.
//! Amplience keeps delivery keys unique within a hub.

/// Amplience's limit on a delivery key's length.
pub const MAX_LEN: usize = 150;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryKeyError {
    #[error("delivery key {0:?} is empty or longer than {MAX_LEN} characters")]
    Length(String),
    #[error("delivery key {0:?} may only hold A-Z a-z 0-9 _ - / and must not start or end with /")]
    Characters(String),
}

/// A valid delivery key: 1–150 of `[A-Za-z0-9_\-/]`, not starting or ending with `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryKey(String);

impl DeliveryKey {
    pub fn parse(key: &str) -> Result<Self, DeliveryKeyError> {
        if key.is_empty() || key.len() > MAX_LEN {
            return Err(DeliveryKeyError::Length(key.to_owned()));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/');
        if !key.chars().all(allowed) || key.starts_with('/') || key.ends_with('/') || key.contains("//") {
            return Err(DeliveryKeyError::Characters(key.to_owned()));
        }
        Ok(DeliveryKey(key.to_owned()))
    }

    /// `<prefix>/<segment>/<segment>...`, each segment made safe: characters
    /// outside the allowed set become `_` (so `ACME CORP/PO#12` stays readable
    /// as `ACME_CORP/PO_12`), and a segment is never empty.
    pub fn derive<'a>(prefix: &str, segments: impl IntoIterator<Item = &'a str>) -> Result<Self, DeliveryKeyError> {
        let mut key = prefix.trim_matches('/').to_owned();
        for segment in segments {
            let safe: String = segment
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
                .collect();
            key.push('/');
            key.push_str(if safe.is_empty() { "_" } else { &safe });
        }
        Self::parse(&key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeliveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_derived_from_the_source_and_made_safe() {
        let key = DeliveryKey::derive("gridsync/po-confirmation", ["ACME CORP", "PO#12/3"]).unwrap();
        assert_eq!(key.as_str(), "gridsync/po-confirmation/ACME_CORP/PO_12_3");
        assert_eq!(DeliveryKey::derive("gridsync", ["", "x"]).unwrap().as_str(), "gridsync/_/x");
    }

    #[test]
    fn invalid_keys_are_refused() {
        assert!(DeliveryKey::parse("a/b_c-D9").is_ok());
        for bad in ["", "/lead", "trail/", "sp ace", "a//b", "ü"] {
            assert!(DeliveryKey::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(DeliveryKey::parse(&"k".repeat(151)), Err(DeliveryKeyError::Length(_))));
        assert!(DeliveryKey::derive("gridsync", [&*"x".repeat(200)]).is_err());
    }
}
