//! Amplience webhooks → gridsync events. Which content type means which kind
//! of partner content, and which workflow state means "approved", come from
//! the mapping file; the fields read from content bodies are documented on
//! each function and in the README.

use std::collections::BTreeMap;

use gridsync_amplience::{webhook::Envelope as Webhook, ContentItem};
use gridsync_schemas::{
    events::{
        AmplienceContentRef, DisputeResolution, DisputeResolved, Envelope, Event, EventType, PartnerContent,
        PartnerContentApproved, PartnerContentKind, PartnerContentPublished, PaymentConfirmed, SourceSystem,
    },
    Decimal, Timestamp,
};
use serde::Deserialize;
use serde_json::Value;

pub const WORKFLOW_UPDATED: &str = "dynamic-content.content-item.workflow.updated";
pub const SNAPSHOT_PUBLISHED: &str = "dynamic-content.snapshot.published";
pub const EDITION_PUBLISHED: &str = "dynamic-content.edition.published";

/// The built-in mapping (`default-mapping.toml`).
pub const DEFAULT_MAPPING: &str = include_str!("../default-mapping.toml");

/// The mapping file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// Actors whose changes are gridsync's own and are not fed back.
    pub ignore_actors: Vec<String>,
    /// Delivery-key prefix of the items gridsync creates.
    pub own_delivery_key_prefix: String,
    /// Workflow states meaning "approved" for partner content.
    pub approved_states: Vec<String>,
    /// Partner content kind by content type URI.
    pub partner_content: BTreeMap<String, PartnerContentKind>,
    /// The payment confirmation content type and its "confirmed" states.
    pub payments: StateTrigger,
    /// The dispute resolution content type and its "resolved" states.
    pub disputes: StateTrigger,
    /// Where an edition's published content items are found (optional).
    #[serde(default)]
    pub editions: EditionMapping,
}

/// Amplience's documentation gives no payload for `edition.published`, so
/// where its content items are listed is configuration: JSON pointers into
/// the webhook's `payload` (`*` stands for every element of an array), each
/// reaching an item id. A custom payload template can put them anywhere.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditionMapping {
    pub content_item_ids: Vec<String>,
}

impl Default for EditionMapping {
    fn default() -> Self {
        EditionMapping { content_item_ids: vec!["/slots/*/id".into(), "/contentItems/*/id".into()] }
    }
}

/// The strings `pattern` reaches in `value`: a JSON pointer whose `*` segments
/// fan out over every element of an array (or value of an object).
fn reach<'v>(value: &'v Value, segments: &[&str], found: &mut Vec<&'v str>) {
    let Some((first, rest)) = segments.split_first() else {
        found.extend(value.as_str());
        return;
    };
    match (*first, value) {
        ("*", Value::Array(items)) => items.iter().for_each(|v| reach(v, rest, found)),
        ("*", Value::Object(map)) => map.values().for_each(|v| reach(v, rest, found)),
        (key, Value::Object(map)) => {
            if let Some(v) = map.get(&key.replace("~1", "/").replace("~0", "~")) {
                reach(v, rest, found);
            }
        }
        (index, Value::Array(items)) => {
            if let Some(v) = index.parse::<usize>().ok().and_then(|i| items.get(i)) {
                reach(v, rest, found);
            }
        }
        _ => {}
    }
}

/// The content item ids an edition webhook lists, in order, each once.
pub fn edition_item_ids(config: &EditionMapping, webhook: &Webhook) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for pattern in &config.content_item_ids {
        let segments: Vec<&str> = pattern.trim_start_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        let mut found = Vec::new();
        reach(&webhook.payload, &segments, &mut found);
        for id in found {
            if !ids.iter().any(|known| known == id) {
                ids.push(id.to_owned());
            }
        }
    }
    ids
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateTrigger {
    /// Content type URI.
    pub content_type: String,
    /// Workflow states that trigger the event.
    pub states: Vec<String>,
}

