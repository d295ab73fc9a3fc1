//! Inlines shared named types (avro/common) into an event schema, so every event
//! schema is self-contained: its Parsing Canonical Form, and so its fingerprint,
//! is the one any other Avro implementation computes for the same schema.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

const PRIMITIVES: [&str; 8] = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"];

/// Full name of a named schema object, resolving its namespace against `enclosing`.
pub fn full_name(schema: &Value, enclosing: Option<&str>) -> String {
    let name = schema["name"].as_str().unwrap_or_default();
    if name.contains('.') {
        return name.to_owned();
    }
    match schema["namespace"].as_str().or(enclosing) {
        Some(ns) if !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_owned(),
    }
}

fn namespace_of(full: &str) -> Option<&str> {
    full.rsplit_once('.').map(|(ns, _)| ns)
}

/// Replaces the first reference to each common type by its definition.
pub fn inline_named_types(schema: &Value, common: &BTreeMap<String, Value>) -> Result<Value, String> {
    let mut defined = HashSet::new();
    walk(schema, common, &mut defined, None)
}

fn walk(
    schema: &Value,
    common: &BTreeMap<String, Value>,
    defined: &mut HashSet<String>,
    ns: Option<&str>,
) -> Result<Value, String> {
    match schema {
        Value::String(name) if PRIMITIVES.contains(&name.as_str()) => Ok(schema.clone()),
        Value::String(name) => {
            let full = match ns {
                Some(ns) if !name.contains('.') => format!("{ns}.{name}"),
                _ => name.clone(),
            };
            if defined.contains(&full) {
                Ok(Value::String(full))
            } else if let Some(definition) = common.get(&full) {
                walk(definition, common, defined, namespace_of(&full))
            } else {
                Err(format!("unknown type {full}"))
            }
        }
        Value::Array(branches) => {
            branches.iter().map(|b| walk(b, common, defined, ns)).collect::<Result<Vec<_>, _>>().map(Value::Array)
        }
        Value::Object(object) => {
            let mut out = object.clone();
            match object.get("type").and_then(Value::as_str) {
                Some("record" | "error") => {
                    let full = full_name(schema, ns);
                    if !defined.insert(full.clone()) {
                        return Err(format!("{full} is defined twice"));
                    }
                    let inner_ns = namespace_of(&full);
                    let fields = object["fields"].as_array().ok_or(format!("{full}: no fields"))?;
                    let mut new_fields = Vec::with_capacity(fields.len());
                    for field in fields {
                        let mut f = field.clone();
                        f["type"] = walk(&field["type"], common, defined, inner_ns)?;
                        new_fields.push(f);
                    }
                    out.insert("fields".into(), Value::Array(new_fields));
                }
                Some("enum" | "fixed") => {
                    let full = full_name(schema, ns);
                    if !defined.insert(full.clone()) {
                        return Err(format!("{full} is defined twice"));
                    }
                }
                Some("array") => {
                    out.insert("items".into(), walk(&object["items"], common, defined, ns)?);
                }
                Some("map") => {
                    out.insert("values".into(), walk(&object["values"], common, defined, ns)?);
                }
                Some(_) => {}
                None => {
                    let inner = object.get("type").ok_or("a schema object without type")?;
                    out.insert("type".into(), walk(inner, common, defined, ns)?);
                }
            }
            Ok(Value::Object(out))
        }
        other => Err(format!("not a schema: {other}")),
    }
}
