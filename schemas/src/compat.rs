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
    /// What an upgrade must respect: enum symbols readers on an old version lack (see
    /// [`only_new_enum_symbols`]), so consumers are upgraded before producers.
    pub upgrade_notes: Vec<String>,
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
                let old_json = event_type.history().iter().find(|(v, _)| *v == old.version).map(|(_, json)| *json);
                match old_json.and_then(|old| only_new_enum_symbols(event_type.current_schema_json(), old)) {
                    Some(symbols) => report.upgrade_notes.push(format!(
                        "{}: a v{} reader does not know {}: upgrade consumers before producers (from this version on, \
                         a symbol a reader does not know reads as its enum's default)",
                        event_type.name(),
                        old.version,
                        symbols.join(", ")
                    )),
                    None => report.problems.push(CompatProblem::NotForward { event_type, old: old.version, reason }),
                }
            }
        }
    }
    report
}

/// The one forward incompatibility allowed: the current schema adds symbols to enums it gives a
/// `default` (so that every reader from now on reads a symbol it does not know as the default),
/// and is otherwise fully compatible with `old`. A reader on `old` cannot read a record carrying
/// a new symbol (Avro resolves an unknown symbol only through the reader's own default), so
/// consumers are upgraded before producers, as the check's note says; no reader can misread
/// one. Returns the new symbols (`Enum.SYMBOL`), or `None` when anything else differs.
fn only_new_enum_symbols(current: &str, old: &str) -> Option<Vec<String>> {
    use serde_json::Value;
    fn enums<'v>(value: &'v Value, found: &mut Vec<&'v serde_json::Map<String, Value>>) {
        match value {
            Value::Object(map) if map.get("type").and_then(Value::as_str) == Some("enum") => found.push(map),
            Value::Object(map) => map.values().for_each(|v| enums(v, found)),
            Value::Array(items) => items.iter().for_each(|v| enums(v, found)),
            _ => {}
        }
    }
    fn trim(value: &mut Value, old_symbols: &std::collections::BTreeMap<String, Vec<Value>>, added: &mut Vec<String>) {
        match value {
            Value::Object(map)
                if map.get("type").and_then(Value::as_str) == Some("enum") && map.contains_key("default") =>
            {
                let name = map.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
                let Some(known) = old_symbols.get(&name) else { return };
                if let Some(Value::Array(symbols)) = map.get_mut("symbols") {
                    added.extend(
                        symbols
                            .iter()
                            .filter(|s| !known.contains(s))
                            .map(|s| format!("{name}.{}", s.as_str().unwrap_or_default())),
                    );
                    symbols.retain(|s| known.contains(s));
                }
            }
            Value::Object(map) => map.values_mut().for_each(|v| trim(v, old_symbols, added)),
            Value::Array(items) => items.iter_mut().for_each(|v| trim(v, old_symbols, added)),
            _ => {}
        }
    }
    let (mut current, old): (Value, Value) = (serde_json::from_str(current).ok()?, serde_json::from_str(old).ok()?);
    let mut found = Vec::new();
    enums(&old, &mut found);
    let old_symbols = found
        .into_iter()
        .filter_map(|e| Some((e.get("name")?.as_str()?.to_owned(), e.get("symbols")?.as_array()?.clone())))
        .collect();
    let mut added = Vec::new();
    trim(&mut current, &old_symbols, &mut added);
    let (trimmed, old) = (apache_avro::Schema::parse(&current).ok()?, apache_avro::Schema::parse(&old).ok()?);
    (!added.is_empty() && full(&trimmed, &old).is_ok() && full(&old, &trimmed).is_ok()).then_some(added)
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

    /// A symbol added to an enum with a default: allowed, naming the symbol (consumers first);
    /// one added to an enum without a default, or with another change beside it, is not.
    #[test]
    fn a_new_enum_symbol_needs_the_enums_default_and_nothing_else_changed() {
        let kind = |symbols: &str, default: &str, extra: &str| {
            format!(
                r#"{{"type":"record","name":"R","fields":[{{"name":"k","type":{{"type":"enum","name":"K","symbols":[{symbols}]{default}}}}}{extra}]}}"#
            )
        };
        let old = kind(r#""A","OTHER""#, "", "");
        let added = kind(r#""A","OTHER","NEW""#, r#","default":"OTHER""#, "");
        assert_eq!(super::only_new_enum_symbols(&added, &old), Some(vec!["K.NEW".to_owned()]));
        let no_default = kind(r#""A","OTHER","NEW""#, "", "");
        assert_eq!(super::only_new_enum_symbols(&no_default, &old), None);
        let and_more = kind(r#""A","OTHER","NEW""#, r#","default":"OTHER""#, r#",{"name":"b","type":"string"}"#);
        assert_eq!(super::only_new_enum_symbols(&and_more, &old), None);
    }

    #[test]
    fn changed_type_breaks_both_directions() {
        let old = record(r#"{"name":"a","type":"string"}"#);
        let new = record(r#"{"name":"a","type":"boolean"}"#);
        assert!(full(&old, &new).is_err() && full(&new, &old).is_err());
    }
}
