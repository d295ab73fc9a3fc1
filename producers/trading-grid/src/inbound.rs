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
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use futures::StreamExt;

use gridsync_core::kafka::{EventProducer, Prepared, PublishError};
use gridsync_core::retry::{logged_unless, retry_logged, retry_until, Backoff};
use gridsync_edi::{map_in_chunks, parse_with, rejection_exception, sniff_sender, EdiError, Interchange, MapContext};
use gridsync_schemas::{
    events::{ExceptionKind, Severity},
    Event, Timestamp,
};
use gridsync_store::{PublishedEvents, ReceivedControls};
use gridsync_trading_grid::mailbox::{Claimed, InboundMailbox, MailboxError, Outcome};
use tokio::{sync::oneshot, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    acks::{Ack, AckError, Acknowledger, FileVerdict},
    args::InboundArgs,
    exception::{self, About},
    telemetry::InboundMetrics,
};

pub struct Inbound {
    pub mailbox: Arc<InboundMailbox>,
    /// Events Kafka already has: not published again when a file is.
    pub published: PublishedEvents,
    /// The document last received under each set of control numbers.
    pub received: ReceivedControls,
    /// Who may send, how each is answered, which of its habits are accepted.
    pub senders: crate::senders::Senders,
    pub unknown_senders: crate::args::UnknownSenders,
    pub acks: Option<Acknowledger>,
    pub producer: EventProducer,
    pub metrics: InboundMetrics,
    pub shutdown: CancellationToken,
    /// How a broker, store or mailbox away for a while is waited for.
    pub retry: Backoff,
}

/// Files in hand at once: one is claimed, parsed, mapped and its control numbers looked up (CPU
/// and store work, on another core) while the one before it publishes (mostly waiting on
/// Kafka) and the one before that is recorded and acknowledged. A file's events still go out
/// only after those of the file before it, so a later file's document never overtakes an
/// earlier one.
const FILES_IN_FLIGHT: usize = 3;

/// A file's events being published at once, at most: enough that sending seldom waits for
/// acknowledgements (at 1,024, a round trip's worth, it did: the backlog benchmark went ~10 %
/// slower), few enough that a huge file's sends stay a bounded set of futures.
const PUBLISHES_IN_FLIGHT: usize = 4_096;

/// Transactions mapped at a time: each chunk's events are encoded and dropped before the next is
/// mapped. An event in memory is several times its transaction's bytes, encoded a fraction: a
/// file held as events took thirty times its size at its peak, measured.
const MAP_CHUNK: usize = 4_096;

/// A file's events as held until published: encoded, each with its control key (`None`: the
/// event has no control numbers), and the documents received, by type and partner.
#[derive(Default)]
struct FileEvents {
    events: Vec<Prepared>,
    keys: Vec<Option<String>>,
    documents: BTreeMap<(String, String), u64>,
    /// Partners' functional acknowledgements by (partner, status).
    acks: BTreeMap<(String, &'static str), u64>,
}

/// What mapping a file came to.
enum Mapping {
    /// Every interchange mapped; the errors found inside transactions (each rejects its own).
    Done(Vec<EdiError>),
    /// An error that rejects the whole file (a malformed TA1 in it).
    Failed(EdiError),
    /// An event that can never be published as it is.
    Unpublishable(String),
    Shutdown,
}

/// Acknowledged events recorded in one transaction, at most (a transaction takes what was
/// acknowledged while the one before was written). Large: a transaction writes each page it
/// changed once, so small transactions write the same pages again and again (at 500, the
/// store took twice the CPU, measured).
const RECORD_BATCH: usize = 2_500;

/// A file's events' control keys (`None`: the event has no control numbers), and the event
/// last recorded under each key.
struct Controls {
    keys: Vec<Option<String>>,
    last: HashMap<String, String>,
}

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
    /// `MALFORMED_DOCUMENT`, or `UNPUBLISHABLE` when the partner's document is not at fault.
    kind: ExceptionKind,
    reason: String,
    metric_reason: String,
    details: BTreeMap<String, String>,
    /// What tells an unread file from another of its name; read files are told by content.
    identity: Option<String>,
}

