//! Transactions → the contract's events. One function per document type and
//! standard; the envelope (ids, partner, correlation, source reference) is
//! built the same way for all.

mod edifact;
mod values;
mod x12;

use gridsync_schemas::{
    events::{
        DocumentExchangeException, EdiStandard, Envelope, ExceptionKind, Severity, SourceSystem, TradingGridDocumentRef,
    },
    Event, EventType, Timestamp,
};

use crate::{EdiError, ErrorKind, Group, Interchange, Segment, Standard, Transaction};

/// What mapping needs besides the interchange.
#[derive(Debug, Clone, Copy)]
pub struct MapContext<'a> {
    /// The file the interchange came in, recorded in every event.
    pub file_name: Option<&'a str>,
    /// When gridsync read it.
    pub ingested_at: Timestamp,
}

/// What an interchange maps to: its events, and what of it is not.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mapped {
    /// An event per transaction: what it maps to, or, for a transaction gridsync does not map,
    /// a DocumentExchangeException saying it was rejected (or, where the partner's profile
    /// says so, accepted and ignored): nothing vanishes without a trace. Transactions rejected
    /// on their own have none here: see `rejected`.
    pub events: Vec<Event>,
    /// `(document type, control number)` of transactions rejected as not mapped.
    pub skipped: Vec<(String, String)>,
    /// `(document type, control number)` of transactions not mapped that were accepted and
    /// ignored, as the partner's profile asks.
    pub ignored: Vec<(String, String)>,
    /// What is wrong inside transactions that did not map (a missing element, an invalid
    /// value), each at a segment of its transaction: with [`Interchange::rejections`], every
    /// transaction rejected on its own while the rest of the interchange is processed.
    pub rejected: Vec<EdiError>,
}

/// The document types gridsync maps (`x12::map`, `edifact::map`); a transaction of any other is
/// rejected in its acknowledgement (997 `AK5*R*1`, CONTRL `UCM` action 4).
pub const X12_MAPPED: &[&str] = &["850", "855", "856", "810", "820", "214", "997", "999"];
pub const EDIFACT_MAPPED: &[&str] = &["ORDERS", "ORDRSP", "DESADV", "INVOIC", "REMADV", "IFTSTA", "CONTRL"];

/// Whether gridsync maps documents of `document_type` in `standard`.
pub fn is_mapped(standard: Standard, document_type: &str) -> bool {
    match standard {
        Standard::X12 => X12_MAPPED.contains(&document_type),
        Standard::Edifact => EDIFACT_MAPPED.contains(&document_type),
    }
}

/// Maps every transaction of `interchange`, rejecting every document type gridsync does not map.
/// See [`map_interchange_with`].
pub fn map_interchange(interchange: &Interchange<'_>, ctx: &MapContext<'_>) -> Result<Mapped, EdiError> {
    map_interchange_with(interchange, ctx, &[])
}

/// Maps every transaction of `interchange`. A transaction whose own trailer, or group's, is wrong
/// is not mapped, nor is one in which mapping finds an error (`Mapped::rejected`): each is
/// rejected on its own, and the others map. A document type gridsync does not map is rejected
/// (an exception says so), unless `ignored` (the sender's profile) lists it: then it is
/// accepted, and an informational exception records it for the audit view. Only a malformed
/// interchange acknowledgement (TA1) fails the whole interchange.
pub fn map_interchange_with(
    interchange: &Interchange<'_>,
    ctx: &MapContext<'_>,
    ignored: &[String],
) -> Result<Mapped, EdiError> {
    let mut chunks = map_in_chunks(interchange, ctx, ignored, usize::MAX);
    let mut events = Vec::new();
    while let Some(chunk) = chunks.next_chunk() {
        events.extend(chunk?);
    }
    Ok(Mapped { events, ..chunks.finish() })
}

