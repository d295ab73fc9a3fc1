//! The exceptions flow (flow 8) as a library: its configuration, how failures
//! and successes are matched to one exchange, its handler and its set-up.

pub mod config;
pub mod exchange;
pub mod flow;

use std::path::PathBuf;

use gridsync_core::app::{AppError, ConsumerDeps};
use gridsync_flow::{Flow, FlowArgs, FlowContext};

/// The consumer's flags beside the runtime's.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub flow: FlowArgs,
    /// The flow's configuration (states, templates, guidance); default: built in.
    #[arg(long = "config", env = "GRIDSYNC_EXCEPTIONS_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Connects the flow: store, Amplience, partner profiles, templates.
pub async fn setup(deps: ConsumerDeps, args: Args) -> Result<Flow<flow::Exceptions>, AppError> {
    let config = config::ExceptionsConfig::load(args.config.as_deref()).map_err(AppError::other)?;
    let ctx = FlowContext::connect(deps, args.flow).await?;
    ctx.await_hub(&config.requirements(&ctx.partners)).await?;
    let tasks = ctx.messages(&config.messages, &config.task_content_type_uri);
    let notices = ctx.messages(&config.messages, &config.message_content_type_uri);
    let records = ctx.store.flow_records(&ctx.name);
    Ok(Flow(flow::Exceptions { tasks, messages: notices, records, ctx, config, exchanges: Default::default() }))
}
