//! Publishing a file's events: mapped from its interchanges a chunk at a time, encoded, sent
//! together and awaited, what Kafka acknowledged recorded while the rest is in flight.

use std::collections::BTreeMap;

use futures::StreamExt;

use gridsync_core::kafka::{Prepared, PublishError};
use gridsync_core::retry::{logged_unless, retry_logged, retry_until};
use gridsync_edi::{map_in_chunks, EdiError, Interchange, MapContext};
use gridsync_schemas::Event;
use gridsync_trading_grid::mailbox::Claimed;

use super::*;

/// A file's events being published at once, at most: enough that sending seldom waits for
/// acknowledgements (at 1,024, a round trip's worth, it did: the backlog benchmark went ~10 %
/// slower), few enough that a huge file's sends stay a bounded set of futures.
pub(super) const PUBLISHES_IN_FLIGHT: usize = 4_096;

/// Transactions mapped at a time: each chunk's events are encoded and dropped before the next is
/// mapped. An event in memory is several times its transaction's bytes, encoded a fraction: a
/// file held as events took thirty times its size at its peak, measured.
pub(super) const MAP_CHUNK: usize = 4_096;

/// A file's events as held until published: encoded, each with its control key (`None`: the
/// event has no control numbers), and the documents received, by type and partner.
#[derive(Default)]
pub(super) struct FileEvents {
    pub(super) events: Vec<Prepared>,
    pub(super) keys: Vec<Option<String>>,
    pub(super) documents: BTreeMap<(String, String), u64>,
    /// Partners' functional acknowledgements by (partner, status).
    pub(super) acks: BTreeMap<(String, &'static str), u64>,
}

/// What mapping a file came to.
pub(super) enum Mapping {
    /// Every interchange mapped; the errors found inside transactions (each rejects its own).
    Done(Vec<EdiError>),
    /// An error that rejects the whole file (a malformed TA1 in it).
    Failed(EdiError),
    /// An event that can never be published as it is.
    Unpublishable(String),
    Shutdown,
}

/// What became of publishing an event.
pub(super) enum Publish {
    /// Kafka has it (now, or from before).
    Done,
    /// Shutting down before it was done.
    Shutdown,
    /// It can never be published as it is: why.
    Refused(String),
}

impl Inbound {
    /// Maps every interchange of the file into `file`, [`MAP_CHUNK`] transactions at a time, each
    /// chunk's events encoded and dropped before the next is mapped; done, the errors found
    /// inside transactions (each rejects its own).
    pub(super) async fn map(
        &self,
        claimed: &Claimed,
        ctx: &MapContext<'_>,
        interchanges: &[Interchange<'_>],
        file: &mut FileEvents,
    ) -> Mapping {
        let mut found = Vec::new();
        for interchange in interchanges {
            let ignored = self.senders.ignored(&interchange.sender_id);
            let mut chunks = map_in_chunks(interchange, ctx, ignored, MAP_CHUNK);
            while let Some(chunk) = chunks.next_chunk() {
                let events = match chunk {
                    Ok(events) => events,
                    Err(e) => return Mapping::Failed(e),
                };
                for event in events {
                    match self.add(event, file).await {
                        Ok(()) => {}
                        Err(Publish::Refused(why)) => return Mapping::Unpublishable(why),
                        Err(_) => return Mapping::Shutdown,
                    }
                }
            }
            let mapped = chunks.finish();
            for (document_type, control) in &mapped.skipped {
                tracing::warn!(
                    file = %claimed.name, document_type, control,
                    "document type not mapped: rejected in the acknowledgement, an exception published"
                );
                self.metrics.unsupported(&interchange.sender_id, document_type, "rejected");
            }
            for (document_type, control) in &mapped.ignored {
                tracing::info!(
                    file = %claimed.name, document_type, control,
                    "document type not mapped: accepted and ignored, as the partner's profile asks; recorded"
                );
                self.metrics.unsupported(&interchange.sender_id, document_type, "ignored");
            }
            found.extend(mapped.rejected);
        }
        Mapping::Done(found)
    }

    /// Encodes `event` into `file` with its control key, counting it among the documents
    /// received (an exception is not one). `Err(Shutdown)` or `Err(Refused)`: it cannot be.
    pub(super) async fn add(&self, event: Event, file: &mut FileEvents) -> Result<(), Publish> {
        let permanent = |e: &PublishError| !e.is_transient();
        let prepared = match retry_until(
            &self.shutdown,
            &self.retry,
            || self.producer.prepare(&event),
            logged_unless("encoding", permanent),
        )
        .await
        {
            None => return Err(Publish::Shutdown),
            Some(Err(e)) => {
                let envelope = event.envelope();
                return Err(Publish::Refused(format!(
                    "its {} {} cannot be encoded: {e}",
                    envelope.event_type, envelope.business_key
                )));
            }
            Some(Ok(prepared)) => prepared,
        };
        if !matches!(event, Event::DocumentExchangeException(_)) {
            let envelope = event.envelope();
            let doc_type = envelope.trading_grid_document.as_ref().map_or("", |d| d.document_type.as_str());
            *file.documents.entry((doc_type.to_owned(), envelope.trading_partner_id.clone())).or_default() += 1;
        }
        if let Event::FunctionalAckReceived(ack) = &event {
            *file.acks.entry((ack.envelope.trading_partner_id.clone(), ack.status.as_str())).or_default() += 1;
        }
        file.keys.push(control_key(&event));
        file.events.push(prepared);
        Ok(())
    }

    /// Publishes unless Kafka already has the event (a file processed again
    /// after a crash, or sent again), retrying transient failures.
    pub(super) async fn publish(&self, event: &Event) -> Publish {
        let id = &event.envelope().event_id;
        let Some(seen) =
            retry_logged(&self.shutdown, &self.retry, "reading the published events", || self.published.contains(id))
                .await
        else {
            return Publish::Shutdown;
        };
        if seen {
            self.metrics.already_published(1);
            return Publish::Done;
        }
        let permanent = |e: &PublishError| !e.is_transient();
        match retry_until(
            &self.shutdown,
            &self.retry,
            || self.producer.publish(event, None),
            logged_unless("publishing", permanent),
        )
        .await
        {
            None => return Publish::Shutdown,
            Some(Err(e)) => return Publish::Refused(e.to_string()),
            Some(Ok(_)) => {}
        }
        // A crash right here is the one window left: the event goes out again
        // on the next start, under the same id, which consumers deduplicate.
        match retry_logged(&self.shutdown, &self.retry, "recording a published event", || {
            self.published.record(id, "tg-producer")
        })
        .await
        {
            Some(()) => Publish::Done,
            None => Publish::Shutdown,
        }
    }

    /// A file's documents' events, each published once: those Kafka has already (a file read
    /// again after a crash, or resent) are skipped, a reuse of control numbers for another
    /// document is reported first, and the rest are published together, up to
    /// [`PUBLISHES_IN_FLIGHT`] at a time, all awaited before the file moves on (the idempotent
    /// producer keeps each key's order; a retried send may land after a later one).
    ///
    /// `controls` were looked up while the file before this one published; its [`FileOrder`] says
    /// what it published. What Kafka acknowledges is recorded, [`RECORD_BATCH`] at a time, while
    /// the rest is still in flight (a crash before a record publishes those events again, under
    /// the same ids, which consumers deduplicate), and while the next file sends.
    ///
    /// The stages pass events by index: a stream of closures taking borrowed events is a
    /// future the compiler cannot prove `Send` (rust-lang/rust#64552), and the file's task is
    /// spawned.
    pub(super) async fn publish_documents(
        &self,
        events: &[Prepared],
        controls: Controls,
        order: &mut FileOrder,
    ) -> Publish {
        let before = order.published_before().await;
        let Some(fresh) = self.unpublished(events, controls, &before).await else {
            return Publish::Shutdown;
        };
        let (published, recorded) = (order.published.take(), order.recorded.take());
        let before_recorded = order.before_recorded.clone();
        let (acknowledged, to_record) = futures::channel::mpsc::unbounded::<(String, Option<String>)>();
        let sending = async move {
            let mut sends = futures::stream::iter(fresh)
                .map(|(index, key, previous)| async move {
                    let publish = || self.producer.publish_prepared(&events[index], None);
                    let permanent = |e: &PublishError| !e.is_transient();
                    (
                        index,
                        key,
                        previous,
                        retry_until(&self.shutdown, &self.retry, publish, logged_unless("publishing", permanent)).await,
                    )
                })
                .buffer_unordered(PUBLISHES_IN_FLIGHT);
            let (mut outcome, mut unrecorded) = (Publish::Done, Unrecorded::default());
            while let Some((index, key, previous, result)) = sends.next().await {
                let prepared = &events[index];
                match result {
                    Some(Ok(_)) => {
                        unrecorded.published(&prepared.event_id, key.as_ref(), previous.as_ref());
                        // The receiver lives until the recording ends: the send cannot fail.
                        drop(acknowledged.unbounded_send((prepared.event_id.clone(), key)));
                    }
                    None => outcome = Publish::Shutdown,
                    Some(Err(e)) if matches!(outcome, Publish::Done) => {
                        // What the event is about, decoded again (only on this rare way out).
                        let key = prepared.event().map(|e| e.envelope().business_key.clone()).unwrap_or_default();
                        let what = format!("its {} {key}", prepared.event_type.name());
                        outcome = Publish::Refused(format!("{what} cannot be published: {e}"));
                    }
                    Some(Err(_)) => {}
                }
            }
            if let Some(published) = published {
                // The next file gone (shutdown): nobody to tell.
                let _ = published.send(unrecorded);
            }
            outcome
        };
        // Recorded even when shutting down: what Kafka has is not published again.
        let recording = async {
            before_recorded.cancelled().await;
            // Whatever was acknowledged while the last batch was written, up to RECORD_BATCH:
            // the batch left when the last acknowledgement comes is small.
            let mut batches = to_record.ready_chunks(RECORD_BATCH);
            let mut complete = true;
            while let Some(batch) = batches.next().await {
                complete &= self.record_published(&batch).await;
            }
            drop(recorded);
            complete
        };
        let (outcome, complete) = futures::join!(sending, recording);
        if complete {
            outcome
        } else {
            Publish::Shutdown
        }
    }
}
