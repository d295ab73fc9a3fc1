//! The distribution flow (flows 4 and 5) end to end through the real binaries:
//! trading terms published and an onboarding pack approved in amp-sim reach
//! amp-producer as signed webhooks, and distribution-consumer writes one
//! package per target partner to the outbound mailbox, which tg-sim's partner
//! picks up; Lens's delivery receipts and a read confirmation come back
//! through tg-producer onto the content's distribution-status item, and a
//! package never read becomes an exception once the clock passes its window.
//! A new version goes out as a revision naming what it replaces; an older
//! version seen late is not sent. The consumer is SIGKILLed on the way: one
//! package per partner and version. Needs `cargo test --workspace` (binaries).

mod common;

use std::{collections::BTreeMap, io::Read, path::Path, time::Duration};

use common::{kill, metric, stop, World};
use gridsync_amplience::{DeliveryKey, NewContentItem};
use gridsync_core::kafka::{dead_letter, headers};
use gridsync_schemas::{
    events::{ExceptionKind, TargetSystem},
    Event, EventType,
};
use gridsync_tests::{read_topic, wait_until};
use rdkafka::Message;
use serde_json::{json, Value};

const TERMS: &str = "https://gridsync.example/schemas/trading-terms.json";
const ONBOARDING: &str = "https://gridsync.example/schemas/onboarding-pack.json";

fn read_zip(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).unwrap();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            (entry.name().to_owned(), bytes)
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// A content item an editor writes: `fields` of content type `schema`, under delivery key `key`.
fn content_item(label: &str, schema: &str, key: &str, fields: Value) -> NewContentItem {
    NewContentItem {
        label: label.into(),
        schema: schema.into(),
        delivery_key: Some(DeliveryKey::parse(key).unwrap()),
        folder_id: None,
        locale: Some("en-GB".into()),
        fields: fields.as_object().cloned().unwrap(),
    }
}

