//! Messages rendered from the latest approved version of a template content
//! item in Amplience.
//!
//! A template is a content item found by its delivery key (configuration names
//! the key per event, locale and partner). Every text field of its body but
//! `_meta` is a minijinja template; rendering fills each one from the event,
//! the partner profile and what the flow adds, in strict mode: a field the
//! template names but the context lacks is an error, never an empty hole.
//!
//! "Approved" is a workflow state (labels from configuration). The Management
//! API returns an item's current version, which may be a draft edited after
//! approval, so the last version seen approved is kept in the store and used
//! until a newer one is approved. A template read from Amplience is reused for
//! a while (`--template-ttl-ms`), so a burst of events does not read it per event.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use gridsync_amplience::ManagementClient;
use gridsync_store::{ApprovedTemplate, ApprovedTemplates};
use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::FlowError;

/// A template's rendered fields, and which template version they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub template_key: String,
    pub template_id: String,
    pub template_version: i64,
    /// Each text field of the template, rendered; other fields as they are.
    pub fields: Map<String, Value>,
}

/// The approved version of a template, as cached.
#[derive(Debug, Clone)]
struct Approved {
    id: String,
    version: i64,
    body: Value,
    read_at: Instant,
}

pub struct Templates {
    client: Arc<ManagementClient>,
    repository_id: String,
    approved_states: Vec<String>,
    store: ApprovedTemplates,
    ttl: Duration,
    cache: Mutex<HashMap<String, Approved>>,
    env: Environment<'static>,
}

impl Templates {
    pub fn new(
        client: Arc<ManagementClient>,
        repository_id: String,
        approved_states: Vec<String>,
        store: ApprovedTemplates,
        ttl: Duration,
    ) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        Templates { client, repository_id, approved_states, store, ttl, cache: Mutex::new(HashMap::new()), env }
    }

    /// Renders the template with delivery key `key` with `context`.
    pub async fn render(&self, key: &str, context: &Value) -> Result<Rendered, FlowError> {
        let approved = self.approved(key).await?;
        let mut fields = Map::new();
        let Some(body) = approved.body.as_object() else {
            return Err(FlowError::Template { key: key.to_owned(), reason: "its body is not an object".into() });
        };
        for (name, value) in body.iter().filter(|(name, _)| name.as_str() != "_meta") {
            let rendered = match value {
                Value::String(source) => Value::String(self.env.render_str(source, context).map_err(|e| {
                    FlowError::Render { key: key.to_owned(), version: approved.version, reason: describe(name, &e) }
                })?),
                other => other.clone(),
            };
            fields.insert(name.clone(), rendered);
        }
        Ok(Rendered {
            template_key: key.to_owned(),
            template_id: approved.id,
            template_version: approved.version,
            fields,
        })
    }

    /// The approved version of the template `key`: cached for the TTL, else
    /// read from Amplience (and recorded if approved), else the last one recorded.
    async fn approved(&self, key: &str) -> Result<Approved, FlowError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.get(key).filter(|c| c.read_at.elapsed() < self.ttl) {
            return Ok(cached.clone());
        }
        let known = match cache.get(key).map(|c| c.id.clone()) {
            Some(id) => match self.client.get_item(&id).await {
                Ok(item) => Some(item),
                // Deleted (and perhaps made again under the same key): look it up anew.
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let item = match known {
            Some(item) => item,
            None => self.client.find_by_delivery_key(&self.repository_id, key).await?.ok_or_else(|| {
                FlowError::Template {
                    key: key.to_owned(),
                    reason: format!("no content item with this delivery key in repository {}", self.repository_id),
                }
            })?,
        };
        let state = match item.workflow_state() {
            Some(id) => self.client.workflow_state_label(id).await?,
            None => None,
        };
        let approved = if state.as_ref().is_some_and(|s| self.approved_states.contains(s)) {
            // A refresh that finds the version it had cached has nothing new to record.
            if cache.get(key).map(|c| c.version) != Some(item.version) {
                let body = serde_json::to_string(&item.body).map_err(|e| FlowError::Invalid(e.to_string()))?;
                self.store.record(&item.id, &ApprovedTemplate { version: item.version, body }).await?;
            }
            Approved { id: item.id.clone(), version: item.version, body: item.body.clone(), read_at: Instant::now() }
        } else {
            match self.store.latest(&item.id).await? {
                Some(recorded) => Approved {
                    id: item.id.clone(),
                    version: recorded.version,
                    body: serde_json::from_str(&recorded.body).map_err(|e| FlowError::Invalid(e.to_string()))?,
                    read_at: Instant::now(),
                },
                None => return Err(FlowError::TemplateNotApproved { key: key.to_owned(), state }),
            }
        };
        cache.insert(key.to_owned(), approved.clone());
        Ok(approved)
    }
}

/// The render error with the field it happened in and minijinja's own detail.
fn describe(field: &str, error: &minijinja::Error) -> String {
    let mut text = format!("field {field:?}: {}", error.kind());
    if let Some(detail) = error.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    if let Some(line) = error.line() {
        text.push_str(&format!(" (line {line})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use minijinja::{Environment, UndefinedBehavior};
    use serde_json::json;

    #[test]
    fn strict_mode_refuses_a_missing_field() {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let context = json!({ "event": { "po_number": "PO1" } });
        assert_eq!(env.render_str("PO {{ event.po_number }}", &context).unwrap(), "PO PO1");
        let err = env.render_str("PO {{ event.po_numbr }}", &context).unwrap_err();
        assert!(super::describe("subject", &err).starts_with("field \"subject\": undefined value"), "{err}");
    }
}
