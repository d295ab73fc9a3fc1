//! `gridsync schemas ...`

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;
use gridsync_schemas::{codec, compat, EventType};

#[derive(Debug, Subcommand)]
pub enum SchemasCommand {
    /// Fail unless every current schema is fully compatible with every kept
    /// earlier version, and is itself kept in history.
    Check,
    /// Record each changed current schema as the next version in history.
    Freeze {
        /// The `schemas/avro` folder of the checkout.
        #[arg(long, default_value = "schemas/avro")]
        avro_dir: PathBuf,
    },
    /// Print an event type's current schema, self-contained.
    Show { event_type: String },
    /// List every known schema version with its fingerprint.
    List,
}

pub fn run(command: SchemasCommand) -> anyhow::Result<ExitCode> {
    let codec = codec()?;
    match command {
        SchemasCommand::Check => {
            let report = compat::check(codec);
            for note in &report.upgrade_notes {
                outln!("note: {note}");
            }
            for problem in &report.problems {
                eprintln!("{problem}");
            }
            outln!(
                "{} event types, {} earlier versions checked, {} problems",
                EventType::ALL.len(),
                report.pairs_checked,
                report.problems.len()
            );
            return Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        SchemasCommand::Freeze { avro_dir } => {
            let written = compat::freeze(codec, &avro_dir)?;
            for path in &written {
                outln!("wrote {}", path.display());
            }
            if written.is_empty() {
                outln!("every current schema is already kept");
            }
        }
        SchemasCommand::Show { event_type } => {
            let t = EventType::ALL
                .into_iter()
                .find(|t| t.name() == event_type)
                .ok_or_else(|| anyhow::anyhow!("unknown event type {event_type}"))?;
            let json: serde_json::Value = serde_json::from_str(t.current_schema_json())?;
            outln!("{}", serde_json::to_string_pretty(&json)?);
        }
        SchemasCommand::List => {
            for k in codec.known_schemas() {
                outln!(
                    "{:<28} v{} {}{}",
                    k.event_type.name(),
                    k.version,
                    k.fingerprint,
                    if k.current { " (current)" } else { "" }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
