//! Trading partner profiles: one TOML file (`deploy/partners.toml` is the example), read by
//! tg-producer (who may send, what each is answered, which of its habits are tolerated) and by
//! every consumer (names, locales, contacts, what gridsync sends it), with one schema: an
//! unknown field is refused wherever the file is read. A partner an event names but the file
//! does not is a permanent error for that record (dead-lettered, naming the partner), never a
//! guess.

use std::{collections::BTreeMap, path::Path};

use gridsync_edi::{write::X12Ack, Leniency};
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
    /// (`wrong-segment-counts`), noted in its acknowledgements.
    #[serde(default)]
    pub tolerate: Vec<Habit>,
    /// How tg-producer acknowledges its interchanges: `997` or `999` (X12; 999, the 005010
    /// implementation acknowledgement, is what many retailers ask for), `CONTRL` (EDIFACT), or
    /// `none`. Defaults to its standard's: 997 or CONTRL.
    #[serde(default)]
    pub acknowledgement: Option<Acknowledgement>,
    /// Document types gridsync does not map that this partner sends and that are accepted and
    /// ignored (recorded for the audit view) instead of rejected (`940`, `846`, ...).
    #[serde(default)]
    pub accept_unmapped: Vec<String>,
}

/// A habit of a partner's files that its profile may ask gridsync to tolerate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Habit {
    /// SE01 / UNT01 miscounting the transaction's segments.
    WrongSegmentCounts,
}

/// What a partner's interchanges are acknowledged with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Acknowledgement {
    #[serde(rename = "997")]
    Functional997,
    #[serde(rename = "999")]
    Implementation999,
    #[serde(rename = "CONTRL")]
    Contrl,
    #[serde(rename = "none")]
    None,
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
            acknowledgement: None,
            accept_unmapped: Vec::new(),
        }
    }

    /// The departures from the standard its files are allowed.
    pub fn leniency(&self) -> Leniency {
        Leniency { segment_counts: self.tolerate.contains(&Habit::WrongSegmentCounts) }
    }

    /// The functional acknowledgement its interchanges get: for X12 a 997 or 999, for EDIFACT
    /// a CONTRL (`Some(Default)`); `None` when it wants none.
    pub fn acknowledgement(&self) -> Option<X12Ack> {
        match self.acknowledgement {
            Some(Acknowledgement::None) => None,
            Some(Acknowledgement::Implementation999) => Some(X12Ack::Implementation999),
            Some(Acknowledgement::Functional997 | Acknowledgement::Contrl) | None => Some(X12Ack::Functional997),
        }
    }

    /// Why its profile contradicts itself, if it does: an acknowledgement of the other standard,
    /// or a 999 for a partner on versions before 005010.
    fn contradiction(&self) -> Option<String> {
        let acknowledgement = self.acknowledgement?;
        match (self.standard, acknowledgement) {
            (Standard::Edifact, Acknowledgement::Functional997 | Acknowledgement::Implementation999)
            | (Standard::X12, Acknowledgement::Contrl) => {
                Some(format!("acknowledgement {acknowledgement:?} is not one of the {:?} standard", self.standard))
            }
            (Standard::X12, Acknowledgement::Implementation999)
                if !self.versions.is_empty() && !self.versions.iter().any(|v| v.starts_with("005")) =>
            {
                Some(format!("a 999 is an 005010 acknowledgement, and the partner exchanges {:?}", self.versions))
            }
            _ => None,
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
    #[error("the partner profiles {path}: partner {id:?}: {why}")]
    Contradiction { path: String, id: String, why: String },
}

/// A partner an event names that the profiles do not list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trading partner {0:?} is not in the partner profiles")]
pub struct UnknownPartner(pub String);

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
    /// Interchange sender ids (and partner ids) → partner id.
    by_sender: BTreeMap<String, String>,
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
        let (mut by_id, mut by_sender) = (BTreeMap::new(), BTreeMap::new());
        for partner in file.partner {
            let id = partner.id.clone();
            if let Some(why) = partner.contradiction() {
                return Err(PartnersError::Contradiction { path: path.to_owned(), id, why });
            }
            by_sender.insert(partner.interchange_id.trim().to_owned(), id.clone());
            by_sender.insert(id.clone(), id.clone());
            if by_id.insert(id.clone(), partner).is_some() {
                return Err(PartnersError::Duplicate { path: path.to_owned(), id });
            }
        }
        Ok(PartnerProfiles { by_id, by_sender })
    }

    /// The profile of `id`, or the error a record naming it is dead-lettered with.
    pub fn get(&self, id: &str) -> Result<&PartnerProfile, UnknownPartner> {
        self.by_id.get(id).ok_or_else(|| UnknownPartner(id.to_owned()))
    }

    /// The profile of the partner an interchange comes from: `sender` (ISA06, UNB02) is its
    /// `interchange_id` or its `id`.
    pub fn sender(&self, sender: &str) -> Option<&PartnerProfile> {
        self.by_sender.get(sender.trim()).and_then(|id| self.by_id.get(id))
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
    fn senders_habits_and_answers_come_from_one_profile() {
        let profiles = PartnerProfiles::parse(
            r#"
            [[partner]]
            id = "SLOPPY"
            name = "Sloppy"
            standard = "X12"
            versions = ["005010"]
            interchange_id = "SLOPPY-ISA"
            tolerate = ["wrong-segment-counts"]
            acknowledgement = "999"
            accept_unmapped = ["846"]

            [[partner]]
            id = "TIDY"
            name = "Tidy"
            standard = "EDIFACT"
            interchange_id = "4000000000001"
            acknowledgement = "none"
            "#,
            "p.toml",
        )
        .unwrap();
        let sloppy = profiles.sender("SLOPPY-ISA").unwrap();
        assert_eq!(profiles.sender("SLOPPY").map(|p| &p.id), Some(&sloppy.id), "by id too");
        assert_eq!(sloppy.leniency(), Leniency { segment_counts: true });
        assert_eq!(sloppy.acknowledgement(), Some(X12Ack::Implementation999));
        assert_eq!(sloppy.accept_unmapped, ["846"]);
        let tidy = profiles.sender(" 4000000000001 ").unwrap();
        assert_eq!((tidy.leniency(), tidy.acknowledgement()), (Leniency::default(), None));
        assert!(profiles.sender("EVILCORP").is_none() && profiles.sender("../../x").is_none());
        let habit = "[[partner]]\nid = \"X\"\nname = \"X\"\nstandard = \"X12\"\ninterchange_id = \"X\"\ntolerate = [\"anything-goes\"]\n";
        assert!(PartnerProfiles::parse(habit, "p.toml").is_err());
    }

    #[test]
    fn an_acknowledgement_the_partner_cannot_read_is_refused() {
        let profile = |standard: &str, versions: &str, ack: &str| {
            format!(
                "[[partner]]\nid = \"A\"\nname = \"A\"\nstandard = \"{standard}\"\nversions = [{versions}]\n\
                 interchange_id = \"A\"\nacknowledgement = \"{ack}\"\n"
            )
        };
        let refused = |text: String| PartnerProfiles::parse(&text, "p.toml").unwrap_err().to_string();
        assert!(refused(profile("X12", "\"004010\"", "999")).contains("a 999 is an 005010 acknowledgement"));
        assert!(refused(profile("EDIFACT", "", "997")).contains("is not one of the Edifact standard"));
        assert!(refused(profile("X12", "", "CONTRL")).contains("is not one of the X12 standard"));
        assert!(PartnerProfiles::parse(&profile("X12", "\"005010\"", "999"), "p.toml").is_ok());
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
