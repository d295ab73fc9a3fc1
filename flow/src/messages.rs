//! Messages as content items: rendered from an approved template and created
//! in Amplience once, under a delivery key derived from the side effect, and
//! linked to their business transaction so the audit view can show them. A
//! downstream messaging platform sends what lands there.

use std::sync::Arc;

use gridsync_amplience::{DeliveryKey, Ensured, ManagementClient, NewContentItem};
use gridsync_core::kafka::Record;
use gridsync_schemas::events::{AmplienceContentRef, DeliveryOutcome};
use serde_json::{json, Map, Value};

use crate::{effects::Outcome, partners::PartnerProfile, Effects, FlowError, SideEffect, Templates};
use gridsync_store::Performed;

/// Who a message is for.
#[derive(Debug, Clone, Copy)]
pub enum Audience<'a> {
    /// The partner's customer contact.
    Customer,
    /// The partner's account team: a workflow item in this state.
    AccountTeam(&'a str),
}

/// What every template renders from: the event and the partner.
pub fn context(record: &Record, partner: &PartnerProfile) -> Result<Value, FlowError> {
    Ok(json!({
        "event": record.event.to_json().map_err(|e| FlowError::Invalid(e.to_string()))?,
        "partner": { "id": partner.id, "name": partner.name, "locale": partner.locale },
    }))
}

/// One message a record causes, to send once.
pub struct Send<'a> {
    pub action: &'a str,
    pub template_key: &'a str,
    pub audience: Audience<'a>,
    pub context: &'a Value,
    pub extra: Map<String, Value>,
    /// Once per this subject instead of once per source event (see [`SideEffect::once_per`]).
    pub once_per: Option<String>,
}

/// The side effect a message of `action` is (once per `once_per`, else per source event): the
/// one place its ledger key is made, for [`Messages::send`] and for a flow asking whether it
/// was begun ([`Effects::begun`]).
pub fn side_effect(action: &str, recipient: Option<String>, once_per: Option<String>) -> SideEffect {
    let effect = SideEffect::amplience(action, recipient);
    match once_per {
        Some(subject) => effect.once_per(subject),
        None => effect,
    }
}

/// One message to create.
pub struct Message<'a> {
    /// The template's delivery key.
    pub template_key: &'a str,
    /// What the template renders from (`event`, `partner`, and the flow's own values).
    pub context: &'a Value,
    pub locale: &'a str,
    /// Fields the flow sets beside the rendered ones (`sendAt`, `entries`, ...).
    pub extra: Map<String, Value>,
    /// A workflow state to put the item in (a task for a team), if any.
    pub workflow_state: Option<&'a str>,
}

/// Creates messages in one repository, with one content type.
pub struct Messages {
    pub client: Arc<ManagementClient>,
    pub templates: Templates,
    pub repository_id: String,
    pub content_type_uri: String,
    pub hub_id: Option<String>,
}

impl Messages {
    /// Creates the message once for `record`, for `partner`'s contact, and reports it.
    pub async fn send(
        &self,
        effects: &Effects,
        record: &Record,
        partner: &PartnerProfile,
        send: Send<'_>,
    ) -> Result<Performed, FlowError> {
        let (recipient, workflow_state) = match send.audience {
            Audience::Customer => (partner.contacts.customer.clone(), None),
            Audience::AccountTeam(state) => (partner.contacts.account_team.clone(), Some(state)),
        };
        let effect = side_effect(send.action, recipient.clone(), send.once_per);
        let message = Message {
            template_key: send.template_key,
            context: send.context,
            locale: &partner.locale,
            extra: send.extra,
            workflow_state,
        };
        effects
            .perform(record, &effect, |effect_key| async move {
                self.create(record, send.action, recipient.as_deref(), &effect_key, message).await
            })
            .await
    }

    /// Creates `message` for the side effect `effect_key` of `record` and `action`,
    /// unless it exists: the delivery key is derived from the side-effect key.
    pub async fn create(
        &self,
        record: &Record,
        action: &str,
        recipient: Option<&str>,
        effect_key: &str,
        message: Message<'_>,
    ) -> Result<Outcome, FlowError> {
        let rendered = self.templates.render(message.template_key, message.context).await?;
        let source = record.event.envelope();
        let delivery_key = delivery_key(action, &source.trading_partner_id, &source.business_key, effect_key)?;
        let mut fields = rendered.fields.clone();
        fields.extend(message.extra);
        fields.insert("action".into(), json!(action));
        fields.insert("recipient".into(), json!(recipient));
        fields.insert("locale".into(), json!(message.locale));
        fields.insert(
            "gridsync".into(),
            json!({
                "sourceEventId": source.event_id,
                "sourceEventType": source.event_type,
                "correlationId": source.correlation_id,
                "tradingPartnerId": source.trading_partner_id,
                "businessKey": source.business_key,
                "idempotencyKey": effect_key,
                "template": { "key": rendered.template_key, "id": rendered.template_id, "version": rendered.template_version },
            }),
        );
        let label = format!("{action} {} {}", source.trading_partner_id, source.business_key);
        let item = NewContentItem {
            label,
            schema: self.content_type_uri.clone(),
            delivery_key: Some(delivery_key.clone()),
            folder_id: None,
            locale: Some(message.locale.to_owned()),
            fields,
        };
        let ensured = self.client.ensure_item(&self.repository_id, &item).await?;
        let mut created = ensured.item().clone();
        if let Some(state) = message.workflow_state {
            created = self.client.assign_workflow_state(&created.id, state).await?;
        }
        Ok(Outcome {
            external_id: created.id.clone(),
            outcome: match ensured {
                Ensured::Created(_) => DeliveryOutcome::Created,
                Ensured::Existing(_) => DeliveryOutcome::AlreadyDone,
            },
            content_item_id: Some(rendered.template_id),
            content_version: Some(rendered.template_version),
            amplience_item: Some(AmplienceContentRef {
                hub_id: self.hub_id.clone(),
                content_item_id: created.id,
                version: created.version,
                content_type_uri: self.content_type_uri.clone(),
                delivery_key: Some(delivery_key.as_str().to_owned()),
            }),
        })
    }
}

/// `gridsync/<action>/<partner>/<business key>/<hash of the side-effect key>`:
/// readable, unique per side effect, and within Amplience's 150 characters.
pub fn delivery_key(
    action: &str,
    partner: &str,
    business_key: &str,
    effect_key: &str,
) -> Result<DeliveryKey, FlowError> {
    let digest = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, effect_key.as_bytes()).simple().to_string();
    let clip = |s: &str| s.chars().take(32).collect::<String>();
    DeliveryKey::derive("gridsync", [action, &clip(partner), &clip(business_key), &digest[..16]])
        .map_err(|e| FlowError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn delivery_keys_are_stable_readable_and_short_enough() {
        let key =
            super::delivery_key("order-confirmation", "ACME", "PO 4500#1", "e1/order-confirmation/amplience").unwrap();
        assert!(key.as_str().starts_with("gridsync/order-confirmation/ACME/PO_4500_1/"), "{key}");
        assert_eq!(
            key,
            super::delivery_key("order-confirmation", "ACME", "PO 4500#1", "e1/order-confirmation/amplience").unwrap()
        );
        assert_ne!(
            key,
            super::delivery_key("order-confirmation", "ACME", "PO 4500#1", "e2/order-confirmation/amplience").unwrap()
        );
        let long = "X".repeat(200);
        assert!(super::delivery_key("a", &long, &long, "k").unwrap().as_str().len() <= 150);
    }
}
