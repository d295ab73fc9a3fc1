//! Schema compatibility: every current schema must be fully (backward and
//! forward) compatible with every earlier version kept in `schemas/avro/history`,
//! and must itself be kept there before it ships.

use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};

use crate::{codec::Codec, events::EventType};

/// One problem found by [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompatProblem {
    /// Data written with `old` cannot be read by the current schema.
    NotBackward { event_type: EventType, old: u32, reason: String },
    /// Data written with the current schema cannot be read by a consumer still on `old`.
    NotForward { event_type: EventType, old: u32, reason: String },
    /// The current schema is not in history yet (`gridsync schemas freeze`).
    NotFrozen { event_type: EventType, version: u32 },
}

impl std::fmt::Display for CompatProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompatProblem::NotBackward { event_type, old, reason } => write!(
                f,
                "{}: the current schema cannot read records written with v{old} (not backward compatible): {reason}",
                event_type.name()
            ),
            CompatProblem::NotForward { event_type, old, reason } => write!(
                f,
                "{}: a v{old} reader cannot read records written with the current schema (not forward compatible): {reason}",
                event_type.name()
            ),
            CompatProblem::NotFrozen { event_type, version } => write!(
                f,
                "{}: the current schema (v{version}) is not kept in schemas/avro/history; run `gridsync schemas freeze`",
                event_type.name()
            ),
        }
    }
}

/// Outcome of [`check`].
#[derive(Debug, Default)]
pub struct CompatReport {
    /// (event type, old version) pairs compared.
    pub pairs_checked: usize,
    pub problems: Vec<CompatProblem>,
}

fn full(writer: &apache_avro::Schema, reader: &apache_avro::Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(partial) => Err(format!("only {partial:?} compatibility (an enum or union does not cover every value)")),
        Err(e) => Err(e.to_string()),
    }
}

/// Checks every current schema against every kept version of its event type.
pub fn check(codec: &Codec) -> CompatReport {
    let mut report = CompatReport::default();
    for event_type in EventType::ALL {
        let current = codec.current(event_type);
        if !event_type.history().iter().any(|(v, _)| *v == current.version) {
            report.problems.push(CompatProblem::NotFrozen { event_type, version: current.version });
        }
        for old in codec.known_schemas().iter().filter(|k| k.event_type == event_type && !k.current) {
            report.pairs_checked += 1;
            if let Err(reason) = full(&old.schema, &current.schema) {
                report.problems.push(CompatProblem::NotBackward { event_type, old: old.version, reason });
            }
            if let Err(reason) = full(&current.schema, &old.schema) {
                report.problems.push(CompatProblem::NotForward { event_type, old: old.version, reason });
            }
        }
    }
    report
}

/// Writes each current schema that is not kept yet as the next history
/// version, `<avro_dir>/history/<Event>/v<N>.avsc`. Returns the files written.
pub fn freeze(codec: &Codec, avro_dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    for event_type in EventType::ALL {
        let current = codec.current(event_type);
        if event_type.history().iter().any(|(v, _)| *v == current.version) {
            continue;
        }
        let dir = avro_dir.join("history").join(event_type.name());
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("v{}.avsc", current.version));
        let json: serde_json::Value = serde_json::from_str(event_type.current_schema_json())?;
        std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use apache_avro::Schema;

    use super::full;

    fn record(fields: &str) -> Schema {
        Schema::parse_str(&format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#)).unwrap()
    }

    #[test]
    fn optional_field_with_default_is_fully_compatible() {
        let old = record(r#"{"name":"a","type":"string"}"#);
        let new = record(r#"{"name":"a","type":"string"},{"name":"b","type":["null","string"],"default":null}"#);
        assert!(full(&old, &new).is_ok() && full(&new, &old).is_ok());
    }

    #[test]
    fn required_field_without_default_breaks_backward_compatibility() {
        let old = record(r#"{"name":"a","type":"string"}"#);
        let new = record(r#"{"name":"a","type":"string"},{"name":"b","type":"string"}"#);
        assert!(full(&old, &new).is_err(), "new reader cannot fill b from old data");
        assert!(full(&new, &old).is_ok());
    }

    #[test]
    fn changed_type_breaks_both_directions() {
        let old = record(r#"{"name":"a","type":"string"}"#);
        let new = record(r#"{"name":"a","type":"boolean"}"#);
        assert!(full(&old, &new).is_err() && full(&new, &old).is_err());
    }
}
