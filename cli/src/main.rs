//! `gridsync`: the operator CLI.

/// `println!` that returns the error of a closed stdout (`gridsync ... | head`)
/// instead of panicking; `main` treats a broken pipe as a normal end.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?;
    }};
}

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gridsync_core::config::KafkaArgs;

#[derive(Debug, Parser)]
#[command(
    name = "gridsync",
    version,
    about = "Operate the gridsync pipeline: topics, schemas, the Amplience hub, dead letters, the audit view, replays."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Topics of the catalog (schemas/topics.toml).
    Topics {
        #[command(subcommand)]
        command: commands::topics::TopicsCommand,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// The Kafka ACLs each component needs, from the catalog; `--apply` creates them.
    Acls {
        #[command(flatten)]
        args: commands::acls::AclsArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// The catalog's topics and users (with their ACLs) as Strimzi resources, in a kustomize overlay.
    Strimzi(commands::strimzi::StrimziArgs),
    /// Consumer groups: how far behind each is, per partition.
    Groups {
        #[command(subcommand)]
        command: commands::groups::GroupsCommand,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// The Avro event contract.
    Schemas {
        #[command(subcommand)]
        command: commands::schemas::SchemasCommand,
    },
    /// EDI files (X12, EDIFACT).
    Edi {
        #[command(subcommand)]
        command: commands::edi::EdiCommand,
    },
    /// The audit view (flow 7): lineage, a partner's exchanges, content sent, what is open.
    Audit(commands::audit::AuditArgs),
    /// What each of the eight flows did, one line per flow, from the audit store.
    Report(commands::report::ReportArgs),
    /// Every component's own account of itself: ready or why not, a consumer's partitions, the
    /// record and error holding each paused one, its last error.
    Status(commands::status::StatusArgs),
    /// What the catalog lists, for scripts and files that cannot read it: the binaries and
    /// their ports, Prometheus's targets.
    Catalog {
        #[command(subcommand)]
        command: commands::catalog::CatalogCommand,
    },
    /// Reset a stopped consumer's offsets so it processes records again (creating nothing twice).
    Replay {
        #[command(flatten)]
        args: commands::replay::ReplayArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Dead-letter topics.
    Dlq {
        #[command(subcommand)]
        command: commands::dlq::DlqCommand,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// The Amplience hub: set it up for gridsync (content types, webhook, example templates), check it.
    Amplience {
        #[command(subcommand)]
        command: Box<commands::amplience::AmplienceCommand>,
    },
    /// Publish sample events of every type, to see the pipeline work.
    Demo {
        #[command(flatten)]
        args: commands::demo::DemoArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gridsync: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Topics { command, kafka } => commands::topics::run(command, &kafka).await,
            Command::Acls { args, kafka } => commands::acls::run(args, &kafka).await,
            Command::Strimzi(args) => commands::strimzi::run(args),
            Command::Groups { command, kafka } => commands::groups::run(command, &kafka).await,
            Command::Schemas { command } => commands::schemas::run(command),
            Command::Edi { command } => commands::edi::run(command),
            Command::Audit(args) => commands::audit::run(args).await,
            Command::Report(args) => commands::report::run(args).await,
            Command::Status(args) => commands::status::run(args).await,
            Command::Catalog { command } => commands::catalog::run(command).map(|()| ExitCode::SUCCESS),
            Command::Replay { args, kafka } => commands::replay::run(args, &kafka).await,
            Command::Dlq { command, kafka } => commands::dlq::run(command, &kafka).await,
            Command::Demo { args, kafka } => commands::demo::run(args, &kafka).await,
            Command::Amplience { command } => commands::amplience::run(*command).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gridsync: {e:#}");
            ExitCode::FAILURE
        }
    }
}
