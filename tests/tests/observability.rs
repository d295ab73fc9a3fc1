//! The monitoring that ships in `deploy/`: the alert rules pass Prometheus's own `promtool`
//! (syntax, and unit tests in which they fire on what they should and stay quiet otherwise), the
//! scrape configuration loads them, and the Grafana dashboards are well-formed and point at the
//! provisioned data source. That every metric they name is exported by the binaries is checked
//! in `binaries.rs`, against the running binaries. `promtool` is Debian's `prometheus` package,
//! installed by `deploy/test.sh`.

use std::{path::PathBuf, process::Command};

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
    let alerts = rules.lines().filter(|l| l.trim_start().starts_with("- alert:")).count();
    let checked = promtool(&["check", "rules", "alerts.yml"]);
    assert!(checked.contains(&format!("SUCCESS: {alerts} rules found")), "{checked}");
    for rule in rules.split("- alert:").skip(1) {
        let name = rule.lines().next().unwrap_or_default().trim();
        assert!(rule.contains("runbook:"), "{name} has no runbook");
    }
    let tested = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    for config in ["prometheus.yml", "prometheus-compose.yml"] {
        let checked = promtool(&["check", "config", config]);
        assert!(checked.contains(&format!("SUCCESS: {alerts} rules found")), "{config} loads the rules: {checked}");
    }
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
                assert!(expr.contains("gridsync_"), "{title}: {expr:?} queries nothing of gridsync's");
                assert_eq!(expr.matches('(').count(), expr.matches(')').count(), "{title}: {expr}");
                queries += 1;
            }
        }
        assert!(queries >= 15, "{}: {queries} queries", path.display());
    }
    assert!(dashboards >= 1);
}
