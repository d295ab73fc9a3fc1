//! Every binary of the workspace, as an operator runs it: the CLI applies the
//! topics and publishes demo events; each producer and consumer serves
//! /healthz, /readyz and /metrics, consumes what it should, and exits cleanly
//! on SIGTERM. Needs the workspace's binaries: `cargo test --workspace`.

use std::{
    collections::BTreeSet,
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use gridsync_core::kafka::{Backoff, ConsumerSettings};
use gridsync_schemas::{catalog::catalog, EventType};
use gridsync_tests::{
    free_port, metric_sum, pipeline_binaries, poll_until, unique_prefix, wait_until, workspace_binary, Broker,
};
use nix::{sys::signal, unistd::Pid};

fn gridsync(args: &[&str], broker: &Broker, prefix: &str) -> Output {
    Command::new(workspace_binary("gridsync"))
        .args(args)
        .args(["--brokers", &broker.brokers(), "--topic-prefix", prefix])
        .output()
        .unwrap()
}

async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_binary_runs_against_the_broker_and_stops_cleanly_on_sigterm() {
    let broker = Broker::shared().unwrap();
    let prefix = unique_prefix("binaries");

    // What the catalog holds, not numbers copied from it.
    let catalog = catalog().unwrap().with_prefix(&prefix);
    let topics = catalog.topics.len();
    let applied = gridsync(&["topics", "apply"], &broker, &prefix);
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    let summary = format!("{topics} topics in the catalog; {topics} changed");
    assert!(
        String::from_utf8_lossy(&applied.stdout).contains(&summary),
        "{}",
        String::from_utf8_lossy(&applied.stdout)
    );
    let again = gridsync(&["topics", "apply"], &broker, &prefix);
    assert!(String::from_utf8_lossy(&again.stdout).contains(&format!("{topics} topics in the catalog; 0 changed")));
    let demo = gridsync(&["demo", "--count", "1"], &broker, &prefix);
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
    let published = format!("published {} events", EventType::ALL.len());
    assert!(String::from_utf8_lossy(&demo.stdout).contains(&published), "{}", String::from_utf8_lossy(&demo.stdout));

    // The notifications flow writes to Amplience: the simulator, set up with templates.
    let sim_config = gridsync_amp_sim::SimConfig::default();
    let stop_sim = tokio_util::sync::CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = gridsync_amp_sim::Simulator::start(sim_config.clone(), listener, stop_sim.clone()).await.unwrap();
    gridsync_tests::set_up_hub(&sim.url(), &sim_config.hub_id, &sim_config.repositories, None).await.unwrap();
    let _stop_sim = stop_sim.drop_guard();
    let partners = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/partners.toml");
    // tg-producer polls Lens: the Trading Grid simulator's, with nothing to report.
    let stop_tg_sim = tokio_util::sync::CancellationToken::new();
    let tg_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tg_sim =
        gridsync_tg_sim::Simulator::start(gridsync_tg_sim::SimConfig::default(), tg_listener, stop_tg_sim.clone())
            .await
            .unwrap();
    let _stop_tg_sim = stop_tg_sim.drop_guard();

    let logs = tempfile::tempdir().unwrap();
    let names = pipeline_binaries();
    // Each binary's --help opens with what it is and does (the catalog's words for a consumer).
    for name in &names {
        let help = Command::new(workspace_binary(name)).arg("--help").output().unwrap();
        let first = String::from_utf8_lossy(&help.stdout).lines().next().unwrap_or_default().to_owned();
        assert!(first.starts_with("The gridsync "), "{name} --help opens with {first:?}");
        if let Some(consumer) = name.strip_suffix("-consumer") {
            assert!(first.contains(&catalog.consumer(consumer).unwrap().description), "{name}: {first}");
        }
    }
    let webhook_port = free_port().to_string();
    let audit_listen = format!("127.0.0.1:{}", free_port());
    let amp_store = format!("sqlite://{}", logs.path().join("amp-producer.db").display());
    let tg_store = format!("sqlite://{}", logs.path().join("tg-producer.db").display());
    let mut running: Vec<(&str, u16, Child)> = names
        .iter()
        .map(|name| {
            let port = free_port();
            let child = Command::new(workspace_binary(name))
                .args(["--brokers", &broker.brokers(), "--topic-prefix", &prefix])
                .args(["--metrics-addr", &format!("127.0.0.1:{port}"), "--log-format", "json"])
                .env("GRIDSYNC_TG_MAILBOX_DIR", logs.path().join("tg-mailbox"))
                .env("GRIDSYNC_AMP_LISTEN", format!("127.0.0.1:{webhook_port}"))
                .env("GRIDSYNC_AMP_WEBHOOK_SECRET", "binaries-test-secret")
                .env("GRIDSYNC_AMP_STORE_URL", &amp_store)
                .env("GRIDSYNC_TG_STORE_URL", &tg_store)
                .env(
                    "GRIDSYNC_FLOW_STORE_URL",
                    format!("sqlite://{}", logs.path().join(format!("{name}.db")).display()),
                )
                .env("GRIDSYNC_PARTNERS_FILE", &partners)
                .env("GRIDSYNC_AUDIT_STORE_URL", format!("sqlite://{}", logs.path().join("audit.db").display()))
                .env("GRIDSYNC_AUDIT_LISTEN", &audit_listen)
                // The audit consumer logs each event it records at debug.
                .env("GRIDSYNC_LOG", "info,gridsync_audit=debug")
                .env("GRIDSYNC_AMPLIENCE_API_URL", format!("{}/v2/content", sim.url()))
                .env("GRIDSYNC_AMPLIENCE_TOKEN_URL", format!("{}/oauth/token", sim.url()))
                .env("GRIDSYNC_AMPLIENCE_HUB_ID", &sim_config.hub_id)
                .env("GRIDSYNC_AMPLIENCE_CLIENT_ID", "gridsync")
                .env("GRIDSYNC_AMPLIENCE_CLIENT_SECRET", "gridsync-secret")
                .env("GRIDSYNC_LENS_URL", tg_sim.url())
                .env("GRIDSYNC_LENS_CLIENT_ID", "gridsync")
                .env("GRIDSYNC_LENS_CLIENT_SECRET", "gridsync-secret")
                .env("GRIDSYNC_LENS_POLL_MS", "500")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(logs.path().join(format!("{name}.log"))).unwrap())
                .spawn()
                .unwrap();
            (name.as_str(), port, child)
        })
        .collect();
    // And the lag exporter, reading every group's offsets from the broker.
    let lag_port = free_port();
    let lag_exporter = Command::new(workspace_binary("gridsync"))
        .args(["groups", "lag", "--serve", "--brokers", &broker.brokers(), "--topic-prefix", &prefix])
        .args(["--metrics-addr", &format!("127.0.0.1:{lag_port}"), "--interval-secs", "1", "--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(logs.path().join("lag-exporter.log")).unwrap())
        .spawn()
        .unwrap();
    running.push(("lag-exporter", lag_port, lag_exporter));

    for (name, port, _) in &running {
        let base = format!("http://127.0.0.1:{port}");
        for (path, what) in [("healthz", "alive"), ("readyz", "ready")] {
            let url = format!("{base}/{path}");
            let status =
                poll_until(Duration::from_secs(60), || async { get(&url).await.map(|r| r.0) }, |s| *s == Some(200));
            let status = status.await;
            assert_eq!(status, Some(200), "{name} never became {what}");
        }
    }

    // Every binary: the process's own figures and what it was built from.
    for (name, port, _) in &running {
        let (_, metrics) = get(&format!("http://127.0.0.1:{port}/metrics")).await.unwrap();
        for family in [
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_start_time_seconds",
            "gridsync_build_info",
        ] {
            assert!(metrics.lines().any(|l| l.starts_with(family)), "{name} exports no {family}");
        }
        assert!(metrics.contains("gridsync_build_info{commit="), "{name}: build info labelled");
    }

    // One demo event per type: the audit consumer records exactly the event types of the
    // topics the catalog gives it (at least once each; a redelivery is allowed).
    let types_of = |consumer: &str| -> Vec<&'static str> {
        let spec = catalog.consumer(consumer).unwrap();
        let on_topics = catalog.topics.iter().filter(|t| spec.topics.contains(&t.name));
        let mut types: Vec<&'static str> = on_topics.flat_map(|t| t.events.iter().map(|e| e.name())).collect();
        types.sort_unstable();
        types.dedup();
        types
    };
    for name in ["audit"] {
        let want: BTreeSet<&str> = types_of(name).into_iter().collect();
        let port = running.iter().find(|(n, ..)| *n == format!("{name}-consumer")).map(|(_, p, _)| *p).unwrap();
        let read = || async { get(&format!("http://127.0.0.1:{port}/metrics")).await.map(|r| r.1).unwrap_or_default() };
        let recorded = |metrics: &String| -> BTreeSet<String> {
            metrics
                .lines()
                .filter(|l| l.starts_with("gridsync_audit_events_recorded_total{"))
                .filter_map(|l| l.split("event_type=\"").nth(1)?.split('"').next().map(str::to_owned))
                .collect()
        };
        let metrics = poll_until(Duration::from_secs(60), read, |m| recorded(m).len() >= want.len()).await;
        let seen = recorded(&metrics);
        assert!(metrics.contains("gridsync_records_in_total{"), "{name} exports records_in");
        assert!(metrics.contains("gridsync_processing_seconds_bucket{"), "{name} exports latency");
        assert_eq!(
            seen.iter().map(String::as_str).collect::<BTreeSet<_>>(),
            want,
            "{name} consumed its topics' events"
        );
    }

    // The flow consumers handle each record of their topics (one per event type there, as a
    // topic may be read by several of them): the types each flow takes, the rest skipped unread.
    let mut effects = 0.0;
    for flow in ["notifications", "billing", "exceptions", "distribution"] {
        // What the consumer loop itself skips, by the catalog's `handles`.
        let settings = ConsumerSettings::from_catalog(catalog.consumer(flow).unwrap(), Backoff::default(), 1);
        let types = types_of(flow);
        let taken = types.iter().filter(|t| settings.accepts(t)).count();
        assert!(taken > 0, "{flow} takes none of its topics' events: {types:?}");
        let expected = (taken as f64, (types.len() - taken) as f64);
        let name = format!("{flow}-consumer");
        let port = running.iter().find(|(n, ..)| *n == name).map(|(_, p, _)| *p).unwrap();
        let url = format!("http://127.0.0.1:{port}/metrics");
        let processed = |outcome: &'static str| {
            let url = url.clone();
            async move { metric_sum(&url, "gridsync_records_processed_total", &format!("outcome=\"{outcome}\"")).await }
        };
        let handled = poll_until(
            Duration::from_secs(60),
            || async { (processed("ok").await, processed("skipped").await) },
            |handled| *handled == expected,
        )
        .await;
        let log = std::fs::read_to_string(logs.path().join(format!("{name}.log"))).unwrap_or_default();
        assert_eq!(handled, expected, "{name}: records handled and skipped\n{log}");
        let performed = metric_sum(&url, "gridsync_flow_side_effects_total", "").await;
        assert!(performed >= 1.0, "{name}: {performed} side effects\n{log}");
        effects += performed;
    }
    let created =
        reqwest::get(format!("{}/__sim/items?prefix=gridsync/", sim.url())).await.unwrap().text().await.unwrap();
    assert!(created.contains("PO900000001"), "the demo order's confirmation is in Amplience: {created}");
    assert!(created.contains("INV900000001"), "the demo invoice's billing communication is in Amplience");
    assert!(created.contains("exception-task"), "the demo exception's task is in Amplience");
    assert!(
        created.contains("gridsync/distribution-status/"),
        "the demo content's distribution status is in Amplience"
    );
    // Each side effect was reported on gridsync.deliveries, where the audit consumer sees it too.
    let audit = running.iter().find(|(n, ..)| *n == "audit-consumer").map(|(_, p, _)| *p).unwrap();
    let audit_url = format!("http://127.0.0.1:{audit}/metrics");
    let reported = || {
        metric_sum(
            &audit_url,
            "gridsync_audit_events_recorded_total",
            r#"event_type="DeliveryPerformed",outcome="new""#,
        )
    };
    let reported = poll_until(Duration::from_secs(60), reported, |n| *n >= 1.0 + effects).await;
    assert_eq!(reported, 1.0 + effects, "the demo's DeliveryPerformed and one per side effect");

    // Each consumer says what it is doing (`/status`): its group, its partitions, nothing held.
    for spec in &catalog.consumers {
        let name = spec.binary();
        let port = running.iter().find(|(n, ..)| *n == name).map(|(_, p, _)| *p).unwrap();
        let read = || async {
            let (_, text) = get(&format!("http://127.0.0.1:{port}/status")).await.unwrap();
            serde_json::from_str::<serde_json::Value>(&text).unwrap()
        };
        let assigned =
            |status: &serde_json::Value| status["consumer"]["assigned"].as_object().is_some_and(|a| !a.is_empty());
        let status = poll_until(Duration::from_secs(30), read, assigned).await;
        assert_eq!(status["ready"], true, "{name}: {status}");
        assert_eq!(status["component"], spec.name.as_str(), "{name}: {status}");
        assert_eq!(status["consumer"]["group"], spec.group_id.as_str(), "{name}: {status}");
        let assigned = status["consumer"]["assigned"].as_object().unwrap();
        assert!(
            !assigned.is_empty() && assigned.values().all(|p| p["paused"] == false && p["held_on"].is_null()),
            "{name}: {status}"
        );
        assert!(
            assigned.keys().all(|p| spec.topics.iter().any(|t| p.starts_with(&format!("{t}[")))),
            "{name}: {status}"
        );
    }
    // The producers say they are ready, and run no consumer.
    for name in ["tg-producer", "amp-producer"] {
        let port = running.iter().find(|(n, ..)| *n == name).map(|(_, p, _)| *p).unwrap();
        let (_, text) = get(&format!("http://127.0.0.1:{port}/status")).await.unwrap();
        let status: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (&status["ready"], &status["consumer"]),
            (&serde_json::json!(true), &serde_json::Value::Null),
            "{name}: {status}"
        );
    }
    // The broker's view of every group: the audit consumer has recorded everything, so its lag
    // drops to nothing; a partition without a committed offset still has its series.
    let lag_url = format!("http://127.0.0.1:{lag_port}/metrics");
    let audit_group = &catalog.consumer("audit").unwrap().group_id;
    let audit_lag = || async {
        let (_, text) = get(&lag_url).await.unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("gridsync_group_lag{") && l.contains(&format!("group=\"{audit_group}\"")))
            .map(str::to_owned)
            .collect();
        let sum: f64 = lines.iter().filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum();
        (lines.len(), sum)
    };
    let lag = poll_until(Duration::from_secs(30), audit_lag, |lag| lag.0 > 0 && lag.1 == 0.0).await;
    assert!(lag.0 > 0 && lag.1 == 0.0, "the audit group's lag as the broker has it: {lag:?}");
    let (_, exported) = get(&lag_url).await.unwrap();
    for spec in &catalog.consumers {
        let partitions: usize =
            catalog.topics.iter().filter(|t| spec.topics.contains(&t.name)).map(|t| t.partitions as usize).sum();
        let series = exported
            .lines()
            .filter(|l| l.starts_with("gridsync_group_lag{") && l.contains(&format!("group=\"{}\"", spec.group_id)))
            .count();
        assert_eq!(series, partitions, "{}: a lag series per partition of its topics", spec.group_id);
    }

    // Every metric the alert rules and the dashboards use is one these binaries export.
    let urls: Vec<String> = running.iter().map(|(_, port, _)| format!("http://127.0.0.1:{port}/metrics")).collect();
    let used = used_metric_names();
    assert!(used.len() >= 15, "the rules and dashboards name {used:?}");
    let missing = || async {
        let exported = exported_metric_names(&urls).await;
        used.difference(&exported).cloned().collect::<BTreeSet<_>>()
    };
    let missing = poll_until(Duration::from_secs(30), missing, BTreeSet::is_empty).await;
    assert!(missing.is_empty(), "used in deploy/prometheus or deploy/grafana but exported by no binary: {missing:?}");

    for (_, _, child) in &running {
        signal::kill(Pid::from_raw(child.id() as i32), signal::Signal::SIGTERM).unwrap();
    }
    for (name, _, child) in &mut running {
        let mut status = None;
        wait_until(Duration::from_secs(30), || {
            status = child.try_wait().unwrap();
            status.is_some()
        })
        .await;
        let status = status.unwrap_or_else(|| panic!("{name} ignored SIGTERM"));
        assert!(status.success(), "{name} exited with {status}");
    }

    // JSON logs, with the record's trace context on each record's lines.
    let audit_log = std::fs::read_to_string(logs.path().join("audit-consumer.log")).unwrap();
    let observed: Vec<serde_json::Value> = audit_log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"].as_str().is_some_and(|m| m.contains("event recorded")))
        .collect();
    assert_eq!(observed.len() as f64, EventType::ALL.len() as f64 + effects, "{audit_log}");
    assert!(observed.iter().all(|v| v["span"]["trace_id"].as_str().is_some_and(|t| t.len() == 32)));
    assert!(audit_log.contains("offsets committed"));
}

