//! The Lens client and poller against the Trading Grid simulator over real
//! HTTP, with the real broker: Basic-auth tokens, expired tokens, 429 storms,
//! server errors and slow answers ridden out; scrolling through many pages;
//! status changes published once (also across a restart); and the whole loop
//! with the mailbox partner: gridsync's 997 picked up, delivered, and the
//! partner's own acknowledgement coming back in.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use chrono::{SecondsFormat, Utc};
use gridsync_schemas::{
    codec,
    events::{DocumentStatus, Event},
    EventType,
};
use gridsync_tests::{
    free_port, metric_value, payload, poll_until, read_all, read_topic, wait_for, wait_until, workspace_binary,
    Pipeline,
};
use gridsync_tg_sim::{
    partner::{self, PartnerConfig},
    SimConfig, Simulator,
};
use gridsync_trading_grid::lens::{LensArgs, LensClient, LensTransaction, SearchQuery, DEFAULT_SINCE_ARGUMENTS};
use nix::{sys::signal, unistd::Pid};
use serde_json::json;
use tokio_util::sync::CancellationToken;

async fn simulator() -> (Simulator, CancellationToken) {
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    (Simulator::start(SimConfig::default(), listener, shutdown.clone()).await.unwrap(), shutdown)
}

fn args(sim: &Simulator, secret: &str) -> LensArgs {
    LensArgs {
        url: Some(sim.url()),
        token_url: None,
        client_id: Some("gridsync".into()),
        client_secret: Some(secret.into()),
        client_secret_file: None,
        requests_per_second: 0.0,
        timeout_ms: 1_000,
        max_attempts: 6,
        max_backoff_ms: 300,
        since_arguments: DEFAULT_SINCE_ARGUMENTS.into(),
    }
}

