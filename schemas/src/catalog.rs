//! The declarative topic catalog, `schemas/topics.toml`, compiled in.

use std::{collections::BTreeMap, sync::LazyLock};

use serde::Deserialize;

use crate::events::{Envelope, EventType};

const CATALOG_TOML: &str = include_str!("../topics.toml");

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("topics.toml does not parse: {0}")]
    Parse(String),
    #[error("topics.toml is inconsistent: {0}")]
    Invalid(String),
    #[error("no consumer or producer named {0} in topics.toml")]
    UnknownConsumer(String),
}

/// Settings that apply where a topic does not say otherwise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// How event records are keyed.
    pub key: RecordKey,
    /// Partitions of an event topic.
    pub partitions: i32,
    /// Wanted replication factor; `topics apply` caps it at the broker count.
    pub replication_factor: i32,
    /// `min.insync.replicas` of every topic: with `acks=all`, a record is acknowledged only once
    /// this many replicas have it, so one broker lost loses nothing acknowledged. `topics apply`
    /// keeps it below the replication it gets (one less, at least one) so that a smaller
    /// cluster still takes writes.
    #[serde(default = "default_min_insync_replicas")]
    pub min_insync_replicas: i32,
    /// `retention.ms` of an event topic.
    pub retention_ms: i64,
    /// Partitions of a dead-letter topic.
    pub dead_letter_partitions: i32,
    /// `retention.ms` of a dead-letter topic.
    pub dead_letter_retention_ms: i64,
}

fn default_min_insync_replicas() -> i32 {
    2
}

/// The `min.insync.replicas` a topic replicated `replication` times gets, for a wanted `min`:
/// never more than one less than its replication (at least 1), or writes with `acks=all`
/// would fail with a single replica out.
pub fn min_insync_replicas(min: i32, replication: i32) -> i32 {
    min.min((replication - 1).max(1)).max(1)
}

/// How a topic's records are keyed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum RecordKey {
    /// `<trading_partner_id>/<business_key>`, e.g. `ACME/PO12345`: every record
    /// of one business transaction lands in one partition, in order.
    #[default]
    #[serde(rename = "trading_partner_id/business_key")]
    PartnerAndBusinessKey,
    /// The key of the record that failed (dead-letter topics).
    #[serde(rename = "original")]
    Original,
}

impl RecordKey {
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordKey::PartnerAndBusinessKey => "trading_partner_id/business_key",
            RecordKey::Original => "original",
        }
    }

    /// The key of an event published under this strategy; `None` where events
    /// are not published (dead-letter topics copy the failed record's key).
    pub fn key_for(self, envelope: &Envelope) -> Option<String> {
        match self {
            RecordKey::PartnerAndBusinessKey => Some(envelope.record_key()),
            RecordKey::Original => None,
        }
    }
}

/// `cleanup.policy` of a topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanupPolicy {
    #[default]
    Delete,
    Compact,
    #[serde(rename = "compact,delete")]
    CompactDelete,
}

impl CleanupPolicy {
    pub const fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopic {
    name: String,
    description: String,
    events: Vec<String>,
    key: Option<RecordKey>,
    partitions: Option<i32>,
    retention_ms: Option<i64>,
    #[serde(default)]
    cleanup_policy: CleanupPolicy,
    #[serde(default)]
    config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    defaults: Defaults,
    topic: Vec<RawTopic>,
    flow: Vec<FlowSpec>,
    consumer: Vec<ConsumerSpec>,
    #[serde(default)]
    producer: Vec<ProducerSpec>,
}

/// A topic with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSpec {
    pub name: String,
    pub description: String,
    /// Event types carried; empty for dead-letter topics (raw records).
    pub events: Vec<EventType>,
    pub key: RecordKey,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Topic configs to enforce (`retention.ms`, `cleanup.policy`, ...).
    pub config: BTreeMap<String, String>,
    /// Set on dead-letter topics: the consumer whose failures it holds.
    pub dead_letter_of: Option<String>,
}

/// One of the flows gridsync runs, as `gridsync report` numbers and names it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    pub number: u8,
    pub name: String,
}

