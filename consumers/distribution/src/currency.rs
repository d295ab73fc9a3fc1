//! Whether a content version is still the one to send, asked of Amplience when
//! its package is about to go out: a consumer that lagged or was stopped may
//! find the content withdrawn since, or a newer version approved or published
//! (whose own event follows, and goes out alone).

use gridsync_amplience::{DeliveryClient, ManagementClient};
use gridsync_flow::FlowError;
use gridsync_schemas::{events::PartnerContent, Event};
use serde_json::Value;

/// What Amplience says of one content version now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Currency {
    /// Still the version to send.
    Current,
    /// A newer version was approved or published since; it goes out instead.
    Superseded { by: i64 },
    /// Deleted, archived, unpublished or moved to a withdrawn state: nothing goes out.
    Withdrawn { why: String },
}

/// Asks Amplience about the version `content`, which came on `occasion`.
pub async fn of(
    management: &ManagementClient,
    delivery: Option<&DeliveryClient>,
    withdrawn_states: &[String],
    occasion: &Occasion<'_>,
    content: &PartnerContent,
) -> Result<Currency, FlowError> {
    let id = &content.content_item_id;
    let item = match management.get_item(id).await {
        Ok(item) => item,
        Err(e) if e.is_not_found() => {
            // Deleted; or a hub or API URL that is not the content's: said loudly, either way.
            tracing::warn!(
                content = id,
                "content item not found in Amplience (deleted, or the hub or API URL is wrong)"
            );
            return Ok(Currency::Withdrawn { why: "not found in Amplience (deleted)".into() });
        }
        Err(e) => return Err(e.into()),
    };
    if item.status.as_deref() == Some("ARCHIVED") {
        return Ok(Currency::Withdrawn { why: "archived in Amplience".into() });
    }
    let state = match item.workflow.as_ref().and_then(|w| w.state.as_deref()) {
        Some(state) => management.workflow_state_label(state).await?,
        None => None,
    };
    if let Some(label) = state.as_deref().filter(|l| withdrawn_states.iter().any(|w| w == l)) {
        return Ok(Currency::Withdrawn { why: format!("moved to workflow state {label:?}") });
    }
    match occasion {
        // A newer version in the state this one was approved in: approved again since.
        Occasion::Approved { workflow_state } => {
            if item.version > content.version && state.as_deref() == Some(*workflow_state) {
                return Ok(Currency::Superseded { by: item.version });
            }
        }
        // What the Delivery API serves is what is published now.
        Occasion::Published => {
            if let Some(delivery) = delivery {
                match delivery.by_id(id).await {
                    Ok(published) => {
                        let ours: Value =
                            content.body_json.as_deref().and_then(|b| serde_json::from_str(b).ok()).unwrap_or_default();
                        if published != ours {
                            return Ok(Currency::Superseded { by: item.version });
                        }
                    }
                    Err(e) if e.is_not_found() => return Ok(Currency::Withdrawn { why: "unpublished".into() }),
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(Currency::Current)
}

/// How the content version came: approved (in which workflow state) or published.
pub enum Occasion<'a> {
    Approved { workflow_state: &'a str },
    Published,
}

impl<'a> Occasion<'a> {
    pub fn of(event: &'a Event) -> Option<Self> {
        match event {
            Event::PartnerContentApproved(a) => Some(Occasion::Approved { workflow_state: &a.workflow_state }),
            Event::PartnerContentPublished(_) => Some(Occasion::Published),
            _ => None,
        }
    }
}
