//! `topics apply`: makes a cluster's topics match the catalog, idempotently.
//!
//! Creates missing topics, adds partitions where the catalog asks for more
//! (Kafka cannot remove them), and sets topic configs that differ. A second
//! run against the same cluster changes nothing.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use gridsync_schemas::catalog::TopicSpec;
use rdkafka::{
    admin::{AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication},
    client::DefaultClientContext,
    error::KafkaError,
    types::RDKafkaErrorCode,
};

use crate::config::{ConfigError, KafkaArgs};

const TIMEOUT: Duration = Duration::from_secs(30);

/// One change `apply` made (or, on a dry run, would make).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicChange {
    Created { topic: String, partitions: i32, replication: i32 },
    PartitionsAdded { topic: String, from: i32, to: i32 },
    ConfigSet { topic: String, key: String, from: Option<String>, to: String },
}

impl std::fmt::Display for TopicChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopicChange::Created { topic, partitions, replication } => {
                write!(f, "create {topic} (partitions={partitions}, replication={replication})")
            }
            TopicChange::PartitionsAdded { topic, from, to } => {
                write!(f, "partitions {topic}: {from} -> {to}")
            }
            TopicChange::ConfigSet { topic, key, from, to } => {
                write!(f, "config {topic}: {key} {} -> {to}", from.as_deref().unwrap_or("(unset)"))
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("Kafka admin request failed: {0}")]
    Kafka(#[from] KafkaError),
    #[error("{operation} {topic}: {code}")]
    Topic { operation: &'static str, topic: String, code: RDKafkaErrorCode },
    #[error("the admin task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("the broker does not support {request}; make these changes by other means:\n  {}", pending.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Unsupported { request: &'static str, pending: Vec<TopicChange> },
}

/// Turns a broker's "unsupported" answer into an error that lists what is left to do.
fn unsupported<'a>(request: &'static str, pending: &'a [TopicChange]) -> impl FnOnce(KafkaError) -> AdminError + 'a {
    move |e| match e {
        KafkaError::AdminOp(RDKafkaErrorCode::UnsupportedFeature) => {
            AdminError::Unsupported { request, pending: pending.to_vec() }
        }
        other => AdminError::Kafka(other),
    }
}

/// Partition count of every existing topic, and how many brokers there are.
async fn describe_cluster(
    admin: &Arc<AdminClient<DefaultClientContext>>,
) -> Result<(BTreeMap<String, i32>, i32), AdminError> {
    let admin = admin.clone();
    // fetch_metadata blocks; keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        let metadata = admin.inner().fetch_metadata(None, TIMEOUT)?;
        let topics = metadata.topics().iter().map(|t| (t.name().to_owned(), t.partitions().len() as i32)).collect();
        Ok((topics, metadata.brokers().len() as i32))
    })
    .await?
}

