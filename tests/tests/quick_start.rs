//! The README's first command, CI-sized: `deploy/run-local.sh` on a broker of the test's own
//! (the binaries as built, every port shifted, its state in a folder of its own) feeds the
//! demo, and its report must show every one of the eight flows with real figures. Then it is
//! stopped and started again: the data is kept, and the demo is not fed twice.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use gridsync_tests::{pipeline_binaries, poll_until_blocking, workspace_binary, Broker};

/// Ports run-local.sh uses beside the catalog's metrics ports, before the offset: Prometheus,
/// amp-producer's webhooks, the audit view, the lag exporter, amp-sim, tg-sim.
const OTHER_PORTS: [u16; 6] = [9090, 9466, 9476, 9477, 9480, 9490];

/// An offset under which every port run-local.sh uses is free now.
fn free_offset() -> u16 {
    let catalog = gridsync_schemas::catalog::catalog().unwrap();
    let ports: Vec<u16> = catalog.metrics_ports().into_iter().map(|(_, port)| port).chain(OTHER_PORTS).collect();
    (1..200)
        .map(|n| 20_000 + n * 100 + (std::process::id() % 50) as u16)
        .find(|offset| ports.iter().all(|p| TcpListener::bind(("127.0.0.1", p + offset)).is_ok()))
        .expect("a free range of ports")
}

