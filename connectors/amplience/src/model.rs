//! The Management API's resources, as far as gridsync reads and writes them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::delivery_key::DeliveryKey;

/// A content item as the Management API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentItem {
    pub id: String,
    #[serde(default)]
    pub content_repository_id: Option<String>,
    #[serde(default)]
    pub folder_id: Option<String>,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub locale: Option<String>,
    /// The content, with `_meta` (`schema`, `name`, `deliveryKey`).
    pub body: Value,
    /// Incremented on every change; updates must send the current one.
    pub version: i64,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub delivery_id: Option<String>,
    #[serde(default)]
    pub workflow: Option<Workflow>,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub last_modified_by: Option<String>,
    #[serde(default)]
    pub created_date: Option<String>,
    #[serde(default)]
    pub last_modified_date: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// The id of the assigned workflow state, if any.
    #[serde(default)]
    pub state: Option<String>,
}

impl ContentItem {
    fn meta(&self, field: &str) -> Option<&str> {
        self.body.get("_meta")?.get(field)?.as_str()
    }

    /// The content type URI (`_meta.schema`).
    pub fn schema(&self) -> Option<&str> {
        self.meta("schema")
    }

    pub fn delivery_key(&self) -> Option<&str> {
        self.meta("deliveryKey")
    }

    pub fn workflow_state(&self) -> Option<&str> {
        self.workflow.as_ref()?.state.as_deref()
    }
}

/// A content item to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewContentItem {
    pub label: String,
    /// The content type URI.
    pub schema: String,
    pub delivery_key: Option<DeliveryKey>,
    pub folder_id: Option<String>,
    pub locale: Option<String>,
    /// The content fields (everything but `_meta`).
    pub fields: Map<String, Value>,
}

impl NewContentItem {
    /// The request body of `POST .../content-items`.
    pub fn to_request(&self) -> Value {
        let mut meta = Map::new();
        meta.insert("schema".into(), Value::String(self.schema.clone()));
        meta.insert("name".into(), Value::String(self.label.clone()));
        if let Some(key) = &self.delivery_key {
            meta.insert("deliveryKey".into(), Value::String(key.as_str().to_owned()));
        }
        let mut body = self.fields.clone();
        body.insert("_meta".into(), Value::Object(meta));
        let mut request = Map::new();
        request.insert("label".into(), Value::String(self.label.clone()));
        request.insert("body".into(), Value::Object(body));
        if let Some(folder) = &self.folder_id {
            request.insert("folderId".into(), Value::String(folder.clone()));
        }
        if let Some(locale) = &self.locale {
            request.insert("locale".into(), Value::String(locale.clone()));
        }
        Value::Object(request)
    }
}

/// A workflow state of the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowState {
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub color: Option<String>,
}

/// HAL page metadata (0-based page numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    pub size: u64,
    pub total_elements: u64,
    pub total_pages: u64,
    pub number: u64,
}

/// One page of a HAL list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: Option<PageInfo>,
    /// `_links.next.href`, when there is a next page.
    pub next: Option<String>,
}

impl<T: serde::de::DeserializeOwned> Page<T> {
    /// Reads `_embedded[<embedded>]`, `page` and `_links.next` from a HAL body.
    pub fn from_hal(body: &Value, embedded: &str) -> Result<Self, String> {
        let items = match body.get("_embedded").and_then(|e| e.get(embedded)) {
            Some(items) => serde_json::from_value(items.clone()).map_err(|e| format!("_embedded.{embedded}: {e}"))?,
            None => Vec::new(),
        };
        let page =
            body.get("page").map(|p| serde_json::from_value(p.clone())).transpose().map_err(|e| e.to_string())?;
        let next = body
            .get("_links")
            .and_then(|l| l.get("next"))
            .and_then(|n| n.get("href"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(Page { items, page, next })
    }

    /// Whether a page follows this one.
    pub fn has_next(&self) -> bool {
        self.next.is_some() || self.page.is_some_and(|p| p.number + 1 < p.total_pages)
    }

    /// Whether paging stops here: no next page, or an empty one (a server that
    /// keeps announcing pages it does not fill cannot loop a scan forever).
    pub fn is_last(&self) -> bool {
        !self.has_next() || self.items.is_empty()
    }
}