/// Whether `topic` has at least `wanted` partitions, allowing the broker's
/// metadata a few seconds to catch up with a change just made.
async fn has_partitions(admin: &Arc<AdminClient<DefaultClientContext>>, topic: &str, wanted: Option<i32>) -> bool {
    let Some(wanted) = wanted else { return false };
    for _ in 0..50 {
        let count = describe_cluster(admin).await.ok().and_then(|(topics, _)| topics.get(topic).copied());
        if count.is_some_and(|n| n >= wanted) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Current values of the configs the catalog manages, per topic.
async fn describe_configs(
    admin: &AdminClient<DefaultClientContext>,
    topics: &[&TopicSpec],
) -> Result<BTreeMap<String, BTreeMap<String, String>>, AdminError> {
    let resources: Vec<ResourceSpecifier<'_>> = topics.iter().map(|t| ResourceSpecifier::Topic(&t.name)).collect();
    let mut out = BTreeMap::new();
    if resources.is_empty() {
        return Ok(out);
    }
    let results = admin.describe_configs(&resources, &AdminOptions::new().request_timeout(Some(TIMEOUT))).await?;
    for (spec, result) in topics.iter().zip(results) {
        let resource = result.map_err(|code| AdminError::Topic {
            operation: "describe configs of",
            topic: spec.name.clone(),
            code,
        })?;
        let values = resource.entries.into_iter().filter_map(|e| e.value.map(|v| (e.name, v))).collect();
        out.insert(spec.name.clone(), values);
    }
    Ok(out)
}

/// Makes the cluster match `topics`. With `dry_run`, only reports what it would do.
pub async fn apply_topics(
    kafka: &KafkaArgs,
    topics: &[TopicSpec],
    dry_run: bool,
) -> Result<Vec<TopicChange>, AdminError> {
    let admin: Arc<AdminClient<DefaultClientContext>> = Arc::new(kafka.client_config(&[], &[])?.create()?);
    let options = AdminOptions::new().request_timeout(Some(TIMEOUT)).operation_timeout(Some(TIMEOUT));
    let (existing, brokers) = describe_cluster(&admin).await?;
    // Each topic's configs as this cluster can hold them: `min.insync.replicas` below the
    // replication the topic gets here.
    let replication = |t: &TopicSpec| t.replication_factor.min(brokers.max(1));
    let topics: Vec<TopicSpec> = topics
        .iter()
        .map(|t| {
            let mut t = t.clone();
            if let Some(min) = t.config.get("min.insync.replicas").and_then(|v| v.parse().ok()) {
                let fitted = gridsync_schemas::catalog::min_insync_replicas(min, replication(&t));
                t.config.insert("min.insync.replicas".into(), fitted.to_string());
            }
            t
        })
        .collect();
    let topics = topics.as_slice();
    let mut changes = Vec::new();

    let missing: Vec<&TopicSpec> = topics.iter().filter(|t| !existing.contains_key(&t.name)).collect();
    let new_topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|t| {
            let replication = replication(t);
            changes.push(TopicChange::Created { topic: t.name.clone(), partitions: t.partitions, replication });
            t.config
                .iter()
                .fold(NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(replication)), |nt, (k, v)| {
                    nt.set(k, v)
                })
        })
        .collect();
    if !dry_run && !new_topics.is_empty() {
        for result in admin.create_topics(&new_topics, &options).await? {
            match result {
                // Created concurrently by someone else: the next run reconciles it.
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(AdminError::Topic { operation: "create", topic, code }),
            }
        }
    }

    let present: Vec<&TopicSpec> = topics.iter().filter(|t| existing.contains_key(&t.name)).collect();
    let grow: Vec<NewPartitions<'_>> = present
        .iter()
        .filter_map(|t| {
            let have = existing[&t.name];
            (have < t.partitions).then(|| {
                changes.push(TopicChange::PartitionsAdded { topic: t.name.clone(), from: have, to: t.partitions });
                NewPartitions::new(&t.name, t.partitions as usize)
            })
        })
        .collect();
    if !dry_run && !grow.is_empty() {
        let pending: Vec<TopicChange> =
            changes.iter().filter(|c| matches!(c, TopicChange::PartitionsAdded { .. })).cloned().collect();
        for result in
            admin.create_partitions(&grow, &options).await.map_err(unsupported("CreatePartitions", &pending))?
        {
            match result {
                Ok(_) => {}
                // A request librdkafka retried after a slow first answer finds the partitions
                // it added: done, if the topic now has as many as wanted.
                Err((topic, RDKafkaErrorCode::InvalidPartitions))
                    if has_partitions(
                        &admin,
                        &topic,
                        present.iter().find(|t| t.name == topic).map(|t| t.partitions),
                    )
                    .await => {}
                Err((topic, code)) => return Err(AdminError::Topic { operation: "add partitions to", topic, code }),
            }
        }
    }

    let current = describe_configs(&admin, &present).await?;
    let mut alter = Vec::new();
    for t in &present {
        let have = current.get(&t.name);
        let differs: Vec<(&String, &String)> =
            t.config.iter().filter(|(k, v)| have.and_then(|h| h.get(*k)) != Some(*v)).collect();
        if differs.is_empty() {
            continue;
        }
        for (key, value) in differs {
            changes.push(TopicChange::ConfigSet {
                topic: t.name.clone(),
                key: key.clone(),
                from: have.and_then(|h| h.get(key)).cloned(),
                to: value.clone(),
            });
        }
        // AlterConfigs replaces a topic's whole config: send every managed key.
        alter
            .push(t.config.iter().fold(AlterConfig::new(ResourceSpecifier::Topic(&t.name)), |ac, (k, v)| ac.set(k, v)));
    }
    if !dry_run && !alter.is_empty() {
        for (result, spec) in admin.alter_configs(&alter, &options).await?.into_iter().zip(&alter) {
            result.map_err(|(_, code)| AdminError::Topic {
                operation: "alter configs of",
                topic: match spec.specifier {
                    ResourceSpecifier::Topic(name) => name.to_owned(),
                    _ => String::new(),
                },
                code,
            })?;
        }
    }
    if !dry_run && !changes.is_empty() {
        settle(&admin, topics).await;
    }
    Ok(changes)
}

/// Waits (a few seconds at most) until the broker's metadata shows what was
/// just applied: a cluster's brokers learn of new topics, partitions and
/// configs a moment after the controller accepts them, and whoever runs
/// `topics apply` goes on to use them at once.
async fn settle(admin: &Arc<AdminClient<DefaultClientContext>>, topics: &[TopicSpec]) {
    for _ in 0..100 {
        let partitions_shown = describe_cluster(admin).await.is_ok_and(|(existing, _)| {
            topics.iter().all(|t| existing.get(&t.name).is_some_and(|n| *n >= t.partitions))
        });
        let specs: Vec<&TopicSpec> = topics.iter().collect();
        let configs_shown = describe_configs(admin, &specs).await.is_ok_and(|current| {
            topics.iter().all(|t| t.config.iter().all(|(k, v)| current.get(&t.name).and_then(|c| c.get(k)) == Some(v)))
        });
        if partitions_shown && configs_shown {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::warn!("the cluster's metadata does not show every change yet; it will shortly");
}