/// run-local.sh with the test's broker, binaries, ports and folder.
struct QuickStart {
    script: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl QuickStart {
    fn run(&self, command: &str) -> Output {
        let output = Command::new(&self.script)
            .args(command.split(' '))
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("running deploy/run-local.sh");
        eprintln!(
            "--- run-local.sh {command}: {}\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

/// Whatever happens, the binaries it started are stopped (the broker is the test's own).
impl Drop for QuickStart {
    fn drop(&mut self) {
        let _ = self.run("stop");
    }
}

/// The report's line of flow `n`.
fn flow_line(stdout: &str, n: u8) -> String {
    let prefix = format!("flow {n}  ");
    let line = stdout.lines().map(str::trim_start).find(|l| l.starts_with(&prefix) && !l.contains("lineage"));
    line.unwrap_or_else(|| panic!("no line for flow {n} in:\n{stdout}")).to_owned()
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.filter_map(Result::ok).filter(|e| e.path().is_file()).count())
}

#[test]
fn the_quick_start_reports_every_flow_and_a_second_start_keeps_the_data_without_feeding_the_demo_again() {
    let broker = Broker::start().unwrap();
    let state = tempfile::tempdir().unwrap();
    let bin_dir = workspace_binary("gridsync").parent().unwrap().to_path_buf();
    let offset = free_offset();
    let quick_start = QuickStart {
        script: Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/run-local.sh"),
        env: vec![
            ("GRIDSYNC_BROKERS", broker.brokers()),
            ("GRIDSYNC_PORT_OFFSET", offset.to_string()),
            ("GRIDSYNC_LOCAL_DIR", state.path().display().to_string()),
            ("GRIDSYNC_SKIP_BUILD", "1".to_owned()),
            ("GRIDSYNC_BIN_DIR", bin_dir.display().to_string()),
            ("GRIDSYNC_REPORT_TIMEOUT_SECS", "240".to_owned()),
        ],
    };

    // With Prometheus (deploy/test.sh installs Debian's) scraping every binary, alert rules loaded.
    let first = quick_start.run("start --observe");
    assert!(first.status.success(), "the quick start failed");
    let stdout = String::from_utf8_lossy(&first.stdout);
    for n in 1..=8 {
        let line = flow_line(&stdout, n);
        assert!(!line.contains("nothing"), "flow {n} did not report: {line}");
        if n != 7 {
            assert!(
                line.contains("in: ") && line.contains(" -> "),
                "flow {n} says what came in and went where: {line}"
            );
            assert!(line.contains("source event to side effect p50 "), "flow {n} is timed: {line}");
        }
    }
    assert!(flow_line(&stdout, 1).contains("order-confirmation -> Amplience"));
    assert!(flow_line(&stdout, 2).contains("remittance-advice -> Trading Grid"));
    assert!(flow_line(&stdout, 5).contains("partner-package -> Trading Grid"));
    // The simulated hub started empty and was set up as a user sets up theirs; flow 4 sent the
    // onboarding pack approved in it (with its guide attached) to the partners.
    assert!(stdout.contains("the hub has everything the flows need"), "gridsync amplience check did not pass");
    assert!(
        flow_line(&stdout, 4).contains("partner-package -> Trading Grid (to ACME, GLOBEX)"),
        "{}",
        flow_line(&stdout, 4)
    );
    // Sent to the outbound mailbox, perhaps picked up by the partner already.
    let outbound = state.path().join("tg-mailbox/outbound");
    let welcome = [outbound.clone(), outbound.join(".picked-up")]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().filter_map(Result::ok))
        .filter(|f| f.file_name().to_string_lossy().ends_with(".zip"))
        // A zip names its entries in plain text.
        .filter(|f| {
            std::fs::read(f.path())
                .is_ok_and(|zip| String::from_utf8_lossy(&zip).contains("attachments/supplier-welcome-2027.svg"))
        })
        .count();
    assert_eq!(welcome, 2, "the onboarding pack, with its guide, to ACME and GLOBEX in {}", outbound.display());
    assert!(flow_line(&stdout, 8).contains("exception-task -> Amplience"));
    assert!(stdout.contains("Where to look next:"));
    // Each component's own account (gridsync status), the consumers with their groups.
    for name in ["notifications", "billing", "exceptions", "distribution", "audit"] {
        assert!(stdout.contains(&format!("{name:<14} ready  group gridsync.{name}: ")), "{name} in gridsync status");
    }
    assert!(stdout.contains("lag-exporter   ready"), "the lag exporter in gridsync status");
    let prometheus = format!("http://127.0.0.1:{}", 9090 + offset);
    assert!(stdout.contains(&format!("Prometheus on {prometheus}")), "--observe started no Prometheus");
    let scraped = |path: &str| {
        let answer = Command::new("curl").args(["-fs", &format!("{prometheus}{path}")]).output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&answer.stdout).unwrap_or_default()
    };
    let healthy = || {
        let targets = scraped("/api/v1/targets");
        let targets = targets["data"]["activeTargets"].as_array().cloned().unwrap_or_default();
        targets.iter().filter(|t| t["health"] == "up").count()
    };
    let up = poll_until_blocking(Duration::from_secs(60), healthy, |up| *up >= pipeline_binaries().len());
    assert!(up >= pipeline_binaries().len(), "Prometheus scrapes {up} binaries, not every one");
    let rules = scraped("/api/v1/rules");
    let groups = rules["data"]["groups"].as_array().cloned().unwrap_or_default();
    assert!(groups.iter().any(|g| !g["rules"].as_array().is_none_or(Vec::is_empty)), "no alert rules loaded");
    // The dashboard's latency, as Prometheus computes it from what it scraped: seconds from
    // receiving a source to its side effect, not the document's business date (+Inf).
    let p50 = "histogram_quantile(0.5, sum by (le) (gridsync_flow_source_to_effect_seconds_bucket))";
    let query = format!("/api/v1/query?query={}", p50.replace(' ', "%20").replace('(', "%28").replace(')', "%29"));
    let latency = |answer: &serde_json::Value| {
        let value = answer["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse::<f64>().ok());
        value.filter(|v| !v.is_nan())
    };
    let answer = poll_until_blocking(Duration::from_secs(60), || scraped(&query), |a| latency(a).is_some());
    let seconds = latency(&answer).unwrap_or_else(|| panic!("no latency scraped: {answer}"));
    assert!(seconds.is_finite() && seconds < 120.0, "source to side effect p50 is {seconds} s");
    let processed = state.path().join("tg-mailbox/processed");
    let files = files_in(&processed);
    assert!(files > 0, "the demo's partner files were processed");

    assert!(quick_start.run("stop").status.success());
    let second = quick_start.run("start");
    assert!(second.status.success(), "the second start failed");
    let again = String::from_utf8_lossy(&second.stdout);
    assert!(again.contains("not fed again"), "the second start fed the demo again");
    for n in 1..=8 {
        assert!(!flow_line(&again, n).contains("nothing"), "flow {n} lost its data on a restart");
    }
    assert_eq!(files_in(&processed), files, "the second start dropped the demo's files again");
}
