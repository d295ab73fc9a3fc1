//! What gridsync ships for a hub (`schemas/amplience/`): the content types it
//! writes and reads, each with its JSON Schema, and the webhook amp-producer
//! needs. Built into the binaries, so `gridsync amplience setup` needs no files.

use serde::Deserialize;
use serde_json::Value;

/// The hub description, as shipped.
const HUB_TOML: &str = include_str!("../../../../schemas/amplience/hub.toml");

/// Every schema file: `(schema name, version, text)`. A new version is a new line here and a new
/// file beside the old one (`tests::every_schema_file_is_built_in` keeps the two in step).
pub const SCHEMA_FILES: &[(&str, u32, &str)] = &[
    ("notification", 1, include_str!("../../../../schemas/amplience/content-types/notification/v1.json")),
    ("task", 1, include_str!("../../../../schemas/amplience/content-types/task/v1.json")),
    (
        "campaign-suppression",
        1,
        include_str!("../../../../schemas/amplience/content-types/campaign-suppression/v1.json"),
    ),
    ("account-status", 1, include_str!("../../../../schemas/amplience/content-types/account-status/v1.json")),
    ("distribution-status", 1, include_str!("../../../../schemas/amplience/content-types/distribution-status/v1.json")),
    ("message-template", 1, include_str!("../../../../schemas/amplience/content-types/message-template/v1.json")),
    (
        "payment-confirmation",
        1,
        include_str!("../../../../schemas/amplience/content-types/payment-confirmation/v1.json"),
    ),
    ("dispute-resolution", 1, include_str!("../../../../schemas/amplience/content-types/dispute-resolution/v1.json")),
    ("partner-content", 1, include_str!("../../../../schemas/amplience/content-types/partner-content/v1.json")),
];

/// Who writes a content type's items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// gridsync creates and updates them.
    Written,
    /// gridsync's message templates: editors write them, gridsync renders them.
    Template,
    /// Editors write them; gridsync reads them (examples of such content; a hub may map its own).
    Read,
}

/// Which repository a content type is assigned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepositoryRole {
    /// Where gridsync writes, and editors write what gridsync reads.
    Content,
    /// Where the message templates are.
    Templates,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TypeEntry {
    name: String,
    label: String,
    version: u32,
    role: Role,
    repository: RepositoryRole,
    /// The content type URI; default: `schema_base` + `<name>.json`.
    #[serde(default)]
    uri: Option<String>,
    /// The schema file's name, when not `name`.
    #[serde(default)]
    schema: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct HubFile {
    schema_base: String,
    content_types: Vec<TypeEntry>,
    webhook: WebhookSpec,
}

/// The webhook amp-producer receives.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    pub label: String,
    pub events: Vec<String>,
}

/// One content type, ready to register: its schema carries its URI as `$id`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentTypeSpec {
    pub name: String,
    pub label: String,
    pub version: u32,
    pub role: Role,
    pub repository: RepositoryRole,
    pub uri: String,
    pub schema: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("schemas/amplience/hub.toml: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("schemas/amplience/content-types/{name}/v{version}.json: {reason}")]
    Schema { name: String, version: u32, reason: String },
}

/// gridsync's hub set-up.
#[derive(Debug, Clone, PartialEq)]
pub struct HubSpec {
    /// The prefix of gridsync's own content type URIs.
    pub schema_base: String,
    pub content_types: Vec<ContentTypeSpec>,
    pub webhook: WebhookSpec,
}

/// The text of schema `name` at `version`, if shipped.
pub fn schema_text(name: &str, version: u32) -> Option<&'static str> {
    SCHEMA_FILES.iter().find(|(n, v, _)| *n == name && *v == version).map(|(_, _, text)| *text)
}

impl HubSpec {
    /// What gridsync ships.
    pub fn shipped() -> Result<Self, SpecError> {
        let file: HubFile = toml::from_str(HUB_TOML)?;
        let mut content_types = Vec::new();
        for entry in file.content_types {
            let schema_name = entry.schema.clone().unwrap_or_else(|| entry.name.clone());
            let fail = |reason: String| SpecError::Schema { name: schema_name.clone(), version: entry.version, reason };
            let text = schema_text(&schema_name, entry.version).ok_or_else(|| fail("not built in".into()))?;
            let mut schema: Value = serde_json::from_str(text).map_err(|e| fail(e.to_string()))?;
            let uri = entry.uri.clone().unwrap_or_else(|| format!("{}{}.json", file.schema_base, entry.name));
            let Some(object) = schema.as_object_mut() else { return Err(fail("not a JSON object".into())) };
            object.insert("$id".into(), Value::String(uri.clone()));
            object.insert("title".into(), Value::String(entry.label.clone()));
            content_types.push(ContentTypeSpec {
                name: entry.name,
                label: entry.label,
                version: entry.version,
                role: entry.role,
                repository: entry.repository,
                uri,
                schema,
            });
        }
        Ok(HubSpec { schema_base: file.schema_base, content_types, webhook: file.webhook })
    }

