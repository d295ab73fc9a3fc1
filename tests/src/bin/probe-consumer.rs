//! A consumer for the integration tests, built on the same consumer loop as the
//! real consumers. Its work is observable: it appends `event_id topic partition
//! offset` to a file (fsynced) for every record it processes.
//!
//! Business keys steer failures: `POISON...` fails permanently (dead letter),
//! `FLAKY...` fails transiently twice, then succeeds. A record whose
//! correlation id is `STUCK` fails transiently until `<out>.release` exists;
//! one whose correlation id is `HANG` hangs on its first attempt (until the
//! handler timeout abandons it), then succeeds; one whose correlation id is
//! `SLOW` runs until `<out>.release` exists, and writes when it began and ended
//! to `<out>.spans`. With `--batch N` it takes up to N waiting records at once, all
//! or none (a POISON or FLAKY record in a batch fails the batch before any is
//! written), and appends each batch's size to `<out>.batches`. With `--key-concurrency N`
//! it handles up to N keys of a partition at once, and writes the most records ever in their
//! `--delay-ms` at once to `<out>.in-hand`.

use std::{
    collections::HashMap,
    io::Write,
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::Duration,
};

use clap::Parser;
use gridsync_core::{
    config::{KafkaArgs, TelemetryArgs},
    kafka::{run_consumer, Backoff, ConsumerServices, ConsumerSettings, EventProducer, Handler, HandlerError, Record},
    registry::EventDecoder,
    shutdown,
    telemetry::{self, Health, Metrics},
};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    telemetry: TelemetryArgs,
    #[arg(long)]
    topic: String,
    #[arg(long)]
    group: String,
    #[arg(long)]
    dead_letter_topic: String,
    /// Where processed records are appended.
    #[arg(long)]
    out: PathBuf,
    /// Pause before each record, to make the stream slow enough to interrupt.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// The consumer loop's per-attempt handler timeout.
    #[arg(long, default_value_t = 60_000)]
    handler_timeout_ms: u64,
    /// Records taken at once when they wait (1: one at a time).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Keys of a partition handled at once; the most records ever in hand at once is written
    /// to `<out>.in-hand`.
    #[arg(long, default_value_t = 1)]
    key_concurrency: usize,
}

struct Probe {
    out: Mutex<std::fs::File>,
    release: PathBuf,
    delay: Duration,
    flaky_attempts: Mutex<HashMap<String, u32>>,
    batch: usize,
    /// Records in their delay now, and the most ever.
    in_hand: AtomicUsize,
    max_in_hand: AtomicUsize,
}

impl Handler for Probe {
    type Input = Record;

    fn batch_size(&self) -> usize {
        self.batch
    }

    async fn handle_batch(&self, records: &[Record]) -> Result<(), HandlerError> {
        for record in records {
            self.check(record)?;
        }
        let lines: String = records.iter().map(line).collect();
        self.append(&lines)?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.release.with_extension("batches"))
            .and_then(|mut f| f.write_all(format!("{}\n", records.len()).as_bytes()))
            .map_err(|e| HandlerError::transient("probe.io", e))
    }

    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let envelope = record.event.envelope();
        if envelope.business_key.starts_with("POISON") {
            return self.check(record);
        }
        if envelope.correlation_id == "STUCK" && !self.release.exists() {
            return Err(HandlerError::transient("probe.stuck", "held until released"));
        }
        if envelope.correlation_id == "SLOW" {
            self.span("begin")?;
            while !self.release.exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            self.span("end")?;
        }
        if envelope.correlation_id == "HANG" {
            let first = {
                let mut attempts = self.flaky_attempts.lock().map_err(|e| HandlerError::transient("probe.lock", e))?;
                let n = attempts.entry(envelope.event_id.clone()).or_default();
                *n += 1;
                *n == 1
            };
            if first {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        }
        self.check(record)?;
        if !self.delay.is_zero() {
            let now = self.in_hand.fetch_add(1, Ordering::SeqCst) + 1;
            if now > self.max_in_hand.fetch_max(now, Ordering::SeqCst) {
                std::fs::write(self.release.with_extension("in-hand"), now.to_string())
                    .map_err(|e| HandlerError::transient("probe.io", e))?;
            }
            tokio::time::sleep(self.delay).await;
            self.in_hand.fetch_sub(1, Ordering::SeqCst);
        }
        self.append(&line(record))
    }
}

/// The line a processed record appends.
fn line(record: &Record) -> String {
    format!("{}\t{}\t{}\t{}\n", record.event.envelope().event_id, record.topic, record.partition, record.offset)
}

impl Probe {
    /// POISON fails for good; FLAKY fails twice, then passes.
    fn check(&self, record: &Record) -> Result<(), HandlerError> {
        let envelope = record.event.envelope();
        if envelope.business_key.starts_with("POISON") {
            return Err(HandlerError::permanent("probe.poison", format!("{} is poison", envelope.business_key)));
        }
        if envelope.business_key.starts_with("FLAKY") {
            let mut attempts = self.flaky_attempts.lock().map_err(|e| HandlerError::transient("probe.lock", e))?;
            let n = attempts.entry(envelope.event_id.clone()).or_default();
            *n += 1;
            if *n <= 2 {
                return Err(HandlerError::transient("probe.flaky", format!("attempt {n} fails")));
            }
        }
        Ok(())
    }

    /// Appends `lines` to the output, durably.
    fn append(&self, lines: &str) -> Result<(), HandlerError> {
        let mut out = self.out.lock().map_err(|e| HandlerError::transient("probe.lock", e))?;
        out.write_all(lines.as_bytes())
            .and_then(|()| out.sync_data())
            .map_err(|e| HandlerError::transient("probe.io", e))
    }

    /// Appends `<what> <pid> <ms since the epoch>` to `<out>.spans`.
    fn span(&self, what: &str) -> Result<(), HandlerError> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let line = format!("{what}\t{}\t{}\n", std::process::id(), now.as_millis());
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.release.with_extension("spans"))
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(|e| HandlerError::transient("probe.io", e))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::logging::init(&cli.telemetry);
    let shutdown = shutdown::on_signals()?;
    let metrics = Metrics::new("probe")?;
    let health = Health::default();
    if let Some(addr) = cli.telemetry.metrics_addr {
        telemetry::serve(addr, metrics.clone(), health.clone(), shutdown.clone()).await?;
    }
    let out = std::fs::OpenOptions::new().create(true).append(true).open(&cli.out)?;
    let release = cli.out.with_extension("release");
    let probe = Probe {
        out: Mutex::new(out),
        release,
        delay: Duration::from_millis(cli.delay_ms),
        flaky_attempts: Mutex::default(),
        batch: cli.batch,
        in_hand: AtomicUsize::new(0),
        max_in_hand: AtomicUsize::new(0),
    };
    let settings = ConsumerSettings {
        name: "probe".into(),
        group_id: cli.group.clone(),
        topics: vec![cli.topic.clone()],
        handles: None,
        dead_letter_topic: cli.dead_letter_topic.clone(),
        retry: Backoff::new(Duration::from_millis(20), Duration::from_millis(200)),
        attempts_before_pause: 3,
        partition_buffer: 16,
        handler_timeout: Duration::from_millis(cli.handler_timeout_ms),
        key_concurrency: cli.key_concurrency,
        max_in_flight: 0,
    };
    let producer = EventProducer::new(&cli.kafka, metrics.clone())?;
    let decoder = EventDecoder::new(None)?;
    let services = ConsumerServices { decoder, producer, metrics, health };
    run_consumer(&cli.kafka, settings, probe, services, shutdown).await?;
    Ok(())
}
