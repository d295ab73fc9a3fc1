//! The DocumentExchangeExceptions tg-producer raises about one of its own events (a reused
//! control number, a change that cannot be published): the event's partner, keys and
//! document, and an id of their own derived from the event's, so a retry raises the same one;
//! and those about a whole file (quarantined, left without an acknowledgement).

use std::collections::BTreeMap;

use gridsync_schemas::{
    events::{DocumentExchangeException, Envelope, ExceptionKind, Severity, SourceSystem},
    Event, EventType, Timestamp,
};

/// What an exception about an event says.
pub struct About {
    /// What happened, as part of the exception's id (`control-numbers-reused`, ...).
    pub what: &'static str,
    pub kind: ExceptionKind,
    pub severity: Severity,
    pub reason: String,
    pub details: BTreeMap<String, String>,
}

/// The exception about the file `file` of `partner` (its business key): `identity` (what tells
/// this file from another of the same name) and `about.what` make its id, so processing the
/// file again raises the same one.
pub fn about_file(partner: &str, file: &str, identity: &str, about: About, quarantine_path: Option<String>) -> Event {
    let now = Timestamp::now();
    let mut details = about.details;
    details.insert("file".to_owned(), file.to_owned());
    DocumentExchangeException {
        envelope: Envelope {
            event_id: Envelope::deterministic_event_id(SourceSystem::TradingGrid, &[about.what, file, identity]),
            event_type: EventType::DocumentExchangeException.name().to_owned(),
            occurred_at: now,
            ingested_at: now,
            source_system: SourceSystem::TradingGrid,
            trading_partner_id: partner.to_owned(),
            business_key: file.to_owned(),
            correlation_id: format!("{partner}/FILE/{file}"),
            trading_grid_document: None,
            amplience_content: None,
        },
        kind: about.kind,
        severity: about.severity,
        reason: about.reason,
        document_type: None,
        quarantine_path,
        details,
    }
    .into()
}

/// The exception about `event`.
pub fn about(event: &Event, about: About) -> Event {
    let envelope = event.envelope();
    let now = Timestamp::now();
    let mut details = about.details;
    details.insert("event_id".to_owned(), envelope.event_id.clone());
    DocumentExchangeException {
        envelope: Envelope {
            ingested_at: now,
            amplience_content: None,
            ..Envelope::derived_from(
                envelope,
                SourceSystem::TradingGrid,
                EventType::DocumentExchangeException,
                &[about.what, &envelope.event_id],
                now,
            )
        },
        kind: about.kind,
        severity: about.severity,
        reason: about.reason,
        document_type: envelope.trading_grid_document.as_ref().map(|d| d.document_type.clone()),
        quarantine_path: None,
        details,
    }
    .into()
}
