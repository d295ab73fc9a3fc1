//! Why a flow could not perform a side effect, and whether trying again helps.

use gridsync_amplience::AmplienceError;
use gridsync_core::kafka::HandlerError;
use gridsync_store::StoreError;
use gridsync_trading_grid::partners::UnknownPartner;

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("trading partner {0:?} is not in the partner profiles")]
    UnknownPartner(String),
    #[error("template {key:?}: {reason}")]
    Template { key: String, reason: String },
    #[error("template {key:?} has no approved version (its workflow state is {state:?})")]
    TemplateNotApproved { key: String, state: Option<String> },
    #[error("rendering template {key:?} v{version}: {reason}")]
    Render { key: String, version: i64, reason: String },
    #[error("side effect {key:?} is being performed by {owner} (claim expires in {expires_in_ms} ms)")]
    ClaimedElsewhere { key: String, owner: String, expires_in_ms: i64 },
    #[error("invalid side effect: {0}")]
    Invalid(String),
    /// Writing a document to the Trading Grid outbound mailbox.
    #[error("Trading Grid outbound: {message}")]
    Outbound { message: String, transient: bool },
    #[error("Amplience: {0}")]
    Amplience(#[from] AmplienceError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("publishing DeliveryPerformed: {0}")]
    Publish(#[from] gridsync_core::kafka::PublishError),
    #[error("looking for an earlier DeliveryPerformed: {0}")]
    Lookup(#[from] gridsync_core::kafka::reported::LookupError),
    /// The failure of a batch of changes this record's change was saved with.
    #[error("{0}")]
    Batch(std::sync::Arc<FlowError>),
    /// The handler saving this record's change with others was abandoned (its attempt timed out,
    /// or shutdown) before it said what became of it: tried again.
    #[error("{0}")]
    Interrupted(String),
}

impl From<UnknownPartner> for FlowError {
    fn from(UnknownPartner(id): UnknownPartner) -> Self {
        FlowError::UnknownPartner(id)
    }
}

impl FlowError {
    /// A record the flow wrote itself (a timer's payload, a remembered document) that does not
    /// read back: a bug or a hand-edited store, never the event's fault.
    pub fn own_record(e: serde_json::Error) -> Self {
        FlowError::Invalid(format!("the flow's own record: {e}"))
    }

    /// Whether the same record may succeed later as it is.
    pub fn is_transient(&self) -> bool {
        match self {
            FlowError::ClaimedElsewhere { .. } | FlowError::Store(_) | FlowError::Lookup(_) => true,
            FlowError::Publish(e) => e.is_transient(),
            FlowError::Outbound { transient, .. } => *transient,
            FlowError::Batch(e) => e.is_transient(),
            FlowError::Interrupted(_) => true,
            // Refused credentials are an operator's error, not the record's: the partition
            // waits (and alerts) until they are fixed, instead of dead-lettering every record.
            FlowError::Amplience(e) => {
                e.is_retryable()
                    || matches!(
                        e,
                        AmplienceError::Credentials { .. }
                            | AmplienceError::Transport { .. }
                            // Many writers of one item (the suppression list) at once: try again.
                            | AmplienceError::ConflictPersisted { .. }
                    )
                    || matches!(e.status(), Some(401 | 403 | 408 | 409))
            }
            _ => false,
        }
    }

    /// The error class, for metrics and dead-letter headers.
    pub fn class(&self) -> &'static str {
        match self {
            FlowError::UnknownPartner(_) => "partner.unknown",
            FlowError::Template { .. } => "template.invalid",
            FlowError::TemplateNotApproved { .. } => "template.not_approved",
            FlowError::Render { .. } => "template.render",
            FlowError::ClaimedElsewhere { .. } => "ledger.claimed",
            FlowError::Invalid(_) => "effect.invalid",
            FlowError::Outbound { .. } => "tg.outbound",
            FlowError::Amplience(_) => "amplience",
            FlowError::Store(_) => "store",
            FlowError::Publish(_) => "kafka.publish",
            FlowError::Lookup(_) => "kafka.lookup",
            FlowError::Batch(e) => e.class(),
            FlowError::Interrupted(_) => "effect.interrupted",
        }
    }
}

impl From<FlowError> for HandlerError {
    fn from(e: FlowError) -> Self {
        HandlerError::from_source(e.class(), e.is_transient(), e)
    }
}