fn at(minutes_ago: i64) -> String {
    (Utc::now() - chrono::Duration::minutes(minutes_ago)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn transaction(id: &str, status: &str, fa: Option<&str>, minutes_ago: i64) -> LensTransaction {
    serde_json::from_value(json!({
        "transactionid": id, "editype": "810", "envelopetype": "ISA", "senderaddress": "GRIDSYNC",
        "receiveraddress": "ACME", "senderreference": format!("0000{id}"), "status": status,
        "statusdate": at(minutes_ago), "fastatus": fa, "fastatusdate": at(minutes_ago),
        "contentkeys": [{"name": "invoice number", "value": format!("INV-{id}")}],
    }))
    .unwrap()
}

async fn post(url: String, body: serde_json::Value) {
    let response = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

fn query(count: u32) -> SearchQuery {
    SearchQuery { count, offset: 0, status_since: Some(at(600)), scrollid: None, content_keys: vec![] }
}

#[tokio::test]
async fn the_client_rides_out_faults_and_scrolls_through_pages() {
    let (sim, _shutdown) = simulator().await;
    for n in 0..230 {
        sim.ledger.upsert(transaction(&format!("{n:03}"), "S", Some("A"), 300 - n));
    }
    let client = LensClient::new(&args(&sim, "gridsync-secret")).unwrap();
    let faults = format!("{}/__sim/faults", sim.url());
    // The token endpoint fails once, the search is rate limited twice (Retry-After 1 s),
    // then fails with a 503 and answers too slowly for the 1 s timeout once.
    post(faults.clone(), json!({"scope": "token", "status": 503})).await;
    post(faults.clone(), json!({"status": 429, "retry_after": 1, "count": 2})).await;
    post(faults.clone(), json!({"status": 503})).await;
    post(faults.clone(), json!({"delay_ms": 1_500})).await;

    let mut query = query(100);
    let mut ids = Vec::new();
    loop {
        let page = client.search(&query).await.unwrap();
        ids.extend(page.transactions.iter().map(|t| t.transactionid.clone()));
        query.offset += page.transactions.len() as u64;
        if page.scrollid.is_none() {
            break;
        }
        query.scrollid = page.scrollid;
    }
    assert_eq!(ids, (0..230).map(|n| format!("{n:03}")).collect::<Vec<_>>(), "every transaction once, in order");
    assert_eq!(client.stats().retries.load(std::sync::atomic::Ordering::Relaxed), 5);

    // Tokens expire early: one refresh, same request, no error.
    post(format!("{}/__sim/expire-tokens", sim.url()), json!({})).await;
    assert_eq!(client.search(&self::query(10)).await.unwrap().transactions.len(), 10);
    assert_eq!(client.stats().token_refreshes.load(std::sync::atomic::Ordering::Relaxed), 1);
    // Or Lens answers 401 to a token it has revoked: the same.
    post(faults.clone(), json!({"status": 401})).await;
    assert_eq!(client.search(&self::query(10)).await.unwrap().transactions.len(), 10);
    assert_eq!(client.stats().token_refreshes.load(std::sync::atomic::Ordering::Relaxed), 2);

    // Wrong credentials are a clear error that does not leak the secret.
    let wrong = LensClient::new(&args(&sim, "not-the-secret")).unwrap();
    let err = wrong.search(&self::query(10)).await.unwrap_err().to_string();
    assert!(err.contains("refused the consumer key: HTTP 401"), "{err}");
    assert!(!err.contains("not-the-secret"));
}

fn spawn_producer(pipeline: &Pipeline, sim: &Simulator, dir: &Path, port: u16) -> Child {
    Command::new(workspace_binary("tg-producer"))
        .args(["--brokers", &pipeline.broker.brokers(), "--topic-prefix", &pipeline.kafka.topic_prefix])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}"), "--poll-ms", "100"])
        .args(["--lens-url", &sim.url(), "--lens-client-id", "gridsync", "--lens-poll-ms", "200"])
        .env("GRIDSYNC_LENS_CLIENT_SECRET", "gridsync-secret")
        .arg("--mailbox-dir")
        .arg(dir.join("mailbox"))
        .arg("--store-url")
        .arg(format!("sqlite://{}", dir.join("tg-producer.db").display()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::options().create(true).append(true).open(dir.join("producer.log")).unwrap())
        .spawn()
        .unwrap()
}

async fn stop(mut child: Child) {
    signal::kill(Pid::from_raw(child.id() as i32), signal::Signal::SIGTERM).unwrap();
    assert!(wait_until(Duration::from_secs(30), || child.try_wait().unwrap().is_some()).await);
}

/// The status changes on the topic: the first `expected` read, or (`None`) every one there.
fn statuses(pipeline: &Pipeline, expected: Option<usize>) -> Vec<(String, DocumentStatus)> {
    let codec = codec().unwrap();
    let (brokers, topic) = (pipeline.broker.brokers(), pipeline.topic(EventType::DocumentStatusChanged));
    let records = match expected {
        Some(n) => read_topic(&brokers, topic, n, Duration::from_secs(30)),
        None => read_all(&brokers, topic, Duration::from_secs(30)),
    };
    records
        .unwrap()
        .iter()
        .filter_map(|m| match codec.decode(payload(m)).unwrap().event {
            Event::DocumentStatusChanged(e) => Some((e.lens_transaction_id, e.status)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_changes_become_events_once_and_the_partner_loop_closes() {
    let (sim, shutdown) = simulator().await;
    let pipeline = Pipeline::start("lens", None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    sim.ledger.upsert(transaction("A1", "S", Some("W"), 5));
    sim.ledger.upsert(transaction("A2", "F", None, 4));
    sim.ledger.upsert(transaction("A3", "P", None, 3));

    let port = free_port();
    let producer = spawn_producer(&pipeline, &sim, dir.path(), port);
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let published = |labels: &'static str| metric_value(&metrics, "gridsync_tg_lens_events_total", labels);
    let ready = wait_for(Duration::from_secs(30), || async {
        published("DocumentStatusChanged").await >= 2.0 && published("DocumentExchangeException").await >= 1.0
    })
    .await;
    let log = std::fs::read_to_string(dir.path().join("producer.log")).unwrap_or_default();
    assert!(ready, "{log}");

    // A1 gets its functional ack rejected; A3 is delivered. Then the producer restarts.
    sim.ledger.upsert(transaction("A1", "S", Some("R"), 1));
    sim.ledger.upsert(transaction("A3", "S", None, 1));
    assert!(wait_until(Duration::from_secs(30), || statuses(&pipeline, Some(4)).len() == 4).await);
    stop(producer).await;
    let producer = spawn_producer(&pipeline, &sim, dir.path(), port);
    let searched = sim.ledger.searches();
    assert!(wait_until(Duration::from_secs(30), || sim.ledger.searches() > searched + 2).await, "polled again");

    // Everything on the topic, not the first four: a change published again would be a fifth.
    let mut seen = statuses(&pipeline, None);
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        [
            ("A1".to_owned(), DocumentStatus::Delivered),
            ("A1".to_owned(), DocumentStatus::FaRejected),
            ("A2".to_owned(), DocumentStatus::DeliveryFailed),
            ("A3".to_owned(), DocumentStatus::Delivered),
        ],
        "each change once, none again after the restart"
    );
    let codec = codec().unwrap();
    let topic = pipeline.topic(EventType::DocumentExchangeException);
    assert_eq!(read_topic(&pipeline.broker.brokers(), topic, 2, Duration::from_secs(30)).unwrap().len(), 2);
    // Then everything on the topic: an exception published again would be a third.
    let mut exceptions: Vec<String> = read_all(&pipeline.broker.brokers(), topic, Duration::from_secs(30))
        .unwrap()
        .iter()
        .filter_map(|m| match codec.decode(payload(m)).unwrap().event {
            Event::DocumentExchangeException(x) => Some(x.reason),
            _ => None,
        })
        .collect();
    exceptions.sort(); // keyed by business key: partitions, hence order, may differ
    assert_eq!(
        exceptions,
        [
            "810 0000A1 to/from ACME was rejected by the partner's functional ack",
            "810 0000A2 to/from ACME delivery failed",
        ]
    );

    // The loop: a partner's invoice arrives; gridsync's 997 goes out; the partner (as Trading
    // Grid) picks it up, Lens shows it delivered; an invoice gridsync sends is answered by the
    // partner's own 997, which comes back in as a FunctionalAckReceived.
    let mailbox = dir.path().join("mailbox");
    let partner = PartnerConfig {
        outbound: mailbox.join("outbound"),
        inbound: mailbox.join("inbound"),
        poll: Duration::from_millis(100),
    };
    let partner_task = tokio::spawn(partner::run(partner, sim.ledger.clone(), shutdown.clone()));
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors/edi/tests/fixtures");
    std::fs::copy(fixture.join("x12_pipes_00501_no_newlines.edi"), mailbox.join("inbound/asn.edi")).unwrap();
    let picked_up = mailbox.join("outbound/.picked-up/GLOBEX_997_000004242-1.edi");
    assert!(wait_until(Duration::from_secs(30), || picked_up.is_file()).await, "our 997 was picked up");
    let delivered = sim.ledger.all().into_iter().find(|t| t.editype.as_deref() == Some("997")).unwrap();
    assert_eq!((delivered.status.as_str(), delivered.receiveraddress.as_deref()), ("S", Some("GLOBEX")));

    let invoice = std::fs::read_to_string(fixture.join("x12_multi_interchange_crlf.edi")).unwrap();
    // The same file as if gridsync had sent it: from GRIDSYNC to ACME.
    let outgoing =
        invoice.replace("*ZZ*ACME           *ZZ*GRIDSYNC       *", "*ZZ*GRIDSYNC       *ZZ*ACME           *");
    let outgoing = outgoing.split("ISA*").nth(1).map(|first| format!("ISA*{first}")).unwrap();
    std::fs::write(mailbox.join("outbound/GRIDSYNC_850_905.edi"), &outgoing).unwrap();
    let answered = mailbox.join("processed/ACME-ack-000000905.edi");
    assert!(wait_until(Duration::from_secs(30), || answered.is_file()).await, "the partner's 997 was processed");
    // The topic also holds the status changes of everything the partner picked up.
    let topic = pipeline.topic(EventType::FunctionalAckReceived);
    let read = || {
        let acks: Vec<_> = read_topic(&pipeline.broker.brokers(), topic, 100, Duration::from_secs(2))
            .unwrap()
            .iter()
            .filter_map(|m| match codec.decode(payload(m)).unwrap().event {
                Event::FunctionalAckReceived(ack) => Some(ack),
                _ => None,
            })
            .collect();
        std::future::ready(acks)
    };
    let acks = poll_until(Duration::from_secs(20), read, |acks| !acks.is_empty()).await;
    // One 997 transaction set per group of the interchange: the 850's and the 810's (keyed
    // apart, so in either order).
    let mut groups: Vec<(&str, Option<&str>)> = acks
        .iter()
        .map(|a| (a.envelope.trading_partner_id.as_str(), a.acknowledged_group_control_number.as_deref()))
        .collect();
    groups.sort();
    assert_eq!(groups, [("ACME", Some("905")), ("ACME", Some("906"))]);
    assert!(acks.iter().all(|a| a.status == gridsync_schemas::events::AckStatus::Accepted));
    let sent = sim.ledger.all().into_iter().find(|t| t.senderreference.as_deref() == Some("000000905")).unwrap();
    assert_eq!(sent.fastatus.as_deref(), Some("A"), "Lens shows the partner accepted it");

    stop(producer).await;
    shutdown.cancel();
    partner_task.await.unwrap().unwrap();
}