/// [`map_interchange_with`], `chunk` transactions at a time: each chunk's events can be sent
/// on (encoded, published) and dropped before the next is mapped, so a huge interchange never
/// has all its events in memory at once (they are several times its size).
pub fn map_in_chunks<'s>(
    interchange: &'s Interchange<'s>,
    ctx: &'s MapContext<'s>,
    ignored: &'s [String],
    chunk: usize,
) -> MapChunks<'s> {
    let sources: Vec<Source<'s>> = interchange
        .groups
        .iter()
        .filter(|group| group.error.is_none())
        .flat_map(|group| {
            group.transactions.iter().filter(|tx| tx.error.is_none()).map(move |tx| Source {
                interchange,
                group,
                tx,
                ctx,
            })
        })
        .collect();
    MapChunks {
        interchange,
        ctx,
        sources,
        next: 0,
        chunk: chunk.max(1),
        ignored,
        mapped: Mapped::default(),
        done: false,
    }
}

/// An interchange being mapped a chunk of transactions at a time: see [`map_in_chunks`].
pub struct MapChunks<'s> {
    interchange: &'s Interchange<'s>,
    ctx: &'s MapContext<'s>,
    sources: Vec<Source<'s>>,
    next: usize,
    chunk: usize,
    ignored: &'s [String],
    /// What is not events, gathered chunk by chunk.
    mapped: Mapped,
    done: bool,
}

impl MapChunks<'_> {
    /// The next chunk's events, in the interchange's order; `None` once every transaction is
    /// mapped. The interchange's own acknowledgements (TA1s) come last; an error mapping one
    /// fails the whole interchange.
    pub fn next_chunk(&mut self) -> Option<Result<Vec<Event>, EdiError>> {
        if self.done {
            return None;
        }
        let end = self.sources.len().min(self.next.saturating_add(self.chunk));
        let sources = &self.sources[self.next..end];
        self.next = end;
        let mut events = Vec::with_capacity(sources.len());
        for (source, event) in sources.iter().zip(map_all(sources)) {
            let tx = source.tx;
            match event {
                Ok(event) => events.push(event),
                Err(e) if e.kind == ErrorKind::Unsupported && self.ignored.contains(&tx.document_type) => {
                    self.mapped.ignored.push((tx.document_type.clone(), tx.control_number.clone()));
                    events.push(source.ignored());
                }
                Err(e) if e.kind == ErrorKind::Unsupported => {
                    self.mapped.skipped.push((tx.document_type.clone(), tx.control_number.clone()));
                    events.push(source.unmapped());
                }
                // Every error mapping finds is at one of the transaction's segments; one that were
                // not is put at its header, so that it still rejects this transaction and no other.
                Err(e) if tx.holds(&e) => self.mapped.rejected.push(e),
                Err(e) => self.mapped.rejected.push(EdiError { segment: tx.segments[0].index, element: None, ..e }),
            }
        }
        if self.next == self.sources.len() {
            self.done = true;
            // A partner's TA1: what became of one of our interchanges.
            for ta1 in &self.interchange.interchange_acks {
                match x12::interchange_ack(self.interchange, ta1, self.ctx) {
                    Ok(event) => events.push(event),
                    Err(e) => return Some(Err(e)),
                }
            }
        }
        Some(Ok(events))
    }

    /// What the interchange mapped to besides events: the transactions not mapped, and the
    /// errors found inside transactions (`events` is empty).
    pub fn finish(self) -> Mapped {
        self.mapped
    }
}

/// The DocumentExchangeException for `tx` of `group`, rejected on its own for `error` while the
/// rest of its interchange is processed: the file, control numbers and error named, and where
/// its bytes were kept (`quarantine_path`). Its id comes from the document, so processing the
/// file again raises the same one.
pub fn rejection_exception(
    interchange: &Interchange<'_>,
    group: &Group<'_>,
    tx: &Transaction<'_>,
    error: &EdiError,
    ctx: &MapContext<'_>,
    quarantine_path: Option<String>,
) -> Event {
    let source = Source { interchange, group, tx, ctx };
    let answer = match interchange.standard {
        Standard::X12 => "its 997 rejects it",
        Standard::Edifact => "its CONTRL rejects it",
    };
    let reason = format!(
        "{} {} {} of interchange {} is rejected ({answer}), the rest of the interchange is processed: {error}",
        source.document(),
        tx.document_type,
        tx.control_number,
        interchange.control_number.trim()
    );
    let mut exception = source.exception(ExceptionKind::MalformedDocument, Severity::Error, reason);
    exception.details.insert("segment".to_owned(), error.segment.to_string());
    exception.details.insert("element".to_owned(), error.element.map(|n| n.to_string()).unwrap_or_default());
    exception.details.insert("error_kind".to_owned(), format!("{:?}", error.kind));
    exception.quarantine_path = quarantine_path;
    exception.into()
}

