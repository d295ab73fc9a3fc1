//! The Trading Grid producer end to end: EDI files dropped in the inbound
//! mailbox become events on the broker; a malformed file is quarantined with
//! its precise reason and an exception event; a file claimed before a crash is
//! processed on the next start; every interchange is acknowledged (997/CONTRL,
//! TA1 for a broken envelope) exactly once, even when a file comes again.
//! Needs `cargo test --workspace` (binaries).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use gridsync_schemas::{
    codec,
    events::{DocumentExchangeException, Event, ExceptionKind, Severity},
    EventType,
};
use gridsync_tests::{
    free_port, metric_value, payload, read_all, read_topic, wait_until, workspace_binary, x12_purchase_orders, Pipeline,
};
use nix::{sys::signal, unistd::Pid};
use rdkafka::Message;

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

/// tg-producer on the local mailbox at `dir`, its metrics on `port`, logging to `dir/producer.log`.
fn local_producer(pipeline: &Pipeline, dir: &Path, port: u16, extra: &[&str]) -> std::process::Child {
    Command::new(workspace_binary("tg-producer"))
        .args(["--brokers", &pipeline.broker.brokers(), "--topic-prefix", &pipeline.kafka.topic_prefix])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}"), "--poll-ms", "100"])
        .args(extra)
        .arg("--mailbox-dir")
        .arg(dir)
        .arg("--store-url")
        .arg(format!("sqlite://{}", dir.join("tg-producer.db").display()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("producer.log")).unwrap())
        .spawn()
        .unwrap()
}

/// An X12 850 from BIGCO with `lines` order lines.
fn big_order(lines: usize) -> String {
    let mut edi = String::from(
        "ISA*00*          *00*          *ZZ*BIGCO          *ZZ*GRIDSYNC       *261125*1432*U*00401*000000077*0*P*>~\n\
         GS*PO*BIGCO*GRIDSYNC*20261125*1432*77*X*004010~\nST*850*0001~\nBEG*00*SA*PO-BIG**20261125~\n",
    );
    for i in 1..=lines {
        edi.push_str(&format!("PO1*{i}*1*EA*9.95**VP*SKU-{i:05}*IN*A-LONG-BUYER-CATALOGUE-NUMBER-{i:05}~\n"));
    }
    edi.push_str(&format!("CTT*{lines}~\nSE*{}*0001~\nGE*1*77~\nIEA*1*000000077~\n", lines + 4));
    edi
}

/// An X12 850 from `sender` whose SE01 says `said` segments (5 are there).
fn order_counting(sender: &str, said: usize) -> String {
    format!(
        "ISA*00*          *00*          *ZZ*{sender:<15}*ZZ*GRIDSYNC       *261201*0915*U*00401*000000088*0*P*>~\n\
         GS*PO*{sender}*GRIDSYNC*20261201*0915*88*X*004010~\nST*850*0001~\nBEG*00*SA*PO-{sender}**20261201~\n\
         PO1*1*2*EA*9.95**VP*SKU-1~\nCTT*1~\nSE*{said}*0001~\nGE*1*88~\nIEA*1*000000088~\n"
    )
}

/// Files that land together are in hand three at a time (one mapped and looked up while the one
/// before it publishes and the one before that is recorded), yet each file's events go out
/// after those of the file before it; and right behind one another, a resend publishes
/// nothing, other documents under the same control numbers are published as reuses, and the
/// original once more is known: each file learns from the one before what it published before
/// the store has it (and a resend two files behind finds its original in the store).
/// A pipeline for test `name` and a mailbox whose `inbound/` holds `files` (name, content).
async fn mailbox_with(name: &str, files: &[(&str, String)]) -> (Pipeline, tempfile::TempDir) {
    let pipeline = Pipeline::start(name, None).await.unwrap();
    let mailbox = tempfile::tempdir().unwrap();
    let inbound = mailbox.path().join("inbound");
    std::fs::create_dir_all(&inbound).unwrap();
    for (file, content) in files {
        std::fs::write(inbound.join(file), content).unwrap();
    }
    (pipeline, mailbox)
}

