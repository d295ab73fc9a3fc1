//! The simulated hub: repositories, content items with versions, workflow
//! states, published content, and who did what.

use std::collections::HashMap;

use gridsync_amplience::{
    model::{ContentItem, Workflow, WorkflowState},
    DeliveryKey,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::types::ContentTypes;

/// An API failure, answered as Amplience does: a status and `{"errors":[...]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct HubError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Each violation of a content type's schema: the property's path and what is wrong.
    pub violations: Vec<(String, String)>,
}

impl HubError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        HubError { status, code, message: message.into(), violations: Vec::new() }
    }

    /// A body its content type's schema refuses: one error per violation.
    pub fn validation(violations: Vec<(String, String)>) -> Self {
        let message = violations.iter().map(|(path, what)| format!("{path}: {what}")).collect::<Vec<_>>().join("; ");
        HubError { status: 400, code: "CONTENT_ITEM_SCHEMA_VALIDATION_FAILED", message, violations }
    }

    pub fn body(&self) -> Value {
        if self.violations.is_empty() {
            return json!({ "errors": [{ "level": "ERROR", "code": self.code, "message": self.message }] });
        }
        let errors: Vec<Value> = self
            .violations
            .iter()
            .map(|(path, what)| json!({ "level": "ERROR", "code": self.code, "property": path, "message": what }))
            .collect();
        json!({ "errors": errors })
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

/// `POST /content-repositories/{id}/content-items`: what a create may carry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateItem {
    pub label: String,
    pub body: Value,
    #[serde(default)]
    pub folder_id: Option<String>,
    #[serde(default)]
    pub locale: Option<String>,
}

/// `PATCH /content-items/{id}`: what an update may carry (the version read is required).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateItem {
    pub version: i64,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub folder_id: Option<String>,
    #[serde(default)]
    pub locale: Option<String>,
}

/// `PATCH /content-items/{id}/workflow`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignWorkflow {
    pub version: i64,
    pub state: Option<String>,
}

/// A request body the API refuses before looking at it: not JSON, or a field it does not take.
pub fn request<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, HubError> {
    serde_json::from_value(value).map_err(|e| HubError::new(400, "REQUEST_INVALID", e.to_string()))
}

#[derive(Default)]
pub struct Hub {
    pub hub_id: String,
    pub repositories: Vec<String>,
    pub states: Vec<WorkflowState>,
    /// Content type schemas, content types and what each repository may hold.
    pub types: ContentTypes,
    /// By id.
    items: HashMap<String, ContentItem>,
    /// Ids in creation order, and by repository.
    order: Vec<String>,
    by_repository: HashMap<String, Vec<String>>,
    /// Delivery key → item id: keys are unique on the hub.
    by_key: HashMap<String, String>,
    /// The body as last published, by item id; and the published ids by delivery key.
    published: HashMap<String, Value>,
    published_by_key: HashMap<String, String>,
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

    pub fn repository(&self, id: &str) -> Result<(), HubError> {
        if self.repositories.iter().any(|r| r == id) {
            Ok(())
        } else {
            Err(HubError::new(404, "CONTENT_REPOSITORY_NOT_FOUND", format!("no repository {id}")))
        }
    }

    /// Refuses a body whose delivery key is malformed or held by another item.
    fn check_delivery_key(&self, body: &Value, id: Option<&str>) -> Result<(), HubError> {
        let Some(key) = body.pointer("/_meta/deliveryKey").and_then(Value::as_str) else { return Ok(()) };
        DeliveryKey::parse(key).map_err(|e| HubError::new(400, "DELIVERY_KEY_INVALID", e.to_string()))?;
        match self.by_key.get(key) {
            Some(holder) if Some(holder.as_str()) != id => Err(HubError::new(
                409,
                "CONTENT_ITEM_DELIVERY_KEY_CONFLICT",
                format!("delivery key {key} is in use by content item {holder}"),
            )),
            _ => Ok(()),
        }
    }

    fn index_key(&mut self, old: Option<&str>, new: Option<&str>, id: &str) {
        if old == new {
            return;
        }
        if let Some(old) = old {
            self.by_key.remove(old);
        }
        if let Some(new) = new {
            self.by_key.insert(new.to_owned(), id.to_owned());
        }
    }

    pub fn create(&mut self, repository: &str, request: Value, actor: &str) -> Result<ContentItem, HubError> {
        self.repository(repository)?;
        let request: CreateItem = self::request(request)?;
        if request.label.trim().is_empty() {
            return Err(HubError::new(400, "CONTENT_ITEM_INVALID", "label must not be blank"));
        }
        if !request.body.is_object() {
            return Err(HubError::new(400, "CONTENT_ITEM_INVALID", "body must be an object"));
        }
        self.types.validate(repository, &request.body)?;
        self.check_delivery_key(&request.body, None)?;
        let id = uuid::Uuid::new_v4().to_string();
        let stamp = now();
        let item = ContentItem {
            id: id.clone(),
            content_repository_id: Some(repository.to_owned()),
            folder_id: request.folder_id,
            label: request.label,
            locale: request.locale,
            body: request.body,
            version: 1,
            status: Some("ACTIVE".into()),
            delivery_id: Some(id.clone()),
            workflow: None,
            created_by: Some(actor.to_owned()),
            last_modified_by: Some(actor.to_owned()),
            created_date: Some(stamp.clone()),
            last_modified_date: Some(stamp),
        };
        self.index_key(None, item.delivery_key(), &id);
        self.items.insert(id.clone(), item.clone());
        self.by_repository.entry(repository.to_owned()).or_default().push(id.clone());
        self.order.push(id);
        self.creates += 1;
        Ok(item)
    }