impl MappingConfig {
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

fn state_matches(states: &[String], state: &str) -> bool {
    states.iter().any(|s| s.eq_ignore_ascii_case(state))
}

/// What a webhook comes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    Event(Box<Event>),
    /// Several events from one webhook (an edition's items), published together.
    Events(Vec<Event>),
    /// Nothing for gridsync to do; the reason is counted.
    Ignored(&'static str),
}

/// A webhook whose content cannot become an event: quarantined, not retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MapError(pub String);

fn field<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

fn text(body: &Value, name: &str) -> Option<String> {
    match field(body, name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn required(body: &Value, name: &str, what: &str) -> Result<String, MapError> {
    text(body, name).ok_or_else(|| MapError(format!("{what}: field `{name}` is missing or empty")))
}

fn decimal(body: &Value, name: &str, what: &str) -> Result<Option<Decimal>, MapError> {
    // Amounts may be JSON strings ("1250.50") or numbers; numbers are read from
    // their exact text, never through a float.
    text(body, name)
        .map(|t| t.parse::<Decimal>().map_err(|e| MapError(format!("{what}: field `{name}`: {e}"))))
        .transpose()
}

fn timestamp(body: &Value, name: &str, what: &str) -> Result<Option<Timestamp>, MapError> {
    let Some(t) = text(body, name) else { return Ok(None) };
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(Some(ts));
    }
    // A plain date means midnight UTC of that day.
    chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| Some(Timestamp::from_millis(dt.and_utc().timestamp_millis())))
        .ok_or_else(|| MapError(format!("{what}: field `{name}`: {t:?} is not an RFC 3339 time or a date")))
}

fn modified_at(item: &ContentItem) -> Timestamp {
    item.last_modified_date.as_deref().and_then(|d| d.parse().ok()).unwrap_or_else(Timestamp::now)
}

/// The parts of an envelope every Amplience event shares.
fn envelope(
    event_type: EventType,
    item: &ContentItem,
    hub_id: Option<&str>,
    partner: &str,
    business_key: &str,
    identity: &[&str],
    occurred_at: Timestamp,
) -> Envelope {
    let mut parts = vec![event_type.name(), item.id.as_str()];
    parts.extend_from_slice(identity);
    Envelope {
        event_id: Envelope::deterministic_event_id(SourceSystem::Amplience, &parts),
        event_type: event_type.name().into(),
        occurred_at,
        ingested_at: Timestamp::now(),
        source_system: SourceSystem::Amplience,
        trading_partner_id: partner.to_owned(),
        business_key: business_key.to_owned(),
        correlation_id: format!("{partner}/{business_key}"),
        trading_grid_document: None,
        amplience_content: Some(AmplienceContentRef {
            hub_id: hub_id.map(str::to_owned),
            content_item_id: item.id.clone(),
            version: item.version,
            content_type_uri: item.schema().unwrap_or_default().to_owned(),
            delivery_key: item.delivery_key().map(str::to_owned),
        }),
    }
}

/// Partner content from an item body: `title` (else the item's label),
/// `targetPartnerIds` (array of partner ids; empty or absent = every partner),
/// `requiresReadConfirmation` (default: true for contracts, policy notices and
/// trading terms). `body` is the content as published or approved.
pub fn partner_content(kind: PartnerContentKind, item: &ContentItem, body: &Value) -> Result<PartnerContent, MapError> {
    let targets = match field(body, "targetPartnerIds") {
        None => Vec::new(),
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| MapError("targetPartnerIds holds a non-string".into()))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(MapError("targetPartnerIds is not an array of partner ids".into())),
    };
    let legal = matches!(
        kind,
        PartnerContentKind::Contract | PartnerContentKind::PolicyNotice | PartnerContentKind::TradingTerms
    );
    Ok(PartnerContent {
        kind,
        content_item_id: item.id.clone(),
        version: item.version,
        title: text(body, "title").unwrap_or_else(|| item.label.clone()),
        locale: item.locale.clone(),
        target_partner_ids: targets,
        requires_read_confirmation: field(body, "requiresReadConfirmation").and_then(Value::as_bool).unwrap_or(legal),
        body_json: Some(body.to_string()),
    })
}

/// The envelope's partner for partner content: the one target, or `ALL`.
fn content_partner(content: &PartnerContent) -> &str {
    match content.target_partner_ids.as_slice() {
        [one] => one,
        _ => "ALL",
    }
}

fn content_business_key(item: &ContentItem) -> String {
    item.delivery_key().map_or_else(|| item.id.clone(), str::to_owned)
}

