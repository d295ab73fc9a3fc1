//! Items gridsync keeps up to date rather than creates per event (the
//! campaign-suppression list, a partner's account status, a content item's
//! distribution status): found or created by delivery key once, then changed
//! with the version last saved.
//!
//! Many records change the same item (every order adds to the one suppression
//! list), so changes to one item are **coalesced**: each is queued, and
//! whichever handler holds the item's turn applies every change waiting and
//! saves them in one request, answering each handler with its own outcome.
//! The item as last saved is kept, so a change costs no read: one `PATCH` for
//! a whole batch. Someone else's change in between (a replica, a person) makes
//! the save meet a newer version (409): the item is read again and every
//! change re-applied, so no writer's change is lost.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use gridsync_amplience::{AmplienceError, Backoff, ContentItem, ManagementClient, NewContentItem};
use gridsync_core::retry::Jitter;
use gridsync_schemas::events::{AmplienceContentRef, DeliveryOutcome};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::{effects::Outcome, FlowError};

/// Saves of one batch that meet a newer version, before the batch gives up (transiently).
const MAX_CONFLICT_RETRIES: u32 = 8;

/// The wait before reading an item again after a conflict, doubling from a tenth of the longest:
/// two instances saving the same item at once would otherwise meet again at once (measured: two
/// notifications consumers on 200 customers' items, 50 ms per call, fell to 2 orders/s).
const CONFLICT_BACKOFF: Backoff =
    Backoff::new(std::time::Duration::from_millis(40), std::time::Duration::from_millis(400)).with_jitter(Jitter::Full);

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

/// A change to an item's body; returns whether it changed what the flow reports. Applied again
/// to a newer version when someone saved in between.
pub type Change = Box<dyn FnMut(&mut Value) -> bool + Send>;

/// What one change came to: the item as saved, whether the change counted, whether it was saved.
type Answer = Result<(ContentItem, bool, bool), Arc<FlowError>>;

struct Waiting {
    change: Change,
    answer: oneshot::Sender<Answer>,
}

/// Items kept with their last saved version before the idle ones are forgotten: each holds a
/// whole item (a customer's suppression list, a partner's account), and kept for ever, one per
/// customer, they grew a consumer's memory with every new customer it saw.
const MAX_SLOTS: usize = 1024;

/// Forgets the slots nobody is saving through or waiting on (only the map holds them): their
/// items are read again when next changed.
fn forget_idle(slots: &mut HashMap<String, Arc<Slot>>) {
    slots.retain(|_, slot| Arc::strong_count(slot) > 1);
}

/// One item's queue of changes, and its turn (holding the item as last saved here).
#[derive(Default)]
struct Slot {
    waiting: Mutex<Vec<Waiting>>,
    turn: tokio::sync::Mutex<Option<ContentItem>>,
}

