//! The broker stopped and started again (same log folder) while tg-producer publishes EDI files
//! and a consumer streams them: both carry on by themselves, without a restart, and every
//! document arrives. Needs `cargo test --workspace` (binaries).

use std::{
    collections::BTreeSet,
    path::Path,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use gridsync_schemas::{codec, events::Event, EventType};
use gridsync_tests::{free_port, payload, processed_lines, read_all, wait_until, workspace_binary, Broker, Pipeline};

const FILES: usize = 10;
const ORDERS_PER_FILE: usize = 200;

/// An X12 file of purchase orders from RESTARTCO, numbered by `file`.
fn orders_file(file: usize) -> String {
    let po_numbers: Vec<String> = (1..=ORDERS_PER_FILE).map(|n| format!("B{file:02}-{n:04}")).collect();
    gridsync_tests::x12_purchase_orders("RESTARTCO", 700 + file, &po_numbers, 1)
}

fn drop_files(inbound: &Path, files: std::ops::Range<usize>) {
    for file in files {
        // Written under a partial name, then renamed: as a gateway delivers.
        let part = inbound.join(format!("orders-{file:02}.edi.part"));
        std::fs::write(&part, orders_file(file)).unwrap();
        std::fs::rename(&part, inbound.join(format!("orders-{file:02}.edi"))).unwrap();
    }
}

fn processed_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).filter(|e| !e.file_name().to_string_lossy().ends_with(".sha256")).count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn producer_and_consumer_ride_out_a_broker_restart_and_lose_nothing() {
    let broker = Arc::new(Broker::start().unwrap());
    let pipeline = Pipeline::start_on(broker.clone(), "broker-restart", None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mailbox = dir.path().join("mailbox");
    let inbound = mailbox.join("inbound");
    std::fs::create_dir_all(&inbound).unwrap();
    let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();

    let mut producer: Child = Command::new(workspace_binary("tg-producer"))
        .args(["--brokers", &broker.brokers(), "--topic-prefix", &pipeline.kafka.topic_prefix])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port()), "--poll-ms", "100", "--settle-ms", "100"])
        .arg("--mailbox-dir")
        .arg(&mailbox)
        .arg("--store-url")
        .arg(format!("sqlite://{}", dir.path().join("tg.db").display()))
        .stdout(Stdio::null())
        .stderr(log("producer.log"))
        .spawn()
        .unwrap();
    let orders = pipeline.topic(EventType::PurchaseOrderReceived).to_owned();
    let notifications = pipeline.catalog.consumer("notifications").unwrap();
    let out = dir.path().join("processed.tsv");
    let mut consumer: Child = Command::new(env!("CARGO_BIN_EXE_probe-consumer"))
        .args(["--brokers", &broker.brokers(), "--topic", &orders, "--group", &format!("{orders}.probe")])
        .args(["--dead-letter-topic", &notifications.dead_letter_topic])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(log("consumer.log"))
        .spawn()
        .unwrap();
    let logs = || {
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
        format!("--- producer\n{}\n--- consumer\n{}", read("producer.log"), read("consumer.log"))
    };
    let consumed = || processed_lines(&out).into_iter().map(|(id, ..)| id).collect::<BTreeSet<_>>();

    // Streaming before the outage.
    drop_files(&inbound, 0..FILES / 2);
    let streaming = wait_until(Duration::from_secs(60), || consumed().len() >= ORDERS_PER_FILE).await;
    assert!(streaming, "{}", logs());

    // The broker goes away while files keep arriving, then comes back on the same log folder.
    broker.stop();
    drop_files(&inbound, FILES / 2..FILES);
    tokio::time::sleep(Duration::from_secs(5)).await; // the outage itself
    broker.start_again().unwrap();

    let everything = FILES * ORDERS_PER_FILE;
    let done = wait_until(Duration::from_secs(180), || {
        consumed().len() == everything && processed_files(&mailbox.join("processed")) == FILES
    })
    .await;
    assert!(done, "consumed {} of {everything}\n{}", consumed().len(), logs());
    assert!(producer.try_wait().unwrap().is_none(), "the producer carried on by itself\n{}", logs());
    assert!(consumer.try_wait().unwrap().is_none(), "the consumer carried on by itself\n{}", logs());

    // Exactly the documents sent, each under one id, and the consumer saw every one on the topic.
    let codec = codec().unwrap();
    let records = read_all(&broker.brokers(), &orders, Duration::from_secs(30)).unwrap();
    let mut on_topic = BTreeSet::new();
    let mut po_numbers = BTreeSet::new();
    for record in &records {
        let Event::PurchaseOrderReceived(po) = codec.decode(payload(record)).unwrap().event else { panic!() };
        on_topic.insert(po.envelope.event_id);
        po_numbers.insert(po.po_number);
    }
    let expected: BTreeSet<String> =
        (0..FILES).flat_map(|f| (1..=ORDERS_PER_FILE).map(move |n| format!("B{f:02}-{n:04}"))).collect();
    assert_eq!(po_numbers, expected, "every document, nothing else");
    assert_eq!(on_topic.len(), everything, "one event id per document");
    assert_eq!(consumed(), on_topic, "the consumer processed every event on the topic");
    assert!(std::fs::read_dir(mailbox.join("quarantine")).unwrap().next().is_none(), "nothing quarantined");

    for child in [&mut producer, &mut consumer] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