/// Metrics the quiet run above cannot see, each covered by a test of its own: one that exists only
/// while a record is retried (core's `telemetry::metrics` tests), and those of partners' files,
/// which this run sends none of (`tg_producer.rs`).
const NOT_IN_A_QUIET_RUN: [&str; 3] = [
    "gridsync_record_retrying_since_timestamp_seconds",
    "gridsync_tg_documents_total",
    "gridsync_tg_rejected_transactions_total",
];

/// The metric names (`gridsync_...`) the alert rules and the Grafana dashboards use.
fn used_metric_names() -> BTreeSet<String> {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut files = vec![deploy.join("prometheus/alerts.yml")];
    for entry in std::fs::read_dir(deploy.join("grafana/dashboards")).unwrap() {
        files.push(entry.unwrap().path());
    }
    let mut names = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices("gridsync_") {
            let name: String =
                text[at..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
            if name.len() > "gridsync_".len() && !name.ends_with('_') && !NOT_IN_A_QUIET_RUN.contains(&name.as_str()) {
                names.insert(name);
            }
        }
    }
    names
}

/// Every metric name the binaries at `urls` export now (a histogram's `_bucket`, `_sum` and
/// `_count` too).
async fn exported_metric_names(urls: &[String]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for url in urls {
        let Some((_, text)) = get(url).await else { continue };
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            if !name.is_empty() {
                names.insert(name.to_owned());
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.extend(name.strip_suffix(suffix).map(str::to_owned));
                }
            }
        }
    }
    names
}
