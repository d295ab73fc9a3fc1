//! At start, whether this binary's Kafka principal may do what its component needs on its topics
//! (the ACLs `gridsync acls` gives it, from the catalog), so that a missing ACL stops it at once
//! with the principal, the resource and the operation named, instead of a retry loop or a binary
//! that stays unready without a word. The group's READ is checked by the consumer loop itself,
//! which stops on the broker's group authorization error.

use std::{collections::BTreeMap, time::Duration};

use gridsync_kafka_acl::{create_acls, topic_operations, AclBinding, PatternType, ResourceType};
use gridsync_schemas::{
    access::{grants, Grant, Pattern, Resource},
    catalog::TopicCatalog,
};
use rdkafka::{admin::AdminClient, client::DefaultClientContext};

use crate::config::{ConfigError, KafkaArgs};

/// How long the check waits for the cluster; past it the binary starts unchecked (the cluster is
/// unreachable, which its own retries report).
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long creating the ACLs waits for the cluster.
const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Kafka does not allow the principal an operation on a topic: which, and what to do.
    #[error("{0}")]
    Refused(String),
    #[error("creating a Kafka admin client: {0}")]
    Client(#[source] rdkafka::error::KafkaError),
    #[error(transparent)]
    Apply(#[from] gridsync_kafka_acl::AclError),
    #[error("the ACL task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Creates the ACLs of `grants` (principal, grant) on the cluster, as a principal allowed to ALTER
/// it; Kafka keeps an ACL that exists as it is, so applying twice changes nothing. Returns how many.
pub async fn apply(kafka: &KafkaArgs, grants: &[(String, Grant)]) -> Result<usize, AccessError> {
    let bindings = bindings(grants);
    let count = bindings.len();
    let admin: AdminClient<DefaultClientContext> =
        kafka.client_config(&[], &[])?.create().map_err(AccessError::Client)?;
    // librdkafka's admin calls block: keep them off the async workers.
    tokio::task::spawn_blocking(move || create_acls(&admin, &bindings, APPLY_TIMEOUT)).await??;
    Ok(count)
}

/// The librdkafka bindings of `grants`.
fn bindings(grants: &[(String, Grant)]) -> Vec<AclBinding> {
    grants
        .iter()
        .flat_map(|(principal, grant)| {
            grant.acls.iter().map(move |acl| AclBinding {
                resource: match acl.resource {
                    Resource::Topic => ResourceType::Topic,
                    Resource::Group => ResourceType::Group,
                    Resource::Cluster => ResourceType::Cluster,
                },
                name: acl.name.clone(),
                pattern: match acl.pattern {
                    Pattern::Literal => PatternType::Literal,
                    Pattern::Prefixed => PatternType::Prefixed,
                },
                principal: principal.clone(),
                operation: acl.operation.as_str(),
            })
        })
        .collect()
}

/// Who this client is to Kafka, as far as its settings say.
pub fn principal(kafka: &KafkaArgs) -> String {
    let properties = kafka.properties().unwrap_or_default();
    if let Some(user) = properties.get("sasl.username") {
        return format!("User:{user}");
    }
    if let Some(certificate) = properties.get("ssl.certificate.location") {
        return format!("the principal of certificate {certificate}");
    }
    "this client (no sasl.username, no client certificate: User:ANONYMOUS)".to_owned()
}

/// Checks the topic operations `component` needs (none known for it: nothing to check).
pub async fn check(kafka: &KafkaArgs, catalog: &TopicCatalog, component: &str) -> Result<(), AccessError> {
    let Some(grant) = grants(catalog).into_iter().find(|g| g.component == component) else { return Ok(()) };
    let mut needed: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    for acl in grant.acls.iter().filter(|a| a.resource == Resource::Topic) {
        needed.entry(acl.name.clone()).or_default().push(acl.operation.as_str());
    }
    let admin: AdminClient<_> = match kafka.client_config(&[], &[])?.create() {
        Ok(admin) => admin,
        Err(e) => {
            tracing::warn!(error = %e, "cannot check the ACLs: no admin client");
            return Ok(());
        }
    };
    let topics: Vec<String> = needed.keys().cloned().collect();
    // librdkafka's admin calls block.
    let answer = tokio::task::spawn_blocking(move || topic_operations(&admin, &topics, CHECK_TIMEOUT)).await;
    let described = match answer.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
        Ok(described) => described,
        Err(error) => {
            tracing::warn!(%error, "could not check this component's ACLs; starting unchecked");
            return Ok(());
        }
    };
    let refused = |topic: &str, operation: &str, detail: String| {
        AccessError::Refused(format!(
            "Kafka does not allow {} to {operation} topic {topic}{detail}. `gridsync acls` lists what {component} \
             needs; have it granted (`gridsync acls --apply` as a Kafka administrator)",
            principal(kafka)
        ))
    };
    for (topic, operations) in &needed {
        match described.get(topic) {
            Some(Err(e)) if e.is_authorization() => {
                return Err(refused(topic, "DESCRIBE", format!(" (the broker: {e})")));
            }
            // A topic not created yet, or a broker that does not say: the work itself will tell.
            Some(Err(_) | Ok(None)) | None => {}
            Some(Ok(Some(allowed))) => {
                if allowed.contains(&"ALL") {
                    continue;
                }
                if let Some(missing) = operations.iter().find(|op| !allowed.contains(op)) {
                    return Err(refused(topic, missing, format!(" (it may: {})", allowed.join(", "))));
                }
            }
        }
    }
    tracing::debug!(component, topics = needed.len(), "Kafka allows what this component needs");
    Ok(())
}
