//! Who may send, what each sender's interchanges are answered with, and which of its known
//! habits are accepted rather than rejected: the partner profiles (`--partners`), read with the
//! consumers' own reader, so there is one schema. A sender the profiles do not list (by `id` or
//! `interchange_id`) is refused; a partner may list `tolerate = ["wrong-segment-counts"]`, and
//! one without it is held to the standard. Without profiles, every sender is admitted,
//! strictly, and answered with its standard's acknowledgement.

use std::path::Path;

use gridsync_edi::{write::X12Ack, Leniency};
use gridsync_trading_grid::partners::{PartnerProfile, PartnerProfiles, PartnersError};

#[derive(Debug, Default)]
pub struct Senders {
    /// `None` without profiles: everyone is admitted.
    profiles: Option<PartnerProfiles>,
}

impl Senders {
    pub fn load(path: &Path) -> Result<Self, PartnersError> {
        Ok(Senders { profiles: Some(PartnerProfiles::load(path)?) })
    }

    fn profile(&self, sender: &str) -> Option<&PartnerProfile> {
        self.profiles.as_ref()?.sender(sender)
    }

    /// Whether `sender` (an interchange sender id) is a partner of the profiles (or no profiles
    /// were given).
    pub fn knows(&self, sender: &str) -> bool {
        self.profiles.is_none() || self.profile(sender).is_some()
    }

    /// What `sender` (an interchange sender id) is allowed; strict when it is not listed.
    pub fn leniency(&self, sender: &str) -> Leniency {
        self.profile(sender).map(PartnerProfile::leniency).unwrap_or_default()
    }

    /// The functional acknowledgement `sender`'s interchanges get (X12: a 997 or 999; EDIFACT
    /// a CONTRL, whatever this says); `None` when its profile wants none.
    pub fn acknowledgement(&self, sender: &str) -> Option<X12Ack> {
        self.profile(sender).map_or(Some(X12Ack::default()), PartnerProfile::acknowledgement)
    }

    /// The partners of the profiles, by id (none without profiles).
    pub fn partner_ids(&self) -> impl Iterator<Item = &str> {
        self.profiles.iter().flat_map(|p| p.all().map(|profile| profile.id.as_str()))
    }

    /// The document types gridsync does not map that `sender`'s profile accepts and ignores.
    pub fn ignored(&self, sender: &str) -> &[String] {
        self.profile(sender).map_or(&[], |p| p.accept_unmapped.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profiles_decide_who_may_send_and_how_they_are_answered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partners.toml");
        let profiles = r#"
            [[partner]]
            id = "SLOPPY"
            name = "Sloppy"
            standard = "X12"
            interchange_id = "SLOPPY-ISA"
            tolerate = ["wrong-segment-counts"]
            acknowledgement = "none"
            accept_unmapped = ["846"]

            [[partner]]
            id = "TIDY"
            name = "Tidy"
            standard = "X12"
            interchange_id = "TIDY"
            "#;
        std::fs::write(&path, profiles).unwrap();
        let senders = Senders::load(&path).unwrap();
        let lenient = Leniency { segment_counts: true };
        assert_eq!((senders.leniency("SLOPPY-ISA"), senders.leniency("SLOPPY")), (lenient, lenient));
        assert_eq!((senders.leniency("TIDY"), senders.leniency("UNKNOWN")), (Leniency::default(), Leniency::default()));
        assert!(senders.knows("SLOPPY-ISA") && senders.knows("SLOPPY") && senders.knows("TIDY"));
        assert!(!senders.knows("EVILCORP") && !senders.knows("../../x"));
        assert_eq!(
            (senders.acknowledgement("SLOPPY-ISA"), senders.acknowledgement("TIDY")),
            (None, Some(X12Ack::Functional997))
        );
        assert_eq!((senders.ignored("SLOPPY-ISA"), senders.ignored("TIDY")), (&["846".to_owned()][..], &[][..]));
        let everyone = Senders::default();
        assert!(everyone.knows("ANYONE"), "no profiles: everyone is admitted");
        assert_eq!(everyone.acknowledgement("ANYONE"), Some(X12Ack::Functional997));
    }
}
