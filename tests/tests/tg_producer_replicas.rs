//! Two tg-producers sharing one mailbox and one PostgreSQL store, one of them SIGKILLed again
//! and again while it holds a file: every document is published under one event id (a
//! repeat only under the same id, and only for a file in hand at a kill), every file is
//! processed and acknowledged once, nothing stays claimed; a third instance under a name in
//! use is refused. Needs `cargo test --workspace` (binaries) and PostgreSQL (deploy/test.sh).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use gridsync_schemas::{codec, events::Event, EventType};
use gridsync_tests::{free_port, payload, read_all, wait_until, workspace_binary, x12_purchase_orders, Pipeline};

mod common;
use common::postgres_schema_url;

const FILES: usize = 12;
const ORDERS_PER_FILE: usize = 2_000;
const LEASE_MS: &str = "2000";

/// An X12 file of `orders` purchase orders (one transaction set each) from REPCO.
fn orders_file(file: usize, orders: usize) -> String {
    let po_numbers: Vec<String> = (1..=orders).map(|n| po_number(file, n)).collect();
    x12_purchase_orders("REPCO", 500 + file, &po_numbers, 1)
}

fn po_number(file: usize, n: usize) -> String {
    format!("R{file:02}-{n:05}")
}

fn spawn(pipeline: &Pipeline, mailbox: &Path, store: &str, instance: &str, log: &Path) -> Child {
    Command::new(workspace_binary("tg-producer"))
        .args(["--brokers", &pipeline.broker.brokers(), "--topic-prefix", &pipeline.kafka.topic_prefix])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port()), "--poll-ms", "100", "--settle-ms", "100"])
        .args(["--instance-id", instance, "--claim-lease-ms", LEASE_MS, "--store-url", store])
        .arg("--mailbox-dir")
        .arg(mailbox)
        .stdout(Stdio::null())
        .stderr(std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap())
        .spawn()
        .unwrap()
}

/// The EDI files in `dir` (not hidden, not checksums).
fn edi_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    names.retain(|n| !n.starts_with('.') && !n.ends_with(".sha256") && !n.ends_with(".reason"));
    names.sort();
    names
}

/// Files claimed by any instance.
fn claimed(processing: &Path) -> Vec<PathBuf> {
    let owners = std::fs::read_dir(processing).map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect::<Vec<_>>());
    owners.unwrap_or_default().iter().flat_map(|o| edi_files(o).into_iter().map(move |f| o.join(f))).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_on_one_mailbox_killed_mid_file_publish_every_document_once_by_id() {
    let pipeline = Pipeline::start("tg-replicas", None).await.unwrap();
    let store = postgres_schema_url().await;
    let dir = tempfile::tempdir().unwrap();
    let mailbox = dir.path().join("mailbox");
    let inbound = mailbox.join("inbound");
    std::fs::create_dir_all(&inbound).unwrap();
    for file in 0..FILES {
        std::fs::write(inbound.join(format!("orders-{file:02}.edi")), orders_file(file, ORDERS_PER_FILE)).unwrap();
    }
    let log = dir.path().join("producers.log");
    let mut a = spawn(&pipeline, &mailbox, &store, "a", &log);
    let b = spawn(&pipeline, &mailbox, &store, "b", &log);
    let a_claims = inbound.join(".processing/a");

    // Kill a while it holds a file, and start it again, as long as files are left.
    let processed = mailbox.join("processed");
    let mut kills = 0;
    while kills < 3 {
        let holding = wait_until(Duration::from_secs(60), || {
            !edi_files(&a_claims).is_empty() || edi_files(&processed).len() == FILES
        })
        .await;
        if !holding || edi_files(&a_claims).is_empty() {
            break;
        }
        a.kill().unwrap();
        a.wait().unwrap();
        kills += 1;
        a = spawn(&pipeline, &mailbox, &store, "a", &log);
    }
    let done = wait_until(Duration::from_secs(180), || {
        edi_files(&processed).len() == FILES && claimed(&inbound.join(".processing")).is_empty()
    })
    .await;
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(done, "processed {:?}, claimed {:?}\n{}", edi_files(&processed), claimed(&inbound), logs());
    assert!(kills >= 1, "a was never caught holding a file\n{}", logs());
    let expected_files: Vec<String> = (0..FILES).map(|f| format!("orders-{f:02}.edi")).collect();
    assert_eq!(edi_files(&processed), expected_files, "each file processed once (no orders-NN.edi.1)");
    assert!(edi_files(&mailbox.join("quarantine")).is_empty(), "{}", logs());
    let acks = edi_files(&mailbox.join("outbound"));
    assert_eq!(acks.len(), FILES, "one 997 per interchange, whoever wrote it, however often: {acks:?}");

    // Every document under one id; a repeat only under the same id, and at most a file's worth per kill.
    let codec = codec().unwrap();
    let records =
        read_all(&pipeline.broker.brokers(), pipeline.topic(EventType::PurchaseOrderReceived), Duration::from_secs(60))
            .unwrap();
    let mut ids_by_po: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for record in &records {
        let Event::PurchaseOrderReceived(po) = codec.decode(payload(record)).unwrap().event else { panic!("not a PO") };
        ids_by_po.entry(po.po_number.clone()).or_default().insert(po.envelope.event_id.clone());
    }
    let expected: BTreeSet<String> =
        (0..FILES).flat_map(|f| (1..=ORDERS_PER_FILE).map(move |n| po_number(f, n))).collect();
    assert_eq!(ids_by_po.keys().cloned().collect::<BTreeSet<_>>(), expected, "every document, nothing else");
    assert!(ids_by_po.values().all(|ids| ids.len() == 1), "one event id per document");
    let repeats = records.len() - expected.len();
    eprintln!("{kills} kills of a holding a file, {repeats} documents published again under their id");
    assert!(repeats <= kills * ORDERS_PER_FILE, "{repeats} repeats for {kills} kills");

    // A third instance under a name in use is refused, and says why.
    let twin = Command::new(workspace_binary("tg-producer"))
        .args(["--brokers", &pipeline.broker.brokers(), "--topic-prefix", &pipeline.kafka.topic_prefix])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--instance-id", "b", "--claim-lease-ms", LEASE_MS, "--store-url", &store])
        .arg("--mailbox-dir")
        .arg(&mailbox)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&twin.stderr);
    assert!(!twin.status.success(), "{stderr}");
    assert!(stderr.contains(r#"another instance claims files as "b" in this mailbox"#), "{stderr}");

    for mut producer in [a, b] {
        let _ = producer.kill();
        let _ = producer.wait();
    }
}
