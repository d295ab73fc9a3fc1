//! What cannot be processed is kept in quarantine with its reason and an exception: a whole
//! file (malformed, refused, unpublishable) or a transaction rejected on its own.

use std::collections::BTreeMap;

use gridsync_edi::{rejection_exception, sniff_sender, EdiError, Interchange, MapContext};
use gridsync_schemas::{
    events::{ExceptionKind, Severity},
    Event,
};
use gridsync_trading_grid::mailbox::{Claimed, MailboxError, Outcome};

use super::*;
use crate::exception;

/// Why a file is quarantined.
pub(super) struct Rejection {
    /// `MALFORMED_DOCUMENT`, or `UNPUBLISHABLE` when the partner's document is not at fault.
    pub(super) kind: ExceptionKind,
    pub(super) reason: String,
    pub(super) metric_reason: String,
    pub(super) details: BTreeMap<String, String>,
    /// What tells an unread file from another of its name; read files are told by content.
    pub(super) identity: Option<String>,
}

impl Rejection {
    pub(super) fn edi(file: &str, e: &EdiError) -> Self {
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

/// The file's content as an id: the same bytes, the same id, on every retry.
pub(super) fn content_id(bytes: &[u8]) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, bytes).to_string()
}

impl Inbound {
    /// Quarantines a file an event of which can never be published as it is (too large for the
    /// topic, not encodable): retrying would hold up every file behind it. No rejecting
    /// acknowledgement: the partner's document is not at fault.
    pub(super) async fn unpublishable(&self, claimed: &Claimed, why: &str) -> Result<(), MailboxError> {
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
    pub(super) async fn refuse(&self, claimed: &Claimed, e: &EdiError, answer: bool) -> Result<(), MailboxError> {
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

    /// Keeps each transaction rejected on its own (its trailer's, or group's, count or control
    /// number wrong, or an error of `found` in it) in quarantine, as `<file>.<interchange>.<group>.
    /// <transaction>` with its reason, and returns an exception for each, naming the file, the
    /// control numbers, the error and where its bytes are.
    pub(super) async fn keep_rejected(
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

    /// Publishes the exception, then moves the file to quarantine with its reason.
    pub(super) async fn quarantine(&self, claimed: &Claimed, rejection: Rejection) -> Result<(), MailboxError> {
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
