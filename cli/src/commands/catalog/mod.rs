//! `gridsync catalog`: what the catalog (`schemas/topics.toml`) lists, for what cannot read it:
//! the quick start's binaries and ports (`deploy/run-local.sh`), and the deployment files made
//! from it (Prometheus's targets on this machine and in compose, KEDA's ScaledObjects), which a
//! test holds to what this command prints.

use std::fmt::Write;

use anyhow::Context;

pub mod deploy;

/// Each long-running binary of the pipeline, its component and where the quick start serves its
/// telemetry before `GRIDSYNC_PORT_OFFSET`: the catalog's producers and consumers at their
/// default ports, then the lag exporter.
pub struct Binary {
    pub binary: String,
    pub component: String,
    pub port: u16,
}

pub fn binaries() -> anyhow::Result<Vec<Binary>> {
    let catalog = gridsync_schemas::catalog::catalog()?;
    let pipeline =
        catalog.binaries().into_iter().map(|(binary, name, port)| Binary { binary, component: name.to_owned(), port });
    let lag_exporter = Binary {
        binary: "lag-exporter".into(),
        component: "lag-exporter".into(),
        port: super::groups::LAG_EXPORTER_PORT,
    };
    Ok(pipeline.chain([lag_exporter]).collect())
}

#[derive(Debug, clap::Subcommand)]
pub enum CatalogCommand {
    /// Each long-running binary and its metrics port, one `binary port` a line: the catalog's
    /// producers and consumers, then the lag exporter (what `deploy/run-local.sh` starts).
    Binaries {
        /// Shifts every port, as `deploy/run-local.sh` does.
        #[arg(long, env = "GRIDSYNC_PORT_OFFSET", default_value_t = 0)]
        port_offset: u16,
    },
    /// `deploy/prometheus/prometheus.yml`: Prometheus scraping each binary where the quick start
    /// serves it, with gridsync's alert rules (`gridsync catalog prometheus > deploy/prometheus/prometheus.yml`);
    /// with `--compose`, `deploy/prometheus/prometheus-compose.yml`: every replica of each service.
    Prometheus {
        #[arg(long)]
        compose: bool,
    },
    /// `deploy/k8s/keda/scaledobjects.yaml`: a KEDA ScaledObject per consumer, on its group's lag
    /// (`gridsync catalog keda > deploy/k8s/keda/scaledobjects.yaml`).
    Keda,
    /// `deploy/k8s/base/kustomization.yaml`: the base's resources, a manifest per producer and
    /// consumer (`gridsync catalog kustomization > deploy/k8s/base/kustomization.yaml`).
    Kustomization,
    /// `deploy/postgres/init.sql`: a database per producer and consumer, for compose's PostgreSQL
    /// (`gridsync catalog postgres > deploy/postgres/init.sql`).
    Postgres,
    /// `docker-compose.yml` with a service and a volume per consumer made from the catalog (the
    /// regions between its `# >>>` and `# <<<` markers; the consumers marked `deploy.by_hand`
    /// are written outside them): printed, or with `--write` saved in place.
    Compose {
        #[arg(default_value = "docker-compose.yml")]
        file: std::path::PathBuf,
        #[arg(long)]
        write: bool,
    },
    /// `deploy/k8s/base/<consumer>.yaml`: the consumer's Deployment, PodDisruptionBudget and
    /// NetworkPolicy, made from what the catalog says it needs
    /// (`gridsync catalog k8s <consumer> > deploy/k8s/base/<consumer>.yaml`).
    K8s {
        #[arg(value_parser = super::consumer_name())]
        consumer: String,
    },
}

pub fn run(command: CatalogCommand) -> anyhow::Result<()> {
    match command {
        CatalogCommand::Binaries { port_offset } => {
            for b in binaries()? {
                println!("{} {}", b.binary, b.port.saturating_add(port_offset));
            }
        }
        CatalogCommand::Prometheus { compose: false } => print!("{}", prometheus()?),
        CatalogCommand::Prometheus { compose: true } => print!("{}", prometheus_compose()?),
        CatalogCommand::Keda => print!("{}", keda()?),
        CatalogCommand::Kustomization => print!("{}", kustomization()?),
        CatalogCommand::Postgres => print!("{}", postgres()?),
        CatalogCommand::Compose { file, write } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let made = deploy::compose(gridsync_schemas::catalog::catalog()?, &text)?;
            if write {
                std::fs::write(&file, made).with_context(|| format!("writing {}", file.display()))?;
            } else {
                print!("{made}");
            }
        }
        CatalogCommand::K8s { consumer } => {
            print!("{}", deploy::k8s(gridsync_schemas::catalog::catalog()?, &consumer)?)
        }
    }
    Ok(())
}

/// The Prometheus configuration scraping every binary of [`binaries`] on this machine.
pub fn prometheus() -> anyhow::Result<String> {
    let mut out = String::from(
        "# Prometheus scraping every gridsync binary on this machine (the ports `deploy/run-local.sh`
# gives them), with gridsync's alert rules. `deploy/run-local.sh --observe` starts Debian's
# prometheus with this file; docker-compose mounts prometheus-compose.yml instead. Each target
# carries its component's name: an alert names what is down even when it answers nothing.
# Generated from schemas/topics.toml: `gridsync catalog prometheus > deploy/prometheus/prometheus.yml`.
global:
  scrape_interval: 5s
  evaluation_interval: 15s
rule_files:
  - alerts.yml
scrape_configs:
  - job_name: gridsync
    # The binaries label their own metrics with the same component.
    honor_labels: true
    static_configs:
",
    );
    let (pipeline, lag) = pipeline_and_lag_exporter()?;
    let targets = |out: &mut String, of: Vec<Binary>| -> std::fmt::Result {
        of.iter().try_for_each(|b| {
            writeln!(out, "      - targets: [127.0.0.1:{}]\n        labels: {{component: {}}}", b.port, b.component)
        })
    };
    targets(&mut out, pipeline)?;
    out.push_str(
        "  # Consumer-group lag from the broker's offsets (`gridsync groups lag --serve`).
  - job_name: gridsync-lag
    static_configs:
",
    );
    targets(&mut out, lag)?;
    Ok(out)
}