/// The partner's entry on the content's distribution-status item.
async fn status_of(w: &World, content: &str, partner: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let items = w
        .items_until(&format!("gridsync/distribution-status/{content}"), what, |items| {
            items.iter().any(|i| done(&i["item"]["body"]["partners"][partner]))
        })
        .await;
    items[0]["item"]["body"]["partners"][partner].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn partner_content_goes_out_once_per_partner_and_version_and_its_receipts_come_back() {
    let w = World::start("distribution").await;
    w.set_clock("2027-01-04T09:00:00Z");
    let mailbox = format!("--mailbox-dir={}", w.mailbox.display());
    let (first, _) = w.consumer("distribution-consumer", "first", &[&mailbox]);
    let editor = w.finance();
    let repository = &gridsync_amp_sim::SimConfig::default().repositories[0];

    // Trading terms for ACME and GLOBEX, approved and published (flow 5); an onboarding pack
    // for Acme's German arm, approved (flow 4).
    let terms = editor
        .create_item(
            repository,
            &content_item(
                "Trading terms 2027",
                TERMS,
                "terms/2027",
                json!({
                "title": "Trading terms 2027", "targetPartnerIds": ["ACME", "GLOBEX"],
                "sections": ["Payment within 30 days", "Incoterms DAP"] }),
            ),
        )
        .await
        .unwrap();
    editor.assign_workflow_state(&terms.id, "Approved").await.unwrap();
    editor.publish(&terms.id).await.unwrap();
    let pack = editor
        .create_item(
            repository,
            &content_item(
                "Willkommen",
                ONBOARDING,
                "onboarding/de",
                json!({
                "title": "Willkommen bei gridsync", "targetPartnerIds": ["5412345000013"],
                "steps": ["Zugang beantragen", "Testnachricht senden"] }),
            ),
        )
        .await
        .unwrap();
    editor.assign_workflow_state(&pack.id, "Approved").await.unwrap();

    let picked = |prefix: String| {
        let w = &w;
        move || w.picked_up(&prefix).len()
    };
    assert!(
        wait_until(Duration::from_secs(60), || picked(format!("ACME_PKG_{}", terms.id))() >= 1).await,
        "no package for ACME\n{}",
        w.logs()
    );
    kill(first);
    let (second, _) = w.consumer("distribution-consumer", "second", &[&mailbox]);
    for prefix in [format!("GLOBEX_PKG_{}", terms.id), format!("5412345000013_PKG_{}", pack.id)] {
        assert!(wait_until(Duration::from_secs(60), || picked(prefix.clone())() == 1).await, "{prefix}\n{}", w.logs());
    }

    // What a partner gets: the manifest names the content, its version and the partner, and
    // the checksum of every part; the whole file's checksum travels beside it.
    let acme = w.picked_up(&format!("ACME_PKG_{}", terms.id));
    assert_eq!(acme.len(), 1, "{acme:?}");
    let name = acme[0].file_name().unwrap().to_string_lossy().into_owned();
    let first_version: i64 = name.rsplit_once("-v").unwrap().1.trim_end_matches(".zip").parse().unwrap();
    let parts = read_zip(&acme[0]);
    let manifest: Value = serde_json::from_slice(&parts["manifest.json"]).unwrap();
    assert_eq!(manifest["contentItemId"], terms.id.as_str());
    assert_eq!((manifest["partner"].as_str(), manifest["contentType"].as_str()), (Some("ACME"), Some("TRADING_TERMS")));
    assert_eq!(manifest["readConfirmationRequired"], true, "terms ask for a read confirmation");
    assert_eq!(manifest["replaces"], Value::Null);
    for part in manifest["parts"].as_array().unwrap() {
        let name = part["name"].as_str().unwrap();
        assert_eq!(part["sha256"].as_str(), Some(sha256(&parts[name]).as_str()), "{name}");
    }
    let html = String::from_utf8(parts["content.html"].clone()).unwrap();
    assert!(html.contains("<li>Incoterms DAP</li>"), "{html}");
    let recorded = std::fs::read_to_string(acme[0].with_file_name(format!("{name}.sha256"))).unwrap();
    assert!(recorded.starts_with(&sha256(&std::fs::read(&acme[0]).unwrap())));

    // Receipts: delivered to both; ACME confirms it read the terms; GLOBEX never does.
    status_of(&w, &terms.id, "GLOBEX", "GLOBEX's delivery", |p| p["state"] == "delivered").await;
    let acme_tx = w.tg.ledger.all().into_iter().find(|t| t.senderreference.as_deref() == Some(name.as_str())).unwrap();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    w.tg.ledger.upsert(gridsync_trading_grid::lens::LensTransaction {
        deliveryreceipt: Some("Read by recipient".into()),
        statusdate: Some(now),
        ..acme_tx
    });
    status_of(&w, &terms.id, "ACME", "ACME's read confirmation", |p| p["state"] == "read").await;
    w.set_clock("2027-01-07T10:00:00Z"); // 73 hours on
    status_of(&w, &terms.id, "GLOBEX", "GLOBEX's read confirmation overdue", |p| p["state"] == "read-overdue").await;
    let overdue: Vec<String> = w
        .events_until(EventType::DocumentExchangeException, |events| {
            events.iter().any(|e| matches!(e, Event::DocumentExchangeException(x) if x.kind == ExceptionKind::Other))
        })
        .into_iter()
        .filter_map(|e| match e {
            Event::DocumentExchangeException(x) if x.kind == ExceptionKind::Other => Some(x.reason),
            _ => None,
        })
        .collect();
    assert_eq!(overdue.len(), 1, "only GLOBEX's: {overdue:?}");
    assert!(overdue[0].contains("GLOBEX") && overdue[0].contains("no read confirmation after 72 hours"), "{overdue:?}");

    // A new version of the terms: a revision naming the package it replaces.
    editor
        .update_item(&terms.id, |item| {
            item.body["sections"] = json!(["Payment within 45 days", "Incoterms DAP"]);
        })
        .await
        .unwrap();
    editor.publish(&terms.id).await.unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || picked(format!("ACME_PKG_{}", terms.id))() == 2).await,
        "no revision for ACME\n{}",
        w.logs()
    );
    let revision = w.picked_up(&format!("ACME_PKG_{}", terms.id)).into_iter().find(|p| *p != acme[0]).unwrap();
    let manifest: Value = serde_json::from_slice(&read_zip(&revision)["manifest.json"]).unwrap();
    assert_eq!(manifest["replaces"]["version"], first_version);
    assert_eq!(manifest["replaces"]["package"], name.as_str());

    // An older version seen late (a lagging replica, a replay) is not sent.
    let published = w.events_until(EventType::PartnerContentPublished, |events| events.len() >= 2);
    let mut stale = published.into_iter().next().unwrap();
    if let Event::PartnerContentPublished(p) = &mut stale {
        p.envelope.event_id = gridsync_schemas::Envelope::deterministic_event_id(
            gridsync_schemas::events::SourceSystem::Amplience,
            &["stale", &terms.id],
        );
        p.content.version = first_version - 1;
    }
    w.pipeline.producer.publish(&stale, None).await.unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || w.log("second").contains("superseded by a newer version")).await,
        "the stale version was never looked at\n{}",
        w.logs()
    );
    assert!(w.picked_up(&format!("ACME_PKG_{}-v{}", terms.id, first_version - 1)).is_empty());
    assert!(w.waiting_outbound(&format!("ACME_PKG_{}-v{}", terms.id, first_version - 1)).is_empty());

    // One package per partner and version, each reported once with the content version it carries.
    let deliveries = w.deliveries_until(|ds| ds.iter().filter(|d| d.action == "partner-package").count() >= 5);
    let packages: Vec<_> = deliveries.iter().filter(|d| d.action == "partner-package").collect();
    assert_eq!(packages.len(), 5, "ACME and GLOBEX twice, Acme GmbH once: {packages:#?}");
    assert!(
        packages.iter().all(|d| d.target_system == TargetSystem::TradingGrid && d.content_version.is_some()),
        "{packages:#?}"
    );
    let mut per_file: BTreeMap<String, usize> = BTreeMap::new();
    for path in w.picked_up("") {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if file.contains("_PKG_") {
            *per_file.entry(file).or_default() += 1;
        }
    }
    assert_eq!(per_file.len(), 5, "{per_file:?}");

    // Replayed from the earliest offsets: every event processed again, no package and no status
    // item made or changed again.
    let made_before = w.all_items().await;
    let files_before = (w.picked_up(""), w.waiting_outbound(""));
    stop(second).await;
    let replayed = w.replayed("distribution-consumer", "distribution", &[&mailbox]).await;
    assert_eq!(w.all_items().await, made_before, "a replay changed or made Amplience items");
    assert_eq!((w.picked_up(""), w.waiting_outbound("")), files_before, "a replay sent a package again");
    stop(replayed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn content_changed_while_the_consumer_was_stopped_goes_out_in_its_newest_version_only() {
    let w = World::start("distribution-stopped").await;
    w.set_clock("2027-01-04T09:00:00Z");
    let mailbox = format!("--mailbox-dir={}", w.mailbox.display());
    let delivery = format!("--amplience-delivery-url={}", w.amp.url());
    let (first, _) = w.consumer("distribution-consumer", "first", &[&mailbox, &delivery]);
    let editor = w.finance();
    let repository = &gridsync_amp_sim::SimConfig::default().repositories[0];
    let terms = editor
        .create_item(
            repository,
            &content_item(
                "Terms",
                TERMS,
                "terms/acme",
                json!({ "title": "Terms", "targetPartnerIds": ["ACME"], "sections": ["30 days"] }),
            ),
        )
        .await
        .unwrap();
    editor.assign_workflow_state(&terms.id, "Approved").await.unwrap();
    editor.publish(&terms.id).await.unwrap();
    let packages = |w: &World| {
        let mut all = w.picked_up(&format!("ACME_PKG_{}", terms.id));
        all.extend(w.waiting_outbound(&format!("ACME_PKG_{}", terms.id)));
        all.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect::<Vec<_>>()
    };
    assert!(wait_until(Duration::from_secs(60), || packages(&w).len() == 1).await, "no first package\n{}", w.logs());
    let first_package = packages(&w)[0].clone();
    let first_version: i64 = first_package.rsplit_once("-v").unwrap().1.trim_end_matches(".zip").parse().unwrap();
    stop(first).await;

    // While it is stopped: the terms are published twice more, and an onboarding pack is
    // approved, then withdrawn.
    for sections in [json!(["45 days"]), json!(["60 days"])] {
        editor.update_item(&terms.id, |item| item.body["sections"] = sections.clone()).await.unwrap();
        editor.publish(&terms.id).await.unwrap();
    }
    let pack = editor
        .create_item(
            repository,
            &content_item(
                "Welcome",
                ONBOARDING,
                "onboarding/acme",
                json!({ "title": "Welcome", "targetPartnerIds": ["ACME"], "steps": ["Log in"] }),
            ),
        )
        .await
        .unwrap();
    editor.assign_workflow_state(&pack.id, "Approved").await.unwrap();
    editor.assign_workflow_state(&pack.id, "Withdrawn").await.unwrap();
    let published = w.events_until(EventType::PartnerContentPublished, |events| events.len() >= 3);
    let newest = published
        .iter()
        .filter_map(|e| match e {
            Event::PartnerContentPublished(p) => Some(p.content.version),
            _ => None,
        })
        .max()
        .unwrap();
    w.events_until(EventType::PartnerContentApproved, |events| !events.is_empty());

    // Started again: the newest version goes out, as a revision of the first; the one between
    // and the withdrawn pack do not.
    let (second, _) = w.consumer("distribution-consumer", "second", &[&mailbox, &delivery]);
    let newest_file = format!("ACME_PKG_{}-v{newest}.zip", terms.id);
    assert!(
        wait_until(Duration::from_secs(60), || packages(&w).contains(&newest_file)).await,
        "the newest version never went out: {:?}\n{}",
        packages(&w),
        w.logs()
    );
    status_of(&w, &pack.id, "ACME", "the pack's withdrawal", |p| p["state"] == "withdrawn").await;
    status_of(&w, &terms.id, "ACME", "the newest terms sent", |p| p["version"] == newest).await;
    let sent = packages(&w);
    assert!(
        sent.len() == 2 && sent.contains(&first_package) && sent.contains(&newest_file),
        "only the first and the newest version: {sent:?}"
    );
    assert!(
        w.picked_up(&format!("ACME_PKG_{}", pack.id)).is_empty()
            && w.waiting_outbound(&format!("ACME_PKG_{}", pack.id)).is_empty()
    );
    // A version between, if amp-producer saw one (it reads the item when the webhook comes, so
    // a publish followed at once by another may already read as the newer one), was looked at
    // and passed over as superseded.
    let between = published.iter().any(|e| {
        matches!(e, Event::PartnerContentPublished(p) if p.content.version < newest && p.content.version > first_version)
    });
    if between {
        let log = w.log("second");
        assert!(
            log.contains("superseded in Amplience; not sent") || log.contains("superseded by a newer version"),
            "{log}"
        );
    }
    stop(second).await;
}

/// Peak resident memory of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Puts an asset on amp-sim's media CDN: `bytes`, or `generated` bytes of its known pattern.
async fn put_media(w: &World, name: &str, content_type: &str, bytes: Vec<u8>, generated: Option<u64>) {
    let query = generated.map(|n| format!("?generated_bytes={n}")).unwrap_or_default();
    let response = reqwest::Client::new()
        .put(format!("{}/__sim/media/acme-media/{name}{query}", w.amp.url()))
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
}

fn media_link(kind: &str, name: &str) -> Value {
    json!({
        "_meta": { "schema": format!("http://bigcontent.io/cms/schema/v1/core#/definitions/{kind}-link") },
        "id": format!("media-{name}"), "name": name, "endpoint": "acme-media", "defaultHost": "cdn.media.amplience.net"
    })
}

/// Content that links media: each partner's package carries the media whole, fetched once for
/// all partners, streamed (the consumer's memory never holds the video), a fetch cut off
/// part-way retried from the start, and nothing left in the spool folder; a link Amplience
/// does not serve dead-letters the content with the link's URL and sends nothing.
#[tokio::test(flavor = "multi_thread")]
async fn media_links_go_out_whole_as_attachments_streamed_fetched_once_and_retried() {
    const VIDEO_BYTES: u64 = 160 * 1024 * 1024;
    let w = World::start("distribution-media").await;
    let diagram: Vec<u8> =
        format!("<svg xmlns=\"http://www.w3.org/2000/svg\">{}</svg>", "<g/>".repeat(400)).into_bytes();
    put_media(&w, "payment schedule", "image/svg+xml", diagram.clone(), None).await;
    put_media(&w, "walkthrough", "video/mp4", Vec::new(), Some(VIDEO_BYTES)).await;
    // The diagram's first two fetches are cut off after 512 bytes, as a dropped connection does.
    let fault = json!({ "scope": "media", "truncate_after_bytes": 512, "count": 2 });
    reqwest::Client::new().post(format!("{}/__sim/faults", w.amp.url())).json(&fault).send().await.unwrap();

    let spool = w.dir.path().join("spool");
    let (consumer, metrics) = w.consumer(
        "distribution-consumer",
        "media",
        &[
            &format!("--mailbox-dir={}", w.mailbox.display()),
            &format!("--amplience-media-url={}/{{kind}}/{{endpoint}}/{{name}}", w.amp.url()),
            "--amplience-media-allow-private-addresses",
            &format!("--spool-dir={}", spool.display()),
        ],
    );
    let editor = w.finance();
    let repository = &gridsync_amp_sim::SimConfig::default().repositories[0];
    let fields = json!({
        "title": "Trading terms 2027", "targetPartnerIds": ["ACME", "GLOBEX"],
        "sections": ["Payment within 30 days", media_link("image", "payment schedule")],
        "walkthrough": media_link("video", "walkthrough") });
    let terms =
        editor.create_item(repository, &content_item("Terms with media", TERMS, "terms/media", fields)).await.unwrap();
    editor.assign_workflow_state(&terms.id, "Approved").await.unwrap();
    editor.publish(&terms.id).await.unwrap();

    for partner in ["ACME", "GLOBEX"] {
        let prefix = format!("{partner}_PKG_{}", terms.id);
        assert!(
            wait_until(Duration::from_secs(120), || w.picked_up(&prefix).len() == 1).await,
            "no package for {partner}\n{}",
            w.logs()
        );
        let package = &w.picked_up(&prefix)[0];
        let parts = read_zip(package);
        let manifest: Value = serde_json::from_slice(&parts["manifest.json"]).unwrap();
        let names: Vec<&str> =
            manifest["parts"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["content.json", "content.html", "attachments/payment-schedule.svg", "attachments/walkthrough.mp4"]
        );
        for part in manifest["parts"].as_array().unwrap() {
            let name = part["name"].as_str().unwrap();
            assert_eq!(part["sha256"].as_str(), Some(sha256(&parts[name]).as_str()), "{partner} {name}");
            assert_eq!(part["bytes"].as_u64(), Some(parts[name].len() as u64), "{partner} {name}");
        }
        assert_eq!(parts["attachments/payment-schedule.svg"], diagram, "the diagram whole, not the cut-off fetches");
        let video = &parts["attachments/walkthrough.mp4"];
        let expected: Vec<u8> = (0..VIDEO_BYTES).map(gridsync_amp_sim::media::generated_byte).collect();
        assert!(*video == expected, "the video as amp-sim served it ({} of {VIDEO_BYTES} bytes)", video.len());
        let video_part = &manifest["parts"][3];
        assert_eq!(
            (video_part["mediaId"].as_str(), video_part["contentType"].as_str()),
            (Some("media-walkthrough"), Some("video/mp4"))
        );
        let html = String::from_utf8(parts["content.html"].clone()).unwrap();
        assert!(html.contains(r#"<img src="attachments/payment-schedule.svg" alt="payment schedule">"#), "{html}");
        assert!(html.contains(r#"<a href="attachments/walkthrough.mp4">walkthrough</a>"#), "{html}");
    }

    // Fetched once for both partners; the diagram twice more for its two cut-off fetches.
    let stats: Value = reqwest::get(format!("{}/__sim/stats", w.amp.url())).await.unwrap().json().await.unwrap();
    assert_eq!(stats["media_fetches"], json!({ "acme-media/payment schedule": 3, "acme-media/walkthrough": 1 }));
    assert_eq!(metric(&metrics, "gridsync_distribution_attachments_total", "outcome=\"fetched\"").await, 2.0);
    assert_eq!(
        metric(&metrics, "gridsync_distribution_attachment_bytes_total", "").await,
        (VIDEO_BYTES + diagram.len() as u64) as f64
    );
    // The video streamed through: never all of it in memory at once.
    let peak = peak_rss(consumer.id());
    assert!(peak < VIDEO_BYTES / 2, "peak RSS {peak} bytes for a {VIDEO_BYTES}-byte attachment");
    let left: Vec<_> = std::fs::read_dir(&spool).unwrap().collect();
    assert!(left.is_empty(), "the spool folder keeps {left:?}");

    // A link to media Amplience does not have: dead-lettered with its URL, nothing sent.
    let fields = json!({ "title": "Guide", "targetPartnerIds": ["ACME"], "figure": media_link("image", "gone") });
    let guide =
        editor.create_item(repository, &content_item("Guide", ONBOARDING, "guides/gone", fields)).await.unwrap();
    editor.assign_workflow_state(&guide.id, "Approved").await.unwrap();
    let dlq = format!("{}gridsync.distribution.dlq", w.pipeline.kafka.topic_prefix);
    let dead = read_topic(&w.pipeline.broker.brokers(), &dlq, 1, Duration::from_secs(60)).unwrap();
    assert_eq!(dead.len(), 1, "{}", w.logs());
    let message = headers::get(dead[0].headers(), dead_letter::ERROR_MESSAGE).unwrap_or_default().to_owned();
    assert!(message.contains("/i/acme-media/gone") && message.contains("404"), "{message}");
    assert!(
        w.picked_up(&format!("ACME_PKG_{}", guide.id)).is_empty()
            && w.waiting_outbound(&format!("ACME_PKG_{}", guide.id)).is_empty()
    );
    assert_eq!(metric(&metrics, "gridsync_distribution_attachments_total", "outcome=\"failed\"").await, 1.0);
    stop(consumer).await;
}
