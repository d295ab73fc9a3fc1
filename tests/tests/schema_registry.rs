//! The Confluent wire format through a Schema Registry: producers register and
//! frame with `00` + schema id, consumers sniff the framing and fetch writer
//! schemas, including versions this build has never seen.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use gridsync_core::{
    kafka::{admin::apply_topics, headers, EventProducer, HandlerError},
    registry::EventDecoder,
    telemetry::Metrics,
};
use gridsync_schemas::{catalog::catalog, codec, events::Event, samples::sample, EventType};
use gridsync_tests::{free_port, payload, read_topic, unique_prefix, Broker};
use rdkafka::Message;
use serde_json::{json, Value};

/// The part of the Schema Registry REST API gridsync uses, in memory.
#[derive(Default)]
struct Registry {
    schemas: Vec<String>,
}

type Shared = Arc<Mutex<Registry>>;

async fn register(State(r): State<Shared>, Path(_subject): Path<String>, Json(body): Json<Value>) -> Json<Value> {
    let schema = body["schema"].as_str().unwrap_or_default().to_owned();
    let mut r = r.lock().unwrap();
    let id = match r.schemas.iter().position(|s| *s == schema) {
        Some(i) => i + 1,
        None => {
            r.schemas.push(schema);
            r.schemas.len()
        }
    };
    Json(json!({ "id": id }))
}

async fn by_id(State(r): State<Shared>, Path(id): Path<usize>) -> (StatusCode, Json<Value>) {
    match r.lock().unwrap().schemas.get(id.wrapping_sub(1)) {
        Some(schema) => (StatusCode::OK, Json(json!({ "schema": schema }))),
        None => (StatusCode::NOT_FOUND, Json(json!({ "error_code": 40403, "message": "Schema not found" }))),
    }
}

async fn start_registry() -> (String, Shared) {
    let state = Shared::default();
    let app = Router::new()
        .route("/subjects/{subject}/versions", post(register))
        .route("/schemas/ids/{id}", get(by_id))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, state)
}

fn confluent(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn confluent_framed_events_round_trip_through_broker_and_registry() {
    let (url, _) = start_registry().await;
    let broker = Broker::shared().unwrap();
    let prefix = unique_prefix("registry");
    let kafka =
        gridsync_core::config::KafkaArgs { schema_registry_url: Some(url.clone()), ..broker.kafka_args(&prefix) };
    let catalog = catalog().unwrap().with_prefix(&prefix);
    apply_topics(&kafka, &catalog.topics, false).await.unwrap();
    let producer = EventProducer::new(&kafka, Metrics::new("test").unwrap()).unwrap();

    let invoice = sample(EventType::InvoiceReceived, "ACME", 1);
    let payment = sample(EventType::PaymentConfirmed, "ACME", 1);
    producer.publish(&invoice, None).await.unwrap();
    producer.publish(&payment, None).await.unwrap();
    producer.publish(&sample(EventType::InvoiceReceived, "ACME", 2), None).await.unwrap();

    let records =
        read_topic(&broker.brokers(), &catalog.topic_for(EventType::InvoiceReceived).name, 2, Duration::from_secs(30))
            .unwrap();
    assert_eq!(records.len(), 2);
    let decoder = EventDecoder::new(Some(&url)).unwrap();
    let mut invoices = Vec::new();
    for record in &records {
        let bytes = payload(record);
        assert_eq!(bytes[0], 0, "Confluent magic byte");
        assert_eq!(&bytes[1..5], &1u32.to_be_bytes(), "the invoice schema was registered first, once");
        assert_eq!(headers::get(record.headers(), headers::SCHEMA_ID), Some("1"));
        invoices.push(decoder.decode(bytes).await.unwrap().event);
    }
    assert!(invoices.contains(&invoice), "decoded exactly as published");
    let payments =
        read_topic(&broker.brokers(), &catalog.topic_for(EventType::PaymentConfirmed).name, 1, Duration::from_secs(30))
            .unwrap();
    assert_eq!(&payload(&payments[0])[1..5], &2u32.to_be_bytes());
    assert_eq!(decoder.decode(payload(&payments[0])).await.unwrap().event, payment);

    // Without a registry the same bytes are refused, permanently and precisely.
    let no_registry = EventDecoder::new(None).unwrap();
    let refused = no_registry.decode(payload(&records[0])).await.unwrap_err();
    assert!(
        matches!(&refused, HandlerError::Permanent { class, .. } if class == "codec.registry_required"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_writer_schema_unknown_to_this_build_is_resolved_through_the_registry() {
    let (url, state) = start_registry().await;
    // A newer producer added an optional field this build does not know.
    let mut newer: Value = serde_json::from_str(EventType::DisputeResolved.current_schema_json()).unwrap();
    newer["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "approved_by", "type": ["null", "string"], "default": null}));
    let newer_schema = apache_avro::Schema::parse(&newer).unwrap();
    state.lock().unwrap().schemas.push(newer.to_string());

    let event = sample(EventType::DisputeResolved, "ACME", 5);
    let value = apache_avro::to_value(&event).unwrap().resolve(&newer_schema).unwrap();
    let datum = apache_avro::writer::datum::GenericDatumWriter::builder(&newer_schema)
        .build()
        .unwrap()
        .write_value_to_vec(value)
        .unwrap();
    assert!(codec().unwrap().by_fingerprint(gridsync_schemas::Fingerprint::of(&newer_schema)).is_none());

    let decoded = EventDecoder::new(Some(&url)).unwrap().decode(&confluent(1, &datum)).await.unwrap();
    assert_eq!(decoded.event, event);
    assert!(matches!(decoded.event, Event::DisputeResolved(_)));
}

#[tokio::test]
async fn registry_failures_are_classified_for_retry_or_dead_letter() {
    let (url, _) = start_registry().await;
    let datum = codec().unwrap().encode_datum(&sample(EventType::InvoiceReceived, "ACME", 1));

    let unknown_id = EventDecoder::new(Some(&url)).unwrap().decode(&confluent(99, &datum)).await.unwrap_err();
    assert!(
        matches!(&unknown_id, HandlerError::Permanent { class, message, .. } if class == "registry.schema" && message.contains("404")),
        "{unknown_id}"
    );

    let down = format!("http://127.0.0.1:{}", free_port());
    let unreachable = EventDecoder::new(Some(&down)).unwrap().decode(&confluent(1, &datum)).await.unwrap_err();
    assert!(
        matches!(&unreachable, HandlerError::Transient { class, .. } if class == "registry.unavailable"),
        "{unreachable}"
    );
}
