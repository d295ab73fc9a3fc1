//! The common `main` of every producer and consumer binary: flags, telemetry,
//! the binary's work, and a clean exit on SIGTERM.

use std::net::{Ipv4Addr, SocketAddr};

use clap::Parser;
use gridsync_schemas::catalog;

use crate::{
    config::{KafkaArgs, TelemetryArgs},
    kafka::{run_consumer, Backoff, ConsumerServices, ConsumerSettings, EventProducer, Handler},
    registry::EventDecoder,
    shutdown,
    telemetry::{self, Health, Metrics},
};

/// Records buffered per partition worker by default: enough that a fetched
/// batch rarely waits in the dispatcher's overflow queue (which costs a
/// hand-over per record; 64 measured 2,600 records/s through the loop, 1,024
/// about 58,000 on two cores), small enough to bound memory (a few MB).
pub const DEFAULT_PARTITION_BUFFER: usize = 1024;
/// Keys of one partition handled at once by default: the instance's whole budget, so the budget
/// alone bounds an instance. With 8, an instance holding 3 of a topic's 6 partitions could use 24
/// of its 32, and a second instance added at most half again (measured: 1.44×).
pub const DEFAULT_KEY_CONCURRENCY: usize = DEFAULT_MAX_IN_FLIGHT;
/// Records one instance handles at once by default.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32;

