//! Confluent Schema Registry support, and the decoder that reads either framing.
//!
//! Subjects follow the RecordNameStrategy (`gridsync.events.InvoiceReceived`):
//! a topic carries several event types, so the topic name cannot be the subject.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use apache_avro::Schema;
use gridsync_schemas::{codec, Codec, CodecError, Decoded, EventType, Framing};

use crate::kafka::HandlerError;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("schema registry unreachable: {0}")]
    Unreachable(#[source] reqwest::Error),
    #[error("schema registry answered {status} for {path}: {body}")]
    Status { status: u16, path: String, body: String },
    #[error("schema registry response for {path} is not understood: {message}")]
    Response { path: String, message: String },
    #[error("schema {id} from the registry does not parse: {message}")]
    BadSchema { id: u32, message: String },
}

impl RegistryError {
    /// For metrics: `timeout`, `unreachable`, `status`, `response` or `schema`.
    pub fn reason(&self) -> &'static str {
        match self {
            RegistryError::Unreachable(e) if e.is_timeout() => "timeout",
            RegistryError::Unreachable(_) => "unreachable",
            RegistryError::Status { .. } => "status",
            RegistryError::Response { .. } => "response",
            RegistryError::BadSchema { .. } => "schema",
        }
    }

    /// Unreachable, 5xx and 429 may pass; anything else will not.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable(_) => true,
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// The longest a registry request may take (a timeout is a transient error, counted by reason).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A Schema Registry client with caches for ids and schemas: each schema is
/// registered and each id fetched once per process.
pub struct SchemaRegistry {
    http: reqwest::Client,
    base_url: String,
    timeout: std::time::Duration,
    registered: RwLock<HashMap<EventType, u32>>,
    schemas: RwLock<HashMap<u32, Arc<Schema>>>,
}

#[derive(serde::Deserialize)]
struct IdResponse {
    id: u32,
}

#[derive(serde::Deserialize)]
struct SchemaResponse {
    schema: String,
}

impl SchemaRegistry {
    pub fn new(base_url: &str) -> Self {
        SchemaRegistry {
            http: reqwest::Client::new(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            timeout: REQUEST_TIMEOUT,
            registered: RwLock::default(),
            schemas: RwLock::default(),
        }
    }

    /// Bounds each request by `timeout` instead of [`REQUEST_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The subject an event type's schema is registered under.
    pub fn subject(event_type: EventType) -> String {
        format!("gridsync.events.{}", event_type.name())
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<T, RegistryError> {
        let request = request.header(reqwest::header::ACCEPT, CONTENT_TYPE).timeout(self.timeout);
        let response = request.send().await.map_err(RegistryError::Unreachable)?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(RegistryError::Status { status: status.as_u16(), path: path.to_owned(), body });
        }
        response.json().await.map_err(|e| RegistryError::Response { path: path.to_owned(), message: e.to_string() })
    }

    /// Registers the current schema of `event_type` (idempotent on the registry
    /// side) and returns its id.
    pub async fn register(&self, event_type: EventType) -> Result<u32, RegistryError> {
        if let Some(id) = self.registered.read().ok().and_then(|m| m.get(&event_type).copied()) {
            return Ok(id);
        }
        let path = format!("/subjects/{}/versions", Self::subject(event_type));
        let body = serde_json::json!({ "schema": event_type.current_schema_json() });
        let request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .json(&body);
        let IdResponse { id } = self.call(request, &path).await?;
        if let Ok(mut m) = self.registered.write() {
            m.insert(event_type, id);
        }
        Ok(id)
    }

    /// The writer schema with this id.
    pub async fn schema(&self, id: u32) -> Result<Arc<Schema>, RegistryError> {
        if let Some(schema) = self.schemas.read().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(schema);
        }
        let path = format!("/schemas/ids/{id}");
        let SchemaResponse { schema } = self.call(self.http.get(format!("{}{path}", self.base_url)), &path).await?;
        let parsed =
            Arc::new(Schema::parse_str(&schema).map_err(|e| RegistryError::BadSchema { id, message: e.to_string() })?);
        if let Ok(mut m) = self.schemas.write() {
            m.insert(id, parsed.clone());
        }
        Ok(parsed)
    }
}

/// Decodes record values in either framing: single-object (`C3 01`, schemas
/// known to this build) or Confluent (`00`, writer schema from the registry).
#[derive(Clone)]
pub struct EventDecoder {
    codec: &'static Codec,
    registry: Option<Arc<SchemaRegistry>>,
}

impl EventDecoder {
    pub fn new(registry_url: Option<&str>) -> Result<Self, CodecError> {
        Ok(EventDecoder { codec: codec()?, registry: registry_url.map(|url| Arc::new(SchemaRegistry::new(url))) })
    }

    /// Decodes one record value. Undecodable bytes are a permanent error; a
    /// registry that cannot be reached is a transient one.
    pub async fn decode(&self, bytes: &[u8]) -> Result<Decoded, HandlerError> {
        let permanent = |e: CodecError| HandlerError::permanent(e.class(), e);
        match Framing::sniff(bytes).map_err(permanent)? {
            (Framing::SingleObject(_), _) => self.codec.decode(bytes).map_err(permanent),
            (Framing::Confluent { schema_id }, datum) => {
                let registry =
                    self.registry.as_ref().ok_or_else(|| permanent(CodecError::RegistryRequired(schema_id)))?;
                let writer = registry.schema(schema_id).await.map_err(|e| {
                    if e.is_transient() {
                        HandlerError::transient("registry.unavailable", e)
                    } else {
                        HandlerError::permanent("registry.schema", e)
                    }
                })?;
                self.codec.decode_datum_with_writer(&writer, datum).map_err(permanent)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_registry_that_never_answers_is_a_transient_timeout() {
        // Accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let _held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let registry = SchemaRegistry::new(&url).with_timeout(std::time::Duration::from_millis(200));
        let error = registry.register(EventType::InvoiceReceived).await.unwrap_err();
        assert_eq!(error.reason(), "timeout", "{error}");
        assert!(error.is_transient());
    }
}