/// The items a flow keeps up to date, by delivery key.
pub struct KeyedItems {
    client: Arc<ManagementClient>,
    hub_id: Option<String>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl KeyedItems {
    pub fn new(client: Arc<ManagementClient>, hub_id: Option<String>) -> Self {
        KeyedItems { client, hub_id, slots: Mutex::default() }
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        let mut slots = lock(&self.slots);
        if slots.len() >= MAX_SLOTS && !slots.contains_key(key) {
            forget_idle(&mut slots);
        }
        slots.entry(key.to_owned()).or_default().clone()
    }

    /// Ensures `new` exists in `repository_id` (by its delivery key) and applies `change` to its
    /// body, reported as updated only if the change counted and the item was saved (a change
    /// already there is not written again).
    pub async fn update(
        &self,
        repository_id: &str,
        new: &NewContentItem,
        change: Change,
    ) -> Result<Outcome, FlowError> {
        let key = new
            .delivery_key
            .as_ref()
            .map(|k| k.as_str().to_owned())
            .ok_or_else(|| FlowError::Invalid(format!("{} has no delivery key to keep it by", new.label)))?;
        let slot = self.slot(&key);
        let (answer, answered) = oneshot::channel();
        lock(&slot.waiting).push(Waiting { change, answer });
        {
            // Whoever holds the turn saves every change waiting, this one too unless an earlier
            // holder took it along already.
            let mut saved = slot.turn.lock().await;
            let batch = std::mem::take(&mut *lock(&slot.waiting));
            if !batch.is_empty() {
                self.save(&mut saved, repository_id, new, batch).await;
            }
        }
        let (item, changed, saved) = answered
            .await
            // The handler saving the batch was abandoned mid-way (a timed-out attempt): whether the
            // change was saved is unknown, so the record is tried again (its change re-applied to
            // the item as it is then, which finds it made if it was).
            .map_err(|_| FlowError::Interrupted(format!("the save of {key} holding this change was abandoned")))?
            .map_err(FlowError::Batch)?;
        Ok(Outcome::of_item(item, self.hub_id.clone(), &new.schema, changed && saved))
    }

    /// Applies `batch` to the item and saves it once, answering every change.
    async fn save(
        &self,
        saved: &mut Option<ContentItem>,
        repository_id: &str,
        new: &NewContentItem,
        mut batch: Vec<Waiting>,
    ) {
        let result = self.apply(saved, repository_id, new, &mut batch).await;
        match result {
            Ok((item, counted, wrote)) => {
                for (waiting, counted) in batch.into_iter().zip(counted) {
                    let _ = waiting.answer.send(Ok((item.clone(), counted, wrote)));
                }
            }
            Err(e) => {
                // Not known as saved: the next turn reads it again.
                *saved = None;
                let shared = Arc::new(e);
                for waiting in batch {
                    let _ = waiting.answer.send(Err(shared.clone()));
                }
            }
        }
    }

    async fn apply(
        &self,
        saved: &mut Option<ContentItem>,
        repository_id: &str,
        new: &NewContentItem,
        batch: &mut [Waiting],
    ) -> Result<(ContentItem, Vec<bool>, bool), FlowError> {
        let mut current = match saved.take() {
            Some(item) => item,
            None => self.client.ensure_item(repository_id, new).await?.item().clone(),
        };
        for attempt in 0..=MAX_CONFLICT_RETRIES {
            let mut body = current.body.clone();
            let counted: Vec<bool> = batch.iter_mut().map(|w| (w.change)(&mut body)).collect();
            if body == current.body {
                *saved = Some(current.clone());
                return Ok((current, counted, false));
            }
            let request = json!({ "label": current.label, "body": body, "version": current.version });
            match self.client.patch_item(&current.id, &request).await {
                Ok(updated) => {
                    *saved = Some(updated.clone());
                    return Ok((updated, counted, true));
                }
                Err(e) if e.is_conflict() => {
                    tracing::info!(id = %current.id, "content item changed meanwhile; re-applying");
                    // A random share of a doubling wait: whoever saved meanwhile is done first.
                    tokio::time::sleep(CONFLICT_BACKOFF.delay(attempt + 1, None)).await;
                    current = self.client.get_item(&current.id).await?;
                }
                // Deleted meanwhile: made again (by its delivery key), the changes applied to it.
                Err(e) if e.is_not_found() => {
                    current = self.client.ensure_item(repository_id, new).await?.item().clone();
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(AmplienceError::ConflictPersisted { id: current.id, attempts: MAX_CONFLICT_RETRIES }.into())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_slots_are_forgotten_and_those_in_use_kept() {
        let mut slots: HashMap<String, Arc<Slot>> = (0..5).map(|i| (format!("k{i}"), Arc::default())).collect();
        let in_use = slots["k3"].clone();
        forget_idle(&mut slots);
        assert_eq!(slots.keys().collect::<Vec<_>>(), ["k3"], "only the slot someone holds stays");
        drop(in_use);
        forget_idle(&mut slots);
        assert!(slots.is_empty());
    }
}
