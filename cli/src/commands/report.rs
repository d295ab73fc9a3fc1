//! `gridsync report`: what each of the eight flows did, one line per flow, read from the audit
//! store (every event and every side effect lands there, whichever consumer performed it): what
//! came in, what went out and where, with which content versions, and how long it took from the
//! source event to the side effect. With `--expect`, it waits until every flow named has
//! reported and the store has settled: the quick start's report, and its test.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Args;
use gridsync_store::{
    audit::{AuditEntry, AuditLog, CausedEffect, Recording},
    Store,
};
use serde_json::Value;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The audit store the audit consumer writes.
    #[arg(long = "audit-store-url", env = "GRIDSYNC_AUDIT_STORE_URL", default_value = "sqlite://gridsync-audit.db")]
    store_url: String,
    /// Only what gridsync learned of since this time (RFC 3339; default: the last 24 hours).
    #[arg(long)]
    since: Option<String>,
    /// Flows (by number, as the report lists them) that must report: waits for them (and for
    /// the store to settle), and fails naming those that did not report within --timeout-secs.
    #[arg(long, value_delimiter = ',', value_parser = flow_number)]
    expect: Vec<u8>,
    #[arg(long, default_value_t = 180)]
    timeout_secs: u64,
    /// How long nothing new must arrive before the store counts as settled.
    #[arg(long, default_value_t = 2_000)]
    settle_ms: u64,
}

use gridsync_audit::flows::{self as catalog_flows, flow_of, AUDIT_FLOW};

/// A flow's number, one of the catalog's.
fn flow_number(text: &str) -> Result<u8, String> {
    let numbers = || catalog_flows::flows().iter().map(|f| f.number.to_string()).collect::<Vec<_>>().join(", ");
    text.parse::<u8>()
        .ok()
        .filter(|n| catalog_flows::flow(*n).is_some())
        .ok_or_else(|| format!("not a flow: {text} (flows: {})", numbers()))
}

/// What one flow did.
#[derive(Default)]
struct FlowReport {
    /// Source event type → distinct events.
    sources: BTreeMap<String, BTreeSet<String>>,
    /// (action, target system) → side effects.
    effects: BTreeMap<(String, String), usize>,
    recipients: BTreeSet<String>,
    /// Content item → versions used.
    content: BTreeMap<String, BTreeSet<i64>>,
    /// Milliseconds from source event to side effect.
    delays_ms: Vec<i64>,
}

impl FlowReport {
    fn add(&mut self, effect: &AuditEntry, body: &Value, cause: Option<&AuditEntry>) {
        let text = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
        let source_id = body.get("source_event_id").and_then(Value::as_str).unwrap_or("").to_owned();
        self.sources.entry(text("source_event_type")).or_default().insert(source_id);
        *self.effects.entry((text("action"), target_name(&text("target_system")))).or_default() += 1;
        if let Some(recipient) = body.get("recipient").and_then(Value::as_str) {
            self.recipients.insert(recipient.to_owned());
        }
        if let (Some(id), Some(version)) = (&effect.content_item_id, effect.content_version) {
            self.content.entry(id.clone()).or_default().insert(version);
        }
        if let Some(cause) = cause {
            self.delays_ms.push((effect.seen_at - cause.seen_at).max(0));
        }
    }

    fn line(&self) -> String {
        let sources: Vec<String> = self.sources.iter().map(|(kind, ids)| format!("{} {kind}", ids.len())).collect();
        let effects: Vec<String> =
            self.effects.iter().map(|((action, target), n)| format!("{n} {action} -> {target}")).collect();
        let mut line = format!("in: {}; out: {}", sources.join(", "), effects.join(", "));
        if !self.recipients.is_empty() {
            line.push_str(&format!(" (to {})", shortened(self.recipients.iter().cloned().collect(), 3)));
        }
        if !self.content.is_empty() {
            let used = self
                .content
                .iter()
                .map(|(id, versions)| {
                    let versions: Vec<String> = versions.iter().map(|v| format!("v{v}")).collect();
                    format!("{id} {}", versions.join("/"))
                })
                .collect();
            line.push_str(&format!("; content {}", shortened(used, 2)));
        }
        line.push_str(&format!("; {}", took(&self.delays_ms, "source event to side effect")));
        line
    }
}

fn target_name(target: &str) -> String {
    match target {
        "AMPLIENCE" => "Amplience".to_owned(),
        "TRADING_GRID" => "Trading Grid".to_owned(),
        other => other.to_owned(),
    }
}

/// The first `most` of `items`, and how many more.
fn shortened(items: Vec<String>, most: usize) -> String {
    let more = items.len().saturating_sub(most);
    let mut shown: Vec<String> = items.into_iter().take(most).collect();
    if more > 0 {
        shown.push(format!("{more} more"));
    }
    shown.join(", ")
}