/// A consumer: one binary, one consumer group, its own dead-letter topic.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    pub name: String,
    pub description: String,
    pub group_id: String,
    pub topics: Vec<String>,
    pub dead_letter_topic: String,
    /// Event types it publishes (its side effects' reports, the exceptions it raises): what it
    /// may write, for its ACLs.
    #[serde(default)]
    pub publishes: Vec<String>,
    /// The event types it acts on; the others its topics carry are skipped unread. Not given:
    /// every one they carry (the audit records all).
    #[serde(default)]
    pub handles: Option<Vec<String>>,
    /// The flows it serves, by number (see [`FlowSpec`]).
    pub flows: Vec<u8>,
    /// Where its metrics, health and status are served unless `--metrics-addr` says otherwise.
    pub metrics_port: u16,
    /// What its deployment gives it: `gridsync catalog` makes its compose service and its
    /// Kubernetes manifest from this.
    #[serde(default)]
    pub deploy: DeploySpec,
}

/// What a consumer's deployment gives it beyond Kafka, its own store and the partner profiles.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySpec {
    /// What else it reaches or keeps.
    #[serde(default)]
    pub needs: Vec<Need>,
    /// Its compose service and Kubernetes manifest are written by hand (the audit consumer, which
    /// serves a page of its own): `gridsync catalog` makes neither.
    #[serde(default)]
    pub by_hand: bool,
}

impl DeploySpec {
    pub fn needs(&self, need: Need) -> bool {
        self.needs.contains(&need)
    }
}

/// One thing a consumer's deployment gives it, named in the catalog as `kebab-case`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Need {
    /// A file of its own settings (`--config`, `GRIDSYNC_<NAME>_CONFIG`).
    Config,
    /// Amplience's Management API: the hub, the client id, the client secret file.
    Amplience,
    /// Amplience's Delivery API (what is published now).
    AmplienceDelivery,
    /// Amplience's media links.
    AmplienceMedia,
    /// Trading Grid's outbound mailbox (a directory in compose, SFTP in Kubernetes).
    TradingGrid,
    /// EDI envelopes of its own: control numbers in tg-producer's store, the own interchange id.
    EdiNumbers,
    /// A scratch directory (`GRIDSYNC_<NAME>_SPOOL_DIR`).
    Spool,
}

impl ConsumerSpec {
    /// The binary that runs it: `<name>-consumer`.
    pub fn binary(&self) -> String {
        format!("{}-consumer", self.name)
    }

    /// The group of a consumer's second reader, of every dead-letter topic (the audit
    /// consumer records dead letters, which are not events, that way). A replay resets it too.
    pub fn dead_letter_reader_group(&self) -> String {
        format!("{}.dead-letters", self.group_id)
    }
}

/// A producer that quarantines input it cannot turn into events (a forged or
/// unmappable webhook) in a dead-letter topic of its own.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerSpec {
    pub name: String,
    pub description: String,
    /// Where what it cannot publish as an event goes (none: it keeps such input elsewhere, as
    /// tg-producer keeps bad files in quarantine).
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// Event types it publishes.
    pub publishes: Vec<String>,
    /// Where its metrics, health and status are served unless `--metrics-addr` says otherwise.
    pub metrics_port: u16,
}

/// The whole catalog, validated.
#[derive(Debug, Clone)]
pub struct TopicCatalog {
    pub topics: Vec<TopicSpec>,
    /// In order of their numbers, which run from 1.
    pub flows: Vec<FlowSpec>,
    pub consumers: Vec<ConsumerSpec>,
    pub producers: Vec<ProducerSpec>,
    by_event: BTreeMap<EventType, usize>,
}

static CATALOG: LazyLock<Result<TopicCatalog, String>> =
    LazyLock::new(|| TopicCatalog::parse(CATALOG_TOML).map_err(|e| e.to_string()));

/// The compiled-in catalog.
pub fn catalog() -> Result<&'static TopicCatalog, CatalogError> {
    CATALOG.as_ref().map_err(|e| CatalogError::Invalid(e.clone()))
}

