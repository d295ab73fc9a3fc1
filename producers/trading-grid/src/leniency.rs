//! Who may send, and which senders' known habits are accepted rather than rejected: read from
//! the partner profiles every consumer reads (`--partners`). A sender the profiles do not list
//! (by `id` or `interchange_id`) is refused; a partner may list
//! `tolerate = ["wrong-segment-counts"]`, and one without it is held to the standard. Without
//! profiles, every sender is admitted, strictly.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use gridsync_edi::Leniency;
use serde::Deserialize;

/// A habit a partner's profile may ask gridsync to tolerate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Habit {
    /// SE01 / UNT01 miscounting the transaction's segments.
    WrongSegmentCounts,
}

/// The part of a partner profile this producer reads; the consumers check the rest.
#[derive(Debug, Deserialize)]
struct Profile {
    id: String,
    #[serde(default)]
    interchange_id: Option<String>,
    #[serde(default)]
    tolerate: Vec<Habit>,
}

#[derive(Debug, Deserialize)]
struct File {
    #[serde(default)]
    partner: Vec<Profile>,
}

#[derive(Debug, thiserror::Error)]
pub enum LeniencyError {
    #[error("reading the partner profiles {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the partner profiles {path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: toml::de::Error,
    },
}

/// Each sender's leniency, by interchange sender id (and partner id), and who is known.
#[derive(Debug, Default)]
pub struct Leniencies {
    by_sender: HashMap<String, Leniency>,
    /// The partners' ids and interchange ids; `None` without profiles (everyone is admitted).
    known: Option<HashSet<String>>,
}

impl Leniencies {
    pub fn load(path: &Path) -> Result<Self, LeniencyError> {
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| LeniencyError::Read { path: shown.clone(), source })?;
        Self::parse(&text).map_err(|source| LeniencyError::Parse { path: shown, source })
    }

    fn parse(text: &str) -> Result<Self, toml::de::Error> {
        let file: File = toml::from_str(text)?;
        let mut by_sender = HashMap::new();
        let mut known = HashSet::new();
        for profile in file.partner {
            known.insert(profile.id.clone());
            known.extend(profile.interchange_id.clone());
            let leniency = Leniency { segment_counts: profile.tolerate.contains(&Habit::WrongSegmentCounts) };
            if leniency != Leniency::default() {
                by_sender.extend(profile.interchange_id.map(|id| (id, leniency)));
                by_sender.insert(profile.id, leniency);
            }
        }
        Ok(Leniencies { by_sender, known: Some(known) })
    }

    /// Whether `sender` (an interchange sender id) is a partner of the profiles (or no profiles
    /// were given).
    pub fn knows(&self, sender: &str) -> bool {
        self.known.as_ref().is_none_or(|known| known.contains(sender.trim()))
    }

    /// What `sender` (an interchange sender id) is allowed; strict when it is not listed.
    pub fn of(&self, sender: &str) -> Leniency {
        self.by_sender.get(sender).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_habits_of_listed_senders_are_tolerated() {
        let leniencies = Leniencies::parse(
            r#"
            [[partner]]
            id = "SLOPPY"
            interchange_id = "SLOPPY-ISA"
            name = "ignored here"
            tolerate = ["wrong-segment-counts"]

            [[partner]]
            id = "TIDY"
            name = "strict"
            "#,
        )
        .unwrap();
        let lenient = Leniency { segment_counts: true };
        assert_eq!((leniencies.of("SLOPPY-ISA"), leniencies.of("SLOPPY")), (lenient, lenient));
        assert_eq!(leniencies.of("TIDY"), Leniency::default());
        assert_eq!(leniencies.of("UNKNOWN"), Leniency::default());
        assert!(leniencies.knows("SLOPPY-ISA") && leniencies.knows("SLOPPY") && leniencies.knows("TIDY"));
        assert!(!leniencies.knows("EVILCORP") && !leniencies.knows("../../x"));
        assert!(Leniencies::default().knows("ANYONE"), "no profiles: everyone is admitted");
        assert!(Leniencies::parse("[[partner]]\nid = \"X\"\ntolerate = [\"anything-goes\"]\n").is_err());
    }
}
