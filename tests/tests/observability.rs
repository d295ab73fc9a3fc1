//! The monitoring that ships in `deploy/`: the alert rules pass Prometheus's own `promtool`
//! (syntax, and unit tests in which they fire on what they should and stay quiet otherwise), the
//! scrape configuration loads them, and the Grafana dashboards are well-formed and point at the
//! provisioned data source. That every metric they name is exported by the binaries is checked
//! in `binaries.rs`, against the running binaries. `promtool` is Debian's `prometheus` package,
//! installed by `deploy/test.sh`.

use std::{collections::BTreeSet, path::PathBuf, process::Command};

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// `promtool` with `args`, in `deploy/prometheus`: its output, which must say it succeeded.
fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(deploy().join("prometheus"))
        .output()
        .expect("promtool (Debian's prometheus package; deploy/test.sh installs it)");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn the_alert_rules_pass_promtool_and_fire_on_what_they_should() {
    let rules = std::fs::read_to_string(deploy().join("prometheus/alerts.yml")).unwrap();
    let parsed: serde_yaml::Value = serde_yaml::from_str(&rules).unwrap();
    let rules_of = parsed["groups"].as_sequence().unwrap().iter().flat_map(|g| g["rules"].as_sequence().unwrap());
    let alerts: BTreeSet<String> = rules_of.clone().map(|r| r["alert"].as_str().unwrap().to_owned()).collect();
    let checked = promtool(&["check", "rules", "alerts.yml"]);
    assert!(checked.contains(&format!("SUCCESS: {} rules found", alerts.len())), "{checked}");
    // Each links its section of the runbooks, and every section is an alert's.
    let runbooks = std::fs::read_to_string(deploy().join("../docs/RUNBOOKS.md")).unwrap();
    let sections: BTreeSet<String> =
        runbooks.lines().filter_map(|l| l.strip_prefix("## ")).map(|h| h.trim().to_owned()).collect();
    assert_eq!(sections, alerts, "docs/RUNBOOKS.md has a section per alert");
    for rule in rules_of {
        let name = rule["alert"].as_str().unwrap();
        let url = rule["annotations"]["runbook_url"].as_str().unwrap_or_default();
        assert_eq!(url, format!("docs/RUNBOOKS.md#{}", name.to_lowercase()), "{name}'s runbook_url");
    }
    // Every rule is unit-tested, firing at least once and quiet at least once.
    let tests: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(deploy().join("prometheus/alerts.test.yml")).unwrap()).unwrap();
    let cases: Vec<&serde_yaml::Value> = tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_sequence().unwrap())
        .collect();
    for alert in &alerts {
        let of = |firing: bool| {
            cases
                .iter()
                .filter(|c| c["alertname"] == alert.as_str())
                .any(|c| c["exp_alerts"].as_sequence().is_some_and(|a| a.is_empty() != firing))
        };
        assert!(of(true) && of(false), "alerts.test.yml: {alert} is not tested firing and quiet");
    }
    // "Binary down" names every component that has no target left, not only those answering 0.
    let down = &parsed["groups"][0]["rules"][0];
    assert_eq!(down["alert"], "GridsyncBinaryDown");
    let components: Vec<String> =
        gridsync_tests::pipeline_binaries().iter().map(|b| b.trim_end_matches("-consumer").to_owned()).collect();
    for component in components.iter().map(String::as_str).chain(["lag-exporter"]) {
        let absent = format!("component=\"{component}\"}})");
        assert!(down["expr"].as_str().unwrap().contains(&absent), "GridsyncBinaryDown misses {component}");
    }
    let tested = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    for config in ["prometheus.yml", "prometheus-compose.yml"] {
        let checked = promtool(&["check", "config", config]);
        let found = format!("SUCCESS: {} rules found", alerts.len());
        assert!(checked.contains(&found), "{config} loads the rules: {checked}");
    }
    // Alerts go to the compose file's Alertmanager, whose routing its own amtool accepts.
    let compose: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(deploy().join("prometheus/prometheus-compose.yml")).unwrap())
            .unwrap();
    let targets = &compose["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0];
    assert_eq!(targets, "alertmanager:9093");
    let output = Command::new("amtool")
        .args(["check-config", "alertmanager/alertmanager.yml"])
        .current_dir(deploy())
        .output()
        .expect("amtool (Debian's prometheus-alertmanager package; deploy/test.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && text.contains("SUCCESS"),
        "amtool: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_dashboards_are_well_formed_and_use_the_provisioned_data_source() {
    let provisioned =
        std::fs::read_to_string(deploy().join("grafana/provisioning/datasources/prometheus.yml")).unwrap();
    let uid = provisioned.lines().find_map(|l| l.trim().strip_prefix("uid: ")).unwrap().trim().to_owned();
    let mut dashboards = 0;
    for entry in std::fs::read_dir(deploy().join("grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        dashboards += 1;
        assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()), "{}", path.display());
        let panels = dashboard["panels"].as_array().unwrap();
        let mut ids = std::collections::BTreeSet::new();
        let mut queries = 0;
        for panel in panels {
            assert!(ids.insert(panel["id"].as_i64().unwrap()), "panel ids repeat in {}", path.display());
            if panel["type"] == "row" {
                continue;
            }
            let title = panel["title"].as_str().unwrap_or_default();
            assert_eq!(panel["datasource"]["uid"], uid.as_str(), "{title}");
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{title} has no query");
            for target in targets {
                let expr = target["expr"].as_str().unwrap_or_default();
                // gridsync's metrics, or the standard ones of its targets (up, process_*).
                let ours = expr.contains("gridsync") || expr.contains("component=~\"$component\"");
                assert!(ours, "{title}: {expr:?} queries nothing of gridsync's");
                assert_eq!(expr.matches('(').count(), expr.matches(')').count(), "{title}: {expr}");
                queries += 1;
            }
        }
        assert!(queries >= 15, "{}: {queries} queries", path.display());
        check_layout(&path.display().to_string(), panels);
    }
    assert!(dashboards >= 1);
}

