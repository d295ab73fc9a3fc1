//! `gridsync dlq show` and `gridsync dlq redrive` on a real broker.

use std::{process::Command, time::Duration};

use gridsync_core::kafka::{dead_letter, headers};
use gridsync_schemas::{codec, samples::sample, EventType};
use gridsync_tests::{payload, read_topic, wait_for_some, workspace_binary, Pipeline};
use rdkafka::{
    message::{Header, OwnedHeaders},
    Message,
};

fn gridsync(pipeline: &Pipeline, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(workspace_binary("gridsync"))
        .args(args)
        .args(["--brokers", &pipeline.broker.brokers(), "--topic-prefix", &pipeline.kafka.topic_prefix])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_shown_and_re_driven_once_to_their_original_topic() {
    let pipeline = Pipeline::start("redrive", None).await.unwrap();
    let invoices = pipeline.topic(EventType::InvoiceReceived).to_owned();
    let dlq = pipeline.catalog.consumer("billing").unwrap().dead_letter_topic.clone();
    let event = sample(EventType::InvoiceReceived, "ACME", 1);
    let bytes = codec().unwrap().encode(&event);
    // A dead letter as the consumer loop writes it, and a foreign record.
    let dead = OwnedHeaders::new()
        .insert(Header { key: headers::EVENT_TYPE, value: Some("InvoiceReceived") })
        .insert(Header { key: dead_letter::ORIGINAL_TOPIC, value: Some(invoices.as_str()) })
        .insert(Header { key: dead_letter::STAGE, value: Some("PROCESS") })
        .insert(Header { key: dead_letter::ERROR_MESSAGE, value: Some("amplience.validation: body rejected") });
    let landed = pipeline.producer.send(&dlq, Some(b"ACME/INV000001"), Some(&bytes), dead).await.unwrap();
    pipeline.producer.send(&dlq, Some(b"other"), Some(b"?"), OwnedHeaders::new()).await.unwrap();

    let (ok, shown, _) = gridsync(&pipeline, &["dlq", "show", "billing"]);
    assert!(ok);
    let lines: Vec<serde_json::Value> = shown.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    // Partitions are read in no set order: find the dead letter by its key.
    let shown_dead = lines.iter().find(|l| l["key"] == "ACME/INV000001").unwrap();
    assert_eq!(shown_dead["headers"][dead_letter::ERROR_MESSAGE], "amplience.validation: body rejected");
    assert_eq!(shown_dead["event"]["invoice_number"], "INV000001", "a decodable dead letter is shown as its event");

    let (ok, out, err) = gridsync(&pipeline, &["dlq", "redrive", "billing"]);
    assert!(ok, "{err}");
    assert!(out.contains("re-drove 1 dead letters") && out.contains("(1 skipped)"), "{out}");
    assert!(err.contains("not a gridsync dead letter; skipped"));
    let again = read_topic(&pipeline.broker.brokers(), &invoices, 1, Duration::from_secs(30)).unwrap();
    assert_eq!(again.len(), 1);
    let record = &again[0];
    assert_eq!((record.key(), payload(record)), (Some(b"ACME/INV000001".as_slice()), bytes.as_slice()));
    let h = record.headers();
    assert_eq!(headers::get(h, headers::EVENT_TYPE), Some("InvoiceReceived"), "original headers kept");
    assert_eq!(headers::get(h, dead_letter::STAGE), None, "the failure's context is not");
    let from = format!("{dlq}/{}@{}", landed.partition, landed.offset);
    assert_eq!(headers::get(h, "gridsync.redriven_from"), Some(from.as_str()));

    // Progress is committed: nothing twice.
    let (ok, out, _) = gridsync(&pipeline, &["dlq", "redrive", "billing"]);
    assert!(ok && out.contains("re-drove 0 dead letters"), "{out}");
    assert_eq!(read_topic(&pipeline.broker.brokers(), &invoices, 2, Duration::from_secs(3)).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redrive_that_fails_part_way_resumes_after_what_it_re_drove() {
    let pipeline = Pipeline::start("redrive-resume", None).await.unwrap();
    let invoices = pipeline.topic(EventType::InvoiceReceived).to_owned();
    let missing = format!("{}gridsync.not-yet", pipeline.kafka.topic_prefix);
    let dlq = pipeline.catalog.consumer("billing").unwrap().dead_letter_topic.clone();
    // Three dead letters in one partition (one key): the second names a topic that does not exist.
    for (n, original) in [(1, invoices.as_str()), (2, missing.as_str()), (3, invoices.as_str())] {
        let bytes = codec().unwrap().encode(&sample(EventType::InvoiceReceived, "ACME", n));
        let dead = OwnedHeaders::new()
            .insert(Header { key: headers::EVENT_TYPE, value: Some("InvoiceReceived") })
            .insert(Header { key: dead_letter::ORIGINAL_TOPIC, value: Some(original) });
        pipeline.producer.send(&dlq, Some(b"ACME"), Some(&bytes), dead).await.unwrap();
    }
    let redrive = |pipeline: &Pipeline| {
        gridsync(pipeline, &["dlq", "redrive", "billing", "--kafka-option", "message.timeout.ms=3000"])
    };
    let (ok, out, err) = redrive(&pipeline);
    assert!(!ok, "the missing topic fails the run: {out}");
    assert!(err.contains(&format!("to {missing}")), "{err}");
    assert_eq!(read_topic(&pipeline.broker.brokers(), &invoices, 3, Duration::from_secs(3)).unwrap().len(), 1);

    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", pipeline.broker.brokers()).create().unwrap();
    let topic = rdkafka::admin::NewTopic::new(&missing, 1, rdkafka::admin::TopicReplication::Fixed(1));
    admin.create_topics(&[topic], &rdkafka::admin::AdminOptions::new()).await.unwrap();
    // Run again: the first letter is not re-driven twice; the rest go out.
    // Until the new topic's metadata has spread.
    let resumed =
        wait_for_some(Duration::from_secs(10), || std::future::ready(Some(redrive(&pipeline)).filter(|r| r.0)));
    let resumed = resumed.await.unwrap_or_else(|| panic!("{:?}", redrive(&pipeline)));
    assert!(resumed.1.contains("re-drove 2 dead letters"), "{}", resumed.1);
    assert_eq!(read_topic(&pipeline.broker.brokers(), &invoices, 3, Duration::from_secs(3)).unwrap().len(), 2);
    assert_eq!(read_topic(&pipeline.broker.brokers(), &missing, 2, Duration::from_secs(3)).unwrap().len(), 1);
}
