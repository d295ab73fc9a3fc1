//! Content types as a hub holds them: content-type schemas (JSON Schema
//! draft-07, versioned), content types registered from them (each with the
//! schema it cached when registered or last synchronised), and their
//! assignment to repositories. A content item is accepted only under a
//! content type assigned to its repository, and only if its body validates
//! against that type's cached schema.

use std::{
    collections::BTreeMap,
    sync::{Arc, LazyLock},
};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::hub::HubError;

/// Amplience's core definitions (`.../core#/definitions/content`, image and video links).
pub const CORE_URI: &str = "http://bigcontent.io/cms/schema/v1/core";
static CORE: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(include_str!("core-schema.json")).unwrap_or(Value::Null));

/// The validation levels a schema may be created with.
const VALIDATION_LEVELS: [&str; 3] = ["CONTENT_TYPE", "SLOT", "HIERARCHY"];

/// Resolves `$ref`s to the core schema and nothing else: a hub fetches no
/// schema from the network to validate an item.
struct CoreOnly;

impl jsonschema::Retrieve for CoreOnly {
    fn retrieve(&self, uri: &jsonschema::Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        if uri.as_str().trim_end_matches('#') == CORE_URI {
            Ok(CORE.clone())
        } else {
            Err(format!("{uri} is not a schema this hub knows").into())
        }
    }
}

fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .with_retriever(CoreOnly)
        .build(schema)
        .map_err(|e| e.to_string())
}

/// A content-type schema: its text, as registered.
#[derive(Debug, Clone)]
pub struct SchemaRecord {
    pub id: String,
    pub schema_id: String,
    pub body: String,
    pub version: i64,
    pub validation_level: String,
    pub created_by: String,
    pub created_date: String,
    pub last_modified_by: String,
    pub last_modified_date: String,
}

impl SchemaRecord {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id, "schemaId": self.schema_id, "body": self.body, "version": self.version,
            "validationLevel": self.validation_level, "status": "ACTIVE",
            "createdBy": self.created_by, "createdDate": self.created_date,
            "lastModifiedBy": self.last_modified_by, "lastModifiedDate": self.last_modified_date,
            "_links": { "self": { "href": format!("/v2/content/content-type-schemas/{}", self.id) } },
        })
    }
}

/// A registered content type, with the schema it validates items against.
#[derive(Clone)]
pub struct ContentType {
    pub id: String,
    pub uri: String,
    pub settings: Value,
    /// The schema as cached at registration or the last `PATCH .../schema`.
    pub cached: Value,
    validator: Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for ContentType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentType").field("id", &self.id).field("uri", &self.uri).finish_non_exhaustive()
    }
}

impl ContentType {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id, "contentTypeUri": self.uri, "settings": self.settings, "status": "ACTIVE",
            "_links": {
                "self": { "href": format!("/v2/content/content-types/{}", self.id) },
                "content-type-schema": { "href": format!("/v2/content/content-types/{}/schema", self.id) },
            },
        })
    }

    pub fn cached_json(&self, hub_id: &str) -> Value {
        json!({ "hubId": hub_id, "contentTypeUri": self.uri, "cachedSchema": self.cached })
    }
}

/// `POST /hubs/{hub}/content-type-schemas`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateSchema {
    pub body: String,
    pub schema_id: String,
    pub validation_level: String,
}

/// `PATCH /content-type-schemas/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateSchema {
    pub body: String,
    #[serde(default)]
    pub validation_level: Option<String>,
    pub version: i64,
}

/// `POST /hubs/{hub}/content-types`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegisterType {
    pub content_type_uri: String,
    #[serde(default)]
    pub settings: Option<Value>,
}

/// `PATCH /content-types/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateType {
    #[serde(default)]
    pub settings: Option<Value>,
    #[serde(default)]
    pub content_type_uri: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
}

/// `POST /content-repositories/{id}/content-types`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Assign {
    pub content_type_id: String,
}

