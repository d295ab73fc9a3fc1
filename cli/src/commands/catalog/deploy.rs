//! The deployment files of each consumer the catalog does not mark `deploy.by_hand`, made from
//! what it says the consumer needs (`deploy.needs`): its service in `docker-compose.yml` (the
//! regions between the `# >>>` and `# <<<` markers) and its Kubernetes manifest (Deployment,
//! PodDisruptionBudget, NetworkPolicy). A new flow's consumer is deployed by adding it to the
//! catalog and making these again.

use std::fmt::Write;

use gridsync_schemas::catalog::{ConsumerSpec, Need, TopicCatalog};

/// The compose services' region, and the volumes' (each consumer keeps its files in a volume).
pub const COMPOSE_SERVICES: &str = "consumer services";
pub const COMPOSE_VOLUMES: &str = "consumer volumes";

/// Where a consumer's compose volume is mounted in its container: one folder the image makes
/// (owned by the user the binaries run as, so the volume starts so) serves every consumer.
const STATE: &str = "/var/lib/gridsync/state";

/// The consumers whose deployment files are made here.
fn made(catalog: &TopicCatalog) -> impl Iterator<Item = &ConsumerSpec> {
    catalog.consumers.iter().filter(|c| !c.deploy.by_hand)
}

/// `NAME` of `GRIDSYNC_NAME_...` variables.
fn upper(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

/// The compose services of [`made`] consumers, indented as services are.
pub fn compose_services(catalog: &TopicCatalog) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    for c in made(catalog) {
        let (name, needs) = (&c.name, |need| c.deploy.needs(need));
        writeln!(
            out,
            "  {name}:\n    <<: *gridsync\n    command: [\"{}\"]\n    environment:\n      <<: *env",
            c.binary()
        )?;
        writeln!(out, "      # {}", c.description)?;
        writeln!(out, "      GRIDSYNC_FLOW_STORE_URL: postgres://gridsync@postgres/{name}")?;
        writeln!(out, "      GRIDSYNC_PARTNERS_FILE: /etc/gridsync/partners.toml")?;
        if needs(Need::Config) {
            writeln!(out, "      GRIDSYNC_{}_CONFIG:", upper(name))?;
        }
        if needs(Need::Amplience) {
            writeln!(out, "      # Your hub, passed through from the shell as for amp-producer.")?;
            writeln!(out, "      GRIDSYNC_AMPLIENCE_CLIENT_SECRET_FILE: /run/secrets/amplience_client_secret")?;
            writeln!(out, "      GRIDSYNC_AMPLIENCE_HUB_ID:\n      GRIDSYNC_AMPLIENCE_CLIENT_ID:")?;
        }
        if needs(Need::AmplienceDelivery) {
            writeln!(out, "      # What is published now (https://<hub>.cdn.content.amplience.net).")?;
            writeln!(out, "      GRIDSYNC_AMPLIENCE_DELIVERY_URL:")?;
        }
        if needs(Need::AmplienceMedia) {
            writeln!(out, "      # Where media links are fetched; default https://{{defaultHost}}/{{kind}}/{{endpoint}}/{{name}}.")?;
            writeln!(out, "      GRIDSYNC_AMPLIENCE_MEDIA_URL:")?;
        }
        if needs(Need::TradingGrid) {
            writeln!(out, "      # The outbound mailbox it shares with tg-producer.")?;
            writeln!(out, "      GRIDSYNC_TG_MAILBOX_DIR: /var/lib/gridsync/tg-mailbox")?;
        }
        if needs(Need::EdiNumbers) {
            writeln!(
                out,
                "      # Control numbers from tg-producer's store (one sequence per partner for all that is"
            )?;
            writeln!(out, "      # sent), from your interchange id.")?;
            writeln!(
                out,
                "      GRIDSYNC_TG_STORE_URL: postgres://gridsync@postgres/tg\n      GRIDSYNC_OWN_INTERCHANGE_ID:"
            )?;
        }
        if needs(Need::Spool) {
            writeln!(out, "      GRIDSYNC_{}_SPOOL_DIR: {STATE}/spool", upper(name))?;
        }
        if needs(Need::Amplience) {
            writeln!(out, "    secrets: [amplience_client_secret]")?;
        }
        let mailbox = if needs(Need::TradingGrid) { ", tg-mailbox:/var/lib/gridsync/tg-mailbox" } else { "" };
        writeln!(out, "    volumes: [{name}:{STATE}{mailbox}]")?;
    }
    Ok(out)
}