/// Interchanges with fewer transactions are mapped on the caller's thread.
const SPREAD_FROM: usize = 512;

/// Transactions a pool thread maps at a time, at least: fewer would cost more in hand-offs.
const SPREAD_BY: usize = 64;

/// Each transaction's event, in order. Transactions map independently, so a large
/// interchange is spread over the machine's cores (a 5,000-order file maps in half the time
/// on two); the caller sees the same results, in the same order, either way.
///
/// The threads are rayon's pool, kept between files: a thread started per file began with an
/// empty allocator heap, and faulting fresh pages in (zeroed by the kernel) took a third of
/// its time, measured.
fn map_all(sources: &[Source<'_>]) -> Vec<Result<Event, EdiError>> {
    if sources.len() < SPREAD_FROM || rayon::current_num_threads() < 2 {
        return sources.iter().map(Source::map).collect();
    }
    use rayon::prelude::*;
    sources.par_iter().with_min_len(SPREAD_BY).map(Source::map).collect()
}

/// One transaction and everything around it.
pub(crate) struct Source<'s> {
    pub interchange: &'s Interchange<'s>,
    pub group: &'s Group<'s>,
    pub tx: &'s Transaction<'s>,
    pub ctx: &'s MapContext<'s>,
}

impl<'s> Source<'s> {
    /// This transaction's event.
    fn map(&self) -> Result<Event, EdiError> {
        match self.interchange.standard {
            Standard::X12 => x12::map(self),
            Standard::Edifact => edifact::map(self),
        }
    }

