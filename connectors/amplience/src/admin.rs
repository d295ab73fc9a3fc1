//! The hub's set-up through the Management API: the hub, its repositories and
//! the content types assigned to each, content-type schemas, content types
//! (and the schema each has cached), webhook subscriptions. What
//! `gridsync amplience setup` and `check` use ([`crate::setup`]).

use reqwest::Method;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{error::AmplienceError, ManagementClient};

/// A content-type schema: the JSON Schema's text, under its `$id`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentTypeSchema {
    pub id: String,
    pub schema_id: String,
    pub body: String,
    pub version: i64,
    #[serde(default)]
    pub validation_level: Option<String>,
}

impl ContentTypeSchema {
    /// The schema as JSON (`null` when the hub holds text that is not: it then differs from any
    /// schema gridsync ships).
    pub fn parsed(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A content type registered on the hub.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentType {
    pub id: String,
    pub content_type_uri: String,
    #[serde(default)]
    pub settings: Value,
}

/// What a content type has cached of its schema (items are validated against it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedSchema {
    #[serde(default)]
    pub cached_schema: Value,
}

/// A content type assigned to a repository.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedType {
    pub hub_content_type_id: String,
    pub content_type_uri: String,
}

/// A content repository.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repository {
    pub id: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub content_types: Vec<AssignedType>,
}

/// A webhook subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    #[serde(default, skip_serializing)]
    pub id: Option<String>,
    pub label: String,
    pub events: Vec<String>,
    pub handlers: Vec<String>,
    pub active: bool,
    /// Write-only in practice: gridsync sends it, and compares it only where the hub shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl ManagementClient {
    /// The configured hub id, or the error of a client without one.
    pub(crate) fn hub(&self) -> Result<&str, AmplienceError> {
        self.hub_id().ok_or_else(|| AmplienceError::Unexpected {
            method: "GET",
            url: self.url("/hubs/?"),
            message: "no hub id configured (--amplience-hub-id)".into(),
        })
    }

    /// The items of `repository_id` that have a delivery key, by it.
    pub async fn items_by_delivery_key(
        &self,
        repository_id: &str,
    ) -> Result<std::collections::HashMap<String, crate::ContentItem>, AmplienceError> {
        let items = self.all_items(repository_id).await?;
        Ok(items.into_iter().filter_map(|i| i.delivery_key().map(|k| (k.to_owned(), i.clone()))).collect())
    }

    /// The webhook as a request body.
    fn webhook_request(&self, webhook: &Webhook) -> Result<Value, AmplienceError> {
        serde_json::to_value(webhook).map_err(|e| AmplienceError::Unexpected {
            method: "POST",
            url: self.url("/webhooks"),
            message: e.to_string(),
        })
    }

    async fn resource<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, AmplienceError> {
        let name = gridsync_http::method_name(&method);
        let (url, value) = self.call(method, path, body).await?;
        serde_json::from_value(value).map_err(|e| AmplienceError::Unexpected {
            method: name,
            url,
            message: e.to_string(),
        })
    }

    /// The hub's own resource: proves the credentials reach the configured hub.
    pub async fn hub_resource(&self) -> Result<Value, AmplienceError> {
        let hub = self.hub()?;
        self.call(Method::GET, &format!("/hubs/{hub}"), None).await.map(|(_, v)| v)
    }

    pub async fn repository(&self, id: &str) -> Result<Repository, AmplienceError> {
        self.resource(Method::GET, &format!("/content-repositories/{id}"), None).await
    }

    pub async fn content_type_schemas(&self) -> Result<Vec<ContentTypeSchema>, AmplienceError> {
        let hub = self.hub()?;
        self.all_pages(&format!("/hubs/{hub}/content-type-schemas"), "content-type-schemas").await
    }

    pub async fn create_content_type_schema(
        &self,
        schema_id: &str,
        body: &str,
    ) -> Result<ContentTypeSchema, AmplienceError> {
        let hub = self.hub()?;
        let request = json!({ "body": body, "schemaId": schema_id, "validationLevel": "CONTENT_TYPE" });
        self.resource(Method::POST, &format!("/hubs/{hub}/content-type-schemas"), Some(&request)).await
    }

    /// Saves `body` as the schema's next version (`version` is the one read).
    pub async fn update_content_type_schema(
        &self,
        id: &str,
        body: &str,
        version: i64,
    ) -> Result<ContentTypeSchema, AmplienceError> {
        let request = json!({ "body": body, "validationLevel": "CONTENT_TYPE", "version": version });
        self.resource(Method::PATCH, &format!("/content-type-schemas/{id}"), Some(&request)).await
    }

    pub async fn content_types(&self) -> Result<Vec<ContentType>, AmplienceError> {
        let hub = self.hub()?;
        self.all_pages(&format!("/hubs/{hub}/content-types"), "content-types").await
    }

    pub async fn register_content_type(&self, uri: &str, settings: &Value) -> Result<ContentType, AmplienceError> {
        let hub = self.hub()?;
        let request = json!({ "contentTypeUri": uri, "settings": settings });
        self.resource(Method::POST, &format!("/hubs/{hub}/content-types"), Some(&request)).await
    }

    pub async fn update_content_type(&self, id: &str, settings: &Value) -> Result<ContentType, AmplienceError> {
        self.resource(Method::PATCH, &format!("/content-types/{id}"), Some(&json!({ "settings": settings }))).await
    }

    pub async fn cached_schema(&self, content_type_id: &str) -> Result<CachedSchema, AmplienceError> {
        self.resource(Method::GET, &format!("/content-types/{content_type_id}/schema"), None).await
    }

    /// Makes the content type validate against its schema's current version.
    pub async fn sync_cached_schema(&self, content_type_id: &str) -> Result<CachedSchema, AmplienceError> {
        self.resource(Method::PATCH, &format!("/content-types/{content_type_id}/schema"), Some(&json!({}))).await
    }

    pub async fn assign_content_type(
        &self,
        repository_id: &str,
        content_type_id: &str,
    ) -> Result<Repository, AmplienceError> {
        let request = json!({ "contentTypeId": content_type_id });
        self.resource(Method::POST, &format!("/content-repositories/{repository_id}/content-types"), Some(&request))
            .await
    }

    pub async fn webhooks(&self) -> Result<Vec<Webhook>, AmplienceError> {
        let hub = self.hub()?;
        self.all_pages(&format!("/hubs/{hub}/webhooks"), "webhooks").await
    }

    pub async fn create_webhook(&self, webhook: &Webhook) -> Result<Webhook, AmplienceError> {
        let hub = self.hub()?;
        let request = self.webhook_request(webhook)?;
        self.resource(Method::POST, &format!("/hubs/{hub}/webhooks"), Some(&request)).await
    }

    pub async fn update_webhook(&self, id: &str, webhook: &Webhook) -> Result<Webhook, AmplienceError> {
        let hub = self.hub()?;
        let request = self.webhook_request(webhook)?;
        self.resource(Method::PATCH, &format!("/hubs/{hub}/webhooks/{id}"), Some(&request)).await
    }
}
