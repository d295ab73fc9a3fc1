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
//!
//! By concern: [`publish`] maps a file and publishes its events, [`dedupe`] skips what Kafka
//! has already and reports control numbers reused, [`quarantine`] keeps what cannot be
//! processed, [`answer`] acknowledges to the partner, and [`order`] keeps files' events in
//! the order the files came while several are in hand.

mod answer;
mod dedupe;
mod order;
mod publish;
mod quarantine;

use self::{dedupe::*, order::*, publish::*, quarantine::*};
use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use gridsync_core::kafka::EventProducer;
use gridsync_core::retry::Backoff;
use gridsync_edi::{parse_with, EdiError, MapContext};
use gridsync_schemas::{events::ExceptionKind, Timestamp};
use gridsync_store::{PublishedEvents, ReceivedControls};
use gridsync_trading_grid::mailbox::{Claimed, InboundMailbox, MailboxError, Outcome};
use tokio::{sync::oneshot, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    acks::{Acknowledger, FileVerdict},
    args::InboundArgs,
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
            let mut order = FileOrder {
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
                let processed = inbound.process(&file, &mut order).await;
                order.pass().await;
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

    async fn process(&self, name: &str, order: &mut FileOrder) -> Result<(), MailboxError> {
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
        // recorded); its place in the order tells what it published meanwhile: an identical resend skips
        // its events.
        order.two_before_recorded.cancelled().await;
        let Some(controls) = self.controls_of(keys).await else {
            return Ok(());
        };
        let published = self.publish_documents(&events, controls, order).await;
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
}
