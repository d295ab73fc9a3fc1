//! `gridsync amplience setup|check`: prepare an Amplience hub for gridsync
//! through the Management API, and verify it. What each flow needs is read
//! from the flows' own configuration (the built-in defaults, or the files
//! `GRIDSYNC_<FLOW>_CONFIG` names, as the consumers read them) and the partner
//! profiles, so the check is the one each consumer runs at start, for all flows.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context;
use gridsync_amplience::{
    setup::{self, HubSpec, Requirements, Role, Target},
    ManagementArgs, ManagementClient, Secret,
};
use gridsync_flow::PartnerProfiles;

#[derive(Debug, clap::Subcommand)]
pub enum AmplienceCommand {
    /// Register gridsync's content types (schemas, types, repository assignments) and the
    /// webhook amp-producer needs; idempotent, printing what it changed.
    Setup(SetupArgs),
    /// Verify credentials, hub, repositories, content types, workflow states, every flow's
    /// templates and the webhook; name what is missing and how to fix it (exit 1 if anything is).
    Check(CheckArgs),
}

/// What the flows are configured with: their configuration files and the partner profiles.
#[derive(Debug, Clone, clap::Args)]
pub struct FlowsArgs {
    /// The trading partner profiles (their locales choose the templates).
    #[arg(long, env = "GRIDSYNC_PARTNERS_FILE")]
    partners: Option<PathBuf>,
    /// The notifications flow's configuration (default: built in).
    #[arg(long, env = "GRIDSYNC_NOTIFICATIONS_CONFIG")]
    notifications_config: Option<PathBuf>,
    /// The billing flow's configuration (default: built in).
    #[arg(long, env = "GRIDSYNC_BILLING_CONFIG")]
    billing_config: Option<PathBuf>,
    /// The exceptions flow's configuration (default: built in).
    #[arg(long, env = "GRIDSYNC_EXCEPTIONS_CONFIG")]
    exceptions_config: Option<PathBuf>,
    /// The distribution flow's configuration (default: built in).
    #[arg(long, env = "GRIDSYNC_DISTRIBUTION_CONFIG")]
    distribution_config: Option<PathBuf>,
    /// amp-producer's webhook URL (as the hub reaches it), e.g. https://gridsync.example.com/webhooks/amplience.
    #[arg(long, env = "GRIDSYNC_AMP_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// Where gridsync's own content types live (default: what gridsync ships,
    /// https://schemas.gridsync.dev/); the flows' configuration must name the same URIs.
    #[arg(long, env = "GRIDSYNC_AMPLIENCE_SCHEMA_BASE")]
    schema_base: Option<String>,
    #[command(flatten)]
    amplience: ManagementArgs,
}

#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// Print the plan only; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also an approved example template for every action and locale that has none.
    #[arg(long)]
    with_example_templates: bool,
    /// Leave out the example types of the content gridsync reads (payment confirmations,
    /// dispute resolutions, partner content): for a hub whose own types amp-producer's mapping names.
    #[arg(long)]
    skip_read_types: bool,
    /// The webhook's secret, in a file (amp-producer verifies with the same one).
    #[arg(long, env = "GRIDSYNC_AMP_WEBHOOK_SECRET_FILE")]
    webhook_secret_file: Option<PathBuf>,
    /// The webhook's secret (prefer the file).
    #[arg(long, env = "GRIDSYNC_AMP_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<Secret>,
    /// The workflow state example templates are approved in.
    #[arg(long, default_value = "Approved")]
    approved_state: String,
    #[command(flatten)]
    flows: FlowsArgs,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    flows: FlowsArgs,
}

pub async fn run(command: AmplienceCommand) -> anyhow::Result<ExitCode> {
    match command {
        AmplienceCommand::Setup(args) => setup(args).await,
        AmplienceCommand::Check(args) => check(args).await,
    }
}

/// What every flow needs, by their configuration; and the notifications flow's repositories,
/// where content and templates go by default.
struct Flows {
    needs: Requirements,
    content_repository: String,
    template_repository: String,
}

