//! Whether a hub has what gridsync needs: credentials that reach it, the
//! repositories, every content type registered with gridsync's schema and
//! assigned, the workflow states, the templates each flow renders (present,
//! approved, parseable), and amp-producer's webhook. Each finding names what
//! is missing and how to fix it. `gridsync amplience check` runs it for every
//! flow; each consumer runs it for its own flow at start.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::HubSpec;
use crate::{error::AmplienceError, ManagementClient};

/// The templates of one repository, and the workflow states that count as approved there.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplateNeeds {
    pub keys: BTreeSet<String>,
    pub approved_states: BTreeSet<String>,
}

/// What one or more flows need of a hub.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requirements {
    /// Content type URI → the repositories it must be assigned to.
    pub content_types: BTreeMap<String, BTreeSet<String>>,
    /// Workflow state labels the flows move items into or read.
    pub workflow_states: BTreeSet<String>,
    /// Template repository → the templates the flows render from it.
    pub templates: BTreeMap<String, TemplateNeeds>,
    /// amp-producer's webhook: its URL and the events it needs.
    pub webhook: Option<(String, Vec<String>)>,
}

impl Requirements {
    /// Items of `uri` are created in `repository`.
    pub fn content_type(&mut self, uri: &str, repository: &str) -> &mut Self {
        self.content_types.entry(uri.to_owned()).or_default().insert(repository.to_owned());
        self
    }

    pub fn workflow_states<'a>(&mut self, labels: impl IntoIterator<Item = &'a String>) -> &mut Self {
        self.workflow_states.extend(labels.into_iter().cloned());
        self
    }

    /// Templates `keys` in `repository`, approved in one of `approved_states`.
    pub fn templates(
        &mut self,
        repository: &str,
        approved_states: &[String],
        keys: impl IntoIterator<Item = String>,
    ) -> &mut Self {
        let needs = self.templates.entry(repository.to_owned()).or_default();
        needs.approved_states.extend(approved_states.iter().cloned());
        needs.keys.extend(keys);
        self
    }

    /// Everything `other` needs too.
    pub fn merge(&mut self, other: Requirements) -> &mut Self {
        for (uri, repositories) in other.content_types {
            self.content_types.entry(uri).or_default().extend(repositories);
        }
        self.workflow_states.extend(other.workflow_states);
        for (repository, needs) in other.templates {
            let mine = self.templates.entry(repository).or_default();
            mine.keys.extend(needs.keys);
            mine.approved_states.extend(needs.approved_states);
        }
        if other.webhook.is_some() {
            self.webhook = other.webhook;
        }
        self
    }
}

/// One thing checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub ok: bool,
    pub what: String,
    /// How to fix it, when not ok.
    pub fix: Option<String>,
    /// Whether it is one template's (which fails only the records that need that template,
    /// dead-lettered with the reason) rather than the hub's (which fails every record).
    pub template: bool,
}

impl Finding {
    fn ok(what: impl Into<String>) -> Self {
        Finding { ok: true, what: what.into(), fix: None, template: false }
    }

    fn missing(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding { ok: false, what: what.into(), fix: Some(fix.into()), template: false }
    }

    fn of_template(self) -> Self {
        Finding { template: true, ..self }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.fix, self.ok) {
            (_, true) => write!(f, "ok       {}", self.what),
            (Some(fix), false) => write!(f, "MISSING  {}\n         fix: {fix}", self.what),
            (None, false) => write!(f, "MISSING  {}", self.what),
        }
    }
}

const SETUP: &str = "run `gridsync amplience setup` (it registers gridsync's content types and assigns them)";