    pub fn body(&self) -> &'s [Segment<'s>] {
        self.tx.body()
    }

    /// The decimal mark of this interchange.
    pub fn mark(&self) -> u8 {
        self.interchange.delimiters.decimal
    }

    /// The first segment tagged `tag` whose element 1 is one of `qualifiers` (any if empty).
    pub fn find(&self, tag: &str, qualifiers: &[&str]) -> Option<&'s Segment<'s>> {
        self.body().iter().find(|s| {
            s.tag == tag && (qualifiers.is_empty() || s.element(1).is_some_and(|q| qualifiers.contains(&q.trim())))
        })
    }

    pub fn require(&self, tag: &str, qualifiers: &[&str]) -> Result<&'s Segment<'s>, EdiError> {
        self.find(tag, qualifiers).ok_or_else(|| {
            let which =
                if qualifiers.is_empty() { String::new() } else { format!(" with qualifier {}", qualifiers.join("/")) };
            EdiError::new(
                ErrorKind::MissingElement,
                self.tx.segments[0].index,
                None,
                format!("{} {} has no {tag} segment{which}", self.tx.document_type, self.tx.control_number),
            )
        })
    }

    /// The interchange sender as a party, for documents that name none.
    pub fn sender_party(&self) -> gridsync_schemas::events::Party {
        values::party(self.interchange.sender_id.trim().to_owned(), None, None)
    }

    /// The interchange receiver as a party, for documents that name none.
    pub fn receiver_party(&self) -> gridsync_schemas::events::Party {
        values::party(self.interchange.receiver_id.trim().to_owned(), None, None)
    }

    /// The interchange's own date and time, for documents without one.
    pub fn interchange_time(&self) -> Option<Timestamp> {
        let header = &self.tx.segments[0];
        values::date(header, 0, &self.interchange.date).ok().map(|d| values::timestamp(d, Some(&self.interchange.time)))
    }

    /// The envelope of the event this transaction maps to.
    pub fn envelope(
        &self,
        event_type: EventType,
        business_key: &str,
        po_number: Option<&str>,
        occurred: Option<Timestamp>,
    ) -> Envelope {
        let document = Document {
            group_control: self.group.control_number.clone(),
            document_type: &self.tx.document_type,
            control_number: &self.tx.control_number,
            digest: self.tx.digest(),
        };
        let occurred = occurred.or_else(|| self.interchange_time());
        envelope_of(self.interchange, self.ctx, &document, event_type, business_key, po_number, occurred)
    }

    /// `<type> <number> has no <what>`, at the transaction's header.
    pub fn missing(&self, number: &str, what: &str) -> EdiError {
        EdiError::new(
            ErrorKind::MissingElement,
            self.tx.segments[0].index,
            None,
            format!("{} {number} has no {what}", self.tx.document_type),
        )
    }

    /// `transaction set` or `message`, as the standard calls a transaction.
    fn document(&self) -> &'static str {
        match self.interchange.standard {
            Standard::X12 => "transaction set",
            Standard::Edifact => "message",
        }
    }

    /// An exception about this transaction: its document and control numbers named, its id
    /// from the document (the same file raises the same one again).
    fn exception(&self, kind: ExceptionKind, severity: Severity, reason: String) -> DocumentExchangeException {
        let (document_type, control) = (&self.tx.document_type, &self.tx.control_number);
        let key = format!("{}/{document_type}/{control}", self.interchange.control_number.trim());
        let details = [
            ("interchange", Some(self.interchange.control_number.trim().to_owned())),
            ("group", self.group.control_number.clone()),
            ("transaction", Some(control.clone())),
            ("file", self.ctx.file_name.map(str::to_owned)),
        ];
        DocumentExchangeException {
            envelope: self.envelope(EventType::DocumentExchangeException, &key, None, None),
            kind,
            severity,
            reason,
            document_type: Some(document_type.clone()),
            quarantine_path: None,
            details: details.into_iter().filter_map(|(k, v)| Some((k.to_owned(), v?))).collect(),
        }
    }

    /// The exception saying this transaction is not one gridsync maps, and was rejected.
    fn unmapped(&self) -> Event {
        let answer = match self.interchange.standard {
            Standard::X12 => "the 997 rejects it (AK5*R*1: transaction set not supported)",
            Standard::Edifact => "the CONTRL rejects it (UCM action 4)",
        };
        let reason = format!(
            "{} {} {} of interchange {} is not one gridsync maps: {answer}; \
             if the partner should not send it, tell them; if gridsync should read it, it needs a mapping",
            self.document(),
            self.tx.document_type,
            self.tx.control_number,
            self.interchange.control_number.trim()
        );
        self.exception(ExceptionKind::Other, Severity::Warning, reason).into()
    }

    /// The record (an informational exception, for the audit view; no task) of a transaction
    /// gridsync does not map, accepted and ignored as the partner's profile asks.
    fn ignored(&self) -> Event {
        let reason = format!(
            "{} {} {} of interchange {} is accepted and ignored, as the partner's profile asks \
             (accept_unmapped): nothing of it is read",
            self.document(),
            self.tx.document_type,
            self.tx.control_number,
            self.interchange.control_number.trim()
        );
        self.exception(ExceptionKind::Other, Severity::Info, reason).into()
    }

    pub fn unsupported(&self) -> EdiError {
        EdiError::new(
            ErrorKind::Unsupported,
            self.tx.segments[0].index,
            None,
            format!("document type {} is not mapped", self.tx.document_type),
        )
    }
}

/// Which document of an interchange an event comes from.
pub(crate) struct Document<'d> {
    pub group_control: Option<String>,
    /// `850`, `ORDERS`, ... (`TA1` for an interchange acknowledgement).
    pub document_type: &'d str,
    pub control_number: &'d str,
    /// [`crate::model::Transaction::digest`]; empty for an interchange acknowledgement.
    pub digest: String,
}