fn flows(args: &FlowsArgs, spec: &HubSpec) -> anyhow::Result<Flows> {
    let partners = match &args.partners {
        Some(path) => PartnerProfiles::load(path).with_context(|| format!("reading {}", path.display()))?,
        None => {
            eprintln!("note: no partner profiles (--partners, GRIDSYNC_PARTNERS_FILE): templates are not checked");
            PartnerProfiles::default()
        }
    };
    let notifications =
        gridsync_notifications::config::NotificationsConfig::load(args.notifications_config.as_deref())?;
    let billing = gridsync_billing::config::BillingConfig::load(args.billing_config.as_deref())?;
    let exceptions = gridsync_exceptions::config::ExceptionsConfig::load(args.exceptions_config.as_deref())?;
    let distribution = gridsync_distribution::config::DistributionConfig::load(args.distribution_config.as_deref())?;
    let mut needs = Requirements::default();
    needs
        .merge(notifications.requirements(&partners))
        .merge(billing.requirements(&partners))
        .merge(exceptions.requirements(&partners))
        .merge(distribution.requirements());
    if let Some(url) = &args.webhook_url {
        needs.webhook = Some((url.clone(), spec.webhook.events.clone()));
    }
    Ok(Flows {
        needs,
        content_repository: notifications.messages.repository_id,
        template_repository: notifications.messages.template_repository_id,
    })
}

fn spec(args: &FlowsArgs) -> anyhow::Result<HubSpec> {
    let spec = HubSpec::shipped()?;
    Ok(match &args.schema_base {
        Some(base) => spec.with_schema_base(base),
        None => spec,
    })
}

fn client(args: &FlowsArgs) -> anyhow::Result<ManagementClient> {
    if args.amplience.hub_id.is_none() {
        anyhow::bail!("no hub: set GRIDSYNC_AMPLIENCE_HUB_ID (or --amplience-hub-id)");
    }
    Ok(ManagementClient::new(&args.amplience)?)
}

async fn setup(args: SetupArgs) -> anyhow::Result<ExitCode> {
    let spec = spec(&args.flows)?;
    let flows = flows(&args.flows, &spec)?;
    let client = client(&args.flows)?;
    let secret = match (&args.webhook_secret_file, &args.webhook_secret) {
        (Some(path), _) => Some(Secret::read_file(path).with_context(|| format!("reading {}", path.display()))?),
        (None, Some(secret)) => Some(secret.clone()),
        (None, None) => None,
    };
    let webhook = match (&args.flows.webhook_url, secret) {
        (Some(url), Some(secret)) => Some((url.clone(), secret)),
        (Some(_), None) => anyhow::bail!(
            "--webhook-url needs the webhook's secret: GRIDSYNC_AMP_WEBHOOK_SECRET_FILE (amp-producer's own)"
        ),
        (None, _) => None,
    };
    // Each type goes where the flows' configuration says its items are made; the template type
    // where the flows read templates.
    let mut assign: BTreeMap<String, BTreeSet<String>> = flows.needs.content_types.clone();
    if let Some(template_type) = spec.content_types.iter().find(|t| t.role == Role::Template) {
        assign.insert(template_type.uri.clone(), flows.needs.templates.keys().cloned().collect());
    }
    let target = Target {
        assign,
        content_repository: flows.content_repository,
        template_repository: flows.template_repository,
        webhook,
        read_types: !args.skip_read_types,
        example_templates: args.with_example_templates,
        approved_state: args.approved_state,
    };
    let hub = args.flows.amplience.hub_id.as_deref().unwrap_or_default();
    let steps = setup::setup(&client, &spec, &target, args.dry_run).await?;
    let verb = if args.dry_run { "would" } else { "did" };
    for step in &steps {
        outln!("{verb}: {step}");
    }
    match (steps.len(), args.dry_run) {
        (0, _) => outln!("hub {hub} has everything gridsync sets up: nothing to change"),
        (n, true) => outln!("hub {hub}: {n} changes planned (--dry-run: none made)"),
        (n, false) => outln!("hub {hub}: {n} changes made"),
    }
    if args.flows.webhook_url.is_none() {
        outln!("no --webhook-url: amp-producer's webhook was not set up (GRIDSYNC_AMP_WEBHOOK_URL)");
    }
    Ok(ExitCode::SUCCESS)
}

async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let spec = spec(&args.flows)?;
    let flows = flows(&args.flows, &spec)?;
    let client = client(&args.flows)?;
    let findings = setup::check(&client, &flows.needs, &spec).await?;
    for finding in &findings {
        outln!("{finding}");
    }
    let missing = findings.iter().filter(|f| !f.ok).count();
    if missing == 0 {
        outln!("the hub has everything the flows need ({} checks)", findings.len());
        Ok(ExitCode::SUCCESS)
    } else {
        outln!("{missing} of {} checks failed: the consumers stay unready until they pass", findings.len());
        Ok(ExitCode::FAILURE)
    }
}
