//! The Prometheus metrics every gridsync binary exports.
//!
//! One [`Metrics`] per process, cheap to clone; methods are named after what
//! happened, so call sites read as telemetry events.

use std::time::Duration;

use prometheus::{
    exponential_buckets, histogram_opts, opts, Encoder, HistogramVec, IntCounterVec, IntGaugeVec, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    records_in: IntCounterVec,
    records_out: IntCounterVec,
    records_processed: IntCounterVec,
    failures: IntCounterVec,
    dead_letters: IntCounterVec,
    retries: IntCounterVec,
    processing_seconds: HistogramVec,
    produce_seconds: HistogramVec,
    consumer_lag: IntGaugeVec,
    rebalances: IntCounterVec,
    partition_pauses: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(opts!(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

use crate::kafka::dead_letter::Stage;

impl Metrics {
    /// Registers every metric, each labelled with the binary's name as `component`.
    pub fn new(component: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(
            Some("gridsync".into()),
            Some([("component".to_owned(), component.to_owned())].into()),
        )?;
        let latency = exponential_buckets(0.0005, 2.0, 16)?;
        let processing_seconds = HistogramVec::new(
            histogram_opts!(
                "processing_seconds",
                "Time from receiving a record to storing its offset.",
                latency.clone()
            ),
            &["topic"],
        )?;
        registry.register(Box::new(processing_seconds.clone()))?;
        let produce_seconds = HistogramVec::new(
            histogram_opts!("produce_seconds", "Time from send to broker acknowledgement.", latency),
            &["topic"],
        )?;
        registry.register(Box::new(produce_seconds.clone()))?;
        let consumer_lag = IntGaugeVec::new(
            opts!("consumer_lag", "Records behind the partition's high watermark, per partition."),
            &["topic", "partition"],
        )?;
        registry.register(Box::new(consumer_lag.clone()))?;
        let failures = counter(&registry, "failures_total", "Failures by stage and reason.", &["stage", "reason"])?;
        // Every binary produces (events, reports, dead letters): its produce failures start at
        // zero, so an alert sees the first one.
        for reason in ["kafka", "queue_full"] {
            failures.with_label_values(&["produce", reason]);
        }
        Ok(Metrics {
            records_in: counter(&registry, "records_in_total", "Records received from Kafka.", &["topic"])?,
            records_out: counter(
                &registry,
                "records_out_total",
                "Records acknowledged by Kafka after producing.",
                &["topic"],
            )?,
            records_processed: counter(
                &registry,
                "records_processed_total",
                "Records whose offset was stored, by outcome.",
                &["topic", "outcome"],
            )?,
            failures,
            dead_letters: counter(
                &registry,
                "dead_letters_total",
                "Records sent to a dead-letter topic, by original topic.",
                &["topic", "stage"],
            )?,
            retries: counter(&registry, "retries_total", "Retries after transient failures.", &["topic"])?,
            rebalances: counter(&registry, "rebalances_total", "Consumer group rebalances by kind.", &["kind"])?,
            partition_pauses: counter(
                &registry,
                "partition_pauses_total",
                "Partitions paused because their worker fell behind (a record being retried).",
                &["topic"],
            )?,
            processing_seconds,
            produce_seconds,
            consumer_lag,
            registry,
        })
    }

    /// Registers a component's own collector (e.g. flow-specific counters).
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    /// Creates a consumer's per-topic series at zero, so that they exist before the first
    /// record, dead letter or retry: an alert on `increase(...)` then sees the first one too,
    /// and a dashboard shows 0 rather than nothing.
    pub fn start_consuming(&self, topics: &[String]) {
        for topic in topics {
            let topic = topic.as_str();
            self.records_in.with_label_values(&[topic]);
            self.records_processed.with_label_values(&[topic, "ok"]);
            self.processing_seconds.with_label_values(&[topic]);
            for stage in [Stage::Decode, Stage::Process] {
                self.dead_letters.with_label_values(&[topic, stage.as_str()]);
            }
            self.retries.with_label_values(&[topic]);
            self.partition_pauses.with_label_values(&[topic]);
        }
    }

    pub fn record_received(&self, topic: &str) {
        self.records_in.with_label_values(&[topic]).inc();
    }

    pub fn record_produced(&self, topic: &str, took: Duration) {
        self.records_out.with_label_values(&[topic]).inc();
        self.produce_seconds.with_label_values(&[topic]).observe(took.as_secs_f64());
    }

    pub fn record_processed(&self, topic: &str, outcome: &str, took: Duration) {
        self.records_processed.with_label_values(&[topic, outcome]).inc();
        self.processing_seconds.with_label_values(&[topic]).observe(took.as_secs_f64());
    }

    pub fn failure(&self, stage: &str, reason: &str) {
        self.failures.with_label_values(&[stage, reason]).inc();
    }

    pub fn dead_lettered(&self, topic: &str, stage: &str) {
        self.dead_letters.with_label_values(&[topic, stage]).inc();
    }

    pub fn retried(&self, topic: &str) {
        self.retries.with_label_values(&[topic]).inc();
    }

    pub fn rebalance(&self, kind: &str) {
        self.rebalances.with_label_values(&[kind]).inc();
    }

    pub fn partition_paused(&self, topic: &str) {
        self.partition_pauses.with_label_values(&[topic]).inc();
    }

    pub fn set_consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.consumer_lag.with_label_values(&[topic, &partition.to_string()]).set(lag);
    }

    /// Forgets a partition's lag once it is no longer assigned here.
    pub fn clear_consumer_lag(&self, topic: &str, partition: i32) {
        let _ = self.consumer_lag.remove_label_values(&[topic, &partition.to_string()]);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec only fails on metric families that cannot be built; none are.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample line of `text` whose name and labels include every fragment (any order).
    fn sample<'a>(text: &'a str, fragments: &[&str]) -> Option<&'a str> {
        text.lines().find(|l| !l.starts_with('#') && fragments.iter().all(|f| l.contains(f)))
    }

    #[test]
    fn renders_prometheus_text_with_component_label() {
        let m = Metrics::new("billing").unwrap();
        m.record_received("gridsync.tg.invoices");
        m.dead_lettered("gridsync.tg.invoices", "DECODE");
        m.set_consumer_lag("gridsync.tg.invoices", 2, 17);
        let text = m.render();
        let topic = r#"topic="gridsync.tg.invoices""#;
        let component = r#"component="billing""#;
        assert!(
            sample(&text, &["gridsync_records_in_total{", topic, component]).is_some_and(|l| l.ends_with(" 1")),
            "{text}"
        );
        assert!(sample(&text, &["gridsync_dead_letters_total{", topic, r#"stage="DECODE""#, component])
            .is_some_and(|l| l.ends_with(" 1")));
        assert!(
            sample(&text, &["gridsync_consumer_lag{", topic, r#"partition="2""#]).is_some_and(|l| l.ends_with(" 17"))
        );
        m.clear_consumer_lag("gridsync.tg.invoices", 2);
        assert!(sample(&m.render(), &["gridsync_consumer_lag{"]).is_none());
    }
}
