//! De-duplication: the events of a file Kafka has already (a file read again after a crash, or
//! resent) are skipped, by their control numbers or their ids; a partner reusing control numbers
//! for another document is reported.

use std::collections::{BTreeMap, HashMap};

use gridsync_core::kafka::Prepared;
use gridsync_core::retry::retry_logged;
use gridsync_schemas::{
    events::{ExceptionKind, Severity},
    Event,
};

use super::*;
use crate::exception::{self, About};

/// Acknowledged events recorded in one transaction, at most (a transaction takes what was
/// acknowledged while the one before was written). Large: a transaction writes each page it
/// changed once, so small transactions write the same pages again and again (at 500, the
/// store took twice the CPU, measured).
pub(super) const RECORD_BATCH: usize = 2_500;

/// A file's events' control keys (`None`: the event has no control numbers), and the event
/// last recorded under each key.
pub(super) struct Controls {
    pub(super) keys: Vec<Option<String>>,
    pub(super) last: HashMap<String, String>,
}

/// `sender|receiver|interchange|group|transaction|event type` of a document's event.
pub(super) fn control_key(event: &Event) -> Option<String> {
    let doc = event.envelope().trading_grid_document.as_ref()?;
    let parts = [
        doc.sender_id.as_str(),
        doc.receiver_id.as_str(),
        doc.interchange_control_number.as_str(),
        doc.group_control_number.as_deref().unwrap_or(""),
        doc.transaction_control_number.as_str(),
        event.envelope().event_type.as_str(),
    ];
    Some(parts.join("|"))
}

/// The exception for `event`, a document under control numbers last seen on event `previous`.
pub(super) fn reuse_exception(event: &Event, previous: &str) -> Event {
    let envelope = event.envelope();
    let (document_type, controls) = envelope.trading_grid_document.as_ref().map_or_else(Default::default, |d| {
        let group = d.group_control_number.as_deref().unwrap_or("-");
        (d.document_type.clone(), format!("{}/{group}/{}", d.interchange_control_number, d.transaction_control_number))
    });
    let reason = format!(
        "{} reused control numbers {controls} for a different {document_type} ({}): it is published as a new \
         document; the earlier one is event {previous}",
        envelope.trading_partner_id, envelope.business_key
    );
    let details = BTreeMap::from([
        ("previous_event_id".to_owned(), previous.to_owned()),
        ("control_numbers".to_owned(), controls),
    ]);
    let what = "control-numbers-reused";
    exception::about(
        event,
        About { what, kind: ExceptionKind::Duplicate, severity: Severity::Warning, reason, details },
    )
}

impl Inbound {
    /// Each of a file's events' control key, and the event last recorded under each: looked up
    /// before the file's place comes, while the file before it publishes. `None` on shutdown.
    pub(super) async fn controls_of(&self, keys: Vec<Option<String>>) -> Option<Controls> {
        let named: Vec<String> = keys.iter().flatten().cloned().collect();
        let last =
            retry_logged(&self.shutdown, &self.retry, "reading control numbers", || self.received.last_all(&named))
                .await?;
        Some(Controls { keys, last })
    }

    /// The events Kafka does not have yet, by index, each with its control key and the event
    /// the key named before, once every reuse of control numbers among them is reported.
    /// `None` on shutdown.
    ///
    /// Control numbers are recorded only after Kafka acknowledged their event, and the event
    /// they named before goes to the published events in the same transaction, so the control
    /// numbers answer for most events: last seen with this very event, it is on Kafka; never
    /// seen, it is not (but for a crash between Kafka's acknowledgement and the record, which
    /// publishes it again under its id). Only the rest (no control numbers, or numbers last
    /// seen on another document) are looked up among the published events, now that the file
    /// before published everything: a fresh file costs one look-up per event, not two, and one
    /// write.
    pub(super) async fn unpublished(
        &self,
        events: &[Prepared],
        Controls { keys, last }: Controls,
        before: &Unrecorded,
    ) -> Option<Vec<(usize, Option<String>, Option<String>)>> {
        // The file before published after the look-up: its numbers are the newer.
        let last_of = |key: &String| before.controls.get(key).or_else(|| last.get(key));
        // Whether each event is on Kafka, by its control numbers; `None`: ask the published events.
        let known: Vec<Option<bool>> = keys
            .iter()
            .zip(events)
            .map(|(key, event)| match key.as_ref().map(last_of) {
                Some(None) => Some(false),
                Some(Some(id)) if *id == event.event_id => Some(true),
                _ => None,
            })
            .collect();
        let unsure: Vec<String> = known
            .iter()
            .zip(events)
            .filter(|(known, event)| known.is_none() && !before.events.contains(&event.event_id))
            .map(|(_, event)| event.event_id.clone())
            .collect();
        let published = if unsure.is_empty() {
            Default::default()
        } else {
            retry_logged(&self.shutdown, &self.retry, "reading the published events", || {
                self.published.contained(&unsure)
            })
            .await?
        };
        let is_published = |id: &String| before.events.contains(id) || published.contains(id);
        let fresh: Vec<(usize, Option<String>, Option<String>)> = keys
            .into_iter()
            .enumerate()
            .zip(known)
            .filter(|((i, _), known)| !known.unwrap_or_else(|| is_published(&events[*i].event_id)))
            .map(|((i, key), _)| {
                let previous = key.as_ref().and_then(last_of).cloned();
                (i, key, previous)
            })
            .collect();
        self.metrics.already_published(events.len() - fresh.len());
        for (i, key, previous) in &fresh {
            let event = &events[*i];
            if let (Some(key), Some(previous)) = (key, previous.as_ref().filter(|id| **id != event.event_id)) {
                if !self.report_reuse(event, key, previous).await {
                    return None;
                }
            }
        }
        Some(fresh)
    }

    /// Records events Kafka acknowledged, under the control numbers they came with (the
    /// published events take the rest); false if shutdown came before the store took them.
    pub(super) async fn record_published(&self, batch: &[(String, Option<String>)]) -> bool {
        retry_logged(&self.shutdown, &self.retry, "recording published events", || {
            self.received.record_acknowledged(batch, "tg-producer")
        })
        .await
        .is_some()
    }

    /// The document last received under `key` was another one (`previous`): the partner reused
    /// its control numbers, and a DocumentExchangeException says so (the document itself still
    /// flows, under its own id). False on shutdown.
    pub(super) async fn report_reuse(&self, prepared: &Prepared, key: &str, previous: &str) -> bool {
        // The whole event, decoded again: a reuse is rare, and what an exception names.
        let event = match prepared.event() {
            Ok(event) => event,
            Err(e) => {
                tracing::error!(event = %prepared.event_id, error = %e, "the control-number reuse cannot be reported");
                return true;
            }
        };
        let exception = reuse_exception(&event, previous);
        match self.publish(&exception).await {
            Publish::Done => {}
            Publish::Shutdown => return false,
            Publish::Refused(why) => tracing::error!(%why, "the control-number reuse cannot be reported"),
        }
        self.metrics.control_numbers_reused(&event.envelope().trading_partner_id);
        tracing::warn!(key, previous, event = %event.envelope().event_id, "a partner reused control numbers for another document");
        true
    }
}