/// The overview dashboard: what an operator looks for first, and a row per flow consumer.
#[test]
fn the_dashboard_has_a_row_per_flow_and_what_an_operator_looks_for() {
    let dashboard: serde_json::Value =
        serde_json::from_slice(&std::fs::read(deploy().join("grafana/dashboards/gridsync.json")).unwrap()).unwrap();
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            assert!(v["query"]["query"].as_str().is_some_and(|q| q.starts_with("label_values(")), "{v}");
            v["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(variables, ["component", "partner"]);
    let panels = dashboard["panels"].as_array().unwrap();
    let expressions = |panel: &serde_json::Value| -> String {
        panel["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["expr"].as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let all: String = panels.iter().map(expressions).collect::<Vec<_>>().join(" ");
    for variable in variables {
        assert!(all.contains(&format!("=~\"${variable}\"")), "no panel filters by ${variable}");
    }
    // Health and the edges: up and restarts, rebalances, Amplience answers by status, webhook
    // answer time, the credentials' state, lag from the broker.
    for metric in [
        "up{",
        "process_start_time_seconds",
        "gridsync_rebalances_total",
        "gridsync_amplience_api_responses_total",
        "gridsync_amp_webhook_seconds_bucket",
        "gridsync_amp_amplience_credentials_ok",
        "gridsync_group_lag",
        "gridsync_kafka_broker_rtt_seconds",
    ] {
        assert!(all.contains(metric), "the dashboard shows no {metric}");
    }
    // A row per flow consumer, its flows in its title, with its in, out, failures and latency.
    let catalog = gridsync_schemas::catalog::catalog().unwrap();
    for consumer in &catalog.consumers {
        let name = format!("({})", consumer.name);
        let at = panels
            .iter()
            .position(|p| {
                p["type"] == "row" && p["title"].as_str().is_some_and(|t| t.starts_with("Flow") && t.contains(&name))
            })
            .unwrap_or_else(|| panic!("no row for {}", consumer.name));
        let in_row: Vec<&serde_json::Value> = panels[at + 1..].iter().take_while(|p| p["type"] != "row").collect();
        for part in ["In:", "Out:", "Failures:", "Latency:"] {
            let panel = in_row.iter().find(|p| p["title"].as_str().is_some_and(|t| t.starts_with(part)));
            let panel = panel.unwrap_or_else(|| panic!("{}'s row has no {part} panel", consumer.name));
            let expr = expressions(panel);
            let filtered = [format!("component=\"{}\"", consumer.name), format!("flow=\"{}\"", consumer.name)];
            assert!(
                part == "Out:" && consumer.name == "audit" || filtered.iter().any(|f| expr.contains(f)),
                "{}: {part} {expr}",
                consumer.name
            );
        }
    }
}

/// Panels tile the dashboard: inside each row, every line of panels spans the full 24 columns
/// without overlapping, and rows follow one another with no empty band.
fn check_layout(place: &str, panels: &[serde_json::Value]) {
    let mut y = 0;
    let mut line: Vec<(i64, i64, i64)> = Vec::new(); // x, w, h of the panels on the current line
    let flush = |line: &mut Vec<(i64, i64, i64)>, y: &mut i64| {
        if line.is_empty() {
            return;
        }
        line.sort_unstable();
        let mut x = 0;
        for (at, w, _) in line.iter() {
            assert_eq!(*at, x, "{place}: a gap or overlap at line y={y}: {line:?}");
            x += w;
        }
        assert_eq!(x, 24, "{place}: the line at y={y} does not span the width: {line:?}");
        let height = line[0].2;
        assert!(line.iter().all(|(_, _, h)| *h == height), "{place}: uneven heights at y={y}");
        *y += height;
        line.clear();
    };
    for panel in panels {
        let grid = &panel["gridPos"];
        let (x, py, w, h) = (
            grid["x"].as_i64().unwrap(),
            grid["y"].as_i64().unwrap(),
            grid["w"].as_i64().unwrap(),
            grid["h"].as_i64().unwrap(),
        );
        if py != y || panel["type"] == "row" {
            flush(&mut line, &mut y);
        }
        assert_eq!(py, y, "{place}: {} starts at y={py}, the dashboard is at y={y}", panel["title"]);
        if panel["type"] == "row" {
            assert_eq!((x, w, h), (0, 24, 1), "{place}: row {}", panel["title"]);
            y += 1;
        } else {
            line.push((x, w, h));
        }
    }
    flush(&mut line, &mut y);
}
