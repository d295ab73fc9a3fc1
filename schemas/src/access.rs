//! Least privilege from the catalog: exactly the Kafka ACLs each component needs, derived from
//! what the catalog says it reads, publishes and dead-letters. `gridsync acls` prints and applies
//! them; the Strimzi `KafkaUser` resources in `deploy/k8s/strimzi/` carry the same.
//!
//! What each needs, and why:
//! - a producer (and every consumer, which publishes its reports): `WRITE` and `DESCRIBE` on the
//!   topics of the event types it publishes and on its dead-letter topic, and `IDEMPOTENT_WRITE`
//!   on the cluster (gridsync's producers are idempotent);
//! - a consumer: `READ` and `DESCRIBE` on its topics, `READ` on its group;
//! - a flow consumer: `READ` on the deliveries topic and on the report-lookup group, with which it
//!   looks for a report it may have published before a crash;
//! - the audit consumer: `READ` on every dead-letter topic and on its dead-letter reader's group.
//!
//! The lag exporter describes every topic and group of the catalog ([`lag_exporter`]); the
//! operator commands (`topics apply`, `groups lag`, `replay`, `dlq redrive`, `demo`) act for the
//! whole catalog, and their principal gets the prefixed ACLs of [`operator`].

use std::collections::BTreeSet;

use crate::{catalog::TopicCatalog, EventType};

/// The group a flow consumer's report lookup reads the deliveries topic under (never joined, never
/// committed).
pub const REPORT_LOOKUP_GROUP: &str = "gridsync-report-lookup";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Topic,
    Group,
    Cluster,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pattern {
    Literal,
    Prefixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    Read,
    Write,
    Describe,
    Create,
    Delete,
    Alter,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

impl Resource {
    /// Kafka's name (`kafka-acls --resource-type`, Strimzi's `resource.type` in lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Topic => "TOPIC",
            Resource::Group => "GROUP",
            Resource::Cluster => "CLUSTER",
        }
    }
}

impl Pattern {
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Literal => "LITERAL",
            Pattern::Prefixed => "PREFIXED",
        }
    }
}

impl Operation {
    /// Kafka's name, as `kafka-acls` and the broker's errors say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "READ",
            Operation::Write => "WRITE",
            Operation::Describe => "DESCRIBE",
            Operation::Create => "CREATE",
            Operation::Delete => "DELETE",
            Operation::Alter => "ALTER",
            Operation::DescribeConfigs => "DESCRIBE_CONFIGS",
            Operation::AlterConfigs => "ALTER_CONFIGS",
            Operation::IdempotentWrite => "IDEMPOTENT_WRITE",
        }
    }

    /// Strimzi's spelling (`Read`, `IdempotentWrite`, ...).
    pub fn strimzi(self) -> &'static str {
        match self {
            Operation::Read => "Read",
            Operation::Write => "Write",
            Operation::Describe => "Describe",
            Operation::Create => "Create",
            Operation::Delete => "Delete",
            Operation::Alter => "Alter",
            Operation::DescribeConfigs => "DescribeConfigs",
            Operation::AlterConfigs => "AlterConfigs",
            Operation::IdempotentWrite => "IdempotentWrite",
        }
    }
}

/// One permission: `operation` allowed on a resource (the cluster's name is `kafka-cluster`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Acl {
    pub resource: Resource,
    pub name: String,
    pub pattern: Pattern,
    pub operation: Operation,
}

/// A component and the ACLs it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// `tg-producer`, `notifications`, ..., `operator`.
    pub component: String,
    pub acls: BTreeSet<Acl>,
}

fn literal(resource: Resource, name: &str, operations: &[Operation]) -> Vec<Acl> {
    let acl = |&operation: &Operation| Acl { resource, name: name.to_owned(), pattern: Pattern::Literal, operation };
    operations.iter().map(acl).collect()
}

/// Writing to `topics`, idempotently.
fn writer<'a>(topics: impl IntoIterator<Item = &'a String>) -> BTreeSet<Acl> {
    let mut acls: BTreeSet<Acl> = topics
        .into_iter()
        .flat_map(|t| literal(Resource::Topic, t, &[Operation::Write, Operation::Describe]))
        .collect();
    acls.extend(literal(Resource::Cluster, "kafka-cluster", &[Operation::IdempotentWrite]));
    acls
}

/// The topics of `events` (names of event types), in `catalog`.
fn topics_of<'a>(catalog: &'a TopicCatalog, events: &[String]) -> Vec<&'a String> {
    let types = events.iter().filter_map(|e| EventType::ALL.into_iter().find(|t| t.name() == e));
    let mut topics: Vec<&String> = types.map(|t| &catalog.topic_for(t).name).collect();
    topics.sort();
    topics.dedup();
    topics
}

/// What each component of `catalog` (already prefixed as it runs) needs, producers first.
pub fn grants(catalog: &TopicCatalog) -> Vec<Grant> {
    let mut grants = Vec::new();
    for producer in &catalog.producers {
        let mut topics = topics_of(catalog, &producer.publishes);
        topics.extend(producer.dead_letter_topic.as_ref());
        grants.push(Grant { component: producer.name.clone(), acls: writer(topics) });
    }
    let deliveries = &catalog.topic_for(EventType::DeliveryPerformed).name;
    for consumer in &catalog.consumers {
        let mut topics = topics_of(catalog, &consumer.publishes);
        topics.push(&consumer.dead_letter_topic);
        let mut acls = writer(topics);
        for topic in &consumer.topics {
            acls.extend(literal(Resource::Topic, topic, &[Operation::Read, Operation::Describe]));
        }
        acls.extend(literal(Resource::Group, &consumer.group_id, &[Operation::Read]));
        if consumer.publishes.iter().any(|e| e == EventType::DeliveryPerformed.name()) {
            acls.extend(literal(Resource::Topic, deliveries, &[Operation::Read, Operation::Describe]));
            acls.extend(literal(Resource::Group, REPORT_LOOKUP_GROUP, &[Operation::Read]));
        }
        if consumer.name == "audit" {
            for topic in catalog.dead_letter_topics() {
                acls.extend(literal(Resource::Topic, &topic, &[Operation::Read, Operation::Describe]));
            }
            acls.extend(literal(Resource::Group, &consumer.dead_letter_reader_group(), &[Operation::Read]));
        }
        grants.push(Grant { component: consumer.name.clone(), acls });
    }
    grants
}

