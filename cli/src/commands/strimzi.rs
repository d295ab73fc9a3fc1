//! `gridsync strimzi`: the cluster resources of the catalog for the Strimzi operator, written to
//! a kustomize overlay (`deploy/k8s/strimzi/` is its output, checked against it in the tests):
//! a `KafkaTopic` per topic (partitions, replication, configs), a `KafkaUser` per component with
//! exactly the ACLs `gridsync acls` gives it (SCRAM-SHA-512, so Strimzi makes each a password
//! Secret), and the base's Deployments patched to authenticate with those Secrets over TLS,
//! trusting the cluster's CA.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Args;
use gridsync_schemas::{
    access::{grants, lag_exporter, operator, Grant, Pattern, Resource},
    catalog::catalog,
};
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub struct StrimziArgs {
    /// Where to write topics.yaml, users.yaml and kustomization.yaml.
    #[arg(long, default_value = "deploy/k8s/strimzi")]
    out: PathBuf,
    /// The `Kafka` resource's name (the `strimzi.io/cluster` label, its Secrets and Services).
    #[arg(long, default_value = "gridsync-kafka")]
    cluster: String,
    /// Print the files instead of writing them.
    #[arg(long)]
    print: bool,
}

/// Each component's Kafka user, which is also the name of its Deployment in `deploy/k8s/base`:
/// the catalog's producers and consumers, and the lag exporter.
fn deployments() -> anyhow::Result<Vec<String>> {
    let catalog = gridsync_schemas::catalog::catalog()?;
    let components = catalog.binaries().into_iter().map(|(_, component, _)| component.to_owned());
    Ok(components.chain(["lag-exporter".to_owned()]).collect())
}

fn yaml_documents(documents: &[Value]) -> anyhow::Result<String> {
    let mut out = String::new();
    for document in documents {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(document)?);
    }
    Ok(out)
}

fn topics(cluster: &str) -> anyhow::Result<Vec<Value>> {
    let catalog = catalog()?;
    Ok(catalog
        .topics
        .iter()
        .map(|topic| {
            json!({
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaTopic",
                "metadata": {"name": topic.name, "labels": {"strimzi.io/cluster": cluster}},
                "spec": {
                    "topicName": topic.name,
                    "partitions": topic.partitions,
                    "replicas": topic.replication_factor,
                    "config": topic.config,
                },
            })
        })
        .collect())
}

/// A KafkaUser's ACLs, in Strimzi's words: one entry per resource with its operations.
fn strimzi_acls(grant: &Grant) -> Vec<Value> {
    let mut by_resource: std::collections::BTreeMap<(Resource, &str, Pattern), Vec<&str>> = Default::default();
    for acl in &grant.acls {
        by_resource.entry((acl.resource, &acl.name, acl.pattern)).or_default().push(acl.operation.strimzi());
    }
    by_resource
        .into_iter()
        .map(|((resource, name, pattern), operations)| {
            let resource = match resource {
                Resource::Cluster => json!({"type": "cluster"}),
                Resource::Topic | Resource::Group => json!({
                    "type": if resource == Resource::Topic { "topic" } else { "group" },
                    "name": name,
                    "patternType": if pattern == Pattern::Prefixed { "prefix" } else { "literal" },
                }),
            };
            json!({"resource": resource, "operations": operations, "host": "*"})
        })
        .collect()
}

fn users(cluster: &str) -> anyhow::Result<Vec<Value>> {
    let catalog = catalog()?;
    let mut all = grants(catalog);
    all.push(lag_exporter(""));
    all.push(Grant { component: "gridsync-operator".to_owned(), ..operator("") });
    Ok(all
        .iter()
        .map(|grant| {
            json!({
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaUser",
                "metadata": {"name": grant.component, "labels": {"strimzi.io/cluster": cluster}},
                "spec": {
                    "authentication": {"type": "scram-sha-512"},
                    "authorization": {"type": "simple", "acls": strimzi_acls(grant)},
                },
            })
        })
        .collect())
}