/// [`binaries`] apart from the lag exporter, and the lag exporter (a job of its own).
fn pipeline_and_lag_exporter() -> anyhow::Result<(Vec<Binary>, Vec<Binary>)> {
    Ok(binaries()?.into_iter().partition(|b| b.binary != "lag-exporter"))
}

/// Prometheus in docker-compose: each service of [`binaries`] by its DNS name.
pub fn prometheus_compose() -> anyhow::Result<String> {
    let (pipeline, lag) = pipeline_and_lag_exporter()?;
    // A job finding every replica of the services by their DNS names.
    let job = |name: &str, honor_labels: &str, of: Vec<Binary>| {
        let names = of.into_iter().map(|b| b.component).collect::<Vec<_>>().join(", ");
        format!(
            "  - job_name: {name}
{honor_labels}    dns_sd_configs:
      - names: [{names}]
        type: A
        port: 9464
    relabel_configs:
      - source_labels: [__meta_dns_name]
        target_label: component
"
        )
    };
    Ok(format!(
        "# Prometheus in docker-compose: every replica of every gridsync service (the service name
# resolves to all its containers), each serving /metrics on 9464, labelled with its service as
# `component` (so an alert names a service that has no replica left), with gridsync's alert
# rules, alerting through the compose file's Alertmanager.
# Generated from schemas/topics.toml: `gridsync catalog prometheus --compose > deploy/prometheus/prometheus-compose.yml`.
global:
  scrape_interval: 10s
  evaluation_interval: 15s
rule_files:
  - alerts.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: [alertmanager:9093]
scrape_configs:
{}{}",
        job("gridsync", "    honor_labels: true\n", pipeline),
        job("gridsync-lag", "", lag)
    ))
}

/// A KEDA ScaledObject per consumer of the catalog: between one replica and the most partitions
/// any of its topics has (more would idle), on its group's lag.
pub fn keda() -> anyhow::Result<String> {
    let catalog = gridsync_schemas::catalog::catalog()?;
    let mut out = String::from(
        "# KEDA scaling for the flow consumers, each between 1 and its topics' partition count (6) on its
# group's lag as the broker has it (committed offsets against the end of each partition). Applied
# with the base by `kubectl apply -k deploy/k8s/keda` (its kustomization.yaml).
# Generated from schemas/topics.toml: `gridsync catalog keda > deploy/k8s/keda/scaledobjects.yaml`.
",
    );
    for (i, consumer) in catalog.consumers.iter().enumerate() {
        let partitions = catalog
            .topics
            .iter()
            .filter(|t| consumer.topics.contains(&t.name))
            .map(|t| t.partitions)
            .max()
            .unwrap_or(1);
        if i > 0 {
            out.push_str("---\n");
        }
        write!(
            out,
            "apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {name}
spec:
  scaleTargetRef: {{name: {name}}}
  minReplicaCount: 1
  maxReplicaCount: {partitions}
  triggers:
    - type: kafka
      metadata:
        bootstrapServers: kafka-bootstrap:9092
        consumerGroup: {group}
        lagThreshold: \"500\"
        # As the consumers start: a group without committed offsets reads from the earliest.
        offsetResetPolicy: earliest
",
            name = consumer.name,
            group = consumer.group_id,
        )?;
    }
    Ok(out)
}

/// The Kubernetes base's kustomization: its shared resources and a manifest per binary.
pub fn kustomization() -> anyhow::Result<String> {
    let catalog = gridsync_schemas::catalog::catalog()?;
    let mut out = String::from(
        "# The gridsync base: `kubectl apply -k deploy/k8s/base`, after creating the Secret and the
# partner profiles' ConfigMap named in config.yaml. Overlays set the image, the brokers and the replicas per environment.
# Generated from schemas/topics.toml: `gridsync catalog kustomization > deploy/k8s/base/kustomization.yaml`.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
labels:
  - pairs: {app.kubernetes.io/part-of: gridsync}
resources:
  - config.yaml
  - amplience-setup.yaml
",
    );
    let manifests =
        catalog.producers.iter().map(|p| p.name.as_str()).chain(catalog.consumers.iter().map(|c| c.name.as_str()));
    for manifest in manifests.chain(["lag-exporter", "network-policies"]) {
        writeln!(out, "  - {manifest}.yaml")?;
    }
    Ok(out)
}

/// compose's PostgreSQL set-up: a database per producer (named without `-producer`: `tg`) and
/// consumer (`billing`).
pub fn postgres() -> anyhow::Result<String> {
    let catalog = gridsync_schemas::catalog::catalog()?;
    let mut out = String::from(
        "-- One database per gridsync component (docker-compose's postgres service runs this once, on an
-- empty data folder). billing-consumer also uses `tg` for the control numbers it shares with
-- tg-producer.
-- Generated from schemas/topics.toml: `gridsync catalog postgres > deploy/postgres/init.sql`.
",
    );
    let producers = catalog.producers.iter().map(|p| p.name.trim_end_matches("-producer"));
    for database in producers.chain(catalog.consumers.iter().map(|c| c.name.as_str())) {
        writeln!(out, "CREATE DATABASE {database};")?;
    }
    Ok(out)
}
