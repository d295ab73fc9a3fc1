//! Items gridsync keeps up to date rather than creates per event (the
//! campaign-suppression list, a partner's account status, a content item's
//! distribution status): found or created by delivery key, then changed with
//! the version read (a concurrent change makes the update re-read and
//! re-apply, so no writer's change is lost).

use gridsync_amplience::{ContentItem, ManagementClient, NewContentItem};
use gridsync_schemas::events::{AmplienceContentRef, DeliveryOutcome};
use serde_json::Value;

use crate::{effects::Outcome, FlowError};

impl Outcome {
    /// The outcome of changing `item` (of `content_type_uri`): `changed` false when
    /// the change was found made already.
    pub fn of_item(item: ContentItem, hub_id: Option<String>, content_type_uri: &str, changed: bool) -> Self {
        Outcome {
            external_id: item.id.clone(),
            outcome: if changed { DeliveryOutcome::Updated } else { DeliveryOutcome::AlreadyDone },
            content_item_id: None,
            content_version: None,
            amplience_item: Some(AmplienceContentRef {
                hub_id,
                content_type_uri: content_type_uri.to_owned(),
                delivery_key: item.delivery_key().map(str::to_owned),
                content_item_id: item.id,
                version: item.version,
            }),
        }
    }
}

/// Ensures `new` exists in `repository_id` (by its delivery key) and applies
/// `change` to its body; `change` returns whether it changed what the flow reports
/// (reported as updated only if the item was saved, too: a change already there is
/// not written again).
pub async fn update_keyed(
    client: &ManagementClient,
    repository_id: &str,
    new: &NewContentItem,
    hub_id: Option<String>,
    mut change: impl FnMut(&mut Value) -> bool,
) -> Result<Outcome, FlowError> {
    let item = client.ensure_item(repository_id, new).await?.item().clone();
    let mut changed = false;
    let (updated, saved) = client.update_item_saved(&item.id, |item| changed = change(&mut item.body)).await?;
    Ok(Outcome::of_item(updated, hub_id, &new.schema, changed && saved))
}