    fn check_version(item: &ContentItem, version: i64) -> Result<(), HubError> {
        if version == item.version {
            return Ok(());
        }
        Err(HubError::new(
            409,
            "CONTENT_ITEM_VERSION_CONFLICT",
            format!("version {version} is stale; the item is at version {}", item.version),
        ))
    }

    fn touch(item: &mut ContentItem, actor: &str) {
        item.version += 1;
        item.last_modified_by = Some(actor.to_owned());
        item.last_modified_date = Some(now());
    }

    pub fn update(&mut self, id: &str, request: Value, actor: &str) -> Result<ContentItem, HubError> {
        let request: UpdateItem = self::request(request)?;
        let current = self.item(id)?;
        Self::check_version(&current, request.version)?;
        if let Some(body) = &request.body {
            if !body.is_object() {
                return Err(HubError::new(400, "CONTENT_ITEM_INVALID", "body must be an object"));
            }
            let repository = current.content_repository_id.clone().unwrap_or_default();
            self.types.validate(&repository, body)?;
            self.check_delivery_key(body, Some(id))?;
        }
        if request.label.as_deref().is_some_and(|l| l.trim().is_empty()) {
            return Err(HubError::new(400, "CONTENT_ITEM_INVALID", "label must not be blank"));
        }
        let old_key = current.delivery_key().map(str::to_owned);
        let item = self.item_mut(id)?;
        if let Some(body) = request.body {
            item.body = body;
        }
        if let Some(label) = request.label {
            item.label = label;
        }
        if let Some(locale) = request.locale {
            item.locale = Some(locale);
        }
        if let Some(folder) = request.folder_id {
            item.folder_id = Some(folder);
        }
        Self::touch(item, actor);
        let item = item.clone();
        self.index_key(old_key.as_deref(), item.delivery_key(), id);
        Ok(item)
    }

    pub fn assign_workflow(
        &mut self,
        id: &str,
        request: Value,
        actor: &str,
    ) -> Result<(ContentItem, Change), HubError> {
        let request: AssignWorkflow = self::request(request)?;
        if let Some(state) = &request.state {
            if !self.states.iter().any(|s| &s.id == state) {
                return Err(HubError::new(400, "WORKFLOW_STATE_NOT_FOUND", format!("no workflow state {state}")));
            }
        }
        let item = self.item_mut(id)?;
        Self::check_version(item, request.version)?;
        item.workflow = Some(Workflow { state: request.state });
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
        if let Some(key) = item.delivery_key() {
            self.published_by_key.insert(key.to_owned(), id.to_owned());
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
        self.by_key.get(key).cloned()
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
        self.published_by_key.get(key).and_then(|id| self.published.get(id)).cloned()
    }

    /// A HAL page of a repository's items, oldest first unless `sort` (`createdDate` or
    /// `lastModifiedDate`, then `,asc` or `,desc`) says otherwise; another field is refused (400).
    pub fn page(&self, repository: &str, page: usize, size: usize, sort: Option<&str>) -> Result<Value, HubError> {
        self.repository(repository)?;
        let ids = self.by_repository.get(repository).map(Vec::as_slice).unwrap_or_default();
        let mut all: Vec<&ContentItem> = ids.iter().filter_map(|id| self.items.get(id)).collect();
        if let Some(sort) = sort {
            let (field, direction) = sort.split_once(',').unwrap_or((sort, "asc"));
            match field {
                "createdDate" => {}
                "lastModifiedDate" => all.sort_by(|a, b| a.last_modified_date.cmp(&b.last_modified_date)),
                _ => return Err(HubError::new(400, "INVALID_SORT", format!("cannot sort content items by {field:?}"))),
            }
            match direction.to_ascii_lowercase().as_str() {
                "asc" => {}
                "desc" => all.reverse(),
                _ => return Err(HubError::new(400, "INVALID_SORT", format!("sort direction {direction:?}"))),
            }
        }
        let size = size.clamp(1, 100);
        let total_pages = all.len().div_ceil(size);
        let items: Vec<&ContentItem> = all.iter().skip(page * size).take(size).copied().collect();
        let base = format!("/v2/content/content-repositories/{repository}/content-items");
        let sorted = sort.map(|s| format!("&sort={s}")).unwrap_or_default();
        let mut links = json!({ "self": { "href": format!("{base}?page={page}&size={size}{sorted}") } });
        if page + 1 < total_pages {
            links["next"] = json!({ "href": format!("{base}?page={}&size={size}{sorted}", page + 1) });
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
