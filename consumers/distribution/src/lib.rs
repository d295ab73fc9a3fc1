//! The distribution flow (flows 4 and 5) as a library: its configuration, its
//! packages, its handler and its set-up.

pub mod attachments;
pub mod config;
pub mod currency;
pub mod flow;
pub mod package;

use std::{path::PathBuf, sync::Arc};

use gridsync_amplience::{media, DeliveryClient, MediaClient};
use gridsync_core::app::{AppError, ConsumerDeps};
use gridsync_flow::{Flow, FlowArgs, FlowContext};
use gridsync_trading_grid::mailbox::args::MailboxArgs;

/// The longest wait for the next bytes of a media fetch (not for the whole of it).
const MEDIA_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The consumer's flags beside the runtime's.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub flow: FlowArgs,
    /// The flow's configuration (when each kind goes out, the status items, the read window);
    /// default: built in.
    #[arg(long = "config", env = "GRIDSYNC_DISTRIBUTION_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub mailbox: MailboxArgs,
    /// Amplience's Content Delivery API: what is published now, asked before a published
    /// version goes out (a newer one published since goes out instead). Without it, only the
    /// Management API is asked (deleted, archived, withdrawn).
    #[arg(long = "amplience-delivery-url", env = "GRIDSYNC_AMPLIENCE_DELIVERY_URL")]
    pub delivery_url: Option<String>,
    /// Where the media a content body links to is fetched from (attachments): `{defaultHost}`,
    /// `{kind}` (`i` image, `v` video), `{endpoint}` and `{name}` are the link's.
    #[arg(long = "amplience-media-url", env = "GRIDSYNC_AMPLIENCE_MEDIA_URL", default_value = media::DEFAULT_URL_TEMPLATE)]
    pub media_url: String,
    /// The hosts media is fetched from (comma-separated; `*.example.com` for a domain's hosts):
    /// a link's `defaultHost` comes from content editors, so a link to any other host is refused
    /// (with the URL's own host when the template fixes one).
    #[arg(long = "amplience-media-hosts", env = "GRIDSYNC_AMPLIENCE_MEDIA_HOSTS", value_delimiter = ',',
          default_values_t = media::DEFAULT_MEDIA_HOSTS.iter().map(|h| (*h).to_owned()))]
    pub media_hosts: Vec<String>,
    /// Fetch media from private and loopback addresses too (a local simulator); refused by
    /// default, so that a link cannot make gridsync fetch an internal address.
    #[arg(long = "amplience-media-allow-private-addresses", env = "GRIDSYNC_AMPLIENCE_MEDIA_ALLOW_PRIVATE_ADDRESSES")]
    pub media_allow_private: bool,
    /// Where packages and their attachments are assembled before they go to the mailbox (room
    /// for the largest package); default: the system's temporary folder.
    #[arg(long = "spool-dir", env = "GRIDSYNC_DISTRIBUTION_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
}

/// Connects the flow (store, Amplience, partner profiles, the outbound mailbox) and starts its timers.
pub async fn setup(deps: ConsumerDeps, args: Args) -> Result<Flow<Arc<flow::Distribution>>, AppError> {
    media::check_template(&args.media_url).map_err(|why| AppError::other(format!("--amplience-media-url {why}")))?;
    let config = config::DistributionConfig::load(args.config.as_deref()).map_err(AppError::other)?;
    let shutdown = deps.shutdown.clone();
    let metrics = deps.metrics.clone();
    let outbound = args.mailbox.open_outbound(&shutdown).await.map_err(AppError::other)?;
    let ctx = FlowContext::connect(deps, args.flow.clone()).await?;
    ctx.await_hub(&config.requirements()).await?;
    let scheduler = ctx.scheduler();
    let delivery = match &args.delivery_url {
        Some(url) => {
            let retry = args.flow.amplience.retry_policy();
            Some(DeliveryClient::new(url, std::time::Duration::from_secs(10), retry).map_err(AppError::other)?)
        }
        None => {
            tracing::warn!(
                "no --amplience-delivery-url: a published version is sent without asking what is published now"
            );
            None
        }
    };
    let retry = args.flow.amplience.retry_policy();
    let policy = media::MediaPolicy { hosts: args.media_hosts.clone(), allow_private: args.media_allow_private };
    let media = MediaClient::new(&args.media_url, MEDIA_READ_TIMEOUT, retry, config.max_attachment_bytes, policy)
        .map_err(AppError::other)?;
    let attachments = attachments::Attachments::new(media, &metrics)?;
    let spool_dir = args.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    tokio::fs::create_dir_all(&spool_dir).await.map_err(AppError::other)?;
    let distribution = Arc::new(flow::Distribution {
        records: ctx.store.flow_records(&ctx.name),
        timers: ctx.store.timers(&ctx.name),
        clock: ctx.clock(),
        hub_id: args.flow.amplience.hub_id.clone(),
        delivery,
        outbound,
        attachments,
        spool_dir,
        ctx,
        config,
    });
    scheduler.spawn("distribution", distribution.clone(), metrics, shutdown);
    Ok(Flow(distribution))
}