#[derive(Default)]
pub struct ContentTypes {
    schemas: BTreeMap<String, SchemaRecord>,
    types: BTreeMap<String, ContentType>,
    /// Repository id → content type ids assigned to it.
    assigned: BTreeMap<String, Vec<String>>,
}

fn new_id() -> String {
    format!("{:024x}", uuid::Uuid::new_v4().as_u128() >> 32)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn invalid(code: &'static str, message: impl Into<String>) -> HubError {
    HubError::new(400, code, message)
}

impl ContentTypes {
    /// Checks a schema text as the hub does: JSON, an object whose `$id` is `schema_id`, and a
    /// JSON Schema that compiles (its references resolving to the core definitions).
    fn parse_schema(schema_id: &str, body: &str) -> Result<Value, HubError> {
        let schema: Value = serde_json::from_str(body)
            .map_err(|e| invalid("CONTENT_TYPE_SCHEMA_INVALID", format!("the schema is not JSON: {e}")))?;
        if schema.get("$id").and_then(Value::as_str) != Some(schema_id) {
            return Err(invalid("CONTENT_TYPE_SCHEMA_INVALID", format!("the schema's $id must be {schema_id}")));
        }
        compile(&schema)
            .map_err(|e| invalid("CONTENT_TYPE_SCHEMA_INVALID", format!("the schema does not compile: {e}")))?;
        Ok(schema)
    }

    fn check_level(level: &str) -> Result<(), HubError> {
        if VALIDATION_LEVELS.contains(&level) {
            Ok(())
        } else {
            Err(invalid("VALIDATION_LEVEL_INVALID", format!("validationLevel must be one of {VALIDATION_LEVELS:?}")))
        }
    }

    pub fn schemas(&self) -> Vec<&SchemaRecord> {
        self.schemas.values().collect()
    }

    pub fn schema(&self, id: &str) -> Result<&SchemaRecord, HubError> {
        self.schemas
            .get(id)
            .ok_or_else(|| HubError::new(404, "CONTENT_TYPE_SCHEMA_NOT_FOUND", format!("no content type schema {id}")))
    }

    pub fn create_schema(&mut self, request: CreateSchema, actor: &str) -> Result<SchemaRecord, HubError> {
        Self::check_level(&request.validation_level)?;
        if self.schemas.values().any(|s| s.schema_id == request.schema_id) {
            return Err(HubError::new(
                409,
                "CONTENT_TYPE_SCHEMA_ALREADY_EXISTS",
                format!("a schema with id {} exists; update it instead", request.schema_id),
            ));
        }
        Self::parse_schema(&request.schema_id, &request.body)?;
        let stamp = now();
        let record = SchemaRecord {
            id: new_id(),
            schema_id: request.schema_id,
            body: request.body,
            version: 1,
            validation_level: request.validation_level,
            created_by: actor.to_owned(),
            created_date: stamp.clone(),
            last_modified_by: actor.to_owned(),
            last_modified_date: stamp,
        };
        self.schemas.insert(record.id.clone(), record.clone());
        Ok(record)
    }

    pub fn update_schema(&mut self, id: &str, request: UpdateSchema, actor: &str) -> Result<SchemaRecord, HubError> {
        let current = self.schema(id)?.clone();
        if request.version != current.version {
            return Err(HubError::new(
                409,
                "CONTENT_TYPE_SCHEMA_VERSION_CONFLICT",
                format!("version {} is stale; the schema is at version {}", request.version, current.version),
            ));
        }
        if let Some(level) = &request.validation_level {
            Self::check_level(level)?;
        }
        Self::parse_schema(&current.schema_id, &request.body)?;
        let record = SchemaRecord {
            body: request.body,
            version: current.version + 1,
            validation_level: request.validation_level.unwrap_or(current.validation_level),
            last_modified_by: actor.to_owned(),
            last_modified_date: now(),
            ..current
        };
        self.schemas.insert(id.to_owned(), record.clone());
        Ok(record)
    }

    fn schema_by_uri(&self, uri: &str) -> Result<Value, HubError> {
        let record = self.schemas.values().find(|s| s.schema_id == uri).ok_or_else(|| {
            invalid("CONTENT_TYPE_SCHEMA_NOT_FOUND", format!("no content type schema with id {uri} on this hub"))
        })?;
        Self::parse_schema(uri, &record.body)
    }

    fn cache(id: String, uri: String, settings: Value, cached: Value) -> Result<ContentType, HubError> {
        let validator = compile(&cached).map_err(|e| invalid("CONTENT_TYPE_SCHEMA_INVALID", e))?;
        Ok(ContentType { id, uri, settings, cached, validator: Arc::new(validator) })
    }

    pub fn types(&self) -> Vec<&ContentType> {
        self.types.values().collect()
    }

    pub fn content_type(&self, id: &str) -> Result<&ContentType, HubError> {
        self.types.get(id).ok_or_else(|| HubError::new(404, "CONTENT_TYPE_NOT_FOUND", format!("no content type {id}")))
    }

    pub fn register(&mut self, request: RegisterType) -> Result<ContentType, HubError> {
        if self.types.values().any(|t| t.uri == request.content_type_uri) {
            return Err(HubError::new(
                409,
                "CONTENT_TYPE_ALREADY_REGISTERED",
                format!("content type {} is registered", request.content_type_uri),
            ));
        }
        let cached = self.schema_by_uri(&request.content_type_uri)?;
        let settings = request.settings.unwrap_or_else(|| json!({}));
        let registered = Self::cache(new_id(), request.content_type_uri, settings, cached)?;
        self.types.insert(registered.id.clone(), registered.clone());
        Ok(registered)
    }

    pub fn update_type(&mut self, id: &str, request: UpdateType) -> Result<ContentType, HubError> {
        let current = self.content_type(id)?.clone();
        if request.content_type_uri.as_ref().is_some_and(|uri| uri != &current.uri) {
            return Err(invalid("CONTENT_TYPE_URI_IMMUTABLE", "a content type's URI cannot change"));
        }
        let updated = ContentType { settings: request.settings.unwrap_or(current.settings.clone()), ..current };
        self.types.insert(id.to_owned(), updated.clone());
        Ok(updated)
    }

    /// `PATCH /content-types/{id}/schema`: caches the schema's current version.
    pub fn sync(&mut self, id: &str) -> Result<ContentType, HubError> {
        let current = self.content_type(id)?.clone();
        let cached = self.schema_by_uri(&current.uri)?;
        let synced = Self::cache(current.id, current.uri, current.settings, cached)?;
        self.types.insert(id.to_owned(), synced.clone());
        Ok(synced)
    }

    pub fn assign(&mut self, repository: &str, request: &Assign) -> Result<(), HubError> {
        self.content_type(&request.content_type_id)?;
        let assigned = self.assigned.entry(repository.to_owned()).or_default();
        if !assigned.contains(&request.content_type_id) {
            assigned.push(request.content_type_id.clone());
        }
        Ok(())
    }

    pub fn unassign(&mut self, repository: &str, content_type_id: &str) -> Result<(), HubError> {
        let assigned = self.assigned.entry(repository.to_owned()).or_default();
        let before = assigned.len();
        assigned.retain(|id| id != content_type_id);
        if assigned.len() == before {
            return Err(HubError::new(
                404,
                "CONTENT_TYPE_NOT_ASSIGNED",
                format!("content type {content_type_id} is not assigned to repository {repository}"),
            ));
        }
        Ok(())
    }

    /// The `contentTypes` of a repository resource.
    pub fn assigned_json(&self, repository: &str) -> Value {
        let assigned = self.assigned.get(repository).map(Vec::as_slice).unwrap_or_default();
        Value::Array(
            assigned
                .iter()
                .filter_map(|id| self.types.get(id))
                .map(|t| json!({ "hubContentTypeId": t.id, "contentTypeUri": t.uri }))
                .collect(),
        )
    }

    /// Refuses `body` unless its `_meta.schema` is a content type assigned to `repository` and
    /// it validates against that type's cached schema; every violation is named.
    pub fn validate(&self, repository: &str, body: &Value) -> Result<(), HubError> {
        let Some(uri) = body.pointer("/_meta/schema").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
            return Err(invalid("CONTENT_ITEM_INVALID", "body._meta.schema is required"));
        };
        let assigned = self.assigned.get(repository).map(Vec::as_slice).unwrap_or_default();
        let Some(content_type) = assigned.iter().filter_map(|id| self.types.get(id)).find(|t| t.uri == uri) else {
            let registered = self.types.values().any(|t| t.uri == uri);
            let message = if registered {
                format!("content type {uri} is not assigned to repository {repository}")
            } else {
                format!("content type {uri} is not registered on this hub")
            };
            return Err(invalid("CONTENT_TYPE_NOT_FOUND", message));
        };
        let errors: Vec<(String, String)> =
            content_type.validator.iter_errors(body).map(|e| (e.instance_path().to_string(), e.to_string())).collect();
        if errors.is_empty() {
            return Ok(());
        }
        Err(HubError::validation(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(uri: &str, required: &[&str]) -> String {
        json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "$id": uri,
            "allOf": [{ "$ref": "http://bigcontent.io/cms/schema/v1/core#/definitions/content" }],
            "type": "object",
            "properties": { "title": { "type": "string" } },
            "required": required,
        })
        .to_string()
    }

    #[test]
    fn items_validate_against_the_schema_cached_by_their_assigned_type() {
        let uri = "https://example.test/a.json";
        let mut types = ContentTypes::default();
        let created = types
            .create_schema(
                CreateSchema { body: schema(uri, &[]), schema_id: uri.into(), validation_level: "CONTENT_TYPE".into() },
                "t",
            )
            .unwrap();
        let registered = types.register(RegisterType { content_type_uri: uri.into(), settings: None }).unwrap();
        let item = json!({ "_meta": { "schema": uri }, "title": 3 });
        assert_eq!(types.validate("r1", &item).unwrap_err().status, 400, "not assigned yet");
        types.assign("r1", &Assign { content_type_id: registered.id.clone() }).unwrap();
        let err = types.validate("r1", &item).unwrap_err();
        assert!(err.message.contains("/title"), "{err:?}");
        assert!(types.validate("r1", &json!({ "_meta": { "schema": uri }, "title": "x" })).is_ok());
        assert!(types.validate("r1", &json!({ "title": "x" })).is_err(), "no _meta");

        // A new schema version is used once the type is synchronised, not before.
        let update = UpdateSchema { body: schema(uri, &["title"]), validation_level: None, version: 1 };
        types.update_schema(&created.id, update, "t").unwrap();
        assert!(types.validate("r1", &json!({ "_meta": { "schema": uri } })).is_ok());
        types.sync(&registered.id).unwrap();
        assert!(types.validate("r1", &json!({ "_meta": { "schema": uri } })).is_err());
        let stale = UpdateSchema { body: schema(uri, &[]), validation_level: None, version: 1 };
        assert_eq!(types.update_schema(&created.id, stale, "t").unwrap_err().status, 409);
    }

    #[test]
    fn a_schema_must_name_itself_and_compile() {
        let mut types = ContentTypes::default();
        let uri = "https://example.test/b.json";
        let wrong_id = CreateSchema {
            body: schema("https://other", &[]),
            schema_id: uri.into(),
            validation_level: "CONTENT_TYPE".into(),
        };
        assert_eq!(types.create_schema(wrong_id, "t").unwrap_err().status, 400);
        let remote = json!({ "$id": uri, "$ref": "https://elsewhere.test/x.json" }).to_string();
        let remote = CreateSchema { body: remote, schema_id: uri.into(), validation_level: "CONTENT_TYPE".into() };
        assert_eq!(types.create_schema(remote, "t").unwrap_err().status, 400);
        assert_eq!(
            types.register(RegisterType { content_type_uri: uri.into(), settings: None }).unwrap_err().status,
            400,
            "no schema registered under the URI"
        );
    }
}
