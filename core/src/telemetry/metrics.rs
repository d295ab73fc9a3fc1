//! The Prometheus metrics every gridsync binary exports.
//!
//! One [`Metrics`] per process, cheap to clone; methods are named after what
//! happened, so call sites read as telemetry events.

use std::time::Duration;

use prometheus::{
    exponential_buckets, histogram_opts, opts, Encoder, GaugeVec, HistogramVec, IntCounterVec, IntGaugeVec, Registry,
    TextEncoder,
};
use rdkafka::statistics::Statistics;

/// The commit a binary was built from, when the build said (the Dockerfile passes it).
const BUILD_COMMIT: &str = match option_env!("GRIDSYNC_BUILD_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};

/// One topic's per-record series (see [`Metrics::topic_series`]).
#[derive(Clone)]
pub struct TopicSeries {
    metrics: Metrics,
    topic: String,
    received: prometheus::IntCounter,
    ok: prometheus::IntCounter,
    processing: prometheus::Histogram,
}

impl TopicSeries {
    pub fn record_received(&self) {
        self.received.inc();
    }

    pub fn record_processed(&self, outcome: &str, took: Duration) {
        match outcome {
            "ok" => self.ok.inc(),
            // Rarer outcomes (skipped, dead-lettered) are looked up as they come.
            other => self.metrics.records_processed.with_label_values(&[&self.topic, other]).inc(),
        }
        self.processing.observe(took.as_secs_f64());
    }
}

#[derive(Clone)]
pub struct Metrics {
    component: String,
    registry: Registry,
    /// The standard `process_*` metrics, unprefixed as every Prometheus client exports them.
    process: Registry,
    kafka: KafkaClientMetrics,
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
    partitions_paused: IntGaugeVec,
    retrying_since: GaugeVec,
}

/// What librdkafka's statistics say about a client and its brokers (every 5 s).
#[derive(Clone)]
struct KafkaClientMetrics {
    rtt: GaugeVec,
    errors: IntCounterVec,
    waiting: IntGaugeVec,
    queued: IntGaugeVec,
}

impl KafkaClientMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let rtt = GaugeVec::new(
            opts!("kafka_broker_rtt_seconds", "Round-trip time to each broker over librdkafka's last window."),
            &["client", "broker", "quantile"],
        )?;
        registry.register(Box::new(rtt.clone()))?;
        let waiting = IntGaugeVec::new(
            opts!(
                "kafka_broker_requests_waiting",
                "Requests to each broker queued to be sent (outbuf) or sent and awaiting their answer (in_flight)."
            ),
            &["client", "broker", "queue"],
        )?;
        registry.register(Box::new(waiting.clone()))?;
        let queued = IntGaugeVec::new(
            opts!(
                "kafka_client_queue_messages",
                "Messages in librdkafka's queues: produced and not yet acknowledged (producer), or fetched and not \
                 yet handed to gridsync (consumer)."
            ),
            &["client"],
        )?;
        registry.register(Box::new(queued.clone()))?;
        Ok(KafkaClientMetrics {
            rtt,
            errors: counter(
                registry,
                "kafka_broker_errors_total",
                "Errors talking to each broker: send and receive errors, requests timed out, disconnections.",
                &["client", "broker", "kind"],
            )?,
            waiting,
            queued,
        })
    }

    fn record(&self, client: &str, statistics: &Statistics) {
        let queued = match client {
            "consumer" => {
                statistics.topics.values().flat_map(|t| t.partitions.values()).map(|p| p.fetchq_cnt.max(0)).sum::<i64>()
            }
            _ => i64::try_from(statistics.msg_cnt).unwrap_or(i64::MAX),
        };
        self.queued.with_label_values(&[client]).set(queued);
        // Bootstrap entries (node id -1) stand in for brokers not yet known by id.
        for broker in statistics.brokers.values().filter(|b| b.nodeid >= 0) {
            let name = broker.nodename.as_str();
            if let Some(rtt) = &broker.rtt {
                for (quantile, micros) in [("0.5", rtt.p50), ("0.99", rtt.p99)] {
                    self.rtt.with_label_values(&[client, name, quantile]).set(micros as f64 / 1e6);
                }
            }
            let waiting = [("outbuf", broker.outbuf_cnt), ("in_flight", broker.waitresp_cnt)];
            for (queue, count) in waiting {
                self.waiting.with_label_values(&[client, name, queue]).set(count);
            }
            let disconnects = broker.disconnects.and_then(|d| u64::try_from(d).ok()).unwrap_or(0);
            let errors = [
                ("tx", broker.txerrs),
                ("rx", broker.rxerrs),
                ("timeout", broker.req_timeouts),
                ("disconnect", disconnects),
            ];
            for (kind, total) in errors {
                // librdkafka counts since the client started: the counter follows its total.
                let counter = self.errors.with_label_values(&[client, name, kind]);
                counter.inc_by(total.saturating_sub(counter.get()));
            }
        }
    }
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
        let labels: std::collections::HashMap<String, String> = [("component".to_owned(), component.to_owned())].into();
        let process = Registry::new_custom(None, Some(labels))?;
        process.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        let build_info = IntGaugeVec::new(
            opts!("build_info", "1, labelled with the version and commit the binary was built from."),
            &["version", "commit"],
        )?;
        registry.register(Box::new(build_info.clone()))?;
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION"), BUILD_COMMIT]).set(1);
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
        let partitions_paused = IntGaugeVec::new(
            opts!(
                "partitions_paused",
                "Partitions paused now because their worker is behind (a record being retried holds it)."
            ),
            &["topic"],
        )?;
        registry.register(Box::new(partitions_paused.clone()))?;
        let retrying_since = GaugeVec::new(
            opts!(
                "record_retrying_since_timestamp_seconds",
                "When the record a partition is retrying first failed (Unix time); absent while none is."
            ),
            &["topic", "partition"],
        )?;
        registry.register(Box::new(retrying_since.clone()))?;
        Ok(Metrics {
            component: component.to_owned(),
            kafka: KafkaClientMetrics::new(&registry)?,
            process,
            partitions_paused,
            retrying_since,
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

    /// The binary's name, as its `component` label says.
    pub fn component(&self) -> &str {
        &self.component
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
            self.partitions_paused.with_label_values(&[topic]);
        }
    }

    /// `topic`'s series that change with every record, looked up once: for a partition's worker,
    /// which would otherwise hash the labels and take the vector's lock three times a record.
    pub fn topic_series(&self, topic: &str) -> TopicSeries {
        TopicSeries {
            metrics: self.clone(),
            topic: topic.to_owned(),
            received: self.records_in.with_label_values(&[topic]),
            ok: self.records_processed.with_label_values(&[topic, "ok"]),
            processing: self.processing_seconds.with_label_values(&[topic]),
        }
    }

    pub fn record_produced(&self, topic: &str, took: Duration) {
        self.records_out.with_label_values(&[topic]).inc();
        self.produce_seconds.with_label_values(&[topic]).observe(took.as_secs_f64());
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

    /// A partition was paused (`true`) or resumed.
    pub fn partition_paused(&self, topic: &str, paused: bool) {
        let gauge = self.partitions_paused.with_label_values(&[topic]);
        if paused {
            self.partition_pauses.with_label_values(&[topic]).inc();
            gauge.inc();
        } else {
            gauge.dec();
        }
    }

    /// A partition's record is being retried since `since` (`None`: it no longer is).
    pub fn retrying_since(&self, topic: &str, partition: i32, since: Option<std::time::SystemTime>) {
        let partition = partition.to_string();
        match since {
            Some(since) => {
                let at = since.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
                self.retrying_since.with_label_values(&[topic, &partition]).set(at);
            }
            None => {
                let _ = self.retrying_since.remove_label_values(&[topic, &partition]);
            }
        }
    }

    /// librdkafka's statistics of one of this binary's clients (`consumer` or `producer`).
    pub fn kafka_statistics(&self, client: &str, statistics: &Statistics) {
        self.kafka.record(client, statistics);
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
        let mut families = self.registry.gather();
        families.extend(self.process.gather());
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
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
        m.topic_series("gridsync.tg.invoices").record_received();
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
        // The process's own figures, unprefixed as every Prometheus client has them.
        assert!(sample(&text, &["process_resident_memory_bytes{", component]).is_some(), "{text}");
        assert!(sample(&text, &["gridsync_build_info{", component, "version="]).is_some_and(|l| l.ends_with(" 1")));
    }

    #[test]
    fn a_retried_record_and_a_paused_partition_show_while_they_last() {
        let m = Metrics::new("billing").unwrap();
        let topic = r#"topic="t""#;
        m.start_consuming(&["t".to_owned()]);
        let since = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        m.retrying_since("t", 3, Some(since));
        m.partition_paused("t", true);
        let text = m.render();
        let held = sample(&text, &["gridsync_record_retrying_since_timestamp_seconds{", topic, r#"partition="3""#]);
        assert!(held.is_some_and(|l| l.ends_with(" 1800000000")), "{text}");
        assert!(sample(&text, &["gridsync_partitions_paused{", topic]).is_some_and(|l| l.ends_with(" 1")));
        m.retrying_since("t", 3, None);
        m.partition_paused("t", false);
        let text = m.render();
        assert!(sample(&text, &["gridsync_record_retrying_since_timestamp_seconds{"]).is_none(), "{text}");
        assert!(sample(&text, &["gridsync_partitions_paused{", topic]).is_some_and(|l| l.ends_with(" 0")));
        assert!(sample(&text, &["gridsync_partition_pauses_total{", topic]).is_some_and(|l| l.ends_with(" 1")));
    }

    #[test]
    fn librdkafka_statistics_become_broker_and_queue_metrics() {
        let m = Metrics::new("notifications").unwrap();
        let statistics = |txerrs: u64| -> Statistics {
            let json = r#"{
                "name": "rdkafka#producer-1", "client_id": "rdkafka", "type": "producer", "ts": 1, "time": 1,
                "age": 1, "replyq": 0, "msg_cnt": 12, "msg_size": 0, "msg_max": 0, "msg_size_max": 0,
                "simple_cnt": 0, "metadata_cache_cnt": 0, "tx": 0, "tx_bytes": 0, "rx": 0, "rx_bytes": 0,
                "txmsgs": 0, "txmsg_bytes": 0, "rxmsgs": 0, "rxmsg_bytes": 0,
                "brokers": {"localhost:9092/1": {
                    "name": "localhost:9092/1", "nodeid": 1, "nodename": "localhost:9092", "source": "learned",
                    "state": "UP", "stateage": 1, "outbuf_cnt": 2, "outbuf_msg_cnt": 0, "waitresp_cnt": 3,
                    "waitresp_msg_cnt": 0, "tx": 10, "txbytes": 0, "txerrs": TXERRS, "txretries": 0, "txidle": 0,
                    "req_timeouts": 1, "rx": 10, "rxbytes": 0, "rxerrs": 0, "rxcorriderrs": 0, "rxpartial": 0,
                    "rxidle": 0, "zbuf_grow": 0, "buf_grow": 0, "wakeups": 0, "connects": 1, "disconnects": 0,
                    "req": {}, "toppars": {},
                    "rtt": {"min": 100, "max": 9000, "avg": 500, "sum": 0, "cnt": 1, "stddev": 0, "hdrsize": 0,
                            "p50": 400, "p75": 0, "p90": 0, "p95": 0, "p99": 8000, "p99_99": 0, "outofrange": 0}
                }},
                "topics": {}
            }"#;
            serde_json::from_str(&json.replace("TXERRS", &txerrs.to_string())).unwrap()
        };
        m.kafka_statistics("producer", &statistics(2));
        m.kafka_statistics("producer", &statistics(5));
        let text = m.render();
        let broker = r#"broker="localhost:9092""#;
        let client = r#"client="producer""#;
        assert!(
            sample(&text, &["gridsync_kafka_broker_rtt_seconds{", broker, client, r#"quantile="0.99""#])
                .is_some_and(|l| l.ends_with(" 0.008")),
            "{text}"
        );
        // Counters follow librdkafka's totals, not the sum of the reports.
        assert!(
            sample(&text, &["gridsync_kafka_broker_errors_total{", broker, r#"kind="tx""#])
                .is_some_and(|l| l.ends_with(" 5")),
            "{text}"
        );
        assert!(sample(&text, &["gridsync_kafka_broker_requests_waiting{", r#"queue="in_flight""#])
            .is_some_and(|l| l.ends_with(" 3")));
        assert!(sample(&text, &["gridsync_kafka_client_queue_messages{", client]).is_some_and(|l| l.ends_with(" 12")));
    }
}
