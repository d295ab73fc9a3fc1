//! The Trading Grid producer: publishes what arrives from Trading Grid as Avro
//! events. Its source is the inbound mailbox (a local folder an AS2/SFTP
//! gateway writes, or the SFTP mailbox itself), which it acknowledges through
//! the outbound mailbox, and Lens, which it polls for document status changes.

mod acks;
mod args;
mod inbound;
mod lens;
mod lens_events;
mod retry;
mod telemetry;

use gridsync_core::app::{wait_for_brokers, AppError, ProducerDeps};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use gridsync_http::Secret;
use tokio_util::sync::CancellationToken;

use gridsync_trading_grid::mailbox::{
    InboundMailbox, LocalMailbox, MailboxError, OutboundMailbox, OutboundTarget, SftpAuth, SftpConfig, SftpMailbox,
};

fn main() -> std::process::ExitCode {
    gridsync_core::app::producer_main("tg-producer", 9464, run)
}

fn source_error(e: impl std::error::Error + Send + Sync + 'static) -> AppError {
    AppError::Source(Box::new(e))
}

/// A secret kept in a file.
fn read_secret(path: &Path) -> Result<Secret, AppError> {
    Secret::read_file(path).map_err(|source| AppError::Io { what: "reading an SFTP secret file", source })
}

/// `~/` at the start of a path is the home folder.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

fn sftp_config(args: &args::InboundArgs, host: &str) -> Result<SftpConfig, AppError> {
    let sftp = &args.sftp;
    let auth = match (&sftp.sftp_password_file, &sftp.sftp_key_file) {
        (Some(password), None) => SftpAuth::Password(read_secret(password)?),
        (None, Some(key)) => SftpAuth::Key {
            path: key.clone(),
            passphrase: sftp.sftp_key_passphrase_file.as_deref().map(read_secret).transpose()?,
        },
        _ => {
            return Err(AppError::Source(
                "SFTP needs --sftp-password-file or --sftp-key-file (GRIDSYNC_TG_SFTP_*)".into(),
            ))
        }
    };
    Ok(SftpConfig {
        host: host.to_owned(),
        port: sftp.sftp_port,
        user: sftp.sftp_user.clone(),
        auth,
        known_hosts: expand_home(&sftp.sftp_known_hosts),
        root: sftp.sftp_root.clone(),
        max_bytes: args.max_file_bytes,
        timeout: Duration::from_millis(sftp.sftp_timeout_ms),
    })
}

/// Connects to the SFTP mailbox, waiting for a server that is down or
/// unreachable; a refused host key or login is a configuration error and ends it.
async fn open_sftp(config: SftpConfig, shutdown: &CancellationToken) -> Result<SftpMailbox, AppError> {
    let refused = |e: &MailboxError| matches!(e, MailboxError::HostKey { .. } | MailboxError::Auth { .. });
    match retry::retrying_unless(shutdown, "opening the SFTP mailbox", || SftpMailbox::open(config.clone()), refused)
        .await
    {
        Some(opened) => opened.map_err(source_error),
        None => Err(AppError::Source("shut down while waiting for the SFTP mailbox".into())),
    }
}

/// The inbound mailbox and where acknowledgements go: both local, or both on the SFTP server.
async fn mailboxes(
    args: &args::InboundArgs,
    shutdown: &CancellationToken,
) -> Result<(InboundMailbox, OutboundTarget), AppError> {
    if let Some(host) = &args.sftp.sftp_host {
        let sftp = Arc::new(open_sftp(sftp_config(args, host)?, shutdown).await?);
        tracing::info!(host, root = %args.sftp.sftp_root, "watching the SFTP mailbox");
        return Ok((InboundMailbox::Sftp(sftp.clone()), OutboundTarget::Sftp(sftp)));
    }
    let inbound = LocalMailbox::open(&args.mailbox_dir, args.max_file_bytes).await.map_err(source_error)?;
    let dir = args.outbound_dir.clone().unwrap_or_else(|| args.mailbox_dir.join("outbound"));
    let outbound = OutboundMailbox::open(&dir).await.map_err(source_error)?;
    tracing::info!(mailbox = %args.mailbox_dir.display(), "watching the inbound mailbox");
    Ok((InboundMailbox::Local(inbound), OutboundTarget::Local(outbound)))
}

async fn run(deps: ProducerDeps, args: args::TgArgs) -> Result<(), AppError> {
    let (mailbox, outbound) = mailboxes(&args.inbound, &deps.shutdown).await?;
    // Events published, acknowledgement numbers, Lens progress.
    let store = gridsync_store::Store::connect(&args.store_url).await.map_err(source_error)?;
    let acks = (!args.inbound.no_acks).then(|| acks::Acknowledger::new(store.clone(), outbound));
    let lens_client = if args.lens.is_configured() {
        Some(gridsync_trading_grid::lens::LensClient::new(&args.lens).map_err(source_error)?)
    } else {
        None
    };
    let metrics = telemetry::InboundMetrics::register(&deps.metrics)?;
    let lens_metrics = telemetry::LensMetrics::register(&deps.metrics)?;
    if !wait_for_brokers(&deps).await {
        return Ok(());
    }
    let inbound = inbound::Inbound {
        mailbox,
        published: store.published_events(),
        acks,
        producer: deps.producer.clone(),
        metrics,
        shutdown: deps.shutdown.clone(),
    };
    let poller = lens_client.map(|client| lens::LensPoller {
        client,
        store: store.clone(),
        producer: deps.producer.clone(),
        metrics: lens_metrics,
        shutdown: deps.shutdown.clone(),
        args: args.lens_poll.clone(),
    });
    let polling = async {
        if let Some(poller) = poller {
            poller.run().await;
        }
    };
    let retention = Duration::from_secs(u64::from(args.store_retention_days) * 24 * 3600);
    tokio::join!(
        inbound::run(inbound, &args.inbound),
        polling,
        store.prune_hourly(retention, deps.shutdown.cancelled())
    );
    deps.health.set_ready(false);
    Ok(())
}
