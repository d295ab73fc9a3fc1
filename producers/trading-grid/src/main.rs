//! The Trading Grid producer: publishes what arrives from Trading Grid as Avro
//! events. Its source is the inbound mailbox (a local folder an AS2/SFTP
//! gateway writes); it acknowledges every inbound interchange through the
//! outbound mailbox.

mod acks;
mod args;
mod inbound;
mod telemetry;

use gridsync_core::app::{wait_for_brokers, AppError, ProducerDeps};
use gridsync_trading_grid::mailbox::{LocalMailbox, OutboundMailbox};

fn main() -> std::process::ExitCode {
    gridsync_core::app::producer_main("tg-producer", 9464, run)
}

fn source_error(e: impl std::error::Error + Send + Sync + 'static) -> AppError {
    AppError::Source(Box::new(e))
}

async fn run(deps: ProducerDeps, args: args::TgArgs) -> Result<(), AppError> {
    let inbound_args = &args.inbound;
    let mailbox =
        LocalMailbox::open(&inbound_args.mailbox_dir, inbound_args.max_file_bytes).await.map_err(source_error)?;
    let acks = if inbound_args.no_acks {
        None
    } else {
        let store = gridsync_store::Store::connect(&args.store_url).await.map_err(source_error)?;
        let dir = inbound_args.outbound_dir.clone().unwrap_or_else(|| inbound_args.mailbox_dir.join("outbound"));
        Some(acks::Acknowledger::new(store, OutboundMailbox::open(&dir).await.map_err(source_error)?))
    };
    let metrics = telemetry::InboundMetrics::register(&deps.metrics)?;
    if !wait_for_brokers(&deps).await {
        return Ok(());
    }
    let inbound =
        inbound::Inbound { mailbox, acks, producer: deps.producer.clone(), metrics, shutdown: deps.shutdown.clone() };
    let result = inbound::run(inbound, inbound_args).await.map_err(source_error);
    deps.health.set_ready(false);
    result
}