impl TopicCatalog {
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let raw: RawCatalog = toml::from_str(text).map_err(|e| CatalogError::Parse(e.to_string()))?;
        let d = &raw.defaults;
        let mut topics = Vec::new();
        let mut by_event = BTreeMap::new();
        for t in &raw.topic {
            let mut events = Vec::new();
            for name in &t.events {
                let event_type = EventType::ALL
                    .into_iter()
                    .find(|e| e.name() == name)
                    .ok_or_else(|| CatalogError::Invalid(format!("topic {}: unknown event type {name}", t.name)))?;
                if by_event.insert(event_type, topics.len()).is_some() {
                    return Err(CatalogError::Invalid(format!("{name} is routed to two topics")));
                }
                events.push(event_type);
            }
            if t.key == Some(RecordKey::Original) {
                return Err(CatalogError::Invalid(format!(
                    "topic {}: event topics cannot be keyed `original`",
                    t.name
                )));
            }
            let mut config = t.config.clone();
            config.insert("retention.ms".into(), t.retention_ms.unwrap_or(d.retention_ms).to_string());
            config.insert("min.insync.replicas".into(), d.min_insync_replicas.to_string());
            config.insert("cleanup.policy".into(), t.cleanup_policy.as_str().into());
            topics.push(TopicSpec {
                name: t.name.clone(),
                description: t.description.clone(),
                events,
                key: t.key.unwrap_or(d.key),
                partitions: t.partitions.unwrap_or(d.partitions),
                replication_factor: d.replication_factor,
                config,
                dead_letter_of: None,
            });
        }
        if let Some(missing) = EventType::ALL.into_iter().find(|e| !by_event.contains_key(e)) {
            return Err(CatalogError::Invalid(format!("{} is not routed to any topic", missing.name())));
        }
        for c in &raw.consumer {
            if let Some(unknown) = c.topics.iter().find(|t| !topics.iter().any(|spec| &spec.name == *t)) {
                return Err(CatalogError::Invalid(format!("consumer {} reads unknown topic {unknown}", c.name)));
            }
            let carried = |event: &String| {
                topics.iter().any(|t| c.topics.contains(&t.name) && t.events.iter().any(|e| e.name() == event))
            };
            if let Some(stray) = c.handles.iter().flatten().find(|e| !carried(e)) {
                return Err(CatalogError::Invalid(format!(
                    "consumer {} handles {stray}, which none of its topics carries",
                    c.name
                )));
            }
            if let Some(unknown) = c.flows.iter().find(|n| !raw.flow.iter().any(|f| f.number == **n)) {
                return Err(CatalogError::Invalid(format!("consumer {} serves unknown flow {unknown}", c.name)));
            }
        }
        let ports = raw.consumer.iter().map(|c| c.metrics_port).chain(raw.producer.iter().map(|p| p.metrics_port));
        let mut seen = std::collections::BTreeSet::new();
        if let Some(twice) = ports.into_iter().find(|port| !seen.insert(*port)) {
            return Err(CatalogError::Invalid(format!("metrics port {twice} is used twice")));
        }
        for (n, flow) in raw.flow.iter().enumerate() {
            if usize::from(flow.number) != n + 1 {
                return Err(CatalogError::Invalid(format!(
                    "flow {} is listed as number {}: flows run 1, 2, ...",
                    flow.number,
                    n + 1
                )));
            }
            if !raw.consumer.iter().any(|c| c.flows.contains(&flow.number)) {
                return Err(CatalogError::Invalid(format!("no consumer serves flow {}", flow.number)));
            }
        }
        let publishers = raw.consumer.iter().map(|c| (&c.name, &c.publishes));
        for (name, publishes) in publishers.chain(raw.producer.iter().map(|p| (&p.name, &p.publishes))) {
            if let Some(unknown) = publishes.iter().find(|e| !EventType::ALL.iter().any(|t| t.name() == e.as_str())) {
                return Err(CatalogError::Invalid(format!("{name} publishes unknown event type {unknown}")));
            }
        }
        let published = |e: &EventType| {
            let mut lists = raw.consumer.iter().map(|c| &c.publishes).chain(raw.producer.iter().map(|p| &p.publishes));
            lists.any(|list| list.iter().any(|n| n == e.name()))
        };
        if let Some(orphan) = EventType::ALL.into_iter().find(|e| !published(e)) {
            return Err(CatalogError::Invalid(format!("nothing publishes {}", orphan.name())));
        }
        let owners = raw.consumer.iter().map(|c| (&c.name, Some(&c.dead_letter_topic), "consumer"));
        let producers = raw.producer.iter().map(|p| (&p.name, p.dead_letter_topic.as_ref(), "producer"));
        for (name, dead_letter_topic, role) in owners.chain(producers) {
            let Some(dead_letter_topic) = dead_letter_topic else { continue };
            if topics.iter().any(|t| &t.name == dead_letter_topic) {
                return Err(CatalogError::Invalid(format!("{dead_letter_topic} is used twice")));
            }
            topics.push(TopicSpec {
                name: dead_letter_topic.clone(),
                description: format!("Dead letters of the {name} {role}."),
                events: Vec::new(),
                key: RecordKey::Original,
                partitions: d.dead_letter_partitions,
                replication_factor: d.replication_factor,
                config: BTreeMap::from([
                    ("retention.ms".to_owned(), d.dead_letter_retention_ms.to_string()),
                    ("cleanup.policy".to_owned(), "delete".to_owned()),
                    ("min.insync.replicas".to_owned(), d.min_insync_replicas.to_string()),
                ]),
                dead_letter_of: Some(name.clone()),
            });
        }
        Ok(TopicCatalog { topics, flows: raw.flow, consumers: raw.consumer, producers: raw.producer, by_event })
    }

    /// The topic an event type is published to.
    pub fn topic_for(&self, event_type: EventType) -> &TopicSpec {
        // Every event type is routed: `parse` refuses a catalog that misses one.
        &self.topics[self.by_event[&event_type]]
    }

    /// Each producer and consumer, producers first, with where it serves its metrics by default.
    pub fn metrics_ports(&self) -> Vec<(&str, u16)> {
        let producers = self.producers.iter().map(|p| (p.name.as_str(), p.metrics_port));
        producers.chain(self.consumers.iter().map(|c| (c.name.as_str(), c.metrics_port))).collect()
    }

    /// Each producer's and consumer's binary, its name here and its default metrics port,
    /// producers first (a producer's binary has its name).
    pub fn binaries(&self) -> Vec<(String, &str, u16)> {
        let producers = self.producers.iter().map(|p| (p.name.clone(), p.name.as_str(), p.metrics_port));
        producers.chain(self.consumers.iter().map(|c| (c.binary(), c.name.as_str(), c.metrics_port))).collect()
    }

    /// Where the producer or consumer `name` serves its metrics by default.
    pub fn metrics_port(&self, name: &str) -> Result<u16, CatalogError> {
        let found = self.metrics_ports().into_iter().find(|(n, _)| *n == name);
        found.map(|(_, port)| port).ok_or_else(|| CatalogError::UnknownConsumer(name.to_owned()))
    }

    /// The flow numbered `number`.
    pub fn flow(&self, number: u8) -> Option<&FlowSpec> {
        self.flows.iter().find(|f| f.number == number)
    }

    pub fn consumer(&self, name: &str) -> Result<&ConsumerSpec, CatalogError> {
        self.consumers.iter().find(|c| c.name == name).ok_or_else(|| CatalogError::UnknownConsumer(name.to_owned()))
    }

    /// The dead-letter topic of a consumer or producer.
    pub fn dead_letter_topic(&self, name: &str) -> Result<&str, CatalogError> {
        let consumers = self.consumers.iter().map(|c| (&c.name, Some(&c.dead_letter_topic)));
        consumers
            .chain(self.producers.iter().map(|p| (&p.name, p.dead_letter_topic.as_ref())))
            .find(|(n, _)| *n == name)
            .and_then(|(_, topic)| topic.map(String::as_str))
            .ok_or_else(|| CatalogError::UnknownConsumer(name.to_owned()))
    }

    /// Every consumer's and every producer's dead-letter topic, each once, by name.
    pub fn dead_letter_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .consumers
            .iter()
            .map(|c| c.dead_letter_topic.clone())
            .chain(self.producers.iter().filter_map(|p| p.dead_letter_topic.clone()))
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// Returns the catalog with every topic name prefixed, for isolated test runs
    /// and shared clusters (`GRIDSYNC_TOPIC_PREFIX`).
    pub fn with_prefix(&self, prefix: &str) -> TopicCatalog {
        let mut out = self.clone();
        for t in &mut out.topics {
            t.name = format!("{prefix}{}", t.name);
        }
        for c in &mut out.consumers {
            c.group_id = format!("{prefix}{}", c.group_id);
            c.dead_letter_topic = format!("{prefix}{}", c.dead_letter_topic);
            for t in &mut c.topics {
                *t = format!("{prefix}{t}");
            }
        }
        for p in &mut out.producers {
            if let Some(topic) = &mut p.dead_letter_topic {
                *topic = format!("{prefix}{topic}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_catalog_routes_every_event_and_has_a_dlq_per_consumer() {
        let catalog = catalog().unwrap();
        for e in EventType::ALL {
            assert!(catalog.topic_for(e).events.contains(&e));
        }
        for name in ["notifications", "billing", "exceptions", "distribution", "audit"] {
            let c = catalog.consumer(name).unwrap();
            let dlq = catalog.topics.iter().find(|t| t.name == c.dead_letter_topic).unwrap();
            assert_eq!(dlq.dead_letter_of.as_deref(), Some(name));
        }
        assert_eq!(catalog.topic_for(EventType::PurchaseOrderReceived).config["retention.ms"], "1209600000");
    }

    #[test]
    fn every_topic_wants_two_in_sync_replicas_kept_below_its_replication() {
        let catalog = catalog().unwrap();
        for topic in &catalog.topics {
            assert_eq!(topic.config.get("min.insync.replicas").map(String::as_str), Some("2"), "{}", topic.name);
        }
        assert_eq!(
            [(2, 3), (2, 2), (2, 1), (3, 3), (1, 3)].map(|(min, rf)| min_insync_replicas(min, rf)),
            [2, 1, 1, 2, 1],
            "below the replication (one broker out still writes), at least one"
        );
    }

    #[test]
    fn inconsistent_catalogs_are_refused() {
        let unrouted = CATALOG_TOML.replacen("events = [\"DeliveryPerformed\"]", "events = []", 1);
        assert!(
            matches!(TopicCatalog::parse(&unrouted), Err(CatalogError::Invalid(m)) if m.contains("DeliveryPerformed"))
        );
        let original_key = CATALOG_TOML.replacen(
            "events = [\"DeliveryPerformed\"]",
            "events = [\"DeliveryPerformed\"]\nkey = \"original\"",
            1,
        );
        assert!(matches!(TopicCatalog::parse(&original_key), Err(CatalogError::Invalid(m)) if m.contains("original")));
        let unpublished = CATALOG_TOML.replacen("publishes = [\"PaymentConfirmed\", ", "publishes = [", 1);
        assert!(
            matches!(TopicCatalog::parse(&unpublished), Err(CatalogError::Invalid(m)) if m == "nothing publishes PaymentConfirmed"),
            "{:?}",
            TopicCatalog::parse(&unpublished).err()
        );
        let misspelt =
            CATALOG_TOML.replacen("publishes = [\"DeliveryPerformed\"]", "publishes = [\"DeliveryPerfomed\"]", 1);
        assert!(
            matches!(TopicCatalog::parse(&misspelt), Err(CatalogError::Invalid(m)) if m.contains("DeliveryPerfomed"))
        );
        let typo = CATALOG_TOML.replacen("partitions = 6", "partitionz = 6", 1);
        assert!(matches!(TopicCatalog::parse(&typo), Err(CatalogError::Parse(_))));
        let stray =
            CATALOG_TOML.replacen("handles = [\"PartnerContentApproved\"", "handles = [\"DeliveryPerformed\"", 1);
        assert!(
            matches!(TopicCatalog::parse(&stray), Err(CatalogError::Invalid(m)) if m == "consumer distribution handles DeliveryPerformed, which none of its topics carries")
        );
        let unserved = CATALOG_TOML.replacen("flows = [8]", "flows = [6]", 1);
        assert!(
            matches!(TopicCatalog::parse(&unserved), Err(CatalogError::Invalid(m)) if m == "no consumer serves flow 8")
        );
        let unknown_flow = CATALOG_TOML.replacen("flows = [8]", "flows = [8, 99]", 1);
        assert!(
            matches!(TopicCatalog::parse(&unknown_flow), Err(CatalogError::Invalid(m)) if m.contains("unknown flow 99"))
        );
        let shared_port = CATALOG_TOML.replacen("metrics_port = 9472", "metrics_port = 9471", 1);
        assert!(matches!(TopicCatalog::parse(&shared_port), Err(CatalogError::Invalid(m)) if m.contains("9471")));
        let unknown_topic = CATALOG_TOML.replacen("topics = [\"gridsync.tg.invoices\"", "topics = [\"nope\"", 1);
        assert!(matches!(TopicCatalog::parse(&unknown_topic), Err(CatalogError::Invalid(m)) if m.contains("nope")));
    }

    #[test]
    fn prefix_renames_topics_groups_and_dead_letters() {
        let p = catalog().unwrap().with_prefix("t1.");
        let c = p.consumer("billing").unwrap();
        assert_eq!(c.group_id, "t1.gridsync.billing");
        assert_eq!(c.dead_letter_topic, "t1.gridsync.billing.dlq");
        assert!(c.topics.iter().all(|t| t.starts_with("t1.")));
        assert_eq!(p.topic_for(EventType::InvoiceReceived).name, "t1.gridsync.tg.invoices");
    }
}