/// Checks the hub against `requirements` (gridsync's schemas from `spec`); changes nothing.
pub async fn check(
    client: &ManagementClient,
    requirements: &Requirements,
    spec: &HubSpec,
) -> Result<Vec<Finding>, AmplienceError> {
    let mut findings = Vec::new();
    let hub = client.hub_id().unwrap_or("(no hub id)").to_owned();
    if let Err(e) = client.hub_resource().await {
        findings.push(Finding::missing(
            format!("credentials reaching hub {hub}: {e}"),
            "check GRIDSYNC_AMPLIENCE_CLIENT_ID, its secret (GRIDSYNC_AMPLIENCE_CLIENT_SECRET_FILE), \
             GRIDSYNC_AMPLIENCE_HUB_ID and the API and token URLs",
        ));
        return Ok(findings);
    }
    findings.push(Finding::ok(format!("credentials reach hub {hub}")));

    // Repositories, and what is assigned to each.
    let mut repositories = BTreeSet::new();
    repositories.extend(requirements.content_types.values().flatten().cloned());
    repositories.extend(requirements.templates.keys().cloned());
    let mut assigned: HashMap<String, BTreeSet<String>> = HashMap::new();
    for id in &repositories {
        match client.repository(id).await {
            Ok(repository) => {
                findings.push(Finding::ok(format!("repository {id}")));
                assigned.insert(id.clone(), repository.content_types.into_iter().map(|a| a.content_type_uri).collect());
            }
            Err(e) if e.is_not_found() => findings.push(Finding::missing(
                format!("repository {id}: not on hub {hub}"),
                "set the flows' repository ids (repository_id, template_repository_id in their configuration) \
                 to repositories of this hub",
            )),
            Err(e) => return Err(e),
        }
    }

    // Content types: registered, with gridsync's schema, assigned.
    let types: HashMap<String, String> =
        client.content_types().await?.into_iter().map(|t| (t.content_type_uri, t.id)).collect();
    let schemas: HashMap<String, (i64, Value)> = client
        .content_type_schemas()
        .await?
        .into_iter()
        .map(|s| (s.schema_id.clone(), (s.version, s.parsed())))
        .collect();
    for (uri, repositories) in &requirements.content_types {
        let Some(type_id) = types.get(uri) else {
            findings.push(Finding::missing(format!("content type {uri}: not registered"), SETUP));
            continue;
        };
        let shipped = spec.content_type(uri);
        match (shipped, schemas.get(uri)) {
            (Some(shipped), Some((version, body))) if body != &shipped.schema => findings.push(Finding::missing(
                format!(
                    "content type {uri}: its schema (hub version {version}) is not gridsync's v{}",
                    shipped.version
                ),
                SETUP,
            )),
            (Some(shipped), _) if client.cached_schema(type_id).await?.cached_schema != shipped.schema => findings
                .push(Finding::missing(
                    format!("content type {uri}: validates against an older version of its schema"),
                    SETUP,
                )),
            (None, _) => findings.push(Finding::missing(
                format!("content type {uri}: not one gridsync ships (schema base moved?)"),
                "name gridsync's content type URIs in the flows' configuration, or run setup with the same \
                 --schema-base",
            )),
            _ => {}
        }
        for repository in repositories {
            if assigned.get(repository).is_some_and(|a| a.contains(uri)) {
                findings.push(Finding::ok(format!("content type {uri} in repository {repository}")));
            } else if assigned.contains_key(repository) {
                findings.push(Finding::missing(
                    format!("content type {uri}: not assigned to repository {repository}"),
                    SETUP,
                ));
            }
        }
    }

    // Workflow states.
    if !requirements.workflow_states.is_empty() {
        let states: BTreeSet<String> =
            client.workflow_states().await?.into_iter().map(|s| s.label.to_lowercase()).collect();
        for label in &requirements.workflow_states {
            if states.contains(&label.to_lowercase()) {
                findings.push(Finding::ok(format!("workflow state {label:?}")));
            } else {
                findings.push(Finding::missing(
                    format!("workflow state {label:?}: not on hub {hub}"),
                    "add it in the hub's workflow settings, or name an existing state in the flow's configuration",
                ));
            }
        }
    }

    // Templates.
    for (repository, needs) in &requirements.templates {
        if assigned.contains_key(repository) {
            findings.extend(check_templates(client, repository, needs).await?);
        }
    }

    // amp-producer's webhook.
    if let Some((url, events)) = &requirements.webhook {
        let hooks = client.webhooks().await?;
        let found = hooks.iter().find(|w| w.active && w.handlers.iter().any(|h| h == url));
        match found {
            Some(w) if events.iter().all(|e| w.events.contains(e)) => {
                findings.push(Finding::ok(format!("webhook to {url}")))
            }
            Some(w) => findings.push(Finding::missing(
                format!(
                    "webhook to {url}: sends {:?}, not all of {events:?}",
                    w.events.iter().collect::<BTreeSet<_>>()
                ),
                "run `gridsync amplience setup --webhook-url <amp-producer's URL>`",
            )),
            None => findings.push(Finding::missing(
                format!("webhook to {url}: none active"),
                "run `gridsync amplience setup --webhook-url <amp-producer's URL>`",
            )),
        }
    }
    Ok(findings)
}

/// Each template: there, in an approved state, and every text field a template minijinja parses.
async fn check_templates(
    client: &ManagementClient,
    repository: &str,
    needs: &TemplateNeeds,
) -> Result<Vec<Finding>, AmplienceError> {
    let items = client.items_by_delivery_key(repository).await?;
    let mut findings = Vec::new();
    let env = minijinja::Environment::new();
    for key in &needs.keys {
        let Some(item) = items.get(key) else {
            findings.push(
                Finding::missing(
                    format!("template {key}: no item with this delivery key in repository {repository}"),
                    "create it (a message-template item), or run `gridsync amplience setup --with-example-templates`",
                )
                .of_template(),
            );
            continue;
        };
        let state = match item.workflow_state() {
            Some(id) => client.workflow_state_label(id).await?,
            None => None,
        };
        if !state.as_ref().is_some_and(|s| needs.approved_states.iter().any(|a| a.eq_ignore_ascii_case(s))) {
            findings.push(
                Finding::missing(
                    format!("template {key}: in state {}, not approved", state.as_deref().unwrap_or("(none)")),
                    format!("move it to one of {:?} once it is right", needs.approved_states),
                )
                .of_template(),
            );
            continue;
        }
        let broken: Vec<String> = item
            .body
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(name, _)| name.as_str() != "_meta")
            .filter_map(|(name, value)| {
                let source = value.as_str()?;
                env.template_from_str(source).err().map(|e| format!("{name}: {e}"))
            })
            .collect();
        if broken.is_empty() {
            findings.push(Finding::ok(format!("template {key} (approved, v{})", item.version)).of_template());
        } else {
            findings.push(
                Finding::missing(
                    format!("template {key}: does not parse ({})", broken.join("; ")),
                    "correct the template in Amplience and approve it again",
                )
                .of_template(),
            );
        }
    }
    Ok(findings)
}
