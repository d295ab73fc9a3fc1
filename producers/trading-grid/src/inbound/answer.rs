//! Acknowledging files to partners (997, 999, CONTRL, TA1), retrying while the store or mailbox
//! is away, and raising an exception when an acknowledgement can never be written.

use gridsync_core::retry::{logged_unless, retry_until};
use gridsync_edi::Interchange;
use gridsync_schemas::events::{ExceptionKind, Severity};
use gridsync_trading_grid::mailbox::Claimed;

use super::*;
use crate::{
    acks::{Ack, AckError, FileVerdict},
    exception,
};

impl Inbound {
    /// Writes the file's acknowledgements (when enabled); false on shutdown.
    pub(super) async fn acknowledge(
        &self,
        claimed: &Claimed,
        interchanges: &[Interchange<'_>],
        verdict: FileVerdict<'_>,
    ) -> bool {
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
    pub(super) async fn unanswered(&self, claimed: &Claimed, interchanges: &[Interchange<'_>], why: &str) -> bool {
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
    pub(super) async fn ack_step<T, Fut: std::future::Future<Output = Result<T, AckError>>>(
        &self,
        what: &str,
        step: impl FnMut() -> Fut,
    ) -> Option<Result<T, AckError>> {
        retry_until(&self.shutdown, &self.retry, step, logged_unless(what, |e: &AckError| !e.is_transient())).await
    }

    pub(super) fn unwritable(&self, error: &AckError) {
        self.metrics.ack("unwritable", "none");
        tracing::warn!(%error, "an acknowledgement cannot be written; the file goes on without it");
    }

    pub(super) fn acknowledged(&self, outcome: &str, ack: &Ack) {
        self.metrics.ack(outcome, ack.document_type);
        tracing::info!(file = %ack.written.path.display(), new = ack.written.created, outcome, "acknowledgement written");
    }
}
