//! `gridsync status`: every component's own account of itself (its `/status`), like Kafka
//! Connect's connector status: ready or why not, and for a consumer its group, its partitions,
//! the record each paused or retrying partition is held on with the error that holds it, the
//! last error and the records being handled. Exits non-zero when any component is down or not
//! ready, so a script or a probe can use it.

use std::{process::ExitCode, time::Duration};

use anyhow::Context;
use clap::Args;
use serde_json::Value;

/// Each long-running binary's component and where the quick start serves its telemetry.
fn quick_start() -> anyhow::Result<Vec<(String, u16)>> {
    Ok(super::catalog::binaries()?.into_iter().map(|b| (b.component, b.port)).collect())
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A component's telemetry address as `name=http://host:port` (repeatable, or
    /// comma-separated); by default the quick start's, on this machine.
    #[arg(long = "component", env = "GRIDSYNC_STATUS_COMPONENTS", value_delimiter = ',')]
    components: Vec<String>,
    /// Shifts the quick start's ports, as `deploy/run-local.sh` does.
    #[arg(long, env = "GRIDSYNC_PORT_OFFSET", default_value_t = 0)]
    port_offset: u16,
    /// The components' answers as one JSON object, name → `/status` (or the error).
    #[arg(long)]
    json: bool,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let components: Vec<(String, String)> = if args.components.is_empty() {
        quick_start()?
            .into_iter()
            .map(|(name, port)| {
                let port = port.saturating_add(args.port_offset);
                (name, format!("http://127.0.0.1:{port}"))
            })
            .collect()
    } else {
        args.components
            .iter()
            .map(|c| {
                let (name, url) =
                    c.split_once('=').with_context(|| format!("{c:?}: expected name=http://host:port"))?;
                Ok((name.to_owned(), url.trim_end_matches('/').to_owned()))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let answers = futures::future::join_all(components.iter().map(|(_, url)| {
        let client = client.clone();
        async move {
            let answer = client.get(format!("{url}/status")).send().await.map_err(|e| down(&e))?;
            answer.json::<Value>().await.map_err(|e| format!("no status ({e})"))
        }
    }))
    .await;
    let healthy = answers.iter().all(|a| a.as_ref().is_ok_and(|s| s["ready"] == true));
    if args.json {
        let all: serde_json::Map<String, Value> = components
            .iter()
            .zip(&answers)
            .map(|((name, _), answer)| {
                let value = answer.clone().unwrap_or_else(|error| serde_json::json!({ "error": error }));
                (name.clone(), value)
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        for ((name, url), answer) in components.iter().zip(&answers) {
            outln!("{}", describe(name, url, answer));
        }
    }
    Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Why a component did not answer, in the words an operator looks for.
fn down(error: &reqwest::Error) -> String {
    if error.is_connect() {
        "down (nothing answers)".to_owned()
    } else if error.is_timeout() {
        "down (no answer in 5 s)".to_owned()
    } else {
        format!("down ({error})")
    }
}

/// One component's lines: its state, then what holds its partitions.
fn describe(name: &str, url: &str, answer: &Result<Value, String>) -> String {
    let status = match answer {
        Err(error) => return format!("{name:<14} {error}  [{url}]"),
        Ok(status) => status,
    };
    let state = match (&status["ready"], status["waiting_for"].as_str()) {
        (Value::Bool(true), _) => "ready".to_owned(),
        (_, Some(why)) => format!("NOT READY: {why}"),
        _ => "NOT READY".to_owned(),
    };
    let mut out = format!("{name:<14} {state}");
    let consumer = &status["consumer"];
    if consumer.is_null() {
        return out;
    }
    let empty = serde_json::Map::new();
    let assigned = consumer["assigned"].as_object().unwrap_or(&empty);
    let paused = assigned.values().filter(|p| p["paused"] == true).count();
    out.push_str(&format!(
        "  group {}: {} partition(s), {paused} paused, {} record(s) in hand",
        consumer["group"].as_str().unwrap_or("?"),
        assigned.len(),
        consumer["in_flight"]
    ));
    for (partition, state) in assigned {
        let held = &state["held_on"];
        if held.is_object() {
            out.push_str(&format!(
                "\n    {partition}{} held on offset {} since {} ({} attempt(s), {}): {}",
                if state["paused"] == true { " PAUSED," } else { "" },
                held["offset"],
                held["since"].as_str().unwrap_or("?"),
                held["attempts"],
                held["stage"].as_str().unwrap_or("?"),
                held["error"].as_str().unwrap_or("?"),
            ));
        } else if state["paused"] == true {
            out.push_str(&format!("\n    {partition} PAUSED (its worker is behind)"));
        }
    }
    if let Some(last) = consumer["last_error"].as_object() {
        out.push_str(&format!(
            "\n    last error {} on {} offset {}: {}",
            last["at"].as_str().unwrap_or("?"),
            last["partition"].as_str().unwrap_or("?"),
            last["offset"],
            last["error"].as_str().unwrap_or("?")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_partition_is_shown_with_its_record_and_error() {
        let status = serde_json::json!({
            "component": "billing", "ready": true, "waiting_for": null,
            "consumer": {
                "consumer": "billing", "group": "gridsync.billing", "topics": ["t"], "in_flight": 1,
                "assigned": {
                    "t[0]": {"paused": true, "held_on": {"offset": 41, "stage": "PROCESS", "error": "503", "attempts": 7, "since": "2026-12-07T10:00:00.000Z"}},
                    "t[1]": {"paused": false}
                },
                "last_error": {"at": "2026-12-07T10:05:00.000Z", "partition": "t[0]", "offset": 41, "error": "503"}
            }
        });
        let text = describe("billing", "http://x", &Ok(status));
        assert!(
            text.starts_with(
                "billing        ready  group gridsync.billing: 2 partition(s), 1 paused, 1 record(s) in hand"
            ),
            "{text}"
        );
        assert!(
            text.contains("t[0] PAUSED, held on offset 41 since 2026-12-07T10:00:00.000Z (7 attempt(s), PROCESS): 503"),
            "{text}"
        );
        assert!(!text.contains("t[1]"), "{text}");
        let unready = serde_json::json!({"ready": false, "waiting_for": "the hub's content types", "consumer": null});
        assert_eq!(describe("notifications", "u", &Ok(unready)), "notifications  NOT READY: the hub's content types");
    }
}