/// The compose volumes of [`made`] consumers.
pub fn compose_volumes(catalog: &TopicCatalog) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    for c in made(catalog) {
        writeln!(out, "  {}:", c.name)?;
    }
    Ok(out)
}

/// `text` with each region between `# >>> <region>` and `# <<< <region>` (any indentation) made
/// anew by `make`; an unknown region is an error, a missing one too.
pub fn splice(text: &str, regions: &[(&str, String)]) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut inside: Option<&str> = None;
    let mut seen = Vec::new();
    for line in text.split_inclusive('\n') {
        let marker = line.trim_start();
        if let Some(region) = inside {
            if marker.trim_end() == format!("# <<< {region}") {
                out.push_str(line);
                inside = None;
            }
            continue;
        }
        out.push_str(line);
        if let Some(region) = marker.strip_prefix("# >>> ") {
            let region = region.split(':').next().unwrap_or_default().trim();
            let (name, content) = regions
                .iter()
                .find(|(name, _)| *name == region)
                .ok_or_else(|| anyhow::anyhow!("unknown generated region {region:?}"))?;
            out.push_str(content);
            inside = Some(name);
            seen.push(*name);
        }
    }
    anyhow::ensure!(inside.is_none(), "region {:?} is not closed by `# <<< {0}`", inside.unwrap_or_default());
    for (name, _) in regions {
        anyhow::ensure!(seen.contains(name), "no region `# >>> {name}` to make");
    }
    Ok(out)
}

/// `docker-compose.yml` (`text`) with its consumers' regions made anew.
pub fn compose(catalog: &TopicCatalog, text: &str) -> anyhow::Result<String> {
    splice(text, &[(COMPOSE_SERVICES, compose_services(catalog)?), (COMPOSE_VOLUMES, compose_volumes(catalog)?)])
}

