//! `gridsync acls`: exactly the Kafka ACLs each component needs, derived from the catalog
//! (`gridsync_schemas::access`), printed, and with `--apply` created on the cluster (Kafka keeps
//! an ACL that exists as it is, so applying twice changes nothing). Each component is a principal
//! of its own, `User:<component>` unless `--principal` says otherwise; `--operator` adds the
//! operator commands' principal.

use std::{collections::BTreeMap, process::ExitCode};

use anyhow::Context;
use clap::Args;
use gridsync_core::config::KafkaArgs;
use gridsync_schemas::{
    access::{grants, lag_exporter, operator, Grant, Pattern},
    catalog::catalog,
};

#[derive(Debug, Args)]
pub struct AclsArgs {
    /// A component's principal as `component=User:name` (repeatable, or comma-separated); the
    /// others are `User:<component>`. With client certificates, the principal is what the
    /// broker's `ssl.principal.mapping.rules` make of the certificate's subject.
    #[arg(long = "principal", value_delimiter = ',')]
    principals: Vec<String>,
    /// The principal the operator commands run as (`topics apply`, `groups lag`, `replay`, `dlq
    /// redrive`, `demo`), given the prefixed ACLs they need; none by default.
    #[arg(long)]
    operator: Option<String>,
    /// Create the ACLs on the cluster (as a principal allowed to ALTER the cluster).
    #[arg(long)]
    apply: bool,
}

/// Every component's grant with its principal.
pub fn principals(
    args_principals: &[String],
    operator_principal: Option<&str>,
    prefix: &str,
) -> anyhow::Result<Vec<(String, Grant)>> {
    let mut named = BTreeMap::new();
    for p in args_principals {
        let (component, principal) =
            p.split_once('=').with_context(|| format!("{p:?}: expected component=User:name"))?;
        anyhow::ensure!(principal.contains(':'), "{principal:?}: a principal is Type:name, e.g. User:billing");
        named.insert(component.to_owned(), principal.to_owned());
    }
    let catalog = catalog()?.with_prefix(prefix);
    let mut all: Vec<(String, Grant)> = grants(&catalog)
        .into_iter()
        .chain([lag_exporter(prefix)])
        .map(|g| (named.remove(&g.component).unwrap_or_else(|| format!("User:{}", g.component)), g))
        .collect();
    if let Some(principal) = operator_principal {
        all.push((principal.to_owned(), operator(prefix)));
    }
    if let Some(unknown) = named.keys().next() {
        anyhow::bail!("no component {unknown:?} in the catalog");
    }
    Ok(all)
}

pub async fn run(args: AclsArgs, kafka: &KafkaArgs) -> anyhow::Result<ExitCode> {
    let grants = principals(&args.principals, args.operator.as_deref(), &kafka.topic_prefix)?;
    for (principal, grant) in &grants {
        outln!("{principal}  ({}, {} ACLs)", grant.component, grant.acls.len());
        for acl in &grant.acls {
            let pattern = if acl.pattern == Pattern::Prefixed { " (prefixed)" } else { "" };
            outln!("  ALLOW {:<17} {:<8} {}{pattern}", acl.operation.as_str(), acl.resource.as_str(), acl.name);
        }
    }
    if args.apply {
        let count = gridsync_core::kafka::access::apply(kafka, &grants).await.context("creating the ACLs")?;
        outln!("applied {count} ACLs for {} principals (ACLs there already are kept as they are)", grants.len());
    }
    Ok(ExitCode::SUCCESS)
}
