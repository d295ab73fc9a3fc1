//! The inbound mailbox source: claim a file, parse and map it, publish its
//! events, acknowledge it to the partner (997/CONTRL), and only then move the
//! file to `processed/`. A malformed file goes to `quarantine/` with its
//! precise reason, a DocumentExchangeException event and a rejecting
//! acknowledgement; it never blocks the next file.
//!
//! A crash leaves the file claimed; the next round processes it again: events
//! Kafka already acknowledged are recorded in the store and not published
//! again (event ids are deterministic: same file, same ids), and the same
//! acknowledgement is rewritten, which the outbound mailbox recognises.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use futures::StreamExt;

use gridsync_core::kafka::{EventProducer, PublishError};
use gridsync_edi::{map_interchange, parse_with, sniff_sender, write::AckVerdict, EdiError, Interchange, MapContext};
use gridsync_schemas::{
    events::{DocumentExchangeException, Envelope, ExceptionKind, Severity, SourceSystem},
    Event, EventType, Timestamp,
};
use gridsync_store::{PublishedEvents, ReceivedControls};
use gridsync_trading_grid::mailbox::{Claimed, InboundMailbox, MailboxError, Outcome};
use tokio::{sync::oneshot, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    acks::{Ack, AckError, Acknowledger},
    args::InboundArgs,
    exception::{self, About},
    retry::{retrying, retrying_unless},
    telemetry::InboundMetrics,
};

pub struct Inbound {
    pub mailbox: Arc<InboundMailbox>,
    /// Events Kafka already has: not published again when a file is.
    pub published: PublishedEvents,
    /// The document last received under each set of control numbers.
    pub received: ReceivedControls,
    /// Senders whose known habits are accepted.
    pub leniencies: crate::leniency::Leniencies,
    pub acks: Option<Acknowledger>,
    pub producer: EventProducer,
    pub metrics: InboundMetrics,
    pub shutdown: CancellationToken,
}

/// Files in hand at once: the next file is claimed, parsed and mapped (CPU work, on another
/// core) while the one before it publishes (mostly waiting on Kafka); its events still go
/// out only after that file's, so a later file's document never overtakes an earlier one.
const FILES_IN_FLIGHT: usize = 2;

/// A file's events being published at once, at most.
const PUBLISHES_IN_FLIGHT: usize = 1_024;

/// Events looked up in the store together: a round trip per chunk, not per event.
const CHUNK: usize = 500;

/// Acknowledged events recorded in one transaction, at most (a transaction takes what was
/// acknowledged while the one before was written). Larger than [`CHUNK`]: a transaction writes
/// each page it changed once, and ids land all over the index, so small transactions write
/// the same pages again and again (at 500, the store took twice the CPU, measured).
const RECORD_BATCH: usize = 2_500;

/// What became of publishing an event.
enum Publish {
    /// Kafka has it (now, or from before).
    Done,
    /// Shutting down before it was done.
    Shutdown,
    /// It can never be published as it is: why.
    Refused(String),
}

/// Why a file is quarantined.
struct Rejection {
    reason: String,
    metric_reason: String,
    details: BTreeMap<String, String>,
    /// What tells an unread file from another of its name; read files are told by content.
    identity: Option<String>,
}

impl Rejection {
    fn edi(file: &str, e: &EdiError) -> Self {
        Rejection {
            reason: format!("{file}: {e}"),
            metric_reason: format!("{:?}", e.kind),
            details: BTreeMap::from([
                ("segment".to_owned(), e.segment.to_string()),
                ("element".to_owned(), e.element.map(|n| n.to_string()).unwrap_or_default()),
                ("error_kind".to_owned(), format!("{:?}", e.kind)),
            ]),
            identity: None,
        }
    }
}

/// A file's place in its round: its events go out once the file before it is through.
struct Turn {
    /// Resolves (its sender dropped) when the file before this one is through publishing.
    after: Option<oneshot::Receiver<()>>,
    /// Dropped when this file is through publishing (or will publish nothing).
    through: Option<oneshot::Sender<()>>,
}