#[tokio::test(flavor = "multi_thread")]
async fn files_landing_together_publish_in_order_and_a_resend_among_them_is_skipped() {
    const ORDERS: usize = 600; // enough to be mapped on the pool's threads
    let pipeline = Pipeline::start("tg-backlog", None).await.unwrap();
    let mailbox = tempfile::tempdir().unwrap();
    let inbound = mailbox.path().join("inbound");
    std::fs::create_dir_all(&inbound).unwrap();
    // The same PO numbers in every file (the same record keys), each file its own interchange:
    // new documents for the same orders, whose order on each partition is the files' order.
    let po_numbers: Vec<String> = (1..=ORDERS).map(|n| format!("BL-{n:04}")).collect();
    let original = x12_purchase_orders("BATCHCO", 601, &po_numbers, 2);
    // The same control numbers, every order at another price: other documents.
    let repriced = original.replace("*EA*9.95*", "*EA*10.95*");
    let mut landing = vec![
        ("batch-1.edi".to_owned(), original.clone()),
        ("batch-2-resend.edi".to_owned(), original.clone()),
        ("batch-3-reused-numbers.edi".to_owned(), repriced),
        ("batch-4-original-again.edi".to_owned(), original),
    ];
    let next: Vec<String> = (602..=604).map(|n| x12_purchase_orders("BATCHCO", n, &po_numbers, 2)).collect();
    landing.extend([
        ("batch-5.edi".to_owned(), next[0].clone()),
        ("batch-6.edi".to_owned(), next[1].clone()),
        // Two files behind: its original is recorded by the time it is looked up.
        ("batch-7-resend-of-5.edi".to_owned(), next[0].clone()),
        ("batch-8.edi".to_owned(), next[2].clone()),
    ]);
    for (name, edi) in &landing {
        std::fs::write(inbound.join(name), edi).unwrap();
    }

    let port = free_port();
    let mut producer = local_producer(&pipeline, mailbox.path(), port, &[]);
    let processed = mailbox.path().join("processed");
    let done = wait_until(Duration::from_secs(120), || files(&processed).len() == landing.len()).await;
    let log = std::fs::read_to_string(mailbox.path().join("producer.log")).unwrap_or_default();
    assert!(done, "processed {:?}\n{log}", files(&processed));
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    assert_eq!(
        metric_value(&metrics_url, "gridsync_tg_events_already_published_total", "").await,
        (3 * ORDERS) as f64,
        "the resends and the original again publish nothing"
    );
    assert_eq!(
        metric_value(&metrics_url, "gridsync_tg_control_numbers_reused_total", "partner=\"BATCHCO\"").await,
        ORDERS as f64,
        "each repriced order reuses its original's numbers"
    );
    signal::kill(Pid::from_raw(producer.id() as i32), signal::Signal::SIGTERM).unwrap();
    assert!(producer.wait().unwrap().success());

    let records =
        read_all(&pipeline.broker.brokers(), pipeline.topic(EventType::PurchaseOrderReceived), Duration::from_secs(30))
            .unwrap();
    assert_eq!(records.len(), 5 * ORDERS, "each of the five documents of each order once");
    let codec = codec().unwrap();
    let mut documents_by_order: std::collections::BTreeMap<String, Vec<(i32, i64, String)>> = Default::default();
    for record in &records {
        let event = codec.decode(payload(record)).unwrap().event;
        let Event::PurchaseOrderReceived(order) = &event else { panic!("{event:?}") };
        let envelope = event.envelope();
        let interchange = &envelope.trading_grid_document.as_ref().unwrap().interchange_control_number;
        let price = order.lines[0].unit_price.map(|price| price.to_string()).unwrap_or_default();
        documents_by_order.entry(envelope.business_key.clone()).or_default().push((
            record.partition(),
            record.offset(),
            format!("{interchange} at {price}"),
        ));
    }
    assert_eq!(documents_by_order.len(), ORDERS);
    let in_order =
        ["000000601 at 9.95", "000000601 at 10.95", "000000602 at 9.95", "000000603 at 9.95", "000000604 at 9.95"];
    for (order, mut seen) in documents_by_order {
        seen.sort();
        let documents: Vec<&str> = seen.iter().map(|(_, _, document)| document.as_str()).collect();
        assert_eq!(documents, in_order, "{order}: in the files' order");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_habit_a_partners_profile_tolerates_is_accepted_and_noted_and_nobody_elses() {
    let pipeline = Pipeline::start("tg-lenient", None).await.unwrap();
    let mailbox = tempfile::tempdir().unwrap();
    let inbound = mailbox.path().join("inbound");
    std::fs::create_dir_all(&inbound).unwrap();
    let partners = mailbox.path().join("partners.toml");
    let profiles =
        "[[partner]]\nid = \"SLOPPY\"\nname = \"Sloppy Ltd\"\nstandard = \"X12\"\ninterchange_id = \"SLOPPY\"\n\
                    tolerate = [\"wrong-segment-counts\"]\n\n[[partner]]\nid = \"TIDY\"\nname = \"Tidy Ltd\"\n\
                    standard = \"X12\"\ninterchange_id = \"TIDY\"\n";
    std::fs::write(&partners, profiles).unwrap();
    std::fs::write(inbound.join("sloppy.edi"), order_counting("SLOPPY", 4)).unwrap();
    std::fs::write(inbound.join("tidy.edi"), order_counting("TIDY", 4)).unwrap();
    let port = free_port();
    let partners_arg = partners.display().to_string();
    let mut producer = local_producer(&pipeline, mailbox.path(), port, &["--partners", &partners_arg]);
    let (processed, quarantine) = (mailbox.path().join("processed"), mailbox.path().join("quarantine"));
    let done =
        wait_until(Duration::from_secs(60), || files(&processed).len() == 2 && files(&quarantine).len() == 2).await;
    let log = std::fs::read_to_string(mailbox.path().join("producer.log")).unwrap_or_default();
    assert!(done, "processed {:?}, quarantined {:?}\n{log}", files(&processed), files(&quarantine));
    // Strict by default: the miscounted order is rejected on its own, kept in quarantine.
    assert_eq!(files(&quarantine), ["tidy.edi.000000088.88.0001", "tidy.edi.000000088.88.0001.reason"]);
    let reason = std::fs::read_to_string(quarantine.join("tidy.edi.000000088.88.0001.reason")).unwrap();
    assert!(reason.ends_with("segment 7, element 1: SE01 says 4 segments, found 5\n"), "{reason}");

    let outbound = mailbox.path().join("outbound");
    let ack = |prefix: &str| {
        let name = files(&outbound).into_iter().find(|f| f.starts_with(prefix) && f.ends_with(".edi"));
        std::fs::read_to_string(outbound.join(name.unwrap_or_else(|| panic!("no {prefix}: {:?}", files(&outbound)))))
            .unwrap()
    };
    let noted = ack("SLOPPY_997_");
    assert!(noted.contains("AK5*E*4~") && noted.contains("AK9*E*1*1*1~"), "accepted, the count noted: {noted}");
    // A miscounted transaction set is rejected in the strict partner's 997 (AK5 code 4).
    let rejected = ack("TIDY_997_");
    assert!(rejected.contains("AK2*850*0001~\nAK5*R*4~\nAK9*R*1*1*0~"), "{rejected}");
    let codec = codec().unwrap();
    let orders = read_topic(
        &pipeline.broker.brokers(),
        pipeline.topic(EventType::PurchaseOrderReceived),
        1,
        Duration::from_secs(30),
    )
    .unwrap();
    let Event::PurchaseOrderReceived(po) = codec.decode(payload(&orders[0])).unwrap().event else { panic!() };
    assert_eq!(po.po_number, "PO-SLOPPY");
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    assert_eq!(
        metric_value(&metrics_url, "gridsync_tg_tolerated_total", r#"habit="wrong_segment_count",partner="SLOPPY""#)
            .await,
        1.0
    );
    let _ = producer.kill();
    let _ = producer.wait();
}

/// A partner asking for an interchange acknowledgement (ISA14 = 1) gets a TA1 accepting the
/// envelope beside the 997; one that does not ask gets the 997 alone.
#[tokio::test(flavor = "multi_thread")]
async fn an_interchange_asking_for_a_ta1_gets_one_beside_its_997() {
    let asking = gridsync_tests::x12_purchase_orders("ASKER", 4711, &["PO-ASK".to_owned()], 1);
    assert!(asking.contains("*000004711*0*P*>~"));
    let dropped = [
        ("asking.edi", asking.replace("*000004711*0*P*>~", "*000004711*1*P*>~")),
        ("quiet.edi", gridsync_tests::x12_purchase_orders("QUIET", 4712, &["PO-Q".to_owned()], 1)),
    ];
    let (pipeline, mailbox) = mailbox_with("tg-ta1", &dropped).await;
    let mut producer = local_producer(&pipeline, mailbox.path(), free_port(), &[]);
    let outbound = mailbox.path().join("outbound");
    let edi = || files(&outbound).into_iter().filter(|f| f.ends_with(".edi")).collect::<Vec<_>>();
    let done = wait_until(Duration::from_secs(60), || edi().len() == 3).await;
    assert!(done, "{:?}", files(&outbound));
    let kinds: Vec<String> = edi().iter().map(|f| f.split('_').take(2).collect::<Vec<_>>().join("_")).collect();
    assert_eq!(kinds, ["ASKER_997", "ASKER_TA1", "QUIET_997"]);
    let ta1 = edi().into_iter().find(|f| f.starts_with("ASKER_TA1_")).unwrap();
    let ta1 = std::fs::read_to_string(outbound.join(ta1)).unwrap();
    assert!(ta1.contains("TA1*000004711*261125*1432*A*000~"), "{ta1}");
    let _ = producer.kill();
    let _ = producer.wait();
}

/// A transaction set gridsync does not map, beside an order in the same group: the order flows,
/// the 940 is rejected in the 997 (`AK5*R*1`, `AK9*P`), published as an exception naming it, and
/// counted; nothing of it vanishes.
#[tokio::test(flavor = "multi_thread")]
async fn a_set_gridsync_does_not_map_is_rejected_in_the_997_and_raised_while_its_group_flows() {
    let order = gridsync_tests::x12_purchase_orders("WAREHOUSE", 5150, &["PO-940".to_owned()], 1);
    let with_940 = order.replace("GE*1*5150~", "ST*940*0002~\nW05*N*SHIP-9~\nSE*3*0002~\nGE*2*5150~");
    assert_ne!(with_940, order);
    let (pipeline, mailbox) = mailbox_with("tg-unmapped", &[("mixed.edi", with_940)]).await;
    let port = free_port();
    let mut producer = local_producer(&pipeline, mailbox.path(), port, &[]);
    let outbound = mailbox.path().join("outbound");
    let ack = || files(&outbound).into_iter().find(|f| f.starts_with("WAREHOUSE_997_") && f.ends_with(".edi"));
    assert!(wait_until(Duration::from_secs(60), || ack().is_some()).await, "{:?}", files(&outbound));
    let ack = std::fs::read_to_string(outbound.join(ack().unwrap())).unwrap();
    assert!(ack.contains("AK2*850*0001~\nAK5*A~\nAK2*940*0002~\nAK5*R*1~\nAK9*P*2*2*1~"), "{ack}");
    assert_eq!(files(&mailbox.path().join("processed")), ["mixed.edi"], "the file is processed, not quarantined");

    let codec = codec().unwrap();
    let brokers = pipeline.broker.brokers();
    let orders =
        read_topic(&brokers, pipeline.topic(EventType::PurchaseOrderReceived), 1, Duration::from_secs(30)).unwrap();
    let Event::PurchaseOrderReceived(po) = codec.decode(payload(&orders[0])).unwrap().event else { panic!() };
    assert_eq!(po.po_number, "PO-940");
    let raised =
        read_topic(&brokers, pipeline.topic(EventType::DocumentExchangeException), 1, Duration::from_secs(30)).unwrap();
    let Event::DocumentExchangeException(exception) = codec.decode(payload(&raised[0])).unwrap().event else {
        panic!()
    };
    assert_eq!(exception.document_type.as_deref(), Some("940"));
    assert!(
        exception.reason.contains("940 0002 of interchange 000005150 is not one gridsync maps"),
        "{}",
        exception.reason
    );
    assert_eq!(exception.details.get("file").map(String::as_str), Some("mixed.edi"));
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let counted = metric_value(&metrics_url, "gridsync_tg_unsupported_total", r#"document_type="940""#).await;
    assert_eq!(counted, 1.0);
    let _ = producer.kill();
    let _ = producer.wait();
}

/// As partners send them: a transaction set whose SE01 miscounts, between two good orders, is
/// rejected alone in the 999 the partner's profile asks for (`IK5*R*4`, `AK9*P`), kept in
/// quarantine with its reason and raised as an exception naming the file, control numbers and
/// error, while the good orders flow and the file is processed; an 846 the profile accepts and
/// ignores is accepted (`IK5*A`) and recorded as an informational exception, not rejected; and
/// the same file again keeps the rejected set once.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_transaction_is_rejected_alone_in_the_partners_999_and_the_rest_of_its_file_flows() {
    let po_numbers: Vec<String> = ["PO-R1", "PO-R2", "PO-R3"].map(str::to_owned).to_vec();
    let orders = gridsync_tests::x12_purchase_orders("RETAILER", 6001, &po_numbers, 1);
    let sent = orders
        .replacen("SE*6*0002~", "SE*9*0002~", 1)
        .replace("GE*3*6001~", "ST*846*0004~\nBIA*00*SI*INV-1*20261125~\nSE*3*0004~\nGE*4*6001~");
    assert_ne!(sent, orders);
    let (pipeline, mailbox) = mailbox_with("tg-partial", &[("retailer.edi", sent.clone())]).await;
    let partners = mailbox.path().join("partners.toml");
    let profile = "[[partner]]\nid = \"RETAILER\"\nname = \"Retailer\"\nstandard = \"X12\"\nversions = [\"005010\"]\n\
                   interchange_id = \"RETAILER\"\nacknowledgement = \"999\"\naccept_unmapped = [\"846\"]\n";
    std::fs::write(&partners, profile).unwrap();
    let port = free_port();
    let partners_arg = partners.display().to_string();
    let mut producer = local_producer(&pipeline, mailbox.path(), port, &["--partners", &partners_arg]);
    let (root, outbound) = (mailbox.path(), mailbox.path().join("outbound"));
    let ack = || files(&outbound).into_iter().find(|f| f.starts_with("RETAILER_999_") && f.ends_with(".edi"));
    let done =
        wait_until(Duration::from_secs(60), || ack().is_some() && files(&root.join("processed")).len() == 1).await;
    let log = std::fs::read_to_string(root.join("producer.log")).unwrap_or_default();
    assert!(done, "{:?} {:?}\n{log}", files(&outbound), files(&root.join("processed")));
    assert_eq!(files(&root.join("processed")), ["retailer.edi"], "the file is processed");

    let ack = std::fs::read_to_string(outbound.join(ack().unwrap())).unwrap();
    assert!(ack.contains("*^*00501*") && ack.contains("ST*999*0001*005010X231A1~"), "{ack}");
    let answered = "AK1*PO*6001*004010~\nAK2*850*0001~\nIK5*A~\nAK2*850*0002~\nIK5*R*4~\nAK2*850*0003~\nIK5*A~\n\
                    AK2*846*0004~\nIK5*A~\nAK9*P*4*4*3~";
    assert!(ack.contains(answered), "{ack}");

    let kept = "retailer.edi.000006001.6001.0002";
    assert_eq!(files(&root.join("quarantine")), [kept.to_owned(), format!("{kept}.reason")]);
    let bytes = std::fs::read_to_string(root.join("quarantine").join(kept)).unwrap();
    assert!(bytes.starts_with("ST*850*0002~") && bytes.ends_with("SE*9*0002~"), "its bytes as sent: {bytes:?}");
    assert!(sent.contains(&bytes));
    let reason = std::fs::read_to_string(root.join("quarantine").join(format!("{kept}.reason"))).unwrap();
    assert!(
        reason.contains("850 0002 of interchange 000006001, group 6001")
            && reason.contains("SE01 says 9 segments, found 6"),
        "{reason}"
    );

    let codec = codec().unwrap();
    let brokers = pipeline.broker.brokers();
    let decode = |topic: &str, n: usize| -> Vec<Event> {
        read_topic(&brokers, topic, n, Duration::from_secs(30))
            .unwrap()
            .iter()
            .map(|m| codec.decode(payload(m)).unwrap().event)
            .collect()
    };
    let mut published: Vec<String> = decode(pipeline.topic(EventType::PurchaseOrderReceived), 2)
        .into_iter()
        .filter_map(|e| if let Event::PurchaseOrderReceived(po) = e { Some(po.po_number) } else { None })
        .collect();
    published.sort();
    assert_eq!(published, ["PO-R1", "PO-R3"], "the good orders of the group flow");
    let mut raised: Vec<DocumentExchangeException> = decode(pipeline.topic(EventType::DocumentExchangeException), 2)
        .into_iter()
        .filter_map(|e| if let Event::DocumentExchangeException(x) = e { Some(x) } else { None })
        .collect();
    raised.sort_by_key(|x| x.severity != Severity::Info);
    let [ignored, rejected] = raised.as_slice() else { panic!("{raised:?}") };
    assert_eq!((rejected.kind, rejected.severity), (ExceptionKind::MalformedDocument, Severity::Error));
    assert_eq!(rejected.quarantine_path.as_deref(), Some(format!("quarantine/{kept}").as_str()));
    assert_eq!(rejected.details["file"], "retailer.edi");
    assert_eq!(
        (rejected.details["interchange"].as_str(), rejected.details["transaction"].as_str()),
        ("000006001", "0002")
    );
    assert_eq!(rejected.details["error_kind"], "CountMismatch");
    assert!(rejected.reason.contains("SE01 says 9 segments, found 6"), "{}", rejected.reason);
    assert_eq!((ignored.severity, ignored.document_type.as_deref()), (Severity::Info, Some("846")));
    assert!(ignored.reason.contains("accepted and ignored"), "{}", ignored.reason);

    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let rejected_count =
        metric_value(&metrics_url, "gridsync_tg_rejected_transactions_total", r#"error="CountMismatch""#);
    assert_eq!(rejected_count.await, 1.0);
    assert_eq!(metric_value(&metrics_url, "gridsync_tg_unsupported_total", r#"answer="ignored""#).await, 1.0);
    // The good transactions of the file, counted per partner (the dashboard's partner panels).
    assert!(metric_value(&metrics_url, "gridsync_tg_documents_total", "partner=").await >= 1.0);

    // The same file again: its rejected set is kept once, not twice.
    std::fs::write(root.join("inbound/retailer.edi"), &sent).unwrap();
    assert!(wait_until(Duration::from_secs(60), || files(&root.join("processed")).len() == 2).await);
    assert_eq!(files(&root.join("quarantine")).len(), 2, "{:?}", files(&root.join("quarantine")));
    let _ = producer.kill();
    let _ = producer.wait();
}

/// A partner value gridsync cannot put in its acknowledgement (`GLO*BEX` in an X12 answer with
/// `*` between elements) leaves the partner without an answer: not only a counter, but an
/// exception for the account team naming the file and interchange.
#[tokio::test(flavor = "multi_thread")]
async fn an_acknowledgement_that_cannot_be_written_raises_an_exception() {
    let file = std::fs::read_to_string(fixture("x12_pipes_00501_no_newlines.edi")).unwrap();
    let odd = file.replace("|ZZ|GLOBEX         |", "|ZZ|GLO*BEX        |").replace("SH|GLOBEX|", "SH|GLO*BEX|");
    assert_ne!(odd, file);
    let (pipeline, mailbox) = mailbox_with("tg-unanswered", &[("odd.edi", odd)]).await;
    let port = free_port();
    let mut producer = local_producer(&pipeline, mailbox.path(), port, &[]);
    let codec = codec().unwrap();
    let raised = read_topic(
        &pipeline.broker.brokers(),
        pipeline.topic(EventType::DocumentExchangeException),
        1,
        Duration::from_secs(60),
    )
    .unwrap();
    let Event::DocumentExchangeException(exception) = codec.decode(payload(&raised[0])).unwrap().event else {
        panic!()
    };
    assert_eq!((exception.kind, exception.severity), (ExceptionKind::Other, Severity::Error));
    assert!(exception.reason.starts_with("odd.edi: no acknowledgement can be written"), "{}", exception.reason);
    assert!(exception.reason.contains("contains a separator ('*')"), "{}", exception.reason);
    assert_eq!(exception.envelope.trading_partner_id, "GLO*BEX");
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let unwritable = metric_value(&metrics_url, "gridsync_tg_acks_written_total", r#"outcome="unwritable""#).await;
    assert_eq!(unwritable, 1.0);
    let _ = producer.kill();
    let _ = producer.wait();
}

/// Only the partners of the profiles may send: an unknown sender's interchange is refused with a
/// TA1 naming the sender as invalid (note 006), quarantined and raised; a sender id that is a
/// path is refused too and names no file anywhere; a known partner's file flows.
#[tokio::test(flavor = "multi_thread")]
async fn senders_the_partner_profiles_do_not_list_are_refused() {
    let order = |sender: &str, n: usize| gridsync_tests::x12_purchase_orders(sender, n, &[format!("PO-{n}")], 1);
    let dropped = [
        ("evil.edi", order("EVILCORP", 6601)),
        ("path.edi", order("../../x", 6602)),
        ("acme.edi", order("ACME", 6603)),
    ];
    let (pipeline, mailbox) = mailbox_with("tg-senders", &dropped).await;
    let root = mailbox.path();
    let partners = root.join("partners.toml");
    let profile = "[[partner]]\nid = \"ACME\"\nname = \"Acme\"\nstandard = \"X12\"\ninterchange_id = \"ACME\"\n";
    std::fs::write(&partners, profile).unwrap();
    let partners_arg = partners.display().to_string();
    let mut producer = local_producer(&pipeline, root, free_port(), &["--partners", &partners_arg]);
    let (processed, quarantine) = (root.join("processed"), root.join("quarantine"));
    let done =
        wait_until(Duration::from_secs(60), || files(&processed).len() == 1 && files(&quarantine).len() == 4).await;
    assert!(done, "processed {:?}, quarantined {:?}", files(&processed), files(&quarantine));
    assert_eq!(files(&processed), ["acme.edi"]);
    let reason = std::fs::read_to_string(quarantine.join("evil.edi.reason")).unwrap();
    assert!(
        reason.contains("ISA06 (interchange sender) \"EVILCORP\" is not a trading partner gridsync knows"),
        "{reason}"
    );
    let outbound = root.join("outbound");
    let ta1 = files(&outbound).into_iter().find(|f| f.starts_with("EVILCORP_TA1_") && f.ends_with(".edi"));
    let ta1 = std::fs::read_to_string(outbound.join(ta1.expect("a TA1 to EVILCORP"))).unwrap();
    assert!(ta1.contains("TA1*000006601*261125*1432*R*006~"), "{ta1}");
    // The path-like sender's answer stays in the outbound folder, under a name that is no path.
    assert!(files(&outbound).contains(&"-..-x_TA1_000006602-1.edi".to_owned()), "{:?}", files(&outbound));
    let escaped = [root.join("x_TA1_000006602-1.edi"), root.join("../x_TA1_000006602-1.edi")];
    assert!(escaped.iter().all(|p| !p.exists()), "a file outside the outbound folder");

    let codec = codec().unwrap();
    let brokers = pipeline.broker.brokers();
    let orders =
        read_topic(&brokers, pipeline.topic(EventType::PurchaseOrderReceived), 2, Duration::from_secs(5)).unwrap();
    let partners_published: Vec<String> =
        orders.iter().map(|m| codec.decode(payload(m)).unwrap().event.envelope().trading_partner_id.clone()).collect();
    assert_eq!(partners_published, ["ACME"], "nothing of the unknown senders is published");
    let raised =
        read_topic(&brokers, pipeline.topic(EventType::DocumentExchangeException), 2, Duration::from_secs(30)).unwrap();
    let senders: std::collections::BTreeSet<String> =
        raised.iter().map(|m| codec.decode(payload(m)).unwrap().event.envelope().trading_partner_id.clone()).collect();
    assert_eq!(senders, ["../../x".to_owned(), "EVILCORP".to_owned()].into());
    let _ = producer.kill();
    let _ = producer.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_kafka_can_never_take_quarantines_its_file_and_the_next_file_goes_on() {
    let pipeline = Pipeline::start("tg-unpublishable", None).await.unwrap();
    let mailbox = tempfile::tempdir().unwrap();
    let inbound = mailbox.path().join("inbound");
    std::fs::create_dir_all(&inbound).unwrap();
    std::fs::write(inbound.join("a-big-order.edi"), big_order(400)).unwrap();
    std::fs::copy(fixture("x12_pipes_00501_no_newlines.edi"), inbound.join("b-next.edi")).unwrap();
    // Records over 20 kB are refused by the producer itself: the big order's event never fits.
    let mut producer =
        local_producer(&pipeline, mailbox.path(), free_port(), &["--kafka-option", "message.max.bytes=20000"]);
    let (processed, quarantine) = (mailbox.path().join("processed"), mailbox.path().join("quarantine"));
    let done =
        wait_until(Duration::from_secs(60), || files(&processed).len() == 1 && files(&quarantine).len() == 2).await;
    let log = std::fs::read_to_string(mailbox.path().join("producer.log")).unwrap_or_default();
    assert!(done, "processed {:?}, quarantined {:?}\n{log}", files(&processed), files(&quarantine));
    assert_eq!(files(&processed), ["b-next.edi"], "the next file is not held up");
    let reason = std::fs::read_to_string(quarantine.join("a-big-order.edi.reason")).unwrap();
    assert!(reason.starts_with("a-big-order.edi: its PurchaseOrderReceived PO-BIG cannot be published: "), "{reason}");
    // Its exception has a kind of its own: the partner's document is not at fault.
    let codec = codec().unwrap();
    let raised = read_topic(
        &pipeline.broker.brokers(),
        pipeline.topic(EventType::DocumentExchangeException),
        1,
        Duration::from_secs(30),
    )
    .unwrap();
    let Event::DocumentExchangeException(exception) = codec.decode(payload(&raised[0])).unwrap().event else {
        panic!()
    };
    assert_eq!((exception.kind, exception.severity), (ExceptionKind::Unpublishable, Severity::Error));
    assert_eq!(exception.quarantine_path.as_deref(), Some("quarantine/a-big-order.edi"));
    let _ = producer.kill();
    let _ = producer.wait();
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
    let broken = "ISA*00*          *00*          *ZZ*BADCO          *ZZ*GRIDSYNC       *261125*1432*U*00401*000000001*0*P*>~GS*PO*BADCO*GRIDSYNC*20261125*1432*1*X*004010~ST*850*0001~BEG*00*SA*PO1**20261125~SE*3*0001~GE*1*1~IEA*1*000000002~";
    std::fs::write(inbound.join("broken.edi"), broken).unwrap();
    std::fs::write(inbound.join("still-uploading.edi.part"), "ISA").unwrap();

    let port = free_port();
    let mut producer = local_producer(&pipeline, mailbox.path(), port, &["--max-file-bytes", "65536"]);

    let processed = mailbox.path().join("processed");
    let quarantine = mailbox.path().join("quarantine");
    let done =
        wait_until(Duration::from_secs(60), || files(&processed).len() == 4 && files(&quarantine).len() == 2).await;
    let log = std::fs::read_to_string(mailbox.path().join("producer.log")).unwrap_or_default();
    assert!(done, "processed {:?}, quarantined {:?}\n{log}", files(&processed), files(&quarantine));
    assert_eq!(files(&inbound), [".processing", "still-uploading.edi.part"], "partial uploads are left alone");
    let owners = files(&inbound.join(".processing"));
    let [owner] = owners.as_slice() else { panic!("one instance's claims: {owners:?}") };
    let left = files(&inbound.join(".processing").join(owner));
    assert_eq!(left, [".lease"], "nothing left claimed (the crashed run's claim taken over); the lease held");
    let reason = std::fs::read_to_string(quarantine.join("broken.edi.reason")).unwrap();
    let why = "segment 7, element 2: IEA02 is 000000002, expected 000000001 from ISA13 (segment 1)";
    assert_eq!(reason, format!("broken.edi: {why}\n"));

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
    assert_eq!(exception.reason, format!("broken.edi: {why}"));
    assert_eq!((exception.details["segment"].as_str(), exception.details["element"].as_str()), ("7", "2"));
    assert_eq!(exception.quarantine_path.as_deref(), Some("quarantine/broken.edi"));

    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("gridsync_tg_files_total{")
            && l.contains("outcome=\"processed\"")
            && l.ends_with(" 4")),
        "{metrics}"
    );
    assert!(metrics.lines().any(|l| l.starts_with("gridsync_tg_parse_failures_total{")
        && l.contains("ControlNumberMismatch")
        && l.ends_with(" 1")));

    // Acknowledgements: one per inbound interchange (x12_multi has two), each with its checksum.
    let outbound = mailbox.path().join("outbound");
    let acks: Vec<String> = files(&outbound).into_iter().filter(|n| n.ends_with(".edi")).collect();
    assert_eq!(
        acks,
        [
            "4012345500004_CONTRL_5001-1.edi",
            "5412345000013_CONTRL_ICR0042-1.edi",
            "ACME_997_000000905-1.edi",
            "ACME_997_000000906-2.edi",
            "BADCO_TA1_000000001-1.edi",
            "GLOBEX_997_000004242-1.edi",
        ]
    );
    assert!(files(&outbound).contains(&"ACME_997_000000905-1.edi.sha256".to_owned()));
    let ack = std::fs::read_to_string(outbound.join("ACME_997_000000905-1.edi")).unwrap();
    assert!(ack.contains("AK1*PO*905~\nAK2*850*0001~\nAK5*A~\nAK9*A*1*1*1~"), "{ack}");
    assert!(ack.contains("*ZZ*GRIDSYNC       *ZZ*ACME           *"), "from us to the partner: {ack}");
    let ta1 = std::fs::read_to_string(outbound.join("BADCO_TA1_000000001-1.edi")).unwrap();
    assert!(ta1.contains("TA1*000000001*261125*1432*R*001~"), "{ta1}");

    // The same file again (a partner's resend, or a gateway's retry): Kafka has its events
    // already, so none goes out again, and its acknowledgement is the very same file.
    let before = std::fs::read(outbound.join("ACME_997_000000905-1.edi")).unwrap();
    std::fs::copy(fixture("x12_multi_interchange_crlf.edi"), inbound.join("x12_multi_interchange_crlf.edi")).unwrap();
    assert!(wait_until(Duration::from_secs(60), || files(&processed).len() == 5).await);
    assert_eq!(files(&outbound).len(), 12, "no new acknowledgement: {:?}", files(&outbound));
    assert_eq!(std::fs::read(outbound.join("ACME_997_000000905-1.edi")).unwrap(), before);
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let acked = |labels: &'static str| metric_value(&metrics_url, "gridsync_tg_acks_written_total", labels);
    // Written (or found already written): 997s for 905, 906, 4242, then 905 and 906 again.
    assert_eq!(acked("document_type=\"997\",outcome=\"accepted\"").await, 5.0);
    assert_eq!(acked("document_type=\"TA1\",outcome=\"rejected\"").await, 1.0);
    assert_eq!(metric_value(&metrics_url, "gridsync_tg_events_already_published_total", "").await, 3.0);
    let orders = read_topic(
        &pipeline.broker.brokers(),
        pipeline.topic(EventType::PurchaseOrderReceived),
        6,
        Duration::from_secs(3),
    )
    .unwrap();
    assert_eq!(orders.len(), 4, "the resent file's orders are not published twice");

    // The partner reuses the control numbers for a different order (another quantity): it is
    // a new document, published under its own id, and the reuse is reported.
    let original = std::fs::read_to_string(fixture("x12_multi_interchange_crlf.edi")).unwrap();
    let reused = original.replacen("PO1*1*120*", "PO1*1*121*", 1);
    std::fs::write(inbound.join("reused-numbers.edi"), reused).unwrap();
    assert!(wait_until(Duration::from_secs(60), || files(&processed).len() == 6).await);
    let orders = decode(pipeline.topic(EventType::PurchaseOrderReceived), 5);
    let quantities: Vec<String> = orders
        .iter()
        .filter_map(|e| match e {
            Event::PurchaseOrderReceived(po) if po.po_number == "4500012345" => Some(po.lines[0].quantity.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(quantities, ["120", "121"], "both documents flow");
    let exceptions = decode(pipeline.topic(EventType::DocumentExchangeException), 2);
    let reuses: Vec<_> = exceptions
        .iter()
        .filter_map(|e| match e {
            Event::DocumentExchangeException(x) if x.kind == gridsync_schemas::events::ExceptionKind::Duplicate => {
                Some(x)
            }
            _ => None,
        })
        .collect();
    let [reuse] = reuses.as_slice() else { panic!("{exceptions:?}") };
    assert!(
        reuse.reason.starts_with("ACME reused control numbers 000000905/905/0001 for a different 850 (4500012345)"),
        "{}",
        reuse.reason
    );
    assert_eq!(metric_value(&metrics_url, "gridsync_tg_control_numbers_reused_total", "partner=\"ACME\"").await, 1.0);
    assert_eq!(
        metric_value(&metrics_url, "gridsync_tg_events_already_published_total", "").await,
        5.0,
        "the rest of the file is a resend"
    );
    // The first order again, though its numbers were last seen on the other: Kafka has it (found
    // among the published events, as the numbers no longer say so), so nothing goes out again.
    std::fs::write(inbound.join("first-again.edi"), &original).unwrap();
    assert!(wait_until(Duration::from_secs(60), || files(&processed).len() == 7).await);
    assert_eq!(
        metric_value(&metrics_url, "gridsync_tg_events_already_published_total", "").await,
        8.0,
        "the whole file is a resend"
    );
    assert_eq!(metric_value(&metrics_url, "gridsync_tg_control_numbers_reused_total", "partner=\"ACME\"").await, 1.0);
    let records = gridsync_tests::read_all(
        &pipeline.broker.brokers(),
        pipeline.topic(EventType::PurchaseOrderReceived),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(records.len(), 5, "no order published twice");

    // Two files over the size limit under one name: each quarantined unread, each its own exception.
    for size in [70_000, 80_000] {
        let quarantined = files(&quarantine).len();
        std::fs::write(inbound.join("huge.edi"), "x".repeat(size)).unwrap();
        assert!(wait_until(Duration::from_secs(60), || files(&quarantine).len() == quarantined + 2).await);
    }
    let exceptions = decode(pipeline.topic(EventType::DocumentExchangeException), 4);
    let mut oversized: Vec<(String, String)> = exceptions
        .iter()
        .filter_map(|e| match e {
            Event::DocumentExchangeException(x) if x.reason.starts_with("huge.edi is ") => {
                Some((x.reason.clone(), x.envelope.event_id.clone()))
            }
            _ => None,
        })
        .collect();
    oversized.sort();
    assert_eq!(oversized.len(), 2, "{exceptions:#?}");
    assert_eq!(oversized[0].0, "huge.edi is 70000 bytes; the limit is 65536");
    assert_ne!(oversized[0].1, oversized[1].1, "two files, two exceptions");

    signal::kill(Pid::from_raw(producer.id() as i32), signal::Signal::SIGTERM).unwrap();
    let mut status = None;
    wait_until(Duration::from_secs(30), || {
        status = producer.try_wait().unwrap();
        status.is_some()
    })
    .await;
    assert!(status.is_some_and(|s| s.success()), "clean exit on SIGTERM");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_producer_reads_an_sftp_mailbox_and_acknowledges_through_it() {
    let server = gridsync_tests::ssh::SshServer::start().unwrap();
    let pipeline = Pipeline::start("tg-sftp", None).await.unwrap();
    let root = server.root();
    std::fs::create_dir_all(root.join("inbound")).unwrap();
    std::fs::copy(fixture("edifact_una_group_release.edi"), root.join("inbound/orders.edi")).unwrap();
    std::fs::write(root.join("inbound/garbage.edi"), "not EDI at all").unwrap();

    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut producer = Command::new(workspace_binary("tg-producer"))
        .args(["--brokers", &pipeline.broker.brokers(), "--topic-prefix", &pipeline.kafka.topic_prefix])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}"), "--poll-ms", "100"])
        .args(["--sftp-host", "127.0.0.1", "--sftp-port", &server.port.to_string(), "--sftp-user", &server.user()])
        .arg("--sftp-key-file")
        .arg(server.client_key())
        .arg("--sftp-known-hosts")
        .arg(server.known_hosts().unwrap())
        .arg("--sftp-root")
        .arg(&root)
        .arg("--store-url")
        .arg(format!("sqlite://{}", work.path().join("tg-producer.db").display()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.path().join("producer.log")).unwrap())
        .spawn()
        .unwrap();

    let done = wait_until(Duration::from_secs(60), || {
        files(&root.join("processed")) == ["orders.edi"] && files(&root.join("quarantine")).len() == 2
    })
    .await;
    let log = std::fs::read_to_string(work.path().join("producer.log")).unwrap_or_default();
    assert!(
        done,
        "{:?} {:?}\n{log}\n{}",
        files(&root.join("processed")),
        files(&root.join("quarantine")),
        server.log()
    );
    let reason = std::fs::read_to_string(root.join("quarantine/garbage.edi.reason")).unwrap();
    assert!(reason.starts_with("garbage.edi: segment 1: expected an interchange header"), "{reason}");
    // The CONTRL for the orders went back through the same SFTP mailbox; nobody to answer for the garbage.
    assert_eq!(
        files(&root.join("outbound")),
        ["5412345000013_CONTRL_ICR0042-1.edi", "5412345000013_CONTRL_ICR0042-1.edi.sha256"]
    );

    let codec = codec().unwrap();
    let orders = read_topic(
        &pipeline.broker.brokers(),
        pipeline.topic(EventType::PurchaseOrderReceived),
        2,
        Duration::from_secs(30),
    )
    .unwrap();
    let mut numbers: Vec<String> = orders
        .iter()
        .filter_map(|m| match codec.decode(payload(m)).unwrap().event {
            Event::PurchaseOrderReceived(po) => Some(po.po_number),
            _ => None,
        })
        .collect();
    numbers.sort(); // one key per order: partitions, hence order, may differ
    assert_eq!(numbers, ["PO-DE-7781", "PO-DE-7782"]);

    signal::kill(Pid::from_raw(producer.id() as i32), signal::Signal::SIGTERM).unwrap();
    assert!(wait_until(Duration::from_secs(30), || producer.try_wait().unwrap().is_some()).await);
}

/// The peak resident memory of process `pid` so far (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// A file at the size cap is processed in bounded memory: tg-producer's peak RSS stays within
/// the budget the README and the manifests are built on (a base plus a multiple of the cap),
/// whatever the file holds, so a legal file cannot get the pod OOM-killed into a crash loop.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_at_the_size_cap_is_processed_in_bounded_memory() {
    const CAP: usize = 16 << 20;
    let mut po_numbers = Vec::new();
    let mut file = String::new();
    while file.len() < CAP - 4096 {
        po_numbers.push(format!("MEM-{:06}", po_numbers.len() + 1));
        if po_numbers.len() % 1000 == 0 {
            file = gridsync_tests::x12_purchase_orders("MEMCO", 7001, &po_numbers, 3);
        }
    }
    while file.len() > CAP {
        po_numbers.truncate(po_numbers.len() - 1000);
        file = gridsync_tests::x12_purchase_orders("MEMCO", 7001, &po_numbers, 3);
    }
    let orders = po_numbers.len();
    let (pipeline, mailbox) = mailbox_with("tg-memory", &[]).await;
    let port = free_port();
    let cap = CAP.to_string();
    let mut producer = local_producer(&pipeline, mailbox.path(), port, &["--max-file-bytes", &cap]);
    // Started and idle: its base.
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    assert!(
        gridsync_tests::wait_for(Duration::from_secs(30), || async { reqwest::get(&metrics_url).await.is_ok() }).await
    );
    let base = peak_rss(producer.id());
    std::fs::write(mailbox.path().join("inbound/big.edi"), &file).unwrap();
    let processed = mailbox.path().join("processed");
    let done = wait_until(Duration::from_secs(300), || files(&processed).len() == 1).await;
    let peak = peak_rss(producer.id());
    let log = std::fs::read_to_string(mailbox.path().join("producer.log")).unwrap_or_default();
    assert!(done, "{log}");
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "{orders} orders, {:.1} MiB: base {:.1} MiB, peak {:.1} MiB, {:.1}x the file above base",
        mib(file.len() as u64),
        mib(base),
        mib(peak),
        (peak - base) as f64 / file.len() as f64
    );
    let budget = gridsync_tests::TG_PRODUCER_BYTES_PER_FILE_BYTE * file.len() as u64;
    assert!(
        peak - base <= budget,
        "{:.1} MiB above base for a {:.1} MiB file",
        mib(peak - base),
        mib(file.len() as u64)
    );
    let _ = producer.kill();
    let _ = producer.wait();
}
