//! Trading partner profiles: one TOML file (`deploy/partners.toml` is the
//! example) that every consumer reads. A partner an event names but the file
//! does not is a permanent error for that record (dead-lettered, naming the
//! partner), never a guess.

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;

/// One trading partner.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerProfile {
    /// The trading partner id, as gridsync's events carry it (the interchange sender).
    pub id: String,
    pub name: String,
    /// `X12` or `EDIFACT`: what gridsync writes to this partner.
    pub standard: Standard,
    /// The versions it exchanges (X12 `004010`, EDIFACT `D96A`, ...); the first is written.
    #[serde(default)]
    pub versions: Vec<String>,
    /// Its interchange id and qualifier (ISA05/06 or UNB02).
    pub interchange_id: String,
    #[serde(default)]
    pub interchange_qualifier: Option<String>,
    /// The documents it wants from gridsync (`820`, `REMADV`, `partner-content`, ...).
    #[serde(default)]
    pub documents: Vec<String>,
    /// The Amplience locale of what gridsync writes about it.
    #[serde(default = "default_locale")]
    pub locale: String,
    /// Who hears about its orders: the account team, and the customer contact.
    #[serde(default)]
    pub contacts: Contacts,
    /// How long after a document is sent its 997/CONTRL may take before it is overdue (flow 8).
    #[serde(default = "default_ack_window_hours")]
    pub ack_window_hours: u32,
    /// Its own ids of the customers it orders for (buyer ids in its documents) → customer names.
    #[serde(default)]
    pub customers: BTreeMap<String, String>,
    /// Habits of its files tg-producer accepts with a warning instead of rejecting them
    /// (`wrong-segment-counts`); read by tg-producer, not by the consumers.
    #[serde(default)]
    pub tolerate: Vec<String>,
}

impl PartnerProfile {
    /// A partner the profiles do not list (a file whose sender could not be
    /// read): what is written about it still needs a name and a locale.
    pub fn unlisted(id: &str) -> Self {
        PartnerProfile {
            id: id.to_owned(),
            name: format!("unlisted partner {id}"),
            standard: Standard::X12,
            versions: Vec::new(),
            interchange_id: id.to_owned(),
            interchange_qualifier: None,
            documents: Vec::new(),
            locale: default_locale(),
            contacts: Contacts::default(),
            ack_window_hours: default_ack_window_hours(),
            customers: BTreeMap::new(),
            tolerate: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Standard {
    X12,
    Edifact,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contacts {
    #[serde(default)]
    pub account_team: Option<String>,
    #[serde(default)]
    pub customer: Option<String>,
}

fn default_ack_window_hours() -> u32 {
    24
}

fn default_locale() -> String {
    "en-GB".to_owned()
}

#[derive(Debug, thiserror::Error)]
pub enum PartnersError {
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
    #[error("the partner profiles {path}: partner {id:?} appears twice")]
    Duplicate { path: String, id: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    partner: Vec<PartnerProfile>,
}

/// Every partner profile, by partner id.
#[derive(Debug, Clone, Default)]
pub struct PartnerProfiles {
    by_id: BTreeMap<String, PartnerProfile>,
}

impl PartnerProfiles {
    pub fn load(path: &Path) -> Result<Self, PartnersError> {
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| PartnersError::Read { path: shown.clone(), source })?;
        Self::parse(&text, &shown)
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, PartnersError> {
        let file: File =
            toml::from_str(text).map_err(|source| PartnersError::Parse { path: path.to_owned(), source })?;
        let mut by_id = BTreeMap::new();
        for partner in file.partner {
            let id = partner.id.clone();
            if by_id.insert(id.clone(), partner).is_some() {
                return Err(PartnersError::Duplicate { path: path.to_owned(), id });
            }
        }
        Ok(PartnerProfiles { by_id })
    }

    /// The profile of `id`, or the error a record naming it is dead-lettered with.
    pub fn get(&self, id: &str) -> Result<&PartnerProfile, crate::FlowError> {
        self.by_id.get(id).ok_or_else(|| crate::FlowError::UnknownPartner(id.to_owned()))
    }

    /// Every profile, by id.
    pub fn all(&self) -> impl Iterator<Item = &PartnerProfile> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses_and_an_unknown_partner_is_named() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/partners.toml");
        let partners = PartnerProfiles::load(&path).unwrap();
        let acme = partners.get("ACME").unwrap();
        assert_eq!(acme.standard, Standard::X12);
        assert!(partners.get("5412345000013").is_ok_and(|p| p.standard == Standard::Edifact));
        let err = partners.get("NOBODY").unwrap_err();
        assert_eq!(err.to_string(), "trading partner \"NOBODY\" is not in the partner profiles");
    }

    #[test]
    fn unknown_fields_and_duplicates_are_refused() {
        let typo =
            "[[partner]]\nid = \"A\"\nname = \"A\"\nstandard = \"X12\"\ninterchange_id = \"A\"\nlocal = \"en\"\n";
        assert!(PartnerProfiles::parse(typo, "p.toml").unwrap_err().to_string().contains("unknown field `local`"));
        let one = "[[partner]]\nid = \"A\"\nname = \"A\"\nstandard = \"X12\"\ninterchange_id = \"A\"\n";
        let twice = format!("{one}{one}");
        assert_eq!(
            PartnerProfiles::parse(&twice, "p.toml").unwrap_err().to_string(),
            "the partner profiles p.toml: partner \"A\" appears twice"
        );
    }
}
