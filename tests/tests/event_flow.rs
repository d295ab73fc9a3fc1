//! Events through a real broker: every type round-trips with its key and
//! headers, one business transaction stays in one partition, and producers and
//! consumers on different schema versions understand each other.

use std::time::Duration;

use apache_avro::types::Value;
use gridsync_core::{kafka::headers, telemetry::TraceContext};
use gridsync_schemas::{codec, events::Event, samples::sample, EventType};
use gridsync_tests::{payload, read_topic, Pipeline};
use rdkafka::{
    message::{Header, OwnedHeaders},
    Message,
};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn every_event_type_round_trips_through_the_broker_with_key_and_headers() {
    let Pipeline { broker, catalog, producer, .. } = Pipeline::start("roundtrip", None).await.unwrap();
    let parent = TraceContext::new_root();

    let mut published = Vec::new();
    for event_type in EventType::ALL {
        let event = sample(event_type, "ACME", 11);
        let delivered = producer.publish(&event, Some(&parent)).await.unwrap();
        assert_eq!(delivered.topic, catalog.topic_for(event_type).name);
        published.push((event, delivered));
    }

    for (event, delivered) in &published {
        let event_type = event.event_type();
        let topic = &delivered.topic;
        let on_topic = published.iter().filter(|(_, d)| &d.topic == topic).count();
        let records = read_topic(&broker.brokers(), topic, on_topic, WAIT).unwrap();
        let record = records
            .iter()
            .find(|m| m.partition() == delivered.partition && m.offset() == delivered.offset)
            .unwrap_or_else(|| panic!("{} not found on {topic}", event_type.name()));
        let decoded = codec().unwrap().decode(payload(record)).unwrap();
        assert_eq!(&decoded.event, event, "{}", event_type.name());

        let envelope = event.envelope();
        assert_eq!(record.key(), Some(envelope.record_key().as_bytes()));
        let h = record.headers();
        assert_eq!(headers::get(h, headers::EVENT_TYPE), Some(event_type.name()));
        assert_eq!(headers::get(h, headers::EVENT_ID), Some(envelope.event_id.as_str()));
        assert_eq!(headers::get(h, headers::CORRELATION_ID), Some(envelope.correlation_id.as_str()));
        let fingerprint = codec().unwrap().current(event_type).fingerprint.to_string();
        assert_eq!(headers::get(h, headers::SCHEMA_FINGERPRINT), Some(fingerprint.as_str()));
        let trace = TraceContext::parse(headers::get(h, headers::TRACEPARENT).unwrap()).unwrap();
        assert_eq!(trace.trace_id, parent.trace_id, "the trace continues");
        assert_ne!(trace.span_id, parent.span_id, "as a child span");
    }
}

#[tokio::test]
async fn one_business_transaction_stays_in_one_partition_in_order() {
    let Pipeline { broker, catalog, producer, .. } = Pipeline::start("ordering", None).await.unwrap();

    // Twenty versions of the same PO (same partner and business key) among other traffic.
    let mut same_key = Vec::new();
    for seq in 0..60u64 {
        let mut event = sample(EventType::PurchaseOrderReceived, if seq % 3 == 0 { "ACME" } else { "GLOBEX" }, seq);
        if seq % 3 == 0 {
            event.envelope_mut().business_key = "PO-SHARED".into();
            same_key.push(event.envelope().event_id.clone());
        }
        producer.publish(&event, None).await.unwrap();
    }
    let topic = &catalog.topic_for(EventType::PurchaseOrderReceived).name;
    let records = read_topic(&broker.brokers(), topic, 60, WAIT).unwrap();
    assert_eq!(records.len(), 60);
    let shared: Vec<_> = records.iter().filter(|m| m.key() == Some(b"ACME/PO-SHARED".as_slice())).collect();
    assert_eq!(shared.len(), 20);
    assert!(shared.iter().all(|m| m.partition() == shared[0].partition()), "one partition");
    let mut in_partition_order = shared.clone();
    in_partition_order.sort_by_key(|m| m.offset());
    let ids: Vec<String> = in_partition_order
        .iter()
        .map(|m| codec().unwrap().decode(payload(m)).unwrap().event.envelope().event_id.clone())
        .collect();
    assert_eq!(ids, same_key, "in publish order");
}

#[tokio::test]
async fn old_and_new_schema_versions_read_each_other_through_the_broker() {
    let Pipeline { broker, catalog, producer, .. } = Pipeline::start("evolution", None).await.unwrap();
    let codec = codec().unwrap();
    let topic = catalog.topic_for(EventType::PurchaseOrderReceived).name.clone();
    let v1 = codec.version(EventType::PurchaseOrderReceived, 1).unwrap();

    // An old producer (v1, no requested_delivery_date) and a current one share the topic.
    let old_event = sample(EventType::PurchaseOrderReceived, "ACME", 1);
    let old_bytes = codec.encode_as(&old_event, v1).unwrap();
    let key = old_event.envelope().record_key();
    producer.send(&topic, Some(key.as_bytes()), Some(&old_bytes), OwnedHeaders::new()).await.unwrap();
    let new_event = sample(EventType::PurchaseOrderReceived, "ACME", 2);
    producer
        .send(
            &topic,
            Some(b"ACME/PO000002"),
            Some(&codec.encode(&new_event)),
            OwnedHeaders::new().insert(Header { key: "x", value: Some("y") }),
        )
        .await
        .unwrap();

    let records = read_topic(&broker.brokers(), &topic, 2, WAIT).unwrap();
    assert_eq!(records.len(), 2);
    let mut saw_old = false;
    let mut saw_new = false;
    for record in &records {
        // The current consumer reads both.
        let decoded = codec.decode(payload(record)).unwrap();
        let Event::PurchaseOrderReceived(po) = &decoded.event else { panic!("wrong type") };
        if decoded.writer_version == 1 {
            saw_old = true;
            assert_eq!(po.requested_delivery_date, None, "the reader's default");
            assert_eq!(po.po_number, "PO000001");
        } else {
            saw_new = true;
            assert!(po.requested_delivery_date.is_some());
            // A consumer still on v1 reads the new record, without the new field.
            let Value::Record(fields) = codec.decode_as(payload(record), &v1.schema).unwrap() else { panic!() };
            assert!(fields.iter().all(|(name, _)| name != "requested_delivery_date"));
            assert!(fields.iter().any(|(name, v)| name == "po_number" && *v == Value::String("PO000002".into())));
        }
    }
    assert!(saw_old && saw_new);
}
