//! Setting a hub up for gridsync through the Management API, idempotently:
//! content-type schemas created or updated to the shipped version, content
//! types registered with their schema cached, assigned to their repository,
//! the webhook amp-producer needs, and example templates on request. Each step
//! is found by comparing the hub with what gridsync ships; a second run finds
//! nothing to do. `--dry-run` finds the steps and takes none.
//!
//! [`check`] verifies a hub (and what each flow needs of it) without changing it.

pub mod check;
pub mod spec;
pub mod templates;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt,
};

use serde_json::{json, Value};

use crate::{
    admin::{ContentType, ContentTypeSchema, Webhook},
    error::AmplienceError,
    model::NewContentItem,
    DeliveryKey, ManagementClient,
};
pub use check::{check, Finding, Requirements};
pub use spec::{ContentTypeSpec, HubSpec, RepositoryRole, Role};

/// Where and how to set the hub up.
#[derive(Debug, Clone)]
pub struct Target {
    /// Content type URI → the repositories it is assigned to (those the flows' configuration
    /// names for it); a type named nowhere goes to the repository its role says.
    pub assign: BTreeMap<String, BTreeSet<String>>,
    /// Where gridsync writes (and editors write what it reads), by default.
    pub content_repository: String,
    /// Where the message templates are, by default (and the example templates go).
    pub template_repository: String,
    /// amp-producer's webhook URL and secret; none: no webhook is set up.
    pub webhook: Option<(String, crate::Secret)>,
    /// Also the example types of the content gridsync reads (payments, disputes, partner content).
    pub read_types: bool,
    /// Also an approved example template per action and locale, where none is.
    pub example_templates: bool,
    /// The workflow state example templates are approved in.
    pub approved_state: String,
}

/// One change to the hub.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    CreateSchema { uri: String },
    UpdateSchema { uri: String, from_version: i64 },
    RegisterType { uri: String },
    UpdateTypeSettings { uri: String },
    SyncCachedSchema { uri: String },
    Assign { uri: String, repository: String },
    CreateWebhook { url: String },
    UpdateWebhook { url: String, why: String },
    CreateTemplate { key: String },
    ApproveTemplate { key: String },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateSchema { uri } => write!(f, "create content-type schema {uri}"),
            Step::UpdateSchema { uri, from_version } => {
                write!(f, "update content-type schema {uri} (hub version {from_version} differs from gridsync's)")
            }
            Step::RegisterType { uri } => write!(f, "register content type {uri}"),
            Step::UpdateTypeSettings { uri } => write!(f, "update the label of content type {uri}"),
            Step::SyncCachedSchema { uri } => write!(f, "make content type {uri} use its schema's current version"),
            Step::Assign { uri, repository } => write!(f, "assign content type {uri} to repository {repository}"),
            Step::CreateWebhook { url } => write!(f, "create the webhook to {url}"),
            Step::UpdateWebhook { url, why } => write!(f, "update the webhook to {url} ({why})"),
            Step::CreateTemplate { key } => write!(f, "create example template {key}"),
            Step::ApproveTemplate { key } => write!(f, "approve example template {key}"),
        }
    }
}

fn settings(t: &ContentTypeSpec) -> Value {
    json!({ "label": t.label, "icons": [], "visualizations": [] })
}

/// Brings the hub to what `spec` and `target` ask; with `dry_run`, only finds the steps.
/// Returns the steps, in the order taken.
pub async fn setup(
    client: &ManagementClient,
    spec: &HubSpec,
    target: &Target,
    dry_run: bool,
) -> Result<Vec<Step>, AmplienceError> {
    let mut steps = Vec::new();
    let mut schemas: HashMap<String, ContentTypeSchema> =
        client.content_type_schemas().await?.into_iter().map(|s| (s.schema_id.clone(), s)).collect();
    let mut types: HashMap<String, ContentType> =
        client.content_types().await?.into_iter().map(|t| (t.content_type_uri.clone(), t)).collect();
    let mut repositories = HashMap::new();
    let named = target.assign.values().flatten();
    for id in [&target.content_repository, &target.template_repository].into_iter().chain(named) {
        if !repositories.contains_key(id) {
            repositories.insert(id.clone(), client.repository(id).await?);
        }
    }
    let wanted = spec.content_types.iter().filter(|t| target.read_types || t.role != Role::Read);
    for t in wanted {
        let body = t.schema.to_string();
        // The schema.
        let mut changed_schema = false;
        match schemas.get(&t.uri) {
            None => {
                steps.push(Step::CreateSchema { uri: t.uri.clone() });
                if !dry_run {
                    let created = client.create_content_type_schema(&t.uri, &body).await?;
                    schemas.insert(t.uri.clone(), created);
                }
                changed_schema = true;
            }
            Some(existing) if existing.parsed() != t.schema => {
                steps.push(Step::UpdateSchema { uri: t.uri.clone(), from_version: existing.version });
                if !dry_run {
                    let updated = client.update_content_type_schema(&existing.id, &body, existing.version).await?;
                    schemas.insert(t.uri.clone(), updated);
                }
                changed_schema = true;
            }
            Some(_) => {}
        }
        // The content type, validating against that schema.
        let registered = match types.get(&t.uri) {
            None => {
                steps.push(Step::RegisterType { uri: t.uri.clone() });
                if dry_run {
                    None
                } else {
                    let created = client.register_content_type(&t.uri, &settings(t)).await?;
                    types.insert(t.uri.clone(), created.clone());
                    Some(created)
                }
            }
            Some(existing) => {
                if existing.settings.get("label").and_then(Value::as_str) != Some(t.label.as_str()) {
                    steps.push(Step::UpdateTypeSettings { uri: t.uri.clone() });
                    if !dry_run {
                        client.update_content_type(&existing.id, &settings(t)).await?;
                    }
                }
                let stale = changed_schema || client.cached_schema(&existing.id).await?.cached_schema != t.schema;
                if stale {
                    steps.push(Step::SyncCachedSchema { uri: t.uri.clone() });
                    if !dry_run {
                        client.sync_cached_schema(&existing.id).await?;
                    }
                }
                Some(existing.clone())
            }
        };
        // Its repositories.
        let by_role = match t.repository {
            RepositoryRole::Content => &target.content_repository,
            RepositoryRole::Templates => &target.template_repository,
        };
        let named = target.assign.get(&t.uri).cloned().unwrap_or_else(|| BTreeSet::from([by_role.clone()]));
        for repository in &named {
            let assigned = repositories
                .get(repository)
                .is_some_and(|r| r.content_types.iter().any(|a| a.content_type_uri == t.uri));
            if !assigned {
                steps.push(Step::Assign { uri: t.uri.clone(), repository: repository.clone() });
                if let (false, Some(registered)) = (dry_run, &registered) {
                    let updated = client.assign_content_type(repository, &registered.id).await?;
                    repositories.insert(repository.clone(), updated);
                }
            }
        }
    }
    if target.example_templates {
        example_templates(client, spec, target, dry_run, &mut steps).await?;
    }
    // The webhook last: the set-up's own changes (templates approved) are not sent to amp-producer.
    if let Some((url, secret)) = &target.webhook {
        webhook(client, spec, url, secret, dry_run, &mut steps).await?;
    }
    Ok(steps)
}