impl Turn {
    /// Waits until the file before this one is through.
    async fn wait(&mut self) {
        if let Some(after) = self.after.take() {
            // An error is the sender dropped: exactly the signal.
            let _ = after.await;
        }
    }

    /// This file is through: the next one may publish (once the one before this is, too).
    async fn pass(&mut self) {
        self.wait().await;
        self.through.take();
    }
}

/// Watches the mailbox until shutdown.
///
/// Mailbox errors (a dropped SFTP connection, a full disk) are logged and
/// counted, and the next round tries again: the files stay where they were.
pub async fn run(inbound: Inbound, args: &InboundArgs) {
    let inbound = Arc::new(inbound);
    loop {
        if let Err(e) = inbound.round().await {
            inbound.metrics.mailbox_error();
            tracing::warn!(error = %e, "mailbox unavailable; trying again");
        }
        tokio::select! {
            _ = inbound.shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(args.poll_ms)) => {}
        }
    }
}

/// `sender|receiver|interchange|group|transaction|event type` of a document's event.
fn control_key(event: &Event) -> Option<String> {
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
fn reuse_exception(event: &Event, previous: &str) -> Event {
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

/// The file's content as an id: the same bytes, the same id, on every retry.
fn content_id(bytes: &[u8]) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, bytes).to_string()
}

impl Inbound {
    /// Files claimed before a crash (or a failed round) first, then arrivals,
    /// oldest first, [`FILES_IN_FLIGHT`] at a time, each published after the one before.
    /// A file the mailbox fails on stays where it is for the next round, and the files
    /// after it go on.
    async fn round(self: &Arc<Self>) -> Result<(), MailboxError> {
        let mut names = self.mailbox.unfinished().await?;
        names.extend(self.mailbox.waiting().await?);
        let mut in_hand: VecDeque<(String, JoinHandle<Result<(), MailboxError>>)> = VecDeque::new();
        let mut before: Option<oneshot::Receiver<()>> = None;
        for name in names {
            if self.shutdown.is_cancelled() {
                break;
            }
            if in_hand.len() == FILES_IN_FLIGHT {
                if let Some(file) = in_hand.pop_front() {
                    self.done(file).await;
                }
            }
            let (through, next) = oneshot::channel();
            let mut turn = Turn { after: before.replace(next), through: Some(through) };
            let inbound = Arc::clone(self);
            let file = name.clone();
            let task = tokio::spawn(async move {
                let processed = inbound.process(&file, &mut turn).await;
                turn.pass().await;
                processed
            });
            in_hand.push_back((name, task));
        }
        for file in in_hand {
            self.done(file).await;
        }
        Ok(())
    }

