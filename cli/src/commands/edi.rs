//! `gridsync edi inspect <file>`: what a partner's file maps to.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Subcommand;
use gridsync_edi::{map_interchange, parse, MapContext};
use gridsync_schemas::Timestamp;

#[derive(Debug, Subcommand)]
pub enum EdiCommand {
    /// Print every event the file maps to, one JSON object per line (decimals
    /// exact); a malformed file, or one with a transaction tg-producer would reject on its own,
    /// exits non-zero with the precise error.
    Inspect { file: PathBuf },
}

pub fn run(command: EdiCommand) -> anyhow::Result<ExitCode> {
    let EdiCommand::Inspect { file } = command;
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.display().to_string();
    let interchanges = match parse(&bytes) {
        Ok(interchanges) => interchanges,
        Err(e) => {
            eprintln!("{name}: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let ctx = MapContext { file_name: Some(&name), ingested_at: Timestamp::now() };
    let mut rejected = false;
    for interchange in &interchanges {
        let mapped = match map_interchange(interchange, &ctx) {
            Ok(mapped) => mapped,
            Err(e) => {
                eprintln!("{name}: {e}");
                return Ok(ExitCode::FAILURE);
            }
        };
        for event in &mapped.events {
            outln!("{}", serde_json::to_string(&event.to_json()?)?);
        }
        for (_, tx, error) in interchange.rejections(&mapped.rejected) {
            rejected = true;
            eprintln!(
                "{name}: interchange {}: {} {} is rejected (the rest is read): {error}",
                interchange.control_number, tx.document_type, tx.control_number
            );
        }
        for (document_type, control) in &mapped.skipped {
            eprintln!(
                "{name}: interchange {}: {document_type} {control} is not a document gridsync maps: rejected (AK5*R*1, UCM 4)",
                interchange.control_number
            );
        }
    }
    Ok(if rejected { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