/// "took p50 0.4 s, max 1.2 s (what)" of sorted or unsorted delays.
fn took(delays_ms: &[i64], what: &str) -> String {
    if delays_ms.is_empty() {
        return format!("{what}: not timed (source event not recorded)");
    }
    let mut sorted = delays_ms.to_vec();
    sorted.sort_unstable();
    let seconds = |ms: i64| format!("{:.1} s", ms as f64 / 1000.0);
    let p50 = sorted[(sorted.len() - 1) / 2];
    let max = sorted[sorted.len() - 1];
    format!("{what} p50 {}, max {}", seconds(p50), seconds(max))
}

/// Every flow's report, from what the store holds.
async fn reports(log: &AuditLog, since_ms: i64) -> anyhow::Result<(BTreeMap<u8, FlowReport>, Recording)> {
    let effects: Vec<CausedEffect> = log.effects_since(since_ms).await?;
    let mut flows: BTreeMap<u8, FlowReport> = BTreeMap::new();
    for CausedEffect { effect, cause } in &effects {
        let body: Value = serde_json::from_str(&effect.body).unwrap_or(Value::Null);
        let cause_body = cause.as_ref().and_then(|c| serde_json::from_str::<Value>(&c.body).ok());
        flows.entry(flow_of(&body, cause_body.as_ref())).or_default().add(effect, &body, cause.as_ref());
    }
    Ok((flows, log.recording_since(since_ms).await?))
}

fn reported(flows: &BTreeMap<u8, FlowReport>, recording: &Recording, flow: u8) -> bool {
    if flow == AUDIT_FLOW {
        recording.events > 0
    } else {
        flows.contains_key(&flow)
    }
}

pub async fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let store = Store::connect(&args.store_url).await.context("opening the audit store")?;
    let log = store.audit();
    let since_ms = match &args.since {
        Some(since) => chrono::DateTime::parse_from_rfc3339(since)
            .with_context(|| format!("--since {since:?} is not an RFC 3339 time"))?
            .timestamp_millis(),
        None => chrono::Utc::now().timestamp_millis() - 24 * 3_600_000,
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_secs);
    // Waits until every expected flow reported and nothing new arrived for the settle time:
    // the flows' consumers work at their own pace, and a fixed sleep would be either too
    // short on a slow machine or needlessly long on a fast one.
    let (mut last_seen, mut settled_since) = (None, Instant::now());
    // On a terminal, which flows are still awaited (hidden when the output is not one).
    let waiting = indicatif::ProgressBar::new_spinner();
    waiting.enable_steady_tick(Duration::from_millis(200));
    let (flows, recording) = loop {
        let (flows, recording) = reports(&log, since_ms).await?;
        let missing: Vec<u8> = args.expect.iter().copied().filter(|f| !reported(&flows, &recording, *f)).collect();
        let seen = (recording.events, flows.values().map(|f| f.effects.values().sum::<usize>()).sum::<usize>());
        if last_seen != Some(seen) {
            (last_seen, settled_since) = (Some(seen), Instant::now());
        }
        let settled = settled_since.elapsed() >= Duration::from_millis(args.settle_ms);
        if args.expect.is_empty() || (missing.is_empty() && settled) {
            waiting.finish_and_clear();
            break (flows, recording);
        }
        let awaited: Vec<String> = missing.iter().map(u8::to_string).collect();
        waiting.set_message(if awaited.is_empty() {
            format!("every flow reported; waiting for the store to settle ({} s)", started.elapsed().as_secs())
        } else {
            format!("waiting for flows {} ({} s)", awaited.join(", "), started.elapsed().as_secs())
        });
        if Instant::now() >= deadline {
            waiting.finish_and_clear();
            print_report(&flows, &recording)?;
            let missing: Vec<String> = missing
                .iter()
                .map(|f| format!("{f} ({})", catalog_flows::flow(*f).map_or("", |flow| flow.name.as_str())))
                .collect();
            if missing.is_empty() {
                break (flows, recording);
            }
            eprintln!(
                "flows that did not report within {} s: {}; see the consumers' logs and `gridsync dlq show <consumer>`",
                args.timeout_secs,
                missing.join(", ")
            );
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    print_report(&flows, &recording)?;
    Ok(ExitCode::SUCCESS)
}

fn print_report(flows: &BTreeMap<u8, FlowReport>, recording: &Recording) -> anyhow::Result<()> {
    for flow in catalog_flows::flows() {
        let (n, name) = (flow.number, &flow.name);
        let line = if n == AUDIT_FLOW {
            if recording.events == 0 {
                "nothing recorded yet".to_owned()
            } else {
                format!(
                    "{} events of {} types from {} recorded; {}",
                    recording.events,
                    recording.event_types,
                    recording.source_systems.join(" and "),
                    took(&recording.delays_ms, "event to audit record")
                )
            }
        } else {
            flows.get(&n).map_or_else(|| "nothing yet".to_owned(), FlowReport::line)
        };
        outln!("flow {n}  {name:<30} {line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_told_by_their_median_and_maximum() {
        assert_eq!(took(&[1_200, 300, 500], "x"), "x p50 0.5 s, max 1.2 s");
        assert_eq!(took(&[], "x"), "x: not timed (source event not recorded)");
    }
}
