//! The flows' clock. Reminders and overdue acknowledgements are due at times
//! days away; tests and demos cannot wait for them, so the time a flow reads is
//! injectable: the system clock by default, or the instant written in a file
//! (`--clock-file`, RFC 3339), re-read at every look, so a test moves time on
//! by rewriting the file while the binary runs.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
};

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    /// The instant in this file; the system's time while the file is absent or unreadable.
    File(PathBuf),
    /// Set by the program (unit tests), in milliseconds since the epoch.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::File(path) => std::fs::read_to_string(path)
                .ok()
                .and_then(|text| DateTime::parse_from_rfc3339(text.trim()).ok())
                .map_or_else(Utc::now, |t| t.with_timezone(&Utc)),
            Clock::Manual(millis) => DateTime::from_timestamp_millis(millis.load(Ordering::SeqCst)).unwrap_or_default(),
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }

    /// A manual clock at `at`, and the handle that moves it.
    pub fn manual(at: DateTime<Utc>) -> (Self, Arc<AtomicI64>) {
        let handle = Arc::new(AtomicI64::new(at.timestamp_millis()));
        (Clock::Manual(handle.clone()), handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_clock_reads_its_file_at_every_look() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("now");
        let clock = Clock::File(path.clone());
        let before = Utc::now();
        assert!(clock.now() >= before, "no file: the system's time");
        std::fs::write(&path, "2027-01-15T09:00:00Z\n").unwrap();
        assert_eq!(clock.now().to_rfc3339(), "2027-01-15T09:00:00+00:00");
        std::fs::write(&path, "2027-02-01T00:00:00+01:00").unwrap();
        assert_eq!(clock.now().to_rfc3339(), "2027-01-31T23:00:00+00:00");
    }
}
