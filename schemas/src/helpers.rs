//! Hand-written helpers on the generated types.

use crate::{
    events::{Envelope, Event, EventType, SourceSystem},
    Timestamp,
};

impl Event {
    /// The event as JSON: its Avro record, decimals and dates as exact strings.
    pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }
}

impl Envelope {
    /// The Kafka record key: trading partner + business key, so every record of
    /// one business transaction lands in one partition, in order.
    pub fn record_key(&self) -> String {
        format!("{}/{}", self.trading_partner_id, self.business_key)
    }

    /// The deterministic correlation id of a business transaction: partner + PO
    /// number, so PO, ship notice, invoice and payment share it.
    pub fn correlation_id_for(trading_partner_id: &str, po_number: &str) -> String {
        format!("{trading_partner_id}/PO/{po_number}")
    }

    /// The envelope of an event `source` raises about the event `origin` is the envelope of (an
    /// exception, a delivery performed): of the same partner, business transaction and document,
    /// with the same content; its id deterministic from `id_parts` (the same origin raises the
    /// same event again, which Kafka consumers then see as one), ingested now.
    pub fn derived_from(
        origin: &Envelope,
        source: SourceSystem,
        event_type: EventType,
        id_parts: &[&str],
        occurred_at: Timestamp,
    ) -> Envelope {
        Envelope {
            event_id: Envelope::deterministic_event_id(source, id_parts),
            event_type: event_type.name().to_owned(),
            occurred_at,
            ingested_at: Timestamp::now(),
            source_system: source,
            trading_partner_id: origin.trading_partner_id.clone(),
            business_key: origin.business_key.clone(),
            correlation_id: origin.correlation_id.clone(),
            trading_grid_document: origin.trading_grid_document.clone(),
            amplience_content: origin.amplience_content.clone(),
        }
    }

    /// A deterministic event id (UUID v5) from the source's own identity, so
    /// reading the same source twice yields the same event id.
    pub fn deterministic_event_id(source: SourceSystem, parts: &[&str]) -> String {
        // Namespace: UUID v5 of "gridsync.events" in the URL namespace, fixed forever.
        let namespace = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"gridsync.events");
        let name = std::iter::once(source.as_str()).chain(parts.iter().copied()).collect::<Vec<_>>().join("\u{1f}");
        uuid::Uuid::new_v5(&namespace, name.as_bytes()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_deterministic_and_distinct() {
        let a = Envelope::deterministic_event_id(SourceSystem::TradingGrid, &["ACME", "000000001", "0001"]);
        let b = Envelope::deterministic_event_id(SourceSystem::TradingGrid, &["ACME", "000000001", "0001"]);
        let c = Envelope::deterministic_event_id(SourceSystem::TradingGrid, &["ACME", "000000001", "0002"]);
        // Joining with a separator keeps ("AB","C") apart from ("A","BC").
        let d = Envelope::deterministic_event_id(SourceSystem::TradingGrid, &["AB", "C"]);
        let e = Envelope::deterministic_event_id(SourceSystem::TradingGrid, &["A", "BC"]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(d, e);
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }

    #[test]
    fn a_derived_envelope_keeps_the_transaction_and_takes_its_own_id() {
        let origin = crate::samples::sample(EventType::PurchaseOrderReceived, "ACME", 1).envelope().clone();
        let at = Timestamp::from_millis(1_700_000_000_000);
        let derived = |parts: &[&str]| {
            Envelope::derived_from(&origin, SourceSystem::Gridsync, EventType::DeliveryPerformed, parts, at)
        };
        let (one, again, other) =
            (derived(&["delivery", "k1"]), derived(&["delivery", "k1"]), derived(&["delivery", "k2"]));
        assert_eq!(one.event_id, again.event_id);
        assert_ne!(one.event_id, other.event_id);
        assert_ne!(one.event_id, origin.event_id);
        assert_eq!(
            (one.event_type.as_str(), one.source_system, one.occurred_at),
            ("DeliveryPerformed", SourceSystem::Gridsync, at)
        );
        assert_eq!(one.record_key(), origin.record_key());
        assert_eq!(one.correlation_id, origin.correlation_id);
        assert_eq!(one.trading_grid_document, origin.trading_grid_document);
    }
}
