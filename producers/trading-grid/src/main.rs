//! The Trading Grid producer: publishes what arrives from Trading Grid as Avro
//! events. Its source is the inbound mailbox (a local folder an AS2/SFTP
//! gateway writes, or the SFTP mailbox itself), which it acknowledges through
//! the outbound mailbox, and Lens, which it polls for document status changes.

mod acks;
mod args;
mod exception;
mod inbound;
mod lens;
mod lens_events;
mod senders;
mod telemetry;

use gridsync_core::app::{wait_for_brokers, AppError, ProducerDeps};
use std::time::Duration;

use gridsync_trading_grid::mailbox::MailboxSetupError;

fn main() -> std::process::ExitCode {
    gridsync_core::app::producer_main("tg-producer", ABOUT, run)
}

const ABOUT: &str = "The gridsync Trading Grid producer: publishes the EDI documents partners send \
    (X12 and EDIFACT files in the inbound mailbox, local or SFTP) and Lens's document status changes as \
    Avro events on Kafka, and acknowledges each interchange (997/CONTRL/TA1) through the outbound mailbox.";

fn source_error(e: impl std::error::Error + Send + Sync + 'static) -> AppError {
    AppError::Source(Box::new(e))
}

async fn run(deps: ProducerDeps, args: args::TgArgs) -> Result<(), AppError> {
    let owner = args.inbound.claim_owner().map_err(source_error)?;
    let (mailbox, outbound) = match args.inbound.mailbox.open(&deps.shutdown, owner).await {
        Ok(opened) => opened,
        // SIGTERM while waiting for an SFTP server: nothing was started, nothing to finish.
        Err(MailboxSetupError::ShutDown) => return Ok(()),
        Err(e) => return Err(source_error(e)),
    };
    // Events published, acknowledgement numbers, Lens progress.
    let store = gridsync_store::Store::connect(&args.store_url).await.map_err(source_error)?;
    let acks = (!args.inbound.no_acks)
        .then(|| acks::Acknowledger::new(gridsync_outbound::OutboundDocuments::new(store.clone(), outbound)));
    let lens_client = if args.lens.is_configured() {
        Some(gridsync_trading_grid::lens::LensClient::new(&args.lens).map_err(source_error)?)
    } else {
        None
    };
    let senders = match &args.inbound.partners {
        Some(path) => senders::Senders::load(path).map_err(source_error)?,
        None => senders::Senders::default(),
    };
    let metrics = telemetry::InboundMetrics::register(&deps.metrics)?;
    metrics.expect_acks_from(senders.partner_ids());
    let lens_metrics = telemetry::LensMetrics::register(&deps.metrics)?;
    if !wait_for_brokers(&deps).await {
        return Ok(());
    }
    let mailbox = std::sync::Arc::new(mailbox);
    let inbound = inbound::Inbound {
        mailbox: mailbox.clone(),
        published: store.published_events(),
        received: store.received_controls(),
        senders,
        unknown_senders: args.inbound.unknown_senders,
        acks,
        producer: deps.producer.clone(),
        metrics,
        shutdown: deps.shutdown.clone(),
        retry: args.retry,
    };
    let poller = lens_client.map(|client| lens::LensPoller {
        client,
        store: store.clone(),
        producer: deps.producer.clone(),
        metrics: lens_metrics,
        shutdown: deps.shutdown.clone(),
        retry: args.retry,
        args: args.lens_poll.clone(),
    });
    let polling = async {
        if let Some(poller) = poller {
            poller.run().await;
        }
    };
    let retention = Duration::from_secs(u64::from(args.store_retention_days) * 24 * 3600);
    // The lease on this instance's claims is kept until the last file in hand is done.
    let reading_done = tokio_util::sync::CancellationToken::new();
    let reading = async {
        inbound::run(inbound, &args.inbound).await;
        reading_done.cancel();
    };
    tokio::join!(
        reading,
        mailbox.keep_claims(&reading_done),
        polling,
        store.prune_hourly(retention, deps.shutdown.cancelled())
    );
    deps.health.set_ready(false);
    Ok(())
}