/// The overlay: the base, the resources, and each Deployment given its user's Secret.
fn kustomization(cluster: &str) -> anyhow::Result<String> {
    let mut patches = vec![json!({
        "target": {"kind": "ConfigMap", "name": "gridsync-config"},
        "patch": serde_yaml::to_string(&json!([
            {"op": "replace", "path": "/data/GRIDSYNC_BROKERS", "value": format!("{cluster}-kafka-bootstrap:9093")},
            {"op": "add", "path": "/data/GRIDSYNC_KAFKA_SECURITY_PROTOCOL", "value": "SASL_SSL"},
            {"op": "add", "path": "/data/GRIDSYNC_KAFKA_SASL_MECHANISM", "value": "SCRAM-SHA-512"},
            {"op": "add", "path": "/data/GRIDSYNC_KAFKA_SSL_CA_LOCATION", "value": "/run/secrets/kafka-ca/ca.crt"},
        ]))?,
    })];
    // A component's user and its Deployment share its name.
    for user in deployments()? {
        let ops = json!([
            {"op": "add", "path": "/spec/template/spec/containers/0/env/-",
             "value": {"name": "GRIDSYNC_KAFKA_SASL_USERNAME", "value": user}},
            {"op": "add", "path": "/spec/template/spec/containers/0/env/-",
             "value": {"name": "GRIDSYNC_KAFKA_SASL_PASSWORD_FILE", "value": "/run/secrets/kafka-user/password"}},
            {"op": "add", "path": "/spec/template/spec/containers/0/volumeMounts/-",
             "value": {"name": "kafka-user", "mountPath": "/run/secrets/kafka-user", "readOnly": true}},
            {"op": "add", "path": "/spec/template/spec/containers/0/volumeMounts/-",
             "value": {"name": "kafka-ca", "mountPath": "/run/secrets/kafka-ca", "readOnly": true}},
            {"op": "add", "path": "/spec/template/spec/volumes/-",
             "value": {"name": "kafka-user", "secret": {"secretName": user, "defaultMode": 0o400, "items": [{"key": "password", "path": "password"}]}}},
            {"op": "add", "path": "/spec/template/spec/volumes/-",
             "value": {"name": "kafka-ca", "secret": {"secretName": format!("{cluster}-cluster-ca-cert"), "items": [{"key": "ca.crt", "path": "ca.crt"}]}}},
        ]);
        patches.push(json!({"target": {"kind": "Deployment", "name": user}, "patch": serde_yaml::to_string(&ops)?}));
    }
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../base", "topics.yaml", "users.yaml"],
        "patches": patches,
    });
    Ok(format!(
        "# Generated by `gridsync strimzi` from schemas/topics.toml: do not edit, run it again.\n\
         # gridsync on a Strimzi-run Kafka ({cluster}): `kubectl apply -k deploy/k8s/strimzi`. Strimzi makes\n\
         # the topics and a SCRAM user per component with its ACLs (a Secret each, named after it); every\n\
         # Deployment authenticates as its own user over TLS, trusting the cluster's CA.\n{}",
        serde_yaml::to_string(&kustomization)?
    ))
}

/// The three files, by name.
pub fn files(cluster: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
    let header = "# Generated by `gridsync strimzi` from schemas/topics.toml: do not edit, run it again.\n";
    Ok(vec![
        ("topics.yaml", format!("{header}{}", yaml_documents(&topics(cluster)?)?)),
        ("users.yaml", format!("{header}{}", yaml_documents(&users(cluster)?)?)),
        ("kustomization.yaml", kustomization(cluster)?),
    ])
}

pub fn run(args: StrimziArgs) -> anyhow::Result<ExitCode> {
    let files = files(&args.cluster)?;
    if args.print {
        for (name, text) in &files {
            outln!("# {name}\n{text}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    for (name, text) in &files {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        outln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
