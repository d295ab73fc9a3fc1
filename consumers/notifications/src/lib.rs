//! The notifications flow (flows 1, 3, 6) as a library: its configuration, its
//! handler and its set-up, for the `notifications-consumer` binary and the
//! benchmark that runs it in-process.

pub mod config;
pub mod flow;

use std::path::PathBuf;

use gridsync_core::app::{AppError, ConsumerDeps};
use gridsync_flow::{Flow, FlowArgs, FlowContext};

/// The consumer's flags beside the runtime's.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub flow: FlowArgs,
    /// The flow's configuration (repositories, templates per action); default: built in.
    #[arg(long = "config", env = "GRIDSYNC_NOTIFICATIONS_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Connects the flow: store, Amplience, partner profiles, templates.
pub async fn setup(deps: ConsumerDeps, args: Args) -> Result<Flow<flow::Notifications>, AppError> {
    let config = config::NotificationsConfig::load(args.config.as_deref()).map_err(AppError::other)?;
    let ctx = FlowContext::connect(deps, args.flow).await?;
    ctx.await_hub(&config.requirements(&ctx.partners)).await?;
    let messages = ctx.messages(&config.messages, &config.content_type_uri);
    Ok(Flow(flow::Notifications { ctx, messages, config }))
}
