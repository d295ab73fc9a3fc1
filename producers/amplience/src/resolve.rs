//! What a webhook needs from Amplience before it can be mapped: the workflow
//! state's label (Management API), and for a publish the item's version
//! (Management API) and the published body (Delivery API).

use std::sync::Arc;

use futures::{FutureExt, StreamExt, TryStreamExt};

use gridsync_amplience::{webhook::Envelope as Webhook, AmplienceError, DeliveryClient, ManagementClient};
use serde_json::Value;

use gridsync_schemas::Event;

use crate::mapping::{self, MapError, Mapped, MappingConfig, EDITION_PUBLISHED, SNAPSHOT_PUBLISHED, WORKFLOW_UPDATED};

/// An edition's items fetched from Amplience at once, at most (its rate limits are per hub).
const ITEMS_FETCHED_AT_ONCE: usize = 8;
/// Reads of an item and its published body before a webhook is answered "try again".
const CONSISTENT_READ_ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The webhook can never become an event: quarantine it.
    #[error(transparent)]
    Permanent(#[from] MapError),
    /// Amplience could not answer now: 503, so the webhook is sent again.
    #[error("{0}")]
    Transient(String),
    /// Amplience refused gridsync's own credentials: 503 too, and the operator is told.
    #[error("{0}")]
    Credentials(String),
}

impl From<AmplienceError> for ResolveError {
    fn from(e: AmplienceError) -> Self {
        if is_credentials(&e) {
            ResolveError::Credentials(e.to_string())
        } else if e.is_retryable() {
            ResolveError::Transient(e.to_string())
        } else {
            ResolveError::Permanent(MapError(e.to_string()))
        }
    }
}

/// Refused credentials, or a token Amplience will not take (401) or that may not read (403).
pub fn is_credentials(e: &AmplienceError) -> bool {
    matches!(e, AmplienceError::Credentials { .. }) || matches!(e.status(), Some(401 | 403))
}

pub struct Resolver {
    pub config: MappingConfig,
    pub hub_id: Option<String>,
    pub management: Option<Arc<ManagementClient>>,
    pub delivery: Option<DeliveryClient>,
}

impl Resolver {
    pub async fn map(&self, webhook: &Webhook) -> Result<Mapped, ResolveError> {
        match webhook.name.as_str() {
            WORKFLOW_UPDATED => self.workflow_updated(webhook).await,
            SNAPSHOT_PUBLISHED => self.snapshot_published(webhook).await,
            EDITION_PUBLISHED => self.edition_published(webhook).await,
            _ => Ok(Mapped::Ignored("event_not_mapped")),
        }
    }

    async fn workflow_updated(&self, webhook: &Webhook) -> Result<Mapped, ResolveError> {
        let item = mapping::webhook_item(webhook)?;
        let Some(state) = item.workflow_state() else { return Ok(Mapped::Ignored("no_workflow_state")) };
        // The payload names the state by id; the mapping speaks labels when a
        // Management API client can translate, ids otherwise.
        let label = match &self.management {
            Some(client) => client.workflow_state_label(state).await?.unwrap_or_else(|| state.to_owned()),
            None => state.to_owned(),
        };
        Ok(mapping::workflow_change(&self.config, &item, &label, self.hub_id.as_deref())?)
    }

    async fn snapshot_published(&self, webhook: &Webhook) -> Result<Mapped, ResolveError> {
        let payload = &webhook.payload;
        if payload.get("createdFrom").and_then(Value::as_str) != Some("content-item") {
            return Ok(Mapped::Ignored("not_a_content_item_publish"));
        }
        let actor = payload.get("createdBy").and_then(Value::as_str);
        if mapping::is_own_change(&self.config, actor, None) {
            return Ok(Mapped::Ignored("own_change"));
        }
        let root = payload.get("rootContentItem");
        let text = |field: &str| root.and_then(|r| r.get(field)).and_then(Value::as_str);
        let (Some(id), Some(content_type)) = (text("id"), text("contentTypeUri")) else {
            return Err(
                MapError(format!("{SNAPSHOT_PUBLISHED}: payload.rootContentItem lacks id or contentTypeUri")).into()
            );
        };
        if !self.config.partner_content.contains_key(content_type) {
            return Ok(Mapped::Ignored("content_type_not_mapped"));
        }
        let snapshot = payload.get("id").and_then(Value::as_str);
        Ok(match self.published_item(SNAPSHOT_PUBLISHED, id, snapshot).await? {
            Ok(event) => Mapped::Event(Box::new(event)),
            Err(reason) => Mapped::Ignored(reason),
        })
    }

