//! The Trading Grid producer end to end: EDI files dropped in the inbound
//! mailbox become events on the broker; a malformed file is quarantined with
//! its precise reason and an exception event; a file claimed before a crash is
//! processed on the next start. Needs `cargo test --workspace` (binaries).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use gridsync_schemas::{codec, events::Event, EventType};
use gridsync_tests::{free_port, payload, read_topic, wait_until, workspace_binary, Pipeline};
use nix::{sys::signal, unistd::Pid};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors/edi/tests/fixtures").join(name)
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn files_in_the_mailbox_become_events_and_bad_ones_are_quarantined() {
    let pipeline = Pipeline::start("tg", None).await.unwrap();
    let mailbox = tempfile::tempdir().unwrap();
    let inbound = mailbox.path().join("inbound");
    std::fs::create_dir_all(inbound.join(".processing")).unwrap();
    for name in
        ["x12_multi_interchange_crlf.edi", "x12_pipes_00501_no_newlines.edi", "edifact_default_separators_one_line.edi"]
    {
        std::fs::copy(fixture(name), inbound.join(name)).unwrap();
    }
    // Claimed by a run that crashed before finishing it.
    std::fs::copy(fixture("edifact_una_group_release.edi"), inbound.join(".processing/edifact_una_group_release.edi"))
        .unwrap();
    let broken = "ISA*00*          *00*          *ZZ*BADCO          *ZZ*GRIDSYNC       *261125*1432*U*00401*000000001*0*P*>~GS*PO*BADCO*GRIDSYNC*20261125*1432*1*X*004010~ST*850*0001~BEG*00*SA*PO1**20261125~SE*9*0001~GE*1*1~IEA*1*000000001~";
    std::fs::write(inbound.join("broken.edi"), broken).unwrap();
    std::fs::write(inbound.join("still-uploading.edi.part"), "ISA").unwrap();

    let port = free_port();
    let mut producer = Command::new(workspace_binary("tg-producer"))
        .args(["--brokers", &pipeline.broker.brokers(), "--topic-prefix", &pipeline.kafka.topic_prefix])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}"), "--poll-ms", "100"])
        .arg("--mailbox-dir")
        .arg(mailbox.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(mailbox.path().join("producer.log")).unwrap())
        .spawn()
        .unwrap();

    let processed = mailbox.path().join("processed");
    let quarantine = mailbox.path().join("quarantine");
    let done =
        wait_until(Duration::from_secs(60), || files(&processed).len() == 4 && files(&quarantine).len() == 2).await;
    let log = std::fs::read_to_string(mailbox.path().join("producer.log")).unwrap_or_default();
    assert!(done, "processed {:?}, quarantined {:?}\n{log}", files(&processed), files(&quarantine));
    assert_eq!(files(&inbound), [".processing", "still-uploading.edi.part"], "partial uploads are left alone");
    assert!(files(&inbound.join(".processing")).is_empty());
    let reason = std::fs::read_to_string(quarantine.join("broken.edi.reason")).unwrap();
    assert_eq!(reason, "broken.edi: segment 5, element 1: SE01 says 9 segments, found 3\n");

    let codec = codec().unwrap();
    let decode = |topic: &str, n: usize| -> Vec<Event> {
        read_topic(&pipeline.broker.brokers(), topic, n, Duration::from_secs(30))
            .unwrap()
            .iter()
            .map(|m| codec.decode(payload(m)).unwrap().event)
            .collect()
    };
    let mut po_numbers: Vec<String> = decode(pipeline.topic(EventType::PurchaseOrderReceived), 4)
        .iter()
        .filter_map(|e| match e {
            Event::PurchaseOrderReceived(po) => Some(po.po_number.clone()),
            _ => None,
        })
        .collect();
    po_numbers.sort();
    assert_eq!(po_numbers, ["4500012345", "4500022345", "PO-DE-7781", "PO-DE-7782"]);
    assert_eq!(decode(pipeline.topic(EventType::InvoiceReceived), 2).len(), 2);
    assert_eq!(decode(pipeline.topic(EventType::ShipNoticeReceived), 2).len(), 2);
    let exceptions = decode(pipeline.topic(EventType::DocumentExchangeException), 1);
    let [Event::DocumentExchangeException(exception)] = exceptions.as_slice() else { panic!("{exceptions:?}") };
    assert_eq!(exception.envelope.trading_partner_id, "BADCO");
    assert_eq!(exception.reason, "broken.edi: segment 5, element 1: SE01 says 9 segments, found 3");
    assert_eq!((exception.details["segment"].as_str(), exception.details["element"].as_str()), ("5", "1"));
    assert_eq!(exception.quarantine_path.as_deref(), Some("quarantine/broken.edi"));

    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("gridsync_tg_files_total{")
            && l.contains("outcome=\"processed\"")
            && l.ends_with(" 4")),
        "{metrics}"
    );
    assert!(metrics.lines().any(|l| l.starts_with("gridsync_tg_parse_failures_total{")
        && l.contains("CountMismatch")
        && l.ends_with(" 1")));

    signal::kill(Pid::from_raw(producer.id() as i32), signal::Signal::SIGTERM).unwrap();
    let mut status = None;
    wait_until(Duration::from_secs(30), || {
        status = producer.try_wait().unwrap();
        status.is_some()
    })
    .await;
    assert!(status.is_some_and(|s| s.success()), "clean exit on SIGTERM");
}
