//! The billing flow (flow 2) as a library: its configuration, its handler,
//! its timers and its set-up, for the `billing-consumer` binary and the tests.

pub mod account;
pub mod check;
pub mod config;
mod documents;
pub mod flow;
mod reminders;

use std::{path::PathBuf, sync::Arc};

use gridsync_core::app::{AppError, ConsumerDeps};
use gridsync_edi::write::PartyId;
use gridsync_flow::{Flow, FlowArgs, FlowContext};
use gridsync_outbound::OutboundDocuments;
use gridsync_trading_grid::mailbox::args::MailboxArgs;

/// The consumer's flags beside the runtime's.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub flow: FlowArgs,
    /// The flow's configuration (repositories, templates, reminder days); default: built in.
    #[arg(long = "config", env = "GRIDSYNC_BILLING_CONFIG")]
    pub config: Option<PathBuf>,
    /// gridsync's interchange id: the sender of the 820s and 812s it writes.
    #[arg(long, env = "GRIDSYNC_OWN_INTERCHANGE_ID", default_value = "GRIDSYNC")]
    pub own_interchange_id: String,
    /// Its qualifier (ISA05, UNB02-2).
    #[arg(long, env = "GRIDSYNC_OWN_INTERCHANGE_QUALIFIER", default_value = "ZZ")]
    pub own_interchange_qualifier: String,
    /// The store that numbers outbound interchanges: the one tg-producer numbers its
    /// acknowledgements in (`GRIDSYNC_TG_STORE_URL`), so that every interchange gridsync sends a
    /// partner has a control number of its own, and an answer or a Lens status names one
    /// document. Default: the flow's store (then tg-producer must not write to the same partners).
    #[arg(long, env = "GRIDSYNC_TG_STORE_URL")]
    pub outbound_store_url: Option<String>,
    #[command(flatten)]
    pub mailbox: MailboxArgs,
}

/// Connects the flow (store, Amplience, partner profiles, templates, the
/// outbound mailbox) and starts its timers.
pub async fn setup(deps: ConsumerDeps, args: Args) -> Result<Flow<Arc<flow::Billing>>, AppError> {
    let config = config::BillingConfig::load(args.config.as_deref()).map_err(AppError::other)?;
    let shutdown = deps.shutdown.clone();
    let metrics = deps.metrics.clone();
    let outbound = args.mailbox.open_outbound(&shutdown).await.map_err(AppError::other)?;
    let ctx = FlowContext::connect(deps, args.flow).await?;
    ctx.await_hub(&config.requirements(&ctx.partners)).await?;
    let messages = ctx.messages(&config.messages, &config.content_type_uri);
    let numbering = match &args.outbound_store_url {
        Some(url) => gridsync_store::Store::connect(url).await.map_err(AppError::other)?,
        None => ctx.store.clone(),
    };
    let scheduler = ctx.scheduler();
    let billing = Arc::new(flow::Billing {
        documents: OutboundDocuments::new(numbering, outbound),
        records: ctx.store.flow_records(&ctx.name),
        timers: ctx.store.timers(&ctx.name),
        clock: ctx.clock(),
        own_party: PartyId { qualifier: Some(args.own_interchange_qualifier), id: args.own_interchange_id },
        ctx,
        messages,
        config,
    });
    scheduler.spawn("billing", billing.clone(), metrics, shutdown);
    Ok(Flow(billing))
}