async fn webhook(
    client: &ManagementClient,
    spec: &HubSpec,
    url: &str,
    secret: &crate::Secret,
    dry_run: bool,
    steps: &mut Vec<Step>,
) -> Result<(), AmplienceError> {
    let wanted = Webhook {
        id: None,
        label: spec.webhook.label.clone(),
        events: spec.webhook.events.clone(),
        handlers: vec![url.to_owned()],
        active: true,
        secret: Some(secret.expose().to_owned()),
    };
    let existing = client.webhooks().await?;
    let found = existing
        .iter()
        .find(|w| w.handlers.iter().any(|h| h == url))
        .or_else(|| existing.iter().find(|w| w.label == wanted.label));
    let Some(found) = found else {
        steps.push(Step::CreateWebhook { url: url.to_owned() });
        if !dry_run {
            client.create_webhook(&wanted).await?;
        }
        return Ok(());
    };
    let mut why = Vec::new();
    let mut events = found.events.clone();
    events.sort();
    let mut want_events = wanted.events.clone();
    want_events.sort();
    if events != want_events {
        why.push("its events");
    }
    if found.handlers != wanted.handlers {
        why.push("its URL");
    }
    if !found.active {
        why.push("inactive");
    }
    // A hub that shows the secret shows whether it is ours; one that hides it is left as set.
    if found.secret.as_ref().is_some_and(|s| Some(s) != wanted.secret.as_ref()) {
        why.push("its secret");
    }
    if !why.is_empty() {
        steps.push(Step::UpdateWebhook { url: url.to_owned(), why: why.join(", ") });
        if let (false, Some(id)) = (dry_run, &found.id) {
            client.update_webhook(id, &wanted).await?;
        }
    }
    Ok(())
}

async fn example_templates(
    client: &ManagementClient,
    spec: &HubSpec,
    target: &Target,
    dry_run: bool,
    steps: &mut Vec<Step>,
) -> Result<(), AmplienceError> {
    let Some(template_type) = spec.content_types.iter().find(|t| t.role == Role::Template) else {
        return Ok(());
    };
    let existing = client.items_by_delivery_key(&target.template_repository).await?;
    // Fails before anything is made when the hub has no such state.
    client.workflow_state_id(&target.approved_state).await?;
    for example in templates::examples() {
        let item = match existing.get(&example.key) {
            Some(item) => Some(item.clone()),
            None => {
                steps.push(Step::CreateTemplate { key: example.key.clone() });
                if dry_run {
                    None
                } else {
                    let key = DeliveryKey::parse(&example.key).map_err(|e| AmplienceError::Unexpected {
                        method: "POST",
                        url: example.key.clone(),
                        message: e.to_string(),
                    })?;
                    let new = NewContentItem {
                        label: example.label.clone(),
                        schema: template_type.uri.clone(),
                        delivery_key: Some(key),
                        folder_id: None,
                        locale: Some(example.locale.to_owned()),
                        fields: example.fields.clone(),
                    };
                    Some(client.create_item(&target.template_repository, &new).await?)
                }
            }
        };
        // Approved once, when made: a template someone has since moved to another state is theirs.
        let made_now = !existing.contains_key(&example.key);
        if made_now || item.as_ref().is_some_and(|i| i.workflow_state().is_none()) {
            steps.push(Step::ApproveTemplate { key: example.key.clone() });
            if let (false, Some(item)) = (dry_run, item) {
                client.assign_workflow_state(&item.id, &target.approved_state).await?;
            }
        }
    }
    Ok(())
}
