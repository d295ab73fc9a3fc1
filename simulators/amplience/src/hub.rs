//! The simulated hub: repositories, content items with versions, workflow
//! states, published content, and who did what.

use std::collections::BTreeMap;

use gridsync_amplience::{
    model::{ContentItem, Workflow, WorkflowState},
    DeliveryKey,
};
use serde_json::{json, Value};

/// An API failure, answered as Amplience does: a status and `{"errors":[...]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct HubError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl HubError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        HubError { status, code, message: message.into() }
    }

    pub fn body(&self) -> Value {
        json!({ "errors": [{ "level": "ERROR", "code": self.code, "message": self.message }] })
    }
}

/// A change the webhook sender reports.
#[derive(Debug, Clone)]
pub enum Change {
    WorkflowUpdated(ContentItem),
    Published {
        item: ContentItem,
        snapshot_id: String,
        by: String,
    },
    /// An edition went live: its slots' items are published together.
    EditionPublished {
        edition_id: String,
        name: String,
        items: Vec<ContentItem>,
        by: String,
    },
}

#[derive(Debug, Default)]
pub struct Hub {
    pub hub_id: String,
    pub repositories: Vec<String>,
    pub states: Vec<WorkflowState>,
    /// By id, in creation order of ids (uuid v7 would sort; we keep a sequence).
    items: BTreeMap<String, ContentItem>,
    order: Vec<String>,
    /// The body as last published, by item id.
    published: BTreeMap<String, Value>,
    pub creates: u64,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Hub {
    pub fn new(hub_id: &str, repositories: Vec<String>, state_labels: &[String]) -> Self {
        let states = state_labels
            .iter()
            .enumerate()
            .map(|(i, label)| WorkflowState { id: format!("{:024x}", 0x5f00 + i), label: label.clone(), color: None })
            .collect();
        Hub { hub_id: hub_id.to_owned(), repositories, states, ..Hub::default() }
    }

    fn item_mut(&mut self, id: &str) -> Result<&mut ContentItem, HubError> {
        self.items
            .get_mut(id)
            .ok_or_else(|| HubError::new(404, "CONTENT_ITEM_NOT_FOUND", format!("no content item {id}")))
    }

    pub fn item(&self, id: &str) -> Result<ContentItem, HubError> {
        self.items
            .get(id)
            .cloned()
            .ok_or_else(|| HubError::new(404, "CONTENT_ITEM_NOT_FOUND", format!("no content item {id}")))
    }

    pub fn create(&mut self, repository: &str, request: &Value, actor: &str) -> Result<ContentItem, HubError> {
        if !self.repositories.iter().any(|r| r == repository) {
            return Err(HubError::new(404, "CONTENT_REPOSITORY_NOT_FOUND", format!("no repository {repository}")));
        }
        let body = request.get("body").filter(|b| b.is_object()).cloned().unwrap_or(Value::Null);
        let schema = body.pointer("/_meta/schema").and_then(Value::as_str);
        if schema.is_none_or(str::is_empty) {
            return Err(HubError::new(400, "CONTENT_ITEM_INVALID", "body._meta.schema is required"));
        }
        if let Some(key) = body.pointer("/_meta/deliveryKey").and_then(Value::as_str) {
            DeliveryKey::parse(key).map_err(|e| HubError::new(400, "DELIVERY_KEY_INVALID", e.to_string()))?;
            if self.items.values().any(|i| i.delivery_key() == Some(key)) {
                return Err(HubError::new(
                    409,
                    "CONTENT_ITEM_DELIVERY_KEY_CONFLICT",
                    format!("delivery key {key} is in use"),
                ));
            }
        }
        let text = |field: &str| request.get(field).and_then(Value::as_str).map(str::to_owned);
        let id = uuid::Uuid::new_v4().to_string();
        let stamp = now();
        let item = ContentItem {
            id: id.clone(),
            content_repository_id: Some(repository.to_owned()),
            folder_id: text("folderId"),
            label: text("label").unwrap_or_default(),
            locale: text("locale"),
            body,
            version: 1,
            status: Some("ACTIVE".into()),
            delivery_id: Some(id.clone()),
            workflow: None,
            created_by: Some(actor.to_owned()),
            last_modified_by: Some(actor.to_owned()),
            created_date: Some(stamp.clone()),
            last_modified_date: Some(stamp),
        };
        self.items.insert(id.clone(), item.clone());
        self.order.push(id);
        self.creates += 1;
        Ok(item)
    }

    fn check_version(item: &ContentItem, request: &Value) -> Result<(), HubError> {
        match request.get("version").and_then(Value::as_i64) {
            Some(v) if v == item.version => Ok(()),
            Some(v) => Err(HubError::new(
                409,
                "CONTENT_ITEM_VERSION_CONFLICT",
                format!("version {v} is stale; the item is at version {}", item.version),
            )),
            None => Err(HubError::new(400, "CONTENT_ITEM_INVALID", "version is required")),
        }
    }

    fn touch(item: &mut ContentItem, actor: &str) {
        item.version += 1;
        item.last_modified_by = Some(actor.to_owned());
        item.last_modified_date = Some(now());
    }

    pub fn update(&mut self, id: &str, request: &Value, actor: &str) -> Result<ContentItem, HubError> {
        let item = self.item_mut(id)?;
        Self::check_version(item, request)?;
        if let Some(body) = request.get("body").filter(|b| b.is_object()) {
            item.body = body.clone();
        }
        if let Some(label) = request.get("label").and_then(Value::as_str) {
            item.label = label.to_owned();
        }
        Self::touch(item, actor);
        Ok(item.clone())
    }

    pub fn assign_workflow(
        &mut self,
        id: &str,
        request: &Value,
        actor: &str,
    ) -> Result<(ContentItem, Change), HubError> {
        let state = request.get("state").and_then(Value::as_str).map(str::to_owned);
        if let Some(state) = &state {
            if !self.states.iter().any(|s| &s.id == state) {
                return Err(HubError::new(400, "WORKFLOW_STATE_NOT_FOUND", format!("no workflow state {state}")));
            }
        }
        let item = self.item_mut(id)?;
        Self::check_version(item, request)?;
        item.workflow = Some(Workflow { state });
        Self::touch(item, actor);
        let item = item.clone();
        Ok((item.clone(), Change::WorkflowUpdated(item)))
    }

    pub fn publish(&mut self, id: &str, actor: &str) -> Result<Change, HubError> {
        let item = self.item(id)?;
        let mut content = item.body.clone();
        if let Some(meta) = content.get_mut("_meta").and_then(Value::as_object_mut) {
            meta.insert("deliveryId".into(), Value::String(item.id.clone()));
        }
        self.published.insert(id.to_owned(), content);
        Ok(Change::Published { item, snapshot_id: uuid::Uuid::new_v4().to_string(), by: actor.to_owned() })
    }

    /// Publishes `ids` together as an edition named `name`.
    pub fn publish_edition(&mut self, name: &str, ids: &[String], actor: &str) -> Result<Change, HubError> {
        let mut items = Vec::new();
        for id in ids {
            if let Change::Published { item, .. } = self.publish(id, actor)? {
                items.push(item);
            }
        }
        let edition_id = format!("{:024x}", uuid::Uuid::new_v4().as_u128() >> 32);
        Ok(Change::EditionPublished { edition_id, name: name.to_owned(), items, by: actor.to_owned() })
    }

    /// The id of the item with delivery key `key`.
    pub fn find_by_delivery_key(&self, key: &str) -> Option<String> {
        self.items.values().find(|i| i.delivery_key() == Some(key)).map(|i| i.id.clone())
    }

    /// Every item whose delivery key starts with `prefix`, oldest first, with
    /// its workflow state's label: what the tests and the demo check.
    pub fn items_with_key_prefix(&self, prefix: &str) -> Vec<Value> {
        self.order
            .iter()
            .filter_map(|id| self.items.get(id))
            .filter(|i| i.delivery_key().is_some_and(|k| k.starts_with(prefix)))
            .map(|i| {
                let state = i.workflow_state().and_then(|s| self.states.iter().find(|w| w.id == s)).map(|w| &w.label);
                json!({ "item": i, "workflowState": state })
            })
            .collect()
    }

    pub fn published_by_id(&self, id: &str) -> Option<Value> {
        self.published.get(id).cloned()
    }

    pub fn published_by_key(&self, key: &str) -> Option<Value> {
        self.published.values().find(|c| c.pointer("/_meta/deliveryKey").and_then(Value::as_str) == Some(key)).cloned()
    }

    /// A HAL page of a repository's items, oldest first.
    pub fn page(&self, repository: &str, page: usize, size: usize) -> Result<Value, HubError> {
        if !self.repositories.iter().any(|r| r == repository) {
            return Err(HubError::new(404, "CONTENT_REPOSITORY_NOT_FOUND", format!("no repository {repository}")));
        }
        let all: Vec<&ContentItem> = self
            .order
            .iter()
            .filter_map(|id| self.items.get(id))
            .filter(|i| i.content_repository_id.as_deref() == Some(repository))
            .collect();
        let size = size.clamp(1, 100);
        let total_pages = all.len().div_ceil(size);
        let items: Vec<&ContentItem> = all.iter().skip(page * size).take(size).copied().collect();
        let base = format!("/v2/content/content-repositories/{repository}/content-items");
        let mut links = json!({ "self": { "href": format!("{base}?page={page}&size={size}") } });
        if page + 1 < total_pages {
            links["next"] = json!({ "href": format!("{base}?page={}&size={size}", page + 1) });
        }
        Ok(json!({
            "_embedded": { "content-items": items },
            "_links": links,
            "page": { "size": size, "totalElements": all.len(), "totalPages": total_pages, "number": page },
        }))
    }

    pub fn states_page(&self) -> Value {
        json!({
            "_embedded": { "workflow-states": self.states },
            "page": { "size": 100, "totalElements": self.states.len(), "totalPages": 1, "number": 0 },
        })
    }
}