    /// gridsync's own content types under `base` instead of the shipped base.
    pub fn with_schema_base(mut self, base: &str) -> Self {
        for t in &mut self.content_types {
            if let Some(rest) = t.uri.strip_prefix(&self.schema_base) {
                t.uri = format!("{base}{rest}");
                if let Some(object) = t.schema.as_object_mut() {
                    object.insert("$id".into(), Value::String(t.uri.clone()));
                }
            }
        }
        self.schema_base = base.to_owned();
        self
    }

    /// The content type with URI `uri`.
    pub fn content_type(&self, uri: &str) -> Option<&ContentTypeSpec> {
        self.content_types.iter().find(|t| t.uri == uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_file_is_built_in() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/amplience/content-types");
        let mut on_disk = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            for file in std::fs::read_dir(entry.path()).unwrap() {
                let file = file.unwrap().file_name().into_string().unwrap();
                if let Some(version) = file.strip_prefix('v').and_then(|f| f.strip_suffix(".json")) {
                    on_disk.push((entry.file_name().into_string().unwrap(), version.parse::<u32>().unwrap()));
                }
            }
        }
        on_disk.sort();
        let mut built_in: Vec<(String, u32)> = SCHEMA_FILES.iter().map(|(n, v, _)| ((*n).to_owned(), *v)).collect();
        built_in.sort();
        assert_eq!(on_disk, built_in);
    }

    #[test]
    fn the_shipped_spec_names_every_type_once_under_its_uri() {
        let spec = HubSpec::shipped().unwrap();
        let mut uris: Vec<&str> = spec.content_types.iter().map(|t| t.uri.as_str()).collect();
        uris.sort();
        uris.dedup();
        assert_eq!(uris.len(), spec.content_types.len());
        for t in &spec.content_types {
            assert_eq!(t.schema["$id"], t.uri.as_str());
            assert_eq!(
                t.schema["allOf"][0]["$ref"], "http://bigcontent.io/cms/schema/v1/core#/definitions/content",
                "{} extends the core content definition",
                t.name
            );
        }
        let moved = spec.with_schema_base("https://cms.example.com/types/");
        let notification = moved.content_type("https://cms.example.com/types/notification.json").unwrap();
        assert_eq!(notification.schema["$id"], "https://cms.example.com/types/notification.json");
        assert!(moved.content_type("https://gridsync.example/schemas/contract.json").is_some(), "read types stay");
    }

    /// Items gridsync wrote under each version of a schema (`examples-v<N>.json`, kept as they
    /// were) must be valid under the newest version: a new version may not refuse old items.
    #[test]
    fn items_written_under_every_version_validate_against_the_newest() {
        struct Core;
        impl jsonschema::Retrieve for Core {
            fn retrieve(&self, _: &jsonschema::Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
                let core = include_str!("../../../../simulators/amplience/src/core-schema.json");
                Ok(serde_json::from_str(core)?)
            }
        }
        let spec = HubSpec::shipped().unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/amplience/content-types");
        let mut checked = 0;
        for t in spec.content_types.iter().filter(|t| t.role == Role::Written) {
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft7)
                .should_validate_formats(true)
                .with_retriever(Core)
                .build(&t.schema)
                .unwrap();
            for version in 1..=t.version {
                let path = dir.join(&t.name).join(format!("examples-v{version}.json"));
                let Ok(text) = std::fs::read_to_string(&path) else { continue };
                let items: Vec<Value> = serde_json::from_str(&text).unwrap();
                for mut item in items {
                    item["_meta"]["schema"] = Value::String(t.uri.clone());
                    let errors: Vec<String> = validator.iter_errors(&item).map(|e| e.to_string()).collect();
                    assert!(errors.is_empty(), "{} (written under v{version}): {errors:?}", path.display());
                    checked += 1;
                }
            }
            // And the check can fail: an item missing what the type requires is refused.
            let mut broken = serde_json::json!({ "_meta": { "schema": t.uri } });
            broken["_meta"]["name"] = Value::String("empty".into());
            assert!(!validator.is_valid(&broken), "{} accepts an empty item", t.name);
        }
        assert!(checked >= 5, "only {checked} example items checked");
    }
}