    /// Waits for a file's processing; a mailbox failure is counted and logged (the file is
    /// tried again next round), a panic goes on being one.
    async fn done(&self, (name, task): (String, JoinHandle<Result<(), MailboxError>>)) {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.metrics.mailbox_error();
                tracing::warn!(file = %name, error = %e, "mailbox failed on a file; trying it again next round");
            }
            Err(failed) => match failed.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // Never aborted: only a runtime shutting down cancels it.
                Err(_) => tracing::warn!(file = %name, "processing was cancelled; trying it again next start"),
            },
        }
    }

    async fn process(&self, name: &str, turn: &mut Turn) -> Result<(), MailboxError> {
        let claimed = match self.mailbox.claim(name).await? {
            None => return Ok(()),
            Some(Err(refused)) => {
                let claimed = Claimed { name: refused.name, bytes: Vec::new(), arrived: refused.arrived };
                let metric_reason = if refused.reason.contains("the limit is") { "too_large" } else { "not_a_file" };
                let rejection = Rejection {
                    reason: refused.reason,
                    metric_reason: metric_reason.into(),
                    details: BTreeMap::new(),
                    identity: Some(refused.identity),
                };
                return self.quarantine(&claimed, rejection).await;
            }
            Some(Ok(claimed)) => claimed,
        };
        let interchanges = match parse_with(&claimed.bytes, &|sender| self.leniencies.of(sender)) {
            Ok(interchanges) => interchanges,
            Err(e) => {
                if let Some(acks) = &self.acks {
                    let id = content_id(&claimed.bytes);
                    let written = self.ack_step("rejecting the envelope", || acks.envelope(&claimed.bytes, &e, &id));
                    match written.await {
                        None => return Ok(()),
                        Some(Ok(Some(ack))) => self.acknowledged("rejected", &ack),
                        Some(Ok(None)) => {}
                        Some(Err(unwritable)) => self.unwritable(&unwritable),
                    }
                }
                return self.quarantine(&claimed, Rejection::edi(&claimed.name, &e)).await;
            }
        };
        for interchange in &interchanges {
            for tolerated in &interchange.tolerated {
                self.metrics.tolerated(&interchange.sender_id, "wrong_segment_count");
                tracing::warn!(file = %claimed.name, partner = %interchange.sender_id.trim(), error = %tolerated,
                    "accepted as this partner's profile tolerates it; noted in the acknowledgement");
            }
        }
        let events = match self.map(&claimed, &interchanges) {
            Ok(events) => events,
            Err(e) => {
                if !self.acknowledge(&interchanges, AckVerdict::Rejected(&e)).await {
                    return Ok(());
                }
                return self.quarantine(&claimed, Rejection::edi(&claimed.name, &e)).await;
            }
        };
        // After the file before this one is through: this file's events go out after its
        // events, and an identical resend finds them recorded and skips them.
        turn.wait().await;
        let published = self.publish_documents(&events).await;
        turn.pass().await;
        match published {
            Publish::Done => {}
            // Shutting down: the file stays claimed and is processed again on the next start.
            Publish::Shutdown => return Ok(()),
            // Never publishable as it is (too large for the topic, not encodable): retrying
            // would hold up every file behind it. Quarantined, without a rejecting
            // acknowledgement: the partner's document is not at fault.
            Publish::Refused(why) => {
                let reason = format!("{}: {why}", claimed.name);
                let rejection = Rejection {
                    reason,
                    metric_reason: "unpublishable".into(),
                    details: BTreeMap::new(),
                    identity: None,
                };
                return self.quarantine(&claimed, rejection).await;
            }
        }
        let mut documents: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for event in &events {
            let doc_type = event.envelope().trading_grid_document.as_ref().map_or("", |d| d.document_type.as_str());
            *documents.entry((doc_type, &event.envelope().trading_partner_id)).or_default() += 1;
        }
        for ((doc_type, partner), count) in documents {
            self.metrics.documents(doc_type, partner, count);
        }
        if !self.acknowledge(&interchanges, AckVerdict::Accepted).await {
            return Ok(());
        }
        self.mailbox.finish(&claimed.name, &Outcome::Processed).await?;
        self.metrics.file("processed", claimed.bytes.len(), claimed.arrived);
        tracing::info!(file = %claimed.name, events = events.len(), "processed");
        Ok(())
    }

    /// Every event of every interchange in the file, or the first error.
    fn map(&self, claimed: &Claimed, interchanges: &[Interchange<'_>]) -> Result<Vec<Event>, EdiError> {
        let ctx = MapContext { file_name: Some(&claimed.name), ingested_at: Timestamp::now() };
        let mut events = Vec::new();
        for interchange in interchanges {
            let mapped = map_interchange(interchange, &ctx)?;
            for (document_type, control) in &mapped.skipped {
                tracing::warn!(file = %claimed.name, document_type, control, "document type not mapped; skipped");
            }
            if events.is_empty() {
                events = mapped.events; // the usual file, one interchange: no copy
            } else {
                events.extend(mapped.events);
            }
        }
        Ok(events)
    }

    /// Writes the file's acknowledgements (when enabled); false on shutdown.
    async fn acknowledge(&self, interchanges: &[Interchange<'_>], verdict: AckVerdict<'_>) -> bool {
        let Some(acks) = &self.acks else { return true };
        match self.ack_step("writing acknowledgements", || acks.interchanges(interchanges, verdict)).await {
            Some(Ok(written)) => written.iter().for_each(|ack| self.acknowledged(verdict.outcome(), ack)),
            Some(Err(unwritable)) => self.unwritable(&unwritable),
            None => return false,
        }
        true
    }

    /// Runs an acknowledgement step, retrying while the store or the mailbox is
    /// unavailable; an acknowledgement that can never be written comes back as
    /// `Some(Err)`, so that it does not hold up the mailbox. `None` on shutdown.
    async fn ack_step<T, Fut: std::future::Future<Output = Result<T, AckError>>>(
        &self,
        what: &str,
        step: impl FnMut() -> Fut,
    ) -> Option<Result<T, AckError>> {
        retrying_unless(&self.shutdown, what, step, |e: &AckError| !e.is_transient()).await
    }

    fn unwritable(&self, error: &AckError) {
        self.metrics.ack("unwritable", "none");
        tracing::warn!(%error, "an acknowledgement cannot be written; the file goes on without it");
    }

    fn acknowledged(&self, outcome: &str, ack: &Ack) {
        self.metrics.ack(outcome, ack.document_type);
        tracing::info!(file = %ack.written.path.display(), new = ack.written.created, outcome, "acknowledgement written");
    }

    /// Publishes unless Kafka already has the event (a file processed again
    /// after a crash, or sent again), retrying transient failures.
    async fn publish(&self, event: &Event) -> Publish {
        let id = &event.envelope().event_id;
        let Some(seen) = retrying(&self.shutdown, "reading the published events", || self.published.contains(id)).await
        else {
            return Publish::Shutdown;
        };
        if seen {
            self.metrics.already_published(1);
            return Publish::Done;
        }
        let permanent = |e: &PublishError| !e.is_transient();
        match retrying_unless(&self.shutdown, "publishing", || self.producer.publish(event, None), permanent).await {
            None => return Publish::Shutdown,
            Some(Err(e)) => return Publish::Refused(e.to_string()),
            Some(Ok(_)) => {}
        }
        // A crash right here is the one window left: the event goes out again
        // on the next start, under the same id, which consumers deduplicate.
        match retrying(&self.shutdown, "recording a published event", || self.published.record(id, "tg-producer")).await
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
    /// Three stages overlap, so that the store's work hides behind Kafka's round trips: the next
    /// [`CHUNK`] is looked up while this one is sent, and what Kafka acknowledged is recorded,
    /// [`RECORD_BATCH`] at a time, while the rest is still in flight (a crash before a record
    /// publishes those events again, under the same ids, which consumers deduplicate).
    ///
    /// The stages pass events by index: a stream of closures taking borrowed events is a
    /// future the compiler cannot prove `Send` (rust-lang/rust#64552), and the file's task is
    /// spawned.
    async fn publish_documents(&self, events: &[Event]) -> Publish {
        let (acknowledged, to_record) = futures::channel::mpsc::unbounded::<(String, Option<String>)>();
        let sending = async move {
            let stopped = std::sync::atomic::AtomicBool::new(false);
            let mut sends = futures::stream::iter((0..events.len()).step_by(CHUNK))
                .map(|start| self.fresh_in(events, start..events.len().min(start + CHUNK)))
                .buffered(2)
                .take_while(|fresh| {
                    stopped.store(fresh.is_none(), std::sync::atomic::Ordering::Relaxed);
                    std::future::ready(fresh.is_some())
                })
                .flat_map(|fresh| futures::stream::iter(fresh.unwrap_or_default()))
                .map(|(index, key)| async move {
                    let publish = || self.producer.publish(&events[index], None);
                    let permanent = |e: &PublishError| !e.is_transient();
                    (index, key, retrying_unless(&self.shutdown, "publishing", publish, permanent).await)
                })
                .buffer_unordered(PUBLISHES_IN_FLIGHT);
            let mut outcome = Publish::Done;
            while let Some((index, key, result)) = sends.next().await {
                let envelope = events[index].envelope();
                match result {
                    // The receiver lives until this stage ends: the send cannot fail.
                    Some(Ok(_)) => drop(acknowledged.unbounded_send((envelope.event_id.clone(), key))),
                    None => outcome = Publish::Shutdown,
                    Some(Err(e)) if matches!(outcome, Publish::Done) => {
                        let what = format!("its {} {}", envelope.event_type, envelope.business_key);
                        outcome = Publish::Refused(format!("{what} cannot be published: {e}"));
                    }
                    Some(Err(_)) => {}
                }
            }
            if stopped.load(std::sync::atomic::Ordering::Relaxed) {
                outcome = Publish::Shutdown;
            }
            outcome
        };
        // Recorded even when shutting down: what Kafka has is not published again.
        let recording = async {
            // Whatever was acknowledged while the last batch was written, up to RECORD_BATCH:
            // the batch left when the last acknowledgement comes is small.
            let mut batches = to_record.ready_chunks(RECORD_BATCH);
            let mut complete = true;
            while let Some(batch) = batches.next().await {
                complete &= self.record_published(batch).await;
            }
            complete
        };
        let (outcome, recorded) = futures::join!(sending, recording);
        if recorded {
            outcome
        } else {
            Publish::Shutdown
        }
    }

    /// The events of `events[chunk]` Kafka does not have yet, by index, each with its control
    /// key, once every reuse of control numbers among them is reported. `None` on shutdown.
    ///
    /// Control numbers are recorded only after Kafka acknowledged their event, and the event
    /// they named before goes to the published events in the same transaction, so the control
    /// numbers answer for most events: last seen with this very event, it is on Kafka; never
    /// seen, it is not (but for a crash between Kafka's acknowledgement and the record, which
    /// publishes it again under its id). Only the rest (no control numbers, or numbers last
    /// seen on another document) are looked up among the published events: a fresh file costs
    /// one look-up per event, not two, and one write.
    async fn fresh_in(&self, events: &[Event], chunk: std::ops::Range<usize>) -> Option<Vec<(usize, Option<String>)>> {
        let keyed: Vec<(usize, Option<String>)> = chunk.clone().map(|i| (i, control_key(&events[i]))).collect();
        let keys: Vec<String> = keyed.iter().filter_map(|(_, key)| key.clone()).collect();
        let last = retrying(&self.shutdown, "reading control numbers", || self.received.last_all(&keys)).await?;
        // Whether each event is on Kafka, by its control numbers; `None`: ask the published events.
        let known: Vec<Option<bool>> = keyed
            .iter()
            .map(|(i, key)| match key.as_ref().map(|key| last.get(key)) {
                Some(None) => Some(false),
                Some(Some(id)) if *id == events[*i].envelope().event_id => Some(true),
                _ => None,
            })
            .collect();
        let unsure: Vec<String> = keyed
            .iter()
            .zip(&known)
            .filter(|(_, k)| k.is_none())
            .map(|((i, _), _)| events[*i].envelope().event_id.clone())
            .collect();
        let published = if unsure.is_empty() {
            Default::default()
        } else {
            retrying(&self.shutdown, "reading the published events", || self.published.contained(&unsure)).await?
        };
        let fresh: Vec<(usize, Option<String>)> = keyed
            .into_iter()
            .zip(known)
            .filter(|((i, _), known)| !known.unwrap_or_else(|| published.contains(&events[*i].envelope().event_id)))
            .map(|(keyed, _)| keyed)
            .collect();
        self.metrics.already_published(chunk.len() - fresh.len());
        for (i, key) in &fresh {
            let event = &events[*i];
            let previous = key.as_ref().and_then(|key| last.get(key).map(|id| (key, id)));
            if let Some((key, previous)) = previous.filter(|(_, id)| **id != event.envelope().event_id) {
                if !self.report_reuse(event, key, previous).await {
                    return None;
                }
            }
        }
        Some(fresh)
    }

    /// Records events Kafka acknowledged, under the control numbers they came with (the
    /// published events take the rest); false if shutdown came before the store took them.
    async fn record_published(&self, batch: Vec<(String, Option<String>)>) -> bool {
        retrying(&self.shutdown, "recording published events", || {
            self.received.record_acknowledged(&batch, "tg-producer")
        })
        .await
        .is_some()
    }

    /// The document last received under `key` was another one (`previous`): the partner reused
    /// its control numbers, and a DocumentExchangeException says so (the document itself still
    /// flows, under its own id). False on shutdown.
    async fn report_reuse(&self, event: &Event, key: &str, previous: &str) -> bool {
        let exception = reuse_exception(event, previous);
        match self.publish(&exception).await {
            Publish::Done => {}
            Publish::Shutdown => return false,
            Publish::Refused(why) => tracing::error!(%why, "the control-number reuse cannot be reported"),
        }
        self.metrics.control_numbers_reused(&event.envelope().trading_partner_id);
        tracing::warn!(key, previous, event = %event.envelope().event_id, "a partner reused control numbers for another document");
        true
    }

    /// Publishes the exception, then moves the file to quarantine with its reason.
    async fn quarantine(&self, claimed: &Claimed, rejection: Rejection) -> Result<(), MailboxError> {
        let Rejection { reason, metric_reason, mut details, identity } = rejection;
        let partner = sniff_sender(&claimed.bytes).unwrap_or_else(|| "unknown".to_owned());
        let content = identity.unwrap_or_else(|| content_id(&claimed.bytes));
        details.insert("file".to_owned(), claimed.name.clone());
        details.insert("bytes".to_owned(), claimed.bytes.len().to_string());
        let now = Timestamp::now();
        let outcome = Outcome::Quarantined { reason: reason.clone() };
        let destination = self.mailbox.destination(&claimed.name, &outcome).await?;
        let event: Event = DocumentExchangeException {
            envelope: Envelope {
                event_id: Envelope::deterministic_event_id(
                    SourceSystem::TradingGrid,
                    &["quarantine", &claimed.name, &content],
                ),
                event_type: EventType::DocumentExchangeException.name().to_owned(),
                occurred_at: now,
                ingested_at: now,
                source_system: SourceSystem::TradingGrid,
                trading_partner_id: partner.clone(),
                business_key: claimed.name.clone(),
                correlation_id: format!("{partner}/FILE/{}", claimed.name),
                trading_grid_document: None,
                amplience_content: None,
            },
            kind: ExceptionKind::MalformedDocument,
            severity: Severity::Error,
            reason: reason.clone(),
            document_type: None,
            quarantine_path: Some(destination.display().to_string()),
            details,
        }
        .into();
        match self.publish(&event).await {
            Publish::Done => {}
            Publish::Shutdown => return Ok(()),
            // The file and its `.reason` are the record, still.
            Publish::Refused(why) => {
                tracing::error!(file = %claimed.name, %why, "the quarantine's exception cannot be published")
            }
        }
        let moved = self.mailbox.finish(&claimed.name, &outcome).await?;
        self.metrics.parse_failure(&metric_reason);
        self.metrics.file("quarantined", claimed.bytes.len(), claimed.arrived);
        tracing::warn!(file = %claimed.name, to = %moved.display(), %reason, "quarantined");
        Ok(())
    }
}