/// The Kubernetes manifest of consumer `name`: its Deployment, PodDisruptionBudget and
/// NetworkPolicy (its metrics from Prometheus alone).
pub fn k8s(catalog: &TopicCatalog, name: &str) -> anyhow::Result<String> {
    let c = catalog.consumer(name)?;
    anyhow::ensure!(!c.deploy.by_hand, "{name}'s manifest is written by hand (deploy.by_hand in the catalog)");
    let needs = |need| c.deploy.needs(need);
    let partitions =
        catalog.topics.iter().filter(|t| c.topics.contains(&t.name)).map(|t| t.partitions).max().unwrap_or(1);
    let labels = format!("{{app.kubernetes.io/name: gridsync, app.kubernetes.io/component: {name}}}");
    let mut env = String::new();
    let secret = |env: &mut String, variable: &str, key: &str| {
        writeln!(env, "            - name: {variable}\n              valueFrom: {{secretKeyRef: {{name: gridsync-secrets, key: {key}}}}}")
    };
    let file = |env: &mut String, variable: &str, path: &str| {
        writeln!(env, "            - {{name: {variable}, value: \"{path}\"}}")
    };
    secret(&mut env, "GRIDSYNC_FLOW_STORE_URL", &format!("store-url-{name}"))?;
    if needs(Need::EdiNumbers) {
        secret(&mut env, "GRIDSYNC_TG_STORE_URL", "store-url-tg")?;
    }
    let mut items = Vec::new();
    if needs(Need::Amplience) {
        file(&mut env, "GRIDSYNC_AMPLIENCE_CLIENT_SECRET_FILE", "/run/secrets/gridsync/amplience-client-secret")?;
        items.push("amplience-client-secret");
    }
    file(&mut env, "GRIDSYNC_PARTNERS_FILE", "/etc/gridsync/partners.toml")?;
    if needs(Need::TradingGrid) {
        file(&mut env, "GRIDSYNC_TG_SFTP_KEY_FILE", "/run/secrets/gridsync/sftp-key")?;
        file(&mut env, "GRIDSYNC_TG_SFTP_KNOWN_HOSTS", "/run/secrets/gridsync/sftp-known-hosts")?;
        items.extend(["sftp-key", "sftp-known-hosts"]);
    }
    let mut mounts = String::from("            - {name: tmp, mountPath: /tmp}\n");
    let mut volumes = String::from("        - name: tmp\n          emptyDir: {}\n");
    if !items.is_empty() {
        mounts.push_str("            - {name: secrets, mountPath: /run/secrets/gridsync, readOnly: true}\n");
        let items: Vec<String> = items.iter().map(|i| format!("{{key: {i}, path: {i}}}")).collect();
        write!(
            volumes,
            "        - name: secrets
          # Only the keys this pod uses.
          secret:
            secretName: gridsync-secrets
            defaultMode: 0400
            # A key the Secret lacks (no SFTP in use) is left out; the binary names what it misses.
            optional: true
            items: [{}]
",
            items.join(", ")
        )?;
    }
    mounts.push_str("            - {name: partners, mountPath: /etc/gridsync, readOnly: true}\n");
    volumes.push_str("        - name: partners\n          configMap: {name: gridsync-partners}\n");
    if needs(Need::Spool) {
        file(&mut env, &format!("GRIDSYNC_{}_SPOOL_DIR", upper(name)), "/var/lib/gridsync/spool")?;
        mounts.push_str("            - {name: spool, mountPath: /var/lib/gridsync/spool}\n");
        volumes.push_str("        - name: spool\n          emptyDir: {sizeLimit: 2Gi}\n");
    }
    let binary = c.binary();
    let description = &c.description;
    Ok(format!(
        "# {binary}: {description}
# Generated from schemas/topics.toml: `gridsync catalog k8s {name} > deploy/k8s/base/{name}.yaml`.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  # gridsync.dev/role: the KEDA overlay hands every consumer's replicas to its autoscaler.
  labels: {{app.kubernetes.io/name: gridsync, app.kubernetes.io/component: {name}, gridsync.dev/role: consumer}}
spec:
  # Replicas share the consumer group: more than its topics' partitions ({partitions}) would idle.
  replicas: 2
  selector:
    matchLabels: {labels}
  template:
    metadata:
      labels: {labels}
      annotations: {{prometheus.io/scrape: \"true\", prometheus.io/port: \"9464\", prometheus.io/path: /metrics}}
    spec:
      # SIGTERM: finish the record in hand, commit offsets, exit.
      terminationGracePeriodSeconds: 60
      securityContext:
        {{runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534, fsGroup: 65534, seccompProfile: {{type: RuntimeDefault}}}}
      containers:
        - name: {name}
          image: gridsync:latest
          # Pod Security \"restricted\": no privilege escalation, no capabilities, a read-only root
          # file system (temporary files in the /tmp volume).
          securityContext:
            {{allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {{drop: [ALL]}}}}
          command: [\"{binary}\"]
          envFrom:
            - configMapRef: {{name: gridsync-config}}
          env:
{env}          ports:
            - {{name: metrics, containerPort: 9464}}
          livenessProbe: {{httpGet: {{path: /healthz, port: metrics}}, periodSeconds: 10, failureThreshold: 6}}
          readinessProbe: {{httpGet: {{path: /readyz, port: metrics}}, periodSeconds: 5, failureThreshold: 3}}
          resources:
            requests: {{cpu: 100m, memory: 128Mi}}
            limits: {{memory: 512Mi}}
          volumeMounts:
{mounts}      volumes:
{volumes}---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {name}
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {labels}
---
# Reached only by Prometheus, on its metrics port.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {name}
spec:
  podSelector: {{matchLabels: {labels}}}
  policyTypes: [Ingress]
  ingress:
    - from:
        - namespaceSelector: {{}}
          podSelector: {{matchLabels: {{app.kubernetes.io/name: prometheus}}}}
      ports: [{{port: 9464, protocol: TCP}}]
"
    ))
}