/// Partner content reached an approved state.
pub fn approved(
    kind: PartnerContentKind,
    item: &ContentItem,
    state_label: &str,
    hub_id: Option<&str>,
) -> Result<Event, MapError> {
    let content = partner_content(kind, item, &item.body)?;
    let version = item.version.to_string();
    let envelope = envelope(
        EventType::PartnerContentApproved,
        item,
        hub_id,
        content_partner(&content),
        &content_business_key(item),
        &[&version],
        modified_at(item),
    );
    Ok(Event::PartnerContentApproved(PartnerContentApproved {
        envelope,
        content,
        workflow_state: state_label.to_owned(),
    }))
}

/// Partner content was published; `published` is the body the Delivery API serves.
pub fn published(
    kind: PartnerContentKind,
    item: &ContentItem,
    published: &Value,
    snapshot_id: Option<&str>,
    hub_id: Option<&str>,
) -> Result<Event, MapError> {
    let content = partner_content(kind, item, published)?;
    let identity = snapshot_id.map_or_else(|| item.version.to_string(), str::to_owned);
    let envelope = envelope(
        EventType::PartnerContentPublished,
        item,
        hub_id,
        content_partner(&content),
        &content_business_key(item),
        &[&identity],
        modified_at(item),
    );
    Ok(Event::PartnerContentPublished(PartnerContentPublished {
        envelope,
        content,
        snapshot_id: snapshot_id.map(str::to_owned),
    }))
}

/// A payment confirmation item: `partnerId`, `invoiceNumber`, `paymentReference`,
/// `amount`, `currency`, `paidAt` (RFC 3339 or a date; default: when the item
/// changed), `note` (optional). One event per payment reference.
pub fn payment(item: &ContentItem, hub_id: Option<&str>) -> Result<Event, MapError> {
    const WHAT: &str = "payment confirmation";
    let body = &item.body;
    let partner = required(body, "partnerId", WHAT)?;
    let invoice_number = required(body, "invoiceNumber", WHAT)?;
    let payment_reference = required(body, "paymentReference", WHAT)?;
    let amount =
        decimal(body, "amount", WHAT)?.ok_or_else(|| MapError(format!("{WHAT}: field `amount` is missing")))?;
    let paid_at = timestamp(body, "paidAt", WHAT)?.unwrap_or_else(|| modified_at(item));
    let envelope =
        envelope(EventType::PaymentConfirmed, item, hub_id, &partner, &invoice_number, &[&payment_reference], paid_at);
    Ok(Event::PaymentConfirmed(PaymentConfirmed {
        envelope,
        invoice_number,
        payment_reference,
        amount,
        currency: required(body, "currency", WHAT)?,
        paid_at,
        note: text(body, "note"),
    }))
}

/// A dispute resolution item: `partnerId`, `invoiceNumber`, `disputeId`,
/// `resolution` (invoice-upheld, credit-issued, invoice-adjusted,
/// invoice-cancelled; any case, `-` or `_`), `adjustedAmount` and `currency`
/// (optional), `resolvedAt` (default: when the item changed), `summary`.
pub fn dispute(item: &ContentItem, hub_id: Option<&str>) -> Result<Event, MapError> {
    const WHAT: &str = "dispute resolution";
    let body = &item.body;
    let partner = required(body, "partnerId", WHAT)?;
    let invoice_number = required(body, "invoiceNumber", WHAT)?;
    let dispute_id = required(body, "disputeId", WHAT)?;
    let resolution_text = required(body, "resolution", WHAT)?;
    let symbol = resolution_text.to_ascii_uppercase().replace('-', "_");
    let resolution = DisputeResolution::ALL.into_iter().find(|r| r.as_str() == symbol).ok_or_else(|| {
        MapError(format!("{WHAT}: resolution {resolution_text:?} is not one of invoice-upheld, credit-issued, invoice-adjusted, invoice-cancelled"))
    })?;
    let resolved_at = timestamp(body, "resolvedAt", WHAT)?.unwrap_or_else(|| modified_at(item));
    let envelope =
        envelope(EventType::DisputeResolved, item, hub_id, &partner, &invoice_number, &[&dispute_id], resolved_at);
    Ok(Event::DisputeResolved(DisputeResolved {
        envelope,
        invoice_number,
        dispute_id,
        resolution,
        adjusted_amount: decimal(body, "adjustedAmount", WHAT)?,
        currency: text(body, "currency"),
        resolved_at,
        summary: text(body, "summary"),
    }))
}

