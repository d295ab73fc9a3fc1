//! Hand-written helpers on the generated types.

use crate::events::{Envelope, Event, SourceSystem};

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
}