/// The lag exporter's (`gridsync groups lag --serve`): describing the topics and groups under
/// `prefix`, which is what reading committed offsets and partition ends takes.
pub fn lag_exporter(prefix: &str) -> Grant {
    let acls = [Resource::Topic, Resource::Group]
        .into_iter()
        .map(|resource| Acl {
            resource,
            name: format!("{prefix}gridsync"),
            pattern: Pattern::Prefixed,
            operation: Operation::Describe,
        })
        .collect();
    Grant { component: "lag-exporter".to_owned(), acls }
}

/// The operator's: every topic and group under `prefix` (what `topics apply`, `groups lag`,
/// `replay`, `dlq redrive` and `demo` touch), and describing the cluster.
pub fn operator(prefix: &str) -> Grant {
    use Operation::*;
    let prefixed = |resource, operations: &[Operation]| {
        operations
            .iter()
            .map(|&operation| Acl {
                resource,
                name: format!("{prefix}gridsync"),
                pattern: Pattern::Prefixed,
                operation,
            })
            .collect::<Vec<_>>()
    };
    let mut acls: BTreeSet<Acl> =
        prefixed(Resource::Topic, &[Create, Describe, DescribeConfigs, Alter, AlterConfigs, Read, Write])
            .into_iter()
            .chain(prefixed(Resource::Group, &[Describe, Read, Delete]))
            .collect();
    acls.extend(literal(Resource::Cluster, "kafka-cluster", &[Describe, IdempotentWrite]));
    Grant { component: "operator".to_owned(), acls }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::catalog;

    fn grant<'a>(grants: &'a [Grant], component: &str) -> &'a BTreeSet<Acl> {
        &grants.iter().find(|g| g.component == component).unwrap().acls
    }

    fn has(acls: &BTreeSet<Acl>, resource: Resource, name: &str, operation: Operation) -> bool {
        acls.contains(&Acl { resource, name: name.to_owned(), pattern: Pattern::Literal, operation })
    }

    #[test]
    fn each_component_gets_what_it_reads_writes_and_dead_letters_and_nothing_else() {
        let catalog = catalog().unwrap().with_prefix("p.");
        let grants = grants(&catalog);
        // A principal per producer and consumer of the catalog, in its order.
        let names: Vec<&str> = grants.iter().map(|g| g.component.as_str()).collect();
        let components =
            catalog.producers.iter().map(|p| p.name.as_str()).chain(catalog.consumers.iter().map(|c| c.name.as_str()));
        assert_eq!(names, components.collect::<Vec<_>>());
        assert!(names.len() >= 7 && names.starts_with(&["tg-producer", "amp-producer"]), "{names:?}");
        let tg = grant(&grants, "tg-producer");
        assert!(has(tg, Resource::Topic, "p.gridsync.tg.orders", Operation::Write));
        assert!(has(tg, Resource::Cluster, "kafka-cluster", Operation::IdempotentWrite));
        assert!(!tg.iter().any(|a| a.operation == Operation::Read), "tg-producer reads nothing: {tg:?}");
        assert!(!tg.iter().any(|a| a.name.contains(".amp.")), "nor writes Amplience's topics");
        let amp = grant(&grants, "amp-producer");
        assert!(has(amp, Resource::Topic, "p.gridsync.amp-producer.dlq", Operation::Write));
        let notifications = grant(&grants, "notifications");
        assert!(has(notifications, Resource::Topic, "p.gridsync.tg.orders", Operation::Read));
        assert!(has(notifications, Resource::Group, "p.gridsync.notifications", Operation::Read));
        assert!(has(notifications, Resource::Topic, "p.gridsync.deliveries", Operation::Write));
        assert!(has(notifications, Resource::Topic, "p.gridsync.notifications.dlq", Operation::Write));
        assert!(!has(notifications, Resource::Topic, "p.gridsync.tg.exceptions", Operation::Write), "raises nothing");
        assert!(!has(notifications, Resource::Topic, "p.gridsync.tg.invoices", Operation::Read));
        assert!(has(grant(&grants, "billing"), Resource::Topic, "p.gridsync.tg.exceptions", Operation::Write));
        let audit = grant(&grants, "audit");
        assert!(has(audit, Resource::Topic, "p.gridsync.billing.dlq", Operation::Read));
        assert!(has(audit, Resource::Group, "p.gridsync.audit.dead-letters", Operation::Read));
        assert!(!has(audit, Resource::Topic, "p.gridsync.deliveries", Operation::Write), "performs no side effect");
        // Nothing anywhere but what is named: no wildcard, no prefix.
        assert!(grants.iter().flat_map(|g| &g.acls).all(|a| a.pattern == Pattern::Literal && a.name != "*"));
        let operator = operator("p.");
        assert!(operator.acls.iter().all(|a| a.resource == Resource::Cluster || a.name == "p.gridsync"));
    }
}