/// The envelope of an event from `document` of `ix`: ids from the interchange's
/// control numbers and the document's content (same document, same ids), the
/// partner is the interchange's sender.
pub(crate) fn envelope_of(
    ix: &Interchange<'_>,
    ctx: &MapContext<'_>,
    document: &Document<'_>,
    event_type: EventType,
    business_key: &str,
    po_number: Option<&str>,
    occurred: Option<Timestamp>,
) -> Envelope {
    let group_control = document.group_control.clone();
    let parts = [
        ix.sender_id.trim(),
        ix.receiver_id.trim(),
        ix.control_number.trim(),
        group_control.as_deref().unwrap_or(""),
        document.control_number.trim(),
        // A partner that reuses control numbers for another document gets another id: it is
        // not mistaken for a resend (which has the same content, and so the same id).
        &document.digest,
    ];
    let partner = ix.sender_id.trim();
    Envelope {
        // Same file, same ids: a re-read is recognised downstream.
        event_id: Envelope::deterministic_event_id(SourceSystem::TradingGrid, &parts),
        event_type: event_type.name().to_owned(),
        occurred_at: occurred.unwrap_or(ctx.ingested_at),
        ingested_at: ctx.ingested_at,
        source_system: SourceSystem::TradingGrid,
        trading_partner_id: partner.to_owned(),
        business_key: business_key.to_owned(),
        correlation_id: match po_number {
            Some(po) => Envelope::correlation_id_for(partner, po),
            None => format!("{partner}/{}/{business_key}", document.document_type),
        },
        trading_grid_document: Some(TradingGridDocumentRef {
            standard: match ix.standard {
                Standard::X12 => EdiStandard::X12,
                Standard::Edifact => EdiStandard::Edifact,
            },
            document_type: document.document_type.to_owned(),
            sender_id: ix.sender_id.trim().to_owned(),
            receiver_id: ix.receiver_id.trim().to_owned(),
            interchange_control_number: ix.control_number.trim().to_owned(),
            group_control_number: group_control,
            transaction_control_number: document.control_number.trim().to_owned(),
            file_name: ctx.file_name.map(str::to_owned),
            lens_transaction_id: None,
        }),
        amplience_content: None,
    }
}

/// `quantity × unit price`, rounded to the contract's six places.
pub(crate) fn line_amount(
    quantity: gridsync_schemas::Decimal,
    price: Option<gridsync_schemas::Decimal>,
) -> Option<gridsync_schemas::Decimal> {
    let product = quantity.value().checked_mul(price?.value())?;
    gridsync_schemas::Decimal::new(product.round_dp(gridsync_schemas::Decimal::SCALE)).ok()
}

/// The sum of every line amount, when every line has one.
pub(crate) fn total(lines: &[gridsync_schemas::events::OrderLine]) -> Option<gridsync_schemas::Decimal> {
    let mut sum = rust_decimal::Decimal::ZERO;
    for line in lines {
        sum = sum.checked_add(line.line_amount?.value())?;
    }
    gridsync_schemas::Decimal::new(sum).ok()
}

/// A line's product ids in the document's order, as kinds of id: the seller's or a standard
/// one, and the buyer's (each standard codes them differently).
pub(crate) struct IdKinds {
    pub seller_or_standard: &'static [&'static str],
    pub buyer: &'static [&'static str],
}

/// The line's `product_id` and `buyer_product_id` from every id it carries: the first of the
/// seller's or a standard kind, else the buyer's, else the first of any kind; empty (never the
/// line number) when it carries none.
pub(crate) fn chosen_ids(ids: &[gridsync_schemas::events::ProductId], kinds: &IdKinds) -> (String, Option<String>) {
    let first = |codes: &[&str]| ids.iter().find(|p| codes.contains(&p.qualifier.as_str())).map(|p| p.id.clone());
    let buyer = first(kinds.buyer);
    let product = first(kinds.seller_or_standard)
        .or_else(|| buyer.clone())
        .or_else(|| ids.first().map(|p| p.id.clone()))
        .unwrap_or_default();
    (product, buyer)
}