/// Whether a change to `item` by `actor` is gridsync's own doing.
pub fn is_own_change(config: &MappingConfig, actor: Option<&str>, item: Option<&ContentItem>) -> bool {
    if actor.is_some_and(|a| config.ignore_actors.iter().any(|own| own == a)) {
        return true;
    }
    let Some(item) = item else { return false };
    let billing = item.schema().is_some_and(|s| s == config.payments.content_type || s == config.disputes.content_type);
    !billing && item.delivery_key().is_some_and(|k| k.starts_with(&config.own_delivery_key_prefix))
}

/// Maps a workflow change whose state label is known.
pub fn workflow_change(
    config: &MappingConfig,
    item: &ContentItem,
    state_label: &str,
    hub_id: Option<&str>,
) -> Result<Mapped, MapError> {
    if is_own_change(config, item.last_modified_by.as_deref(), Some(item)) {
        return Ok(Mapped::Ignored("own_change"));
    }
    let schema = item.schema().unwrap_or_default();
    let event = if let Some(kind) = config.partner_content.get(schema) {
        if !state_matches(&config.approved_states, state_label) {
            return Ok(Mapped::Ignored("state_not_mapped"));
        }
        approved(*kind, item, state_label, hub_id)?
    } else if schema == config.payments.content_type {
        if !state_matches(&config.payments.states, state_label) {
            return Ok(Mapped::Ignored("state_not_mapped"));
        }
        payment(item, hub_id)?
    } else if schema == config.disputes.content_type {
        if !state_matches(&config.disputes.states, state_label) {
            return Ok(Mapped::Ignored("state_not_mapped"));
        }
        dispute(item, hub_id)?
    } else {
        return Ok(Mapped::Ignored("content_type_not_mapped"));
    };
    Ok(Mapped::Event(Box::new(event)))
}