    /// Every partner-content item an edition published, each mapped like a
    /// single publish; other items of the edition are not gridsync's concern.
    async fn edition_published(&self, webhook: &Webhook) -> Result<Mapped, ResolveError> {
        let actor = webhook.payload.get("publishedBy").and_then(Value::as_str);
        if mapping::is_own_change(&self.config, actor, None) {
            return Ok(Mapped::Ignored("own_change"));
        }
        let ids = mapping::edition_item_ids(&self.config.editions, webhook);
        if ids.is_empty() {
            tracing::warn!(delivery = %webhook.id, pointers = ?self.config.editions.content_item_ids,
                "an edition webhook lists no content items where the mapping looks: see [editions] in the mapping");
            return Ok(Mapped::Ignored("edition_without_items"));
        }
        let edition = webhook.payload.get("id").and_then(Value::as_str);
        // The items are fetched from Amplience together (a few at a time), kept in the edition's order.
        // Boxed first: a closure held across the await would not be provably Send (rust#110338).
        let fetches: Vec<_> =
            ids.iter().map(|id| self.published_item(EDITION_PUBLISHED, id, edition).boxed()).collect();
        let fetched: Vec<_> = futures::stream::iter(fetches).buffered(ITEMS_FETCHED_AT_ONCE).try_collect().await?;
        let events: Vec<Event> = fetched.into_iter().filter_map(Result::ok).collect();
        Ok(if events.is_empty() { Mapped::Ignored("no_partner_content_in_edition") } else { Mapped::Events(events) })
    }

    /// The PartnerContentPublished event of item `id` as published now
    /// (`snapshot`: the snapshot or edition id), or why it is not one.
    async fn published_item(
        &self,
        webhook_name: &str,
        id: &str,
        snapshot: Option<&str>,
    ) -> Result<Result<Event, &'static str>, ResolveError> {
        let (Some(management), Some(delivery)) = (&self.management, &self.delivery) else {
            return Err(MapError(format!(
                "{webhook_name}: mapping a publish needs the Management API (--amplience-client-id) and the Delivery API (--amplience-delivery-url)"
            ))
            .into());
        };
        // The version comes from the Management API and the body from the Delivery API: two
        // reads, between which an editor may save and publish again. The item is read again
        // after the body, and the pair is kept only if its version did not move meanwhile, so
        // an event never carries one version's number with another's body.
        // The read after the body is the next attempt's read of the item, when its version moved.
        let mut item = management.get_item(id).await?;
        for _ in 0..CONSISTENT_READ_ATTEMPTS {
            let Some(kind) = item.schema().and_then(|schema| self.config.partner_content.get(schema)).copied() else {
                return Ok(Err("content_type_not_mapped"));
            };
            if mapping::is_own_change(&self.config, None, Some(&item)) {
                return Ok(Err("own_change"));
            }
            let published = match delivery.by_id(id).await {
                Ok(body) => body,
                // The CDN may not serve a fresh publish yet: ask to be sent again.
                Err(e) if e.is_not_found() => {
                    return Err(ResolveError::Transient(format!("not on the Delivery API yet: {e}")))
                }
                Err(e) => return Err(e.into()),
            };
            let after = management.get_item(id).await?;
            if after.version == item.version {
                return Ok(Ok(mapping::published(kind, &item, &published, snapshot, self.hub_id.as_deref())?));
            }
            item = after;
        }
        Err(ResolveError::Transient(format!(
            "content item {id} changed while it was read {CONSISTENT_READ_ATTEMPTS} times"
        )))
    }
}
