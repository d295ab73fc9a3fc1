//! The order of files in hand at once: each file's events go out after those of the file before
//! it, and are recorded after them.

use std::collections::{HashMap, HashSet};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// What a file published that the store may not have recorded yet, handed to the next file
/// in order: that file looked the store up before.
#[derive(Default)]
pub(super) struct Unrecorded {
    /// Control key → the event published under it.
    pub(super) controls: HashMap<String, String>,
    /// Events the published events will hold: those without control numbers, and those the
    /// control numbers named before naming another.
    pub(super) events: HashSet<String>,
}

impl Unrecorded {
    /// Kafka acknowledged `id`, published under `key`, which named `previous` before.
    pub(super) fn published(&mut self, id: &str, key: Option<&String>, previous: Option<&String>) {
        let Some(key) = key else {
            self.events.insert(id.to_owned());
            return;
        };
        let named = self.controls.insert(key.clone(), id.to_owned());
        if let Some(named) = named.as_ref().or(previous).filter(|named| *named != id) {
            self.events.insert(named.clone());
        }
    }
}

/// A file's place in its round. It looks the store up once the file two before it recorded its
/// events: only the file before may have events the store does not tell yet, and its
/// [`Unrecorded`] tells them. Its events go out once every event of the file before is
/// acknowledged, and are recorded once that file's are: the next file sends while this one
/// still records, and the store takes each file's records in the files' order.
///
/// "Recorded" is a cancellation token: several files wait on it, and a guard fires it whichever
/// way the file's task ends, a panic included.
pub(super) struct FileOrder {
    /// What the file before this one published, once it all was (nothing: a dropped sender).
    pub(super) before_published: Option<oneshot::Receiver<Unrecorded>>,
    /// Cancelled once the file before this one recorded what it published.
    pub(super) before_recorded: CancellationToken,
    /// Cancelled once the file two before this one recorded what it published.
    pub(super) two_before_recorded: CancellationToken,
    pub(super) published: Option<oneshot::Sender<Unrecorded>>,
    /// Cancels this file's "recorded" when dropped (after its records, or on any way out).
    pub(super) recorded: Option<tokio_util::sync::DropGuard>,
}

impl FileOrder {
    /// Waits until every event of the file before this one is acknowledged (at once the
    /// second time); what it published.
    pub(super) async fn published_before(&mut self) -> Unrecorded {
        match self.before_published.take() {
            Some(before) => before.await.unwrap_or_default(),
            None => Unrecorded::default(),
        }
    }

    /// Hands whatever of its turn this file has not passed on yet to the next files, in order:
    /// a file that never had its turn published nothing, and hands on an empty [`Unrecorded`].
    pub(super) async fn pass(&mut self) {
        self.published_before().await;
        if let Some(published) = self.published.take() {
            // The next file gone (shutdown): nobody to tell.
            let _ = published.send(Unrecorded::default());
        }
        self.before_recorded.cancelled().await;
        self.recorded.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(unrecorded: &Unrecorded) -> Vec<&str> {
        let mut ids: Vec<&str> = unrecorded.events.iter().map(String::as_str).collect();
        ids.sort();
        ids
    }

    /// The next file must find what the store will hold once this one's records are written:
    /// each key's last event, and in the published events whatever the keys no longer name.
    #[test]
    fn what_is_unrecorded_holds_what_the_records_will_say() {
        let (key, other) = ("ACME|GRIDSYNC|1|1|0001|PurchaseOrderReceived".to_owned(), "ACME|2".to_owned());
        let mut unrecorded = Unrecorded::default();
        unrecorded.published("new", Some(&key), None);
        unrecorded.published("fresh", Some(&other), None);
        assert!(unrecorded.events.is_empty(), "never named before: nothing moves to the published events");

        // Named another document before this file (the store's look-up), then twice in it.
        let mut unrecorded = Unrecorded::default();
        unrecorded.published("b", Some(&key), Some(&"a".to_owned()));
        unrecorded.published("c", Some(&key), Some(&"a".to_owned()));
        unrecorded.published("c", Some(&key), Some(&"a".to_owned()));
        assert_eq!(unrecorded.controls.get(&key).map(String::as_str), Some("c"), "the key names its last event");
        assert_eq!(ids(&unrecorded), ["a", "b"], "what it named before is published, not forgotten");

        // Without control numbers: only the published events can tell.
        unrecorded.published("keyless", None, None);
        assert_eq!(ids(&unrecorded), ["a", "b", "keyless"]);
    }
}