/// The content item a workflow webhook carries.
pub fn webhook_item(webhook: &Webhook) -> Result<ContentItem, MapError> {
    serde_json::from_value(webhook.payload.clone())
        .map_err(|e| MapError(format!("{}: the payload is not a content item: {e}", webhook.name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> MappingConfig {
        MappingConfig::parse(DEFAULT_MAPPING).unwrap()
    }

    fn item(schema: &str, body: Value, modified_by: &str) -> ContentItem {
        let mut body = body;
        body["_meta"] = json!({ "schema": schema, "name": "x" });
        serde_json::from_value(json!({
            "id": "c0ffee00-0000-4000-8000-000000000001",
            "label": "Item label",
            "locale": "en-GB",
            "body": body,
            "version": 4,
            "lastModifiedBy": modified_by,
            "lastModifiedDate": "2026-11-25T10:00:00.000Z",
        }))
        .unwrap()
    }

    const PAYMENT: &str = "https://gridsync.example/schemas/payment-confirmation.json";
    const CONTRACT: &str = "https://gridsync.example/schemas/contract.json";

    #[test]
    fn the_default_mapping_parses_and_unknown_keys_are_refused() {
        let config = config();
        assert_eq!(config.partner_content.len(), 6);
        let err = MappingConfig::parse(&format!("{DEFAULT_MAPPING}\nsurprise = 1\n")).unwrap_err();
        assert!(err.contains("surprise"), "{err}");
    }

    #[test]
    fn a_payment_moved_to_confirmed_becomes_payment_confirmed_with_exact_amounts() {
        let body = json!({"partnerId": "ACME", "invoiceNumber": "INV42", "paymentReference": "PAY-9",
            "amount": "1250.505", "currency": "EUR", "paidAt": "2026-11-24"});
        let mapped =
            workflow_change(&config(), &item(PAYMENT, body, "finance.user"), "payment confirmed", None).unwrap();
        let Mapped::Event(event) = mapped else { panic!("{mapped:?}") };
        let Event::PaymentConfirmed(payment) = *event else { panic!() };
        assert_eq!(payment.amount.to_string(), "1250.505");
        assert_eq!(payment.paid_at.to_string(), "2026-11-24T00:00:00.000Z");
        assert_eq!(payment.envelope.record_key(), "ACME/INV42");
        let content = payment.envelope.amplience_content.unwrap();
        assert_eq!((content.version, content.content_type_uri.as_str()), (4, PAYMENT));
    }

    #[test]
    fn event_ids_are_deterministic_per_item_and_business_identity() {
        let body = json!({"partnerId": "ACME", "invoiceNumber": "INV42", "paymentReference": "PAY-9",
            "amount": 10, "currency": "EUR"});
        let a = payment(&item(PAYMENT, body.clone(), "u"), None).unwrap();
        let b = payment(&item(PAYMENT, body, "u"), None).unwrap();
        assert_eq!(a.envelope().event_id, b.envelope().event_id);
    }

    #[test]
    fn contracts_need_read_confirmation_by_default_and_target_partners() {
        let body = json!({"title": "Master agreement 2027", "targetPartnerIds": ["ACME"]});
        let mapped = workflow_change(&config(), &item(CONTRACT, body, "legal.user"), "Approved", Some("hub1")).unwrap();
        let Mapped::Event(event) = mapped else { panic!("{mapped:?}") };
        let Event::PartnerContentApproved(approved) = *event else { panic!() };
        assert_eq!(approved.content.kind, PartnerContentKind::Contract);
        assert!(approved.content.requires_read_confirmation);
        assert_eq!(approved.content.title, "Master agreement 2027");
        assert_eq!(approved.envelope.trading_partner_id, "ACME");
        assert_eq!(approved.workflow_state, "Approved");
    }

    #[test]
    fn own_changes_other_states_and_other_types_are_ignored() {
        let c = config();
        let body = json!({"title": "t"});
        assert_eq!(
            workflow_change(&c, &item(CONTRACT, body.clone(), "gridsync"), "Approved", None),
            Ok(Mapped::Ignored("own_change"))
        );
        assert_eq!(
            workflow_change(&c, &item(CONTRACT, body.clone(), "u"), "Draft", None),
            Ok(Mapped::Ignored("state_not_mapped"))
        );
        assert_eq!(
            workflow_change(&c, &item("https://other/x.json", body.clone(), "u"), "Approved", None),
            Ok(Mapped::Ignored("content_type_not_mapped"))
        );
        let mut own = item(CONTRACT, body, "u");
        own.body["_meta"]["deliveryKey"] = json!("gridsync/revised/ACME/1");
        assert_eq!(workflow_change(&c, &own, "Approved", None), Ok(Mapped::Ignored("own_change")));
    }

    #[test]
    fn incomplete_bodies_are_precise_errors() {
        let body = json!({"partnerId": "ACME", "invoiceNumber": "INV42", "amount": "12.5", "currency": "EUR"});
        let err = workflow_change(&config(), &item(PAYMENT, body, "u"), "Payment confirmed", None).unwrap_err();
        assert_eq!(err.0, "payment confirmation: field `paymentReference` is missing or empty");
        let body = json!({"partnerId": "A", "invoiceNumber": "I", "paymentReference": "P", "amount": "12,5", "currency": "EUR"});
        let err = payment(&item(PAYMENT, body, "u"), None).unwrap_err();
        assert!(err.0.starts_with("payment confirmation: field `amount`"), "{err}");
    }

    #[test]
    fn edition_item_ids_follow_the_configured_pointers() {
        let webhook: Webhook = serde_json::from_value(json!({
            "id": "d-1", "name": EDITION_PUBLISHED,
            "payload": {"id": "e-1", "slots": [{"id": "a"}, {"id": "b"}, {"other": 1}],
                        "contentItems": [{"id": "b"}, {"id": "c"}], "weird/key": {"list": ["x", "y"]}},
        }))
        .unwrap();
        assert_eq!(edition_item_ids(&config().editions, &webhook), ["a", "b", "c"], "in order, each once");
        let custom = EditionMapping { content_item_ids: vec!["/weird~1key/list/*".into(), "/slots/1/id".into()] };
        assert_eq!(edition_item_ids(&custom, &webhook), ["x", "y", "b"]);
        let nowhere = EditionMapping { content_item_ids: vec!["/items/*/id".into()] };
        assert!(edition_item_ids(&nowhere, &webhook).is_empty());
    }
}