impl Rejection {
    fn edi(file: &str, e: &EdiError) -> Self {
        Rejection {
            kind: ExceptionKind::MalformedDocument,
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

/// What a file published that the store may not have recorded yet, handed to the next file
/// with its turn: that file looked the store up before.
#[derive(Default)]
struct Handover {
    /// Control key → the event published under it.
    controls: HashMap<String, String>,
    /// Events the published events will hold: those without control numbers, and those the
    /// control numbers named before naming another.
    events: HashSet<String>,
}

impl Handover {
    /// Kafka acknowledged `id`, published under `key`, which named `previous` before.
    fn published(&mut self, id: &str, key: Option<&String>, previous: Option<&String>) {
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
/// [`Handover`] tells them. Its events go out once every event of the file before is
/// acknowledged, and are recorded once that file's are: the next file sends while this one
/// still records, and the store takes each file's records in the files' order.
///
/// "Recorded" is a cancellation token: several files wait on it, and a guard fires it whichever
/// way the file's task ends, a panic included.
struct Turn {
    /// What the file before this one published, once it all was (nothing: a dropped sender).
    before_published: Option<oneshot::Receiver<Handover>>,
    /// Cancelled once the file before this one recorded what it published.
    before_recorded: CancellationToken,
    /// Cancelled once the file two before this one recorded what it published.
    two_before_recorded: CancellationToken,
    published: Option<oneshot::Sender<Handover>>,
    /// Cancels this file's "recorded" when dropped (after its records, or on any way out).
    recorded: Option<tokio_util::sync::DropGuard>,
}

impl Turn {
    /// Waits until every event of the file before this one is acknowledged (at once the
    /// second time); what it published.
    async fn published_before(&mut self) -> Handover {
        match self.before_published.take() {
            Some(before) => before.await.unwrap_or_default(),
            None => Handover::default(),
        }
    }

    /// Hands whatever of its turn this file has not passed on yet to the next files, in order:
    /// a file that never had its turn published nothing, and hands on an empty [`Handover`].
    async fn pass(&mut self) {
        self.published_before().await;
        if let Some(published) = self.published.take() {
            // The next file gone (shutdown): nobody to tell.
            let _ = published.send(Handover::default());
        }
        self.before_recorded.cancelled().await;
        self.recorded.take();
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
        let mut before_published = None;
        // For the first file, nothing before it to wait for.
        let (mut two_before_recorded, mut before_recorded) = (CancellationToken::new(), CancellationToken::new());
        before_recorded.cancel();
        two_before_recorded.cancel();
        for name in names {
            if self.shutdown.is_cancelled() {
                break;
            }
            if in_hand.len() == FILES_IN_FLIGHT {
                if let Some(file) = in_hand.pop_front() {
                    self.done(file).await;
                }
            }
            let (published, next_published) = oneshot::channel();
            let recorded = CancellationToken::new();
            let mut turn = Turn {
                before_published: before_published.replace(next_published),
                before_recorded: before_recorded.clone(),
                two_before_recorded: two_before_recorded.clone(),
                published: Some(published),
                recorded: Some(recorded.clone().drop_guard()),
            };
            two_before_recorded = std::mem::replace(&mut before_recorded, recorded);
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
                    kind: ExceptionKind::MalformedDocument,
                    reason: refused.reason,
                    metric_reason: metric_reason.into(),
                    details: BTreeMap::new(),
                    identity: Some(refused.identity),
                };
                return self.quarantine(&claimed, rejection).await;
            }
            Some(Ok(claimed)) => claimed,
        };
        let interchanges = match parse_with(&claimed.bytes, &|sender| self.senders.leniency(sender)) {
            Ok(interchanges) => interchanges,
            Err(e) => return self.refuse(&claimed, &e, true).await,
        };
        // Who may send: a sender the partner profiles do not list is refused, file and all.
        let mut header = 1;
        for interchange in &interchanges {
            if !self.senders.knows(&interchange.sender_id) {
                let e = EdiError::unknown_sender(interchange, header);
                return self.refuse(&claimed, &e, self.unknown_senders == crate::args::UnknownSenders::Reject).await;
            }
            header = interchange.last_segment_index + 1;
        }
        for interchange in &interchanges {
            for tolerated in &interchange.tolerated {
                self.metrics.tolerated(&interchange.sender_id, "wrong_segment_count");
                tracing::warn!(file = %claimed.name, partner = %interchange.sender_id.trim(), error = %tolerated,
                    "accepted as this partner's profile tolerates it; noted in the acknowledgement");
            }
        }
        let mut file = FileEvents::default();
        // One reading of the file: every event of it, rejections' too, ingested at once.
        let ctx = MapContext { file_name: Some(&claimed.name), ingested_at: Timestamp::now() };
        let found = match self.map(&claimed, &ctx, &interchanges, &mut file).await {
            Mapping::Done(found) => found,
            Mapping::Shutdown => return Ok(()),
            Mapping::Failed(e) => {
                if !self.acknowledge(&claimed, &interchanges, FileVerdict::Rejected(&e)).await {
                    return Ok(());
                }
                return self.quarantine(&claimed, Rejection::edi(&claimed.name, &e)).await;
            }
            Mapping::Unpublishable(why) => return self.unpublishable(&claimed, &why).await,
        };
        // Transactions rejected on their own: kept in quarantine, each an exception published
        // with the file's events; the rest of the file flows.
        for exception in self.keep_rejected(&claimed, &ctx, &interchanges, &found).await? {
            match self.add(exception, &mut file).await {
                Ok(()) => {}
                Err(Publish::Refused(why)) => return self.unpublishable(&claimed, &why).await,
                Err(_) => return Ok(()),
            }
        }
        let FileEvents { events, keys, documents, acks } = file;
        // Looked up while the file before this one publishes (once the one before that is
        // recorded); its turn tells what it published meanwhile: an identical resend skips
        // its events.
        turn.two_before_recorded.cancelled().await;
        let Some(controls) = self.controls_of(keys).await else {
            return Ok(());
        };
        let published = self.publish_documents(&events, controls, turn).await;
        match published {
            Publish::Done => {}
            // Shutting down: the file stays claimed and is processed again on the next start.
            Publish::Shutdown => return Ok(()),
            Publish::Refused(why) => return self.unpublishable(&claimed, &why).await,
        }
        for ((doc_type, partner), count) in documents {
            self.metrics.documents(&doc_type, &partner, count);
        }
        for ((partner, status), count) in acks {
            self.metrics.acks_received(&partner, status, count);
        }
        if !self.acknowledge(&claimed, &interchanges, FileVerdict::Processed { found: &found }).await {
            return Ok(());
        }
        self.mailbox.finish(&claimed.name, &Outcome::Processed).await?;
        self.metrics.file("processed", claimed.bytes.len(), claimed.arrived);
        tracing::info!(file = %claimed.name, events = events.len(), "processed");
        Ok(())
    }

    /// Quarantines a file an event of which can never be published as it is (too large for the
    /// topic, not encodable): retrying would hold up every file behind it. No rejecting
    /// acknowledgement: the partner's document is not at fault.
    async fn unpublishable(&self, claimed: &Claimed, why: &str) -> Result<(), MailboxError> {
        let rejection = Rejection {
            kind: ExceptionKind::Unpublishable,
            reason: format!("{}: {why}", claimed.name),
            metric_reason: "unpublishable".into(),
            details: BTreeMap::new(),
            identity: None,
        };
        self.quarantine(claimed, rejection).await
    }

    /// Refuses a file whose envelope `e` is wrong (or whose sender is unknown): answered with a
    /// TA1 or CONTRL rejection when `answer` (and acknowledgements are on), then quarantined
    /// with an exception.
    async fn refuse(&self, claimed: &Claimed, e: &EdiError, answer: bool) -> Result<(), MailboxError> {
        if let (Some(acks), true) = (&self.acks, answer) {
            let id = content_id(&claimed.bytes);
            let written = self.ack_step("rejecting the envelope", || acks.envelope(&claimed.bytes, e, &id));
            match written.await {
                None => return Ok(()),
                Some(Ok(Some(ack))) => self.acknowledged("rejected", &ack),
                Some(Ok(None)) => {}
                Some(Err(unwritable)) => self.unwritable(&unwritable),
            }
        }
        self.quarantine(claimed, Rejection::edi(&claimed.name, e)).await
    }

    /// Maps every interchange of the file into `file`, [`MAP_CHUNK`] transactions at a time, each
    /// chunk's events encoded and dropped before the next is mapped; done, the errors found
    /// inside transactions (each rejects its own).
    async fn map(
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
    async fn add(&self, event: Event, file: &mut FileEvents) -> Result<(), Publish> {
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

    /// Keeps each transaction rejected on its own (its trailer's, or group's, count or control
    /// number wrong, or an error of `found` in it) in quarantine, as `<file>.<interchange>.<group>.
    /// <transaction>` with its reason, and returns an exception for each, naming the file, the
    /// control numbers, the error and where its bytes are.
    async fn keep_rejected(
        &self,
        claimed: &Claimed,
        ctx: &MapContext<'_>,
        interchanges: &[Interchange<'_>],
        found: &[EdiError],
    ) -> Result<Vec<Event>, MailboxError> {
        let mut exceptions = Vec::new();
        for interchange in interchanges {
            let isa = interchange.control_number.trim();
            for (group, tx, error) in interchange.rejections(found) {
                let group_control = group.control_number.as_deref().unwrap_or("-");
                let part = format!("{isa}.{group_control}.{}", tx.control_number);
                let reason = format!(
                    "{}: {} {} of interchange {isa}, group {group_control}, rejected on its own (the rest of \
                     the file is processed): {error}",
                    claimed.name, tx.document_type, tx.control_number
                );
                let kept = self.mailbox.quarantine_part(&claimed.name, &part, tx.raw, &reason).await?;
                let partner = interchange.sender_id.trim();
                self.metrics.rejected_transaction(partner, &tx.document_type, &format!("{:?}", error.kind));
                tracing::warn!(file = %claimed.name, partner, kept = %kept.display(), %reason, "transaction rejected");
                let path = Some(kept.display().to_string());
                exceptions.push(rejection_exception(interchange, group, tx, error, ctx, path));
            }
        }
        Ok(exceptions)
    }

    /// Writes the file's acknowledgements (when enabled); false on shutdown.
    async fn acknowledge(&self, claimed: &Claimed, interchanges: &[Interchange<'_>], verdict: FileVerdict<'_>) -> bool {
        let Some(acks) = &self.acks else { return true };
        let written =
            self.ack_step("writing acknowledgements", || acks.interchanges(interchanges, verdict, &self.senders));
        match written.await {
            Some(Ok(written)) => written.iter().for_each(|ack| self.acknowledged(verdict.outcome(), ack)),
            Some(Err(unwritable)) => {
                self.unwritable(&unwritable);
                return self.unanswered(claimed, interchanges, &unwritable.to_string()).await;
            }
            None => return false,
        }
        true
    }

    /// Raises an exception for the account team about a file whose partner is left without an
    /// acknowledgement (one gridsync refuses to write: a partner value that would break the
    /// envelope); false on shutdown.
    async fn unanswered(&self, claimed: &Claimed, interchanges: &[Interchange<'_>], why: &str) -> bool {
        let partner = interchanges.first().map_or_else(|| "unknown".to_owned(), |ix| ix.sender_id.trim().to_owned());
        let controls: Vec<&str> = interchanges.iter().map(|ix| ix.control_number.trim()).collect();
        let about = exception::About {
            what: "unanswered",
            kind: ExceptionKind::Other,
            severity: Severity::Error,
            reason: format!(
                "{}: no acknowledgement can be written for interchange(s) {} ({why}); the partner is left \
                 without an answer: answer them another way, or have them correct what their envelope says",
                claimed.name,
                controls.join(", ")
            ),
            details: [("interchanges".to_owned(), controls.join(","))].into(),
        };
        let event = exception::about_file(&partner, &claimed.name, &content_id(&claimed.bytes), about, None);
        match self.publish(&event).await {
            Publish::Done => true,
            Publish::Shutdown => false,
            Publish::Refused(refused) => {
                tracing::error!(file = %claimed.name, %refused, "the unanswered file's exception cannot be published");
                true
            }
        }
    }

    /// Runs an acknowledgement step, retrying while the store or the mailbox is
    /// unavailable; an acknowledgement that can never be written comes back as
    /// `Some(Err)`, so that it does not hold up the mailbox. `None` on shutdown.
    async fn ack_step<T, Fut: std::future::Future<Output = Result<T, AckError>>>(
        &self,
        what: &str,
        step: impl FnMut() -> Fut,
    ) -> Option<Result<T, AckError>> {
        retry_until(&self.shutdown, &self.retry, step, logged_unless(what, |e: &AckError| !e.is_transient())).await
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

    /// Each of a file's events' control key, and the event last recorded under each: looked up
    /// before the file's turn, while the file before it publishes. `None` on shutdown.
    async fn controls_of(&self, keys: Vec<Option<String>>) -> Option<Controls> {
        let named: Vec<String> = keys.iter().flatten().cloned().collect();
        let last =
            retry_logged(&self.shutdown, &self.retry, "reading control numbers", || self.received.last_all(&named))
                .await?;
        Some(Controls { keys, last })
    }

    /// A file's documents' events, each published once: those Kafka has already (a file read
    /// again after a crash, or resent) are skipped, a reuse of control numbers for another
    /// document is reported first, and the rest are published together, up to
    /// [`PUBLISHES_IN_FLIGHT`] at a time, all awaited before the file moves on (the idempotent
    /// producer keeps each key's order; a retried send may land after a later one).
    ///
    /// `controls` were looked up while the file before this one published; its [`Turn`] says
    /// what it published. What Kafka acknowledges is recorded, [`RECORD_BATCH`] at a time, while
    /// the rest is still in flight (a crash before a record publishes those events again, under
    /// the same ids, which consumers deduplicate), and while the next file sends.
    ///
    /// The stages pass events by index: a stream of closures taking borrowed events is a
    /// future the compiler cannot prove `Send` (rust-lang/rust#64552), and the file's task is
    /// spawned.
    async fn publish_documents(&self, events: &[Prepared], controls: Controls, turn: &mut Turn) -> Publish {
        let before = turn.published_before().await;
        let Some(fresh) = self.fresh(events, controls, &before).await else {
            return Publish::Shutdown;
        };
        let (published, recorded) = (turn.published.take(), turn.recorded.take());
        let before_recorded = turn.before_recorded.clone();
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
            let (mut outcome, mut handover) = (Publish::Done, Handover::default());
            while let Some((index, key, previous, result)) = sends.next().await {
                let prepared = &events[index];
                match result {
                    Some(Ok(_)) => {
                        handover.published(&prepared.event_id, key.as_ref(), previous.as_ref());
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
                let _ = published.send(handover);
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
    async fn fresh(
        &self,
        events: &[Prepared],
        Controls { keys, last }: Controls,
        before: &Handover,
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
    async fn record_published(&self, batch: &[(String, Option<String>)]) -> bool {
        retry_logged(&self.shutdown, &self.retry, "recording published events", || {
            self.received.record_acknowledged(batch, "tg-producer")
        })
        .await
        .is_some()
    }

    /// The document last received under `key` was another one (`previous`): the partner reused
    /// its control numbers, and a DocumentExchangeException says so (the document itself still
    /// flows, under its own id). False on shutdown.
    async fn report_reuse(&self, prepared: &Prepared, key: &str, previous: &str) -> bool {
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

    /// Publishes the exception, then moves the file to quarantine with its reason.
    async fn quarantine(&self, claimed: &Claimed, rejection: Rejection) -> Result<(), MailboxError> {
        let Rejection { kind, reason, metric_reason, mut details, identity } = rejection;
        let partner = sniff_sender(&claimed.bytes).unwrap_or_else(|| "unknown".to_owned());
        let content = identity.unwrap_or_else(|| content_id(&claimed.bytes));
        details.insert("bytes".to_owned(), claimed.bytes.len().to_string());
        let outcome = Outcome::Quarantined { reason: reason.clone() };
        let destination = self.mailbox.destination(&claimed.name, &outcome).await?;
        let about =
            exception::About { what: "quarantine", kind, severity: Severity::Error, reason: reason.clone(), details };
        let quarantined = Some(destination.display().to_string());
        let event = exception::about_file(&partner, &claimed.name, &content, about, quarantined);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(handover: &Handover) -> Vec<&str> {
        let mut ids: Vec<&str> = handover.events.iter().map(String::as_str).collect();
        ids.sort();
        ids
    }

    /// The next file must find what the store will hold once this one's records are written:
    /// each key's last event, and in the published events whatever the keys no longer name.
    #[test]
    fn a_handover_holds_what_the_records_will_say() {
        let (key, other) = ("ACME|GRIDSYNC|1|1|0001|PurchaseOrderReceived".to_owned(), "ACME|2".to_owned());
        let mut handover = Handover::default();
        handover.published("new", Some(&key), None);
        handover.published("fresh", Some(&other), None);
        assert!(handover.events.is_empty(), "never named before: nothing moves to the published events");

        // Named another document before this file (the store's look-up), then twice in it.
        let mut handover = Handover::default();
        handover.published("b", Some(&key), Some(&"a".to_owned()));
        handover.published("c", Some(&key), Some(&"a".to_owned()));
        handover.published("c", Some(&key), Some(&"a".to_owned()));
        assert_eq!(handover.controls.get(&key).map(String::as_str), Some("c"), "the key names its last event");
        assert_eq!(ids(&handover), ["a", "b"], "what it named before is published, not forgotten");

        // Without control numbers: only the published events can tell.
        handover.published("keyless", None, None);
        assert_eq!(ids(&handover), ["a", "b", "keyless"]);
    }
}
