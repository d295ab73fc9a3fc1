//! Flows raise exceptions too (an invoice that does not add up, an
//! acknowledgement that never came, a package never read): a
//! DocumentExchangeException about the record's business transaction, for
//! flow 8. Its id derives from the record, the kind and the reason, so
//! raising it again (a retry, a replay) is recognised downstream.

use std::collections::BTreeMap;

use gridsync_core::kafka::Record;
use gridsync_schemas::{
    events::{DocumentExchangeException, ExceptionKind, Severity, SourceSystem, TradingGridDocumentRef},
    Envelope, Event, EventType, Timestamp,
};

use crate::{FlowContext, FlowError};

/// One exception to raise.
pub struct Raise<'a> {
    pub kind: ExceptionKind,
    pub reason: &'a str,
    pub details: BTreeMap<String, String>,
    /// The document it is about, when not the record's own.
    pub document: Option<TradingGridDocumentRef>,
    /// When it happened, by the flow's clock.
    pub at: Timestamp,
}

impl FlowContext {
    /// Publishes `raise` about `record`.
    pub async fn raise(&self, record: &Record, raise: Raise<'_>) -> Result<(), FlowError> {
        let source = record.event.envelope();
        let document = raise.document.or_else(|| source.trading_grid_document.clone());
        let event: Event = DocumentExchangeException {
            envelope: Envelope {
                trading_grid_document: document.clone(),
                ..Envelope::derived_from(
                    source,
                    SourceSystem::Gridsync,
                    EventType::DocumentExchangeException,
                    &[&self.name, "exception", &source.event_id, raise.kind.as_str(), raise.reason],
                    raise.at,
                )
            },
            kind: raise.kind,
            severity: Severity::Error,
            reason: raise.reason.to_owned(),
            document_type: document.map(|d| d.document_type),
            quarantine_path: None,
            details: raise.details,
        }
        .into();
        self.deps.producer.publish(&event, Some(&record.trace)).await?;
        Ok(())
    }
}