/// Flags every consumer binary takes, and its own (`A`).
#[derive(Debug, Parser)]
pub struct ConsumerCli<A: clap::Args> {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(flatten)]
    pub retry: Backoff,
    /// Retries of one record before its partition counts as paused (logged as such); it is
    /// retried every longest backoff after that, until it succeeds or the process stops.
    #[arg(long = "retry-attempts-before-pause", env = "GRIDSYNC_RETRY_ATTEMPTS_BEFORE_PAUSE", default_value_t = crate::kafka::settings::DEFAULT_ATTEMPTS_BEFORE_PAUSE)]
    pub attempts_before_pause: u32,
    /// Records buffered per assigned partition. More wait in order behind them; past four times
    /// this, reading stops until its worker has taken half of them, or, when the worker is stuck
    /// (retrying a record, or taking none for a second), the partition is paused until it
    /// catches up while the others go on.
    #[arg(long, env = "GRIDSYNC_PARTITION_BUFFER", default_value_t = DEFAULT_PARTITION_BUFFER)]
    pub partition_buffer: usize,
    /// Longest one attempt of a record's work may take; past it the attempt is
    /// abandoned and retried like any transient failure, so a hung call never
    /// holds up the partition or shutdown.
    #[arg(long, env = "GRIDSYNC_HANDLER_TIMEOUT_MS", default_value_t = 60_000)]
    pub handler_timeout_ms: u64,
    /// Records of different keys of one partition handled at once; a key's records always one
    /// after another, in order (1: strictly in partition order). What lets a flow waiting on a
    /// slow Amplience keep up without more partitions.
    #[arg(long, env = "GRIDSYNC_KEY_CONCURRENCY", default_value_t = DEFAULT_KEY_CONCURRENCY)]
    pub key_concurrency: usize,
    /// Records one instance handles at once over all its partitions (0: no bound): each
    /// instance of a consumer brings this much more.
    #[arg(long, env = "GRIDSYNC_MAX_IN_FLIGHT", default_value_t = DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    #[command(flatten)]
    pub flow: A,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("catalog: {0}")]
    Catalog(#[from] catalog::CatalogError),
    #[error("schemas: {0}")]
    Codec(#[from] gridsync_schemas::CodecError),
    #[error(transparent)]
    Publish(#[from] crate::kafka::PublishError),
    #[error(transparent)]
    Consumer(#[from] crate::kafka::consumer::ConsumerError),
    #[error(transparent)]
    Access(#[from] crate::kafka::access::AccessError),
    #[error("{0}")]
    Source(Box<dyn std::error::Error + Send + Sync>),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl AppError {
    /// A set-up failure of a binary's own (its store, its configuration, a client it builds).
    pub fn other(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        AppError::Source(e.into())
    }
}

/// What every binary runs beside its work: the shutdown signal, metrics,
/// readiness and the HTTP server for them.
struct Runtime {
    shutdown: tokio_util::sync::CancellationToken,
    metrics: Metrics,
    health: Health,
    server: tokio::task::JoinHandle<()>,
}

impl Runtime {
    async fn start(
        name: &str,
        telemetry: &TelemetryArgs,
        kafka: &KafkaArgs,
        default_port: u16,
    ) -> Result<Self, AppError> {
        telemetry::logging::init(telemetry);
        let shutdown =
            shutdown::on_signals().map_err(|source| AppError::Io { what: "installing signal handlers", source })?;
        let metrics = Metrics::new(name)?;
        let health = Health::default();
        let (bound, server) =
            telemetry::serve(metrics_addr(telemetry, default_port), metrics.clone(), health.clone(), shutdown.clone())
                .await
                .map_err(|source| AppError::Io { what: "binding the metrics address", source })?;
        tracing::info!(
            metrics = %format!("http://{bound}/metrics"),
            kafka = ?kafka.redacted_properties().unwrap_or_default(),
            "{name} starting"
        );
        Ok(Runtime { shutdown, metrics, health, server })
    }

    /// Stops the HTTP server (before anything else was started).
    async fn stop(shutdown: tokio_util::sync::CancellationToken, server: tokio::task::JoinHandle<()>) {
        shutdown.cancel();
        if let Err(e) = server.await {
            tracing::warn!(error = %e, "metrics server");
        }
    }

    /// Stops the HTTP server and flushes what the producer still holds.
    async fn finish(
        shutdown: tokio_util::sync::CancellationToken,
        server: tokio::task::JoinHandle<()>,
        producer: &EventProducer,
    ) {
        shutdown.cancel();
        if let Err(e) = producer.flush(std::time::Duration::from_secs(10)) {
            tracing::warn!(error = %e, "flushing the producer on exit");
        }
        if let Err(e) = server.await {
            tracing::warn!(error = %e, "metrics server");
        }
    }
}

/// What a handler factory gets to build its handler with.
#[derive(Clone)]
pub struct ConsumerDeps {
    /// The consumer's name in the catalog.
    pub name: String,
    pub producer: EventProducer,
    pub metrics: Metrics,
    pub kafka: KafkaArgs,
    pub health: Health,
    /// Cancelled on SIGTERM/SIGINT: background work (timers) stops with it.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// The metrics address: the flag, else 127.0.0.1:`default_port`.
pub fn metrics_addr(telemetry: &TelemetryArgs, default_port: u16) -> SocketAddr {
    telemetry.metrics_addr.unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, default_port)))
}

/// Runs the consumer named `name` in the catalog until SIGTERM/SIGINT.
/// `make_handler` sets the flow up (stores, API clients) before consuming starts.
pub async fn run_consumer_binary<A, H, F, Fut>(name: &str, cli: ConsumerCli<A>, make_handler: F) -> Result<(), AppError>
where
    A: clap::Args,
    H: Handler,
    F: FnOnce(ConsumerDeps, A) -> Fut,
    Fut: std::future::Future<Output = Result<H, AppError>>,
{
    let catalog = catalog::catalog()?.with_prefix(&cli.kafka.topic_prefix);
    let Runtime { shutdown, metrics, health, server } =
        Runtime::start(name, &cli.telemetry, &cli.kafka, catalog.metrics_port(name)?).await?;
    if let Err(e) = crate::kafka::access::check(&cli.kafka, &catalog, name).await {
        Runtime::stop(shutdown, server).await;
        return Err(e.into());
    }
    let mut settings = ConsumerSettings::from_catalog(catalog.consumer(name)?, cli.retry, cli.partition_buffer);
    settings.attempts_before_pause = cli.attempts_before_pause;
    settings.handler_timeout = std::time::Duration::from_millis(cli.handler_timeout_ms.max(1));
    settings.key_concurrency = cli.key_concurrency.max(1);
    settings.max_in_flight = cli.max_in_flight;
    let producer = EventProducer::new(&cli.kafka, metrics.clone())?;
    let decoder = EventDecoder::new(cli.kafka.schema_registry_url.as_deref())?;
    let deps = ConsumerDeps {
        name: name.to_owned(),
        producer: producer.clone(),
        metrics: metrics.clone(),
        kafka: cli.kafka.clone(),
        health: health.clone(),
        shutdown: shutdown.clone(),
    };
    let handler = tokio::select! {
        handler = make_handler(deps, cli.flow) => handler,
        // A set-up waiting on an unreachable dependency must not outlive SIGTERM.
        _ = shutdown.cancelled() => {
            Runtime::finish(shutdown, server, &producer).await;
            return Ok(());
        }
    };
    let handler = match handler {
        Ok(handler) => handler,
        Err(e) => {
            Runtime::finish(shutdown, server, &producer).await;
            return Err(e);
        }
    };

    let services = ConsumerServices { decoder, producer: producer.clone(), metrics, health };
    let result = run_consumer(&cli.kafka, settings, handler, services, shutdown.clone()).await;
    Runtime::finish(shutdown, server, &producer).await;
    result.map_err(AppError::from)
}

/// The whole `main` of a consumer binary: parses flags, runs, and turns the
/// outcome into an exit code with the error on stderr.
pub fn consumer_main<A, H, F, Fut>(name: &str, make_handler: F) -> std::process::ExitCode
where
    A: clap::Args,
    H: Handler,
    F: FnOnce(ConsumerDeps, A) -> Fut,
    Fut: std::future::Future<Output = Result<H, AppError>>,
{
    let cli = parse_cli::<ConsumerCli<A>>(consumer_about(name));
    block_on_main(name, run_consumer_binary(name, cli, make_handler))
}

/// Flags every producer binary takes, and its own (`A`).
#[derive(Debug, Parser)]
pub struct ProducerCli<A: clap::Args> {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(flatten)]
    pub source: A,
}

/// What a producer's event source gets.
pub struct ProducerDeps {
    pub producer: EventProducer,
    pub metrics: Metrics,
    pub health: Health,
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// The whole `main` of a producer binary: telemetry, the event producer, then
/// `source` until SIGTERM/SIGINT; queued records are flushed before exit. `about` opens its
/// `--help`: what the binary is and does.
pub fn producer_main<A, F, Fut>(name: &str, about: &'static str, source: F) -> std::process::ExitCode
where
    A: clap::Args,
    F: FnOnce(ProducerDeps, A) -> Fut,
    Fut: std::future::Future<Output = Result<(), AppError>>,
{
    let cli = parse_cli::<ProducerCli<A>>(about.to_owned());
    let run = async move {
        let catalog = catalog::catalog()?.with_prefix(&cli.kafka.topic_prefix);
        let Runtime { shutdown, metrics, health, server } =
            Runtime::start(name, &cli.telemetry, &cli.kafka, catalog.metrics_port(name)?).await?;
        if let Err(e) = crate::kafka::access::check(&cli.kafka, &catalog, name).await {
            Runtime::stop(shutdown, server).await;
            return Err(e.into());
        }
        let producer = EventProducer::new(&cli.kafka, metrics.clone())?;
        let result = source(
            ProducerDeps { producer: producer.clone(), metrics, health, shutdown: shutdown.clone() },
            cli.source,
        )
        .await;
        Runtime::finish(shutdown, server, &producer).await;
        tracing::info!("{name} stopped");
        result
    };
    block_on_main(name, run)
}

/// Parses the command line with `about` opening `--help` (instead of the doc comment of the
/// generic flags struct every binary shares).
fn parse_cli<C: Parser>(about: String) -> C {
    let matches = C::command().about(about).get_matches();
    C::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// What consumer `name` is, from the catalog that configures it: its description, topics and group.
fn consumer_about(name: &str) -> String {
    let described = catalog::catalog().ok().and_then(|catalog| {
        let spec = catalog.consumer(name).ok()?;
        Some(format!(
            "The gridsync {name} consumer: {} It reads {} as consumer group {}.",
            spec.description,
            spec.topics.join(", "),
            spec.group_id
        ))
    });
    described.unwrap_or_else(|| format!("The gridsync {name} consumer."))
}

fn block_on_main(name: &str, run: impl std::future::Future<Output = Result<(), AppError>>) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "{name} failed");
            eprintln!("{name}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Waits until the brokers answer (or shutdown); then the producer is ready.
/// Returns false on shutdown.
pub async fn wait_for_brokers(deps: &ProducerDeps) -> bool {
    loop {
        match deps.producer.check_brokers(std::time::Duration::from_secs(5)).await {
            Ok(brokers) => {
                tracing::info!(brokers, "connected to Kafka; ready");
                deps.health.set_ready(true);
                return true;
            }
            Err(e) => tracing::warn!(error = %e, "Kafka not reachable yet"),
        }
        if deps.shutdown.is_cancelled() {
            return false;
        }
    }
}
