//! What can be checked of `docker-compose.yml` and the Kubernetes manifests (`deploy/k8s/`)
//! without Docker or a cluster: every variable and flag they give a gridsync binary is one
//! that binary takes (read from its own `--help`), every Deployment has probes on the binaries'
//! `/healthz` and `/readyz`, resource requests, a PodDisruptionBudget, and no more replicas than
//! its topics have partitions; the kustomization lists every manifest. Needs the workspace's
//! binaries (`cargo test --workspace`).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::Command,
};

use gridsync_tests::{pipeline_binaries, workspace_binary};
use serde::Deserialize;
use serde_yaml::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The environment variables and flags `binary` (with its `subcommands`) takes, from its `--help`.
fn accepted(binary: &str, subcommands: &[String]) -> (BTreeSet<String>, BTreeSet<String>) {
    let help = Command::new(workspace_binary(binary)).args(subcommands).arg("--help").output().unwrap();
    assert!(help.status.success(), "{binary} --help");
    let text = String::from_utf8_lossy(&help.stdout).into_owned();
    let word = |rest: &str, allowed: fn(char) -> bool| rest.chars().take_while(|c| allowed(*c)).collect::<String>();
    let env = text
        .match_indices("[env: ")
        .map(|(at, _)| word(&text[at + 6..], |c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .collect();
    let flags = text
        .match_indices("--")
        .map(|(at, _)| format!("--{}", word(&text[at + 2..], |c| c.is_ascii_lowercase() || c == '-')))
        .filter(|f| f.len() > 2)
        .collect();
    (env, flags)
}

/// Checks the variables given to `binary` (and the flags after it on its command line).
fn check_binary(
    cache: &mut BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
    binary: &str,
    variables: &[String],
    args: &[String],
    place: &str,
) {
    let subcommands: Vec<String> = args.iter().take_while(|a| !a.starts_with("--")).cloned().collect();
    let key = format!("{binary} {}", subcommands.join(" "));
    let (env, flags) = cache.entry(key).or_insert_with(|| accepted(binary, &subcommands));
    for variable in variables {
        // GRIDSYNC_KAFKA_<KEY> is librdkafka's pass-through (see the README).
        let ok =
            env.contains(variable) || variable.starts_with("GRIDSYNC_KAFKA_") || !variable.starts_with("GRIDSYNC_");
        assert!(ok, "{place}: {binary} takes no {variable}");
    }
    for arg in args.iter().filter(|a| a.starts_with("--")) {
        let flag = arg.split('=').next().unwrap_or_default();
        assert!(flags.contains(flag), "{place}: {binary} takes no {flag}");
    }
}

fn strings(value: &Value) -> Vec<String> {
    value.as_sequence().map(|s| s.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

#[test]
fn docker_compose_gives_each_binary_only_what_it_takes() {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let mut compose: Value = serde_yaml::from_str(&text).unwrap();
    compose.apply_merge().unwrap();
    let mut cache = BTreeMap::new();
    let mut checked = BTreeSet::new();
    for (service, spec) in compose["services"].as_mapping().unwrap() {
        let service = service.as_str().unwrap();
        let command = strings(&spec["command"]);
        let Some(binary) = command.first() else { continue };
        if !(binary.ends_with("-producer")
            || binary.ends_with("-consumer")
            || binary.ends_with("-sim")
            || binary == "gridsync")
        {
            continue;
        }
        let mut environment = spec["environment"].clone();
        environment.apply_merge().unwrap();
        let variables: Vec<String> = environment
            .as_mapping()
            .map(|m| m.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        if binary.ends_with("-sim") {
            let (env, _) = cache.entry(binary.clone()).or_insert_with(|| accepted(binary, &[])).clone();
            for variable in &variables {
                assert!(env.contains(variable), "docker-compose {service}: {binary} takes no {variable}");
            }
        } else {
            check_binary(&mut cache, binary, &variables, &command[1..], &format!("docker-compose {service}"));
        }
        checked.insert(binary.clone());
    }
    let expected = pipeline_binaries().into_iter().chain(["gridsync", "amp-sim", "tg-sim"].map(str::to_owned));
    assert_eq!(checked, expected.collect(), "every binary has its service");
    // Every folder a gridsync service mounts a volume on exists in the image, owned by the user
    // the binaries run as: a volume starts as the image's folder, or root's where there is none.
    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let made = dockerfile
        .split("RUN mkdir -p")
        .nth(1)
        .and_then(|rest| rest.split("&&").next())
        .expect("the Dockerfile makes the state folders");
    let made: Vec<&str> = made.split_whitespace().filter(|w| w.starts_with('/')).collect();
    // `mkdir -p` makes each folder's parents too.
    let made = |path: &str| made.iter().any(|m| *m == path || m.starts_with(&format!("{path}/")));
    assert!(dockerfile.contains("chown -R 65534:65534 /var/lib/gridsync") && dockerfile.contains("USER 65534:65534"));
    for (service, spec) in compose["services"].as_mapping().unwrap() {
        for mount in strings(&spec["volumes"]) {
            let Some(path) = mount.split(':').nth(1).filter(|p| p.starts_with("/var/lib/gridsync")) else { continue };
            assert!(made(path), "docker-compose {service:?} mounts {path}, which the image does not make");
        }
        let mut environment = spec["environment"].clone();
        environment.apply_merge().unwrap();
        if let Some(spool) = environment["GRIDSYNC_DISTRIBUTION_SPOOL_DIR"].as_str() {
            assert!(made(spool), "{spool}: the spool folder is made in the image");
        }
    }
    // The broker keeps its log in its volume, not in the container's /tmp.
    let kafka = &compose["services"]["kafka"];
    let data = strings(&kafka["volumes"]).iter().find_map(|v| v.split(':').nth(1).map(str::to_owned));
    assert_eq!(kafka["environment"]["KAFKA_LOG_DIRS"].as_str(), data.as_deref(), "KAFKA_LOG_DIRS is the volume");
    // The metrics every Prometheus target serves, and the rules and dashboards mounted, exist.
    for mounted in
        ["deploy/prometheus/prometheus-compose.yml", "deploy/prometheus/alerts.yml", "deploy/postgres/init.sql"]
    {
        assert!(root().join(mounted).is_file(), "{mounted}");
    }
}

/// Pod Security Standards, "restricted" profile (checked here, as no admission controller runs in
/// the tests): non-root, the runtime's seccomp profile, no privilege escalation, every capability
/// dropped, a read-only root file system, no host namespaces or paths; and each secret volume
/// holds only the keys the container's settings name.
fn check_restricted(place: &str, pod: &Value) {
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{place}: runAsNonRoot");
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault", "{place}: seccomp");
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert!(pod[host].is_null() || pod[host] == false, "{place}: {host}");
    }
    let mut named_keys = BTreeSet::new();
    for container in pod["containers"].as_sequence().unwrap() {
        let security = &container["securityContext"];
        assert_eq!(security["allowPrivilegeEscalation"], false, "{place}: allowPrivilegeEscalation");
        assert_eq!(security["readOnlyRootFilesystem"], true, "{place}: readOnlyRootFilesystem");
        assert!(security["privileged"].is_null() || security["privileged"] == false, "{place}: privileged");
        assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"], "{place}: capabilities dropped");
        assert!(security["capabilities"]["add"].is_null(), "{place}: capabilities added");
        for env in container["env"].as_sequence().into_iter().flatten() {
            if let Some(key) = env["value"].as_str().and_then(|v| v.strip_prefix("/run/secrets/gridsync/")) {
                named_keys.insert(key.to_owned());
            }
        }
    }
    for volume in pod["volumes"].as_sequence().into_iter().flatten() {
        assert!(volume["hostPath"].is_null(), "{place}: a hostPath volume");
        if volume["secret"].is_mapping() {
            let items: BTreeSet<String> = volume["secret"]["items"]
                .as_sequence()
                .unwrap_or_else(|| panic!("{place}: a secret volume mounts every key"))
                .iter()
                .map(|i| i["key"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(items, named_keys, "{place}: the secret keys mounted are those its settings name");
        }
    }
}

/// A Kubernetes quantity in `Mi` or `Gi`, in MiB.
fn mebibytes(quantity: &str) -> u64 {
    match (quantity.strip_suffix("Gi"), quantity.strip_suffix("Mi")) {
        (Some(gib), _) => gib.parse::<u64>().unwrap() * 1024,
        (_, Some(mib)) => mib.parse().unwrap(),
        _ => panic!("{quantity}: a quantity in Mi or Gi"),
    }
}

#[test]
fn the_kubernetes_manifests_run_each_binary_as_it_should() {
    let base = root().join("deploy/k8s/base");
    let kustomization: Value =
        serde_yaml::from_str(&std::fs::read_to_string(base.join("kustomization.yaml")).unwrap()).unwrap();
    let listed: BTreeSet<String> = strings(&kustomization["resources"]).into_iter().collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, on_disk, "the kustomization lists every manifest");

    let mut documents = Vec::new();
    for file in &listed {
        let text = std::fs::read_to_string(base.join(file)).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            documents.push((file.clone(), Value::deserialize(document).unwrap()));
        }
    }
    let of_kind = |kind: &'static str| documents.iter().filter(move |(_, d)| d["kind"] == kind);
    let config: Vec<String> = of_kind("ConfigMap")
        .flat_map(|(_, d)| {
            d["data"].as_mapping().unwrap().keys().filter_map(|k| k.as_str().map(str::to_owned)).collect::<Vec<_>>()
        })
        .collect();
    let catalog = gridsync_schemas::catalog::catalog().unwrap();
    let partitions = catalog.topics.iter().map(|t| t.partitions).min().unwrap();
    let disruption_budgets: Vec<&Value> = of_kind("PodDisruptionBudget").map(|(_, d)| d).collect();
    let mut cache = BTreeMap::new();
    let mut binaries = BTreeSet::new();
    let mut every_variable = BTreeSet::new();
    for (file, deployment) in of_kind("Deployment") {
        let place = format!("deploy/k8s/base/{file}");
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        assert_eq!(&deployment["spec"]["selector"]["matchLabels"], labels, "{place}");
        let replicas = deployment["spec"]["replicas"].as_u64().unwrap();
        assert!(replicas >= 1 && replicas <= u64::try_from(partitions).unwrap(), "{place}: {replicas} replicas");
        assert!(
            disruption_budgets.iter().any(|b| &b["spec"]["selector"]["matchLabels"] == labels),
            "{place} has no PodDisruptionBudget"
        );
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let command = strings(&container["command"]);
        let binary = command.first().unwrap().clone();
        let variables: Vec<String> =
            container["env"].as_sequence().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect();
        check_binary(&mut cache, &binary, &variables, &command[1..], &place);
        every_variable.extend(variables);
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz", "{place}");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz", "{place}");
        let metrics_port = container["ports"][0]["containerPort"].as_u64();
        assert_eq!(metrics_port, Some(9464), "{place}: metrics on 9464, as GRIDSYNC_METRICS_ADDR says");
        assert!(container["resources"]["requests"]["cpu"].is_string(), "{place}: no CPU request");
        assert!(container["resources"]["requests"]["memory"].is_string(), "{place}: no memory request");
        check_restricted(&place, &deployment["spec"]["template"]["spec"]);
        // Reached only where it must be: its ports, metrics from Prometheus alone.
        let policy = of_kind("NetworkPolicy")
            .map(|(_, p)| p)
            .find(|p| &p["spec"]["podSelector"]["matchLabels"] == labels)
            .unwrap_or_else(|| panic!("{place} has no NetworkPolicy"));
        let ports: BTreeSet<u64> =
            container["ports"].as_sequence().unwrap().iter().filter_map(|p| p["containerPort"].as_u64()).collect();
        for rule in policy["spec"]["ingress"].as_sequence().unwrap() {
            let allowed: Vec<u64> =
                rule["ports"].as_sequence().unwrap().iter().map(|p| p["port"].as_u64().unwrap()).collect();
            assert!(allowed.iter().all(|p| ports.contains(p)), "{place}: the policy opens {allowed:?}, not its ports");
            if allowed.contains(&9464) {
                assert_eq!(
                    rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"], "prometheus",
                    "{place}"
                );
            }
        }
        if binary == "gridsync" {
            assert_eq!(command, ["gridsync", "groups", "lag", "--serve"], "{place}");
        }
        if binary == "tg-producer" {
            // A file at the size cap fits in the memory limit (see tg_producer.rs's measure).
            let env = container["env"].as_sequence().unwrap();
            let cap = env.iter().find(|e| e["name"] == "GRIDSYNC_TG_MAX_FILE_BYTES").and_then(|e| e["value"].as_str());
            let cap: u64 = cap.expect("tg-producer's --max-file-bytes set where its memory limit is").parse().unwrap();
            let limit = mebibytes(container["resources"]["limits"]["memory"].as_str().unwrap()) << 20;
            let needed = gridsync_tests::TG_PRODUCER_BASE_BYTES + gridsync_tests::TG_PRODUCER_BYTES_PER_FILE_BYTE * cap;
            assert!(
                limit >= needed,
                "{place}: a {cap}-byte file needs {} MiB, the limit is {} MiB",
                needed >> 20,
                limit >> 20
            );
        }
        binaries.insert(binary);
    }
    // And the lag exporter (`gridsync groups lag --serve`), which the lag alerts read.
    let expected: BTreeSet<String> = pipeline_binaries().into_iter().chain(["gridsync".to_owned()]).collect();
    assert_eq!(binaries, expected, "a Deployment per producer and consumer, and the lag exporter");
    // The hub's set-up runs as a Job, with only what `gridsync amplience setup` takes.
    let jobs: Vec<&(String, Value)> = of_kind("Job").collect();
    assert_eq!(jobs.len(), 1, "the amplience-setup Job");
    for (file, job) in jobs {
        check_restricted(&format!("deploy/k8s/base/{file}"), &job["spec"]["template"]["spec"]);
        let labels = &job["spec"]["template"]["metadata"]["labels"];
        let policy = of_kind("NetworkPolicy").find(|(_, p)| &p["spec"]["podSelector"]["matchLabels"] == labels);
        let ingress = policy.map(|(_, p)| &p["spec"]["ingress"]);
        assert!(ingress.is_some_and(|i| i.as_sequence().is_some_and(Vec::is_empty)), "{file}: reached by nothing");
        let container = &job["spec"]["template"]["spec"]["containers"][0];
        let command = strings(&container["command"]);
        assert_eq!(command[..3], ["gridsync", "amplience", "setup"], "deploy/k8s/base/{file}");
        let variables: Vec<String> =
            container["env"].as_sequence().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect();
        check_binary(&mut cache, "gridsync", &variables, &command[1..], &format!("deploy/k8s/base/{file}"));
        every_variable.extend(variables);
    }
    // What the shared ConfigMap gives every binary is taken by at least one of them.
    for variable in &config {
        let taken = cache.values().any(|(env, _)| env.contains(variable));
        assert!(taken, "deploy/k8s/base/config.yaml: no binary takes {variable}");
    }
    assert!(
        !every_variable.iter().any(|v| v.ends_with("_SECRET") || v.ends_with("_PASSWORD")),
        "secrets only as files"
    );
    // KEDA reads lag as the consumers do: a group without committed offsets from the earliest.
    let keda = std::fs::read_to_string(root().join("deploy/k8s/keda/scaledobjects.yaml")).unwrap();
    for document in serde_yaml::Deserializer::from_str(&keda) {
        let scaled = Value::deserialize(document).unwrap();
        for trigger in scaled["spec"]["triggers"].as_sequence().unwrap() {
            let name = &scaled["metadata"]["name"];
            assert_eq!(trigger["metadata"]["offsetResetPolicy"], "earliest", "KEDA {name:?}");
        }
    }
}

/// `deploy/compose-secrets.sh` makes every secret file docker-compose.yml reads, and an audit
/// token the audit view accepts (its hash alone kept); run again, it changes nothing.
#[test]
fn the_compose_secrets_script_makes_what_compose_reads() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        std::process::Command::new(root().join("deploy/compose-secrets.sh"))
            .env("SECRETS_DIR", dir.path())
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let compose: Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join("docker-compose.yml")).unwrap()).unwrap();
    for (name, secret) in compose["secrets"].as_mapping().unwrap() {
        let file = secret["file"].as_str().unwrap();
        // `${VAR:-./.secrets/name}`: the default is what the script makes.
        let default = file.rsplit(":-./.secrets/").next().unwrap().trim_end_matches('}');
        assert!(dir.path().join(default).is_file(), "{name:?}: {default} not made");
    }
    let printed = String::from_utf8(first.stdout).unwrap();
    let token = printed.split_whitespace().find(|w| w.starts_with("gsa_")).expect("the token is printed");
    let tokens = dir.path().join("audit-tokens.toml");
    assert!(!std::fs::read_to_string(&tokens).unwrap().contains(token), "only the hash is kept");
    assert!(std::fs::read_to_string(&tokens).unwrap().contains(&gridsync_audit::access::token_hash(token)));
    let before = std::fs::read(&tokens).unwrap();
    assert!(run().status.success());
    assert_eq!(std::fs::read(&tokens).unwrap(), before, "run again, nothing changes");
}

/// A deployment tool the tests run: from `variable` (deploy/test.sh builds or installs each and
/// sets it), else by `name` on the PATH. Its output; it must succeed.
fn run_tool(variable: &str, name: &str, args: &[&str]) -> String {
    let program = std::env::var(variable).unwrap_or_else(|_| name.to_owned());
    let output = Command::new(&program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("{program} ({name}; deploy/test.sh installs it, or set {variable}): {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{name} {args:?}:\n{}{stderr}", String::from_utf8_lossy(&output.stdout));
    format!("{}{stderr}", String::from_utf8_lossy(&output.stdout))
}

/// `tests/deploy-check`: the compose-spec loader and kustomize, the libraries Docker Compose and
/// `kubectl apply -k` use.
fn deploy_check(args: &[&str]) -> String {
    run_tool("GRIDSYNC_DEPLOY_CHECK", "deploy-check", args)
}

/// docker-compose.yml as Docker Compose reads it: valid against the compose specification, every
/// volume, secret and network it names declared; each gridsync service scraped by Prometheus
/// under its name, the lag exporter and Alertmanager beside them, every file it mounts present.
#[test]
fn docker_compose_loads_with_the_compose_spec_loader() {
    let project: serde_json::Value = serde_json::from_str(&deploy_check(&["compose", "docker-compose.yml"])).unwrap();
    let services = project["services"].as_object().unwrap();
    for service in ["kafka", "postgres", "prometheus", "alertmanager", "grafana", "lag-exporter", "amp-sim", "tg-sim"] {
        assert!(services.contains_key(service), "docker-compose.yml has no {service}");
    }
    // Long-running gridsync services, by their command.
    let long_running = |spec: &serde_json::Value| {
        let command = spec["command"].as_array().cloned().unwrap_or_default();
        let binary = command.first().and_then(|c| c.as_str()).unwrap_or_default().to_owned();
        binary.ends_with("-producer") || binary.ends_with("-consumer")
    };
    let pipeline: BTreeSet<&str> =
        services.iter().filter(|(_, spec)| long_running(spec)).map(|(name, _)| name.as_str()).collect();
    assert_eq!(pipeline.len(), pipeline_binaries().len(), "{pipeline:?}");
    let prometheus: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("deploy/prometheus/prometheus-compose.yml")).unwrap(),
    )
    .unwrap();
    let scraped = |job: &str| -> BTreeSet<String> {
        let job = prometheus["scrape_configs"].as_sequence().unwrap().iter().find(|j| j["job_name"] == job).unwrap();
        strings(&job["dns_sd_configs"][0]["names"]).into_iter().collect()
    };
    assert_eq!(
        scraped("gridsync"),
        pipeline.iter().map(|s| s.to_string()).collect(),
        "Prometheus scrapes each service"
    );
    assert_eq!(scraped("gridsync-lag"), BTreeSet::from(["lag-exporter".to_owned()]));
    // Files mounted from the repository exist (a missing one would be made an empty folder).
    for (name, spec) in services {
        for volume in spec["volumes"].as_array().into_iter().flatten().filter(|v| v["type"] == "bind") {
            let source = volume["source"].as_str().unwrap();
            assert!(std::path::Path::new(source).exists(), "docker-compose {name}: {source} does not exist");
        }
    }
    let alertmanager = &services["alertmanager"]["volumes"][0]["source"];
    assert!(alertmanager.as_str().unwrap().ends_with("deploy/alertmanager/alertmanager.yml"), "{alertmanager}");
}

/// The KEDA kafka scaler's settings (https://keda.sh/docs/latest/scalers/apache-kafka/) and a
/// ScaledObject's, checked here as no KEDA schema is at hand.
const KEDA_SPEC: [&str; 10] = [
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
];
const KEDA_KAFKA: [&str; 16] = [
    "bootstrapServers",
    "consumerGroup",
    "topic",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "excludePersistentLag",
    "scaleToZeroOnInvalidOffset",
    "limitToPartitionsWithLag",
    "ensureEvenDistributionOfPartitions",
    "partitionLimitation",
    "version",
    "sasl",
    "tls",
    "unsafeSsl",
];

fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text).map(|d| Value::deserialize(d).unwrap()).filter(|d| !d.is_null()).collect()
}

/// What `kubectl apply -k` applies, built by kustomize and checked against the Kubernetes API's
/// own schemas (kubernetes-validate, strict: an unknown field fails); with KEDA, the flow
/// consumers' Deployments carry no replica count for the autoscaler to fight, and each
/// ScaledObject scales a Deployment of the base on its consumer group, reading lag as the
/// consumers do.
#[test]
fn the_kustomizations_build_and_validate_against_the_kubernetes_schemas() {
    let built = tempfile::tempdir().unwrap();
    let mut builds = BTreeMap::new();
    for dir in ["base", "keda"] {
        let yaml = deploy_check(&["kustomize", &format!("deploy/k8s/{dir}")]);
        let file = built.path().join(format!("{dir}.yaml"));
        std::fs::write(&file, &yaml).unwrap();
        let validated = run_tool(
            "GRIDSYNC_KUBERNETES_VALIDATE",
            "kubernetes-validate",
            &["--strict", "--kubernetes-version", "1.30.0", file.to_str().unwrap()],
        );
        let failed: Vec<&str> = validated.lines().filter(|l| !l.contains(" passed ")).collect();
        // KEDA's kinds are not Kubernetes' own: the checks below are theirs.
        let unknown = |l: &&str| l.contains("Couldn't find schema for kind ScaledObject");
        assert!(failed.iter().all(unknown), "deploy/k8s/{dir}:\n{}", failed.join("\n"));
        assert!(validated.contains("passed for resource deployment/"), "{validated}");
        builds.insert(dir, documents(&yaml));
    }
    let deployments = |dir: &str| -> BTreeMap<String, Value> {
        builds[dir]
            .iter()
            .filter(|d| d["kind"] == "Deployment")
            .map(|d| (d["metadata"]["name"].as_str().unwrap().to_owned(), d.clone()))
            .collect()
    };
    let (base, keda) = (deployments("base"), deployments("keda"));
    assert_eq!(base.keys().collect::<Vec<_>>(), keda.keys().collect::<Vec<_>>());
    let config = builds["base"].iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let catalog = gridsync_schemas::catalog::catalog().unwrap();
    let scaled: Vec<&Value> = builds["keda"].iter().filter(|d| d["kind"] == "ScaledObject").collect();
    let targets: BTreeSet<String> =
        scaled.iter().map(|s| s["spec"]["scaleTargetRef"]["name"].as_str().unwrap().to_owned()).collect();
    let consumers: BTreeSet<String> = catalog.consumers.iter().map(|c| c.name.clone()).collect();
    assert_eq!(targets, consumers, "a ScaledObject per flow consumer");
    for (name, deployment) in &keda {
        let scaled_here = targets.contains(name);
        assert_eq!(deployment["spec"]["replicas"].is_null(), scaled_here, "keda: {name}'s replicas");
        assert!(!base[name]["spec"]["replicas"].is_null(), "base: {name} has its replicas");
    }
    for object in scaled {
        assert_eq!(object["apiVersion"], "keda.sh/v1alpha1");
        let spec = object["spec"].as_mapping().unwrap();
        let name = object["spec"]["scaleTargetRef"]["name"].as_str().unwrap();
        for key in spec.keys() {
            assert!(KEDA_SPEC.contains(&key.as_str().unwrap()), "ScaledObject {name}: no field {key:?}");
        }
        let consumer = catalog.consumer(name).unwrap();
        let partitions =
            catalog.topics.iter().filter(|t| consumer.topics.contains(&t.name)).map(|t| t.partitions).min();
        let (min, max) =
            (object["spec"]["minReplicaCount"].as_u64().unwrap(), object["spec"]["maxReplicaCount"].as_u64());
        assert!(min >= 1 && max >= Some(min) && max <= partitions.map(|p| p as u64), "{name}: {min}..{max:?}");
        for trigger in object["spec"]["triggers"].as_sequence().unwrap() {
            assert_eq!(trigger["type"], "kafka", "{name}");
            let metadata = trigger["metadata"].as_mapping().unwrap();
            for (key, value) in metadata {
                assert!(
                    KEDA_KAFKA.contains(&key.as_str().unwrap()),
                    "ScaledObject {name}: the kafka scaler takes no {key:?}"
                );
                assert!(value.is_string(), "{name}: KEDA's metadata values are strings: {key:?}");
            }
            assert_eq!(trigger["metadata"]["consumerGroup"], consumer.group_id.as_str(), "{name}");
            assert_eq!(trigger["metadata"]["bootstrapServers"], config["data"]["GRIDSYNC_BROKERS"], "{name}");
            assert!(trigger["metadata"]["lagThreshold"].as_str().is_some_and(|t| t.parse::<u64>().is_ok()), "{name}");
            // As the consumers start: a group without committed offsets reads from the earliest.
            assert_eq!(trigger["metadata"]["offsetResetPolicy"], "earliest", "{name}");
        }
    }
}

/// Strimzi's KafkaTopic and KafkaUser fields gridsync may use (its CRDs' schemas are not at hand
/// here: https://strimzi.io/docs/operators/latest/configuring#type-KafkaUserSpec-reference).
const STRIMZI_TOPIC_SPEC: [&str; 4] = ["topicName", "partitions", "replicas", "config"];
const STRIMZI_USER_SPEC: [&str; 4] = ["authentication", "authorization", "quotas", "template"];
const STRIMZI_ACL: [&str; 5] = ["resource", "operations", "operation", "host", "type"];
const STRIMZI_OPERATIONS: [&str; 11] = [
    "Read",
    "Write",
    "Create",
    "Delete",
    "Alter",
    "Describe",
    "ClusterAction",
    "AlterConfigs",
    "DescribeConfigs",
    "IdempotentWrite",
    "All",
];

/// `deploy/k8s/strimzi` is what `gridsync strimzi` makes of the catalog (regenerate it when the
/// catalog changes); kustomize builds it over the base; its topics are the catalog's, its users
/// hold exactly the ACLs `gridsync acls` lists, in fields Strimzi knows; each Deployment
/// authenticates as its user with the Secret Strimzi makes for it.
#[test]
fn the_strimzi_resources_are_the_catalogs_and_its_acls() {
    let fresh = tempfile::tempdir().unwrap();
    let made = Command::new(workspace_binary("gridsync"))
        .args(["strimzi", "--out", fresh.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    for file in ["topics.yaml", "users.yaml", "kustomization.yaml"] {
        let checked_in = std::fs::read_to_string(root().join("deploy/k8s/strimzi").join(file)).unwrap_or_default();
        let generated = std::fs::read_to_string(fresh.path().join(file)).unwrap();
        assert!(checked_in == generated, "deploy/k8s/strimzi/{file} is stale: run `gridsync strimzi`");
    }
    let yaml = deploy_check(&["kustomize", "deploy/k8s/strimzi"]);
    let built = documents(&yaml);
    let of_kind = |kind: &'static str| built.iter().filter(move |d| d["kind"] == kind);

    let catalog = gridsync_schemas::catalog::catalog().unwrap();
    let topics: BTreeMap<&str, &Value> =
        of_kind("KafkaTopic").map(|t| (t["spec"]["topicName"].as_str().unwrap(), t)).collect();
    assert_eq!(topics.len(), catalog.topics.len());
    for spec in &catalog.topics {
        let topic = &topics[spec.name.as_str()]["spec"];
        for key in topic.as_mapping().unwrap().keys() {
            assert!(STRIMZI_TOPIC_SPEC.contains(&key.as_str().unwrap()), "KafkaTopic {}: {key:?}", spec.name);
        }
        assert_eq!(topic["partitions"].as_i64(), Some(i64::from(spec.partitions)), "{}", spec.name);
        assert_eq!(topic["replicas"].as_i64(), Some(i64::from(spec.replication_factor)), "{}", spec.name);
        for (key, value) in &spec.config {
            assert_eq!(topic["config"][key.as_str()].as_str(), Some(value.as_str()), "{}: {key}", spec.name);
        }
    }

    // The users' ACLs, as (principal, operation, resource type, name, pattern).
    let mut strimzi = BTreeSet::new();
    for user in of_kind("KafkaUser") {
        let name = user["metadata"]["name"].as_str().unwrap();
        let spec = &user["spec"];
        for key in spec.as_mapping().unwrap().keys() {
            assert!(STRIMZI_USER_SPEC.contains(&key.as_str().unwrap()), "KafkaUser {name}: {key:?}");
        }
        assert_eq!(spec["authentication"]["type"], "scram-sha-512", "{name}");
        assert_eq!(spec["authorization"]["type"], "simple", "{name}");
        for acl in spec["authorization"]["acls"].as_sequence().unwrap() {
            for key in acl.as_mapping().unwrap().keys() {
                assert!(STRIMZI_ACL.contains(&key.as_str().unwrap()), "KafkaUser {name}: ACL field {key:?}");
            }
            let resource = &acl["resource"];
            let kind = resource["type"].as_str().unwrap();
            assert!(["topic", "group", "cluster", "transactionalId"].contains(&kind), "{name}: {kind}");
            let pattern = resource["patternType"].as_str().unwrap_or("literal");
            assert!(["literal", "prefix"].contains(&pattern), "{name}: {pattern}");
            for operation in strings(&acl["operations"]) {
                assert!(STRIMZI_OPERATIONS.contains(&operation.as_str()), "{name}: {operation}");
                let resource_name = resource["name"].as_str().unwrap_or("kafka-cluster").to_owned();
                strimzi.insert((
                    format!("User:{name}"),
                    operation.to_uppercase(),
                    kind.to_uppercase(),
                    resource_name,
                    pattern == "prefix",
                ));
            }
        }
    }
    let listed = Command::new(workspace_binary("gridsync"))
        .args(["acls", "--operator", "User:gridsync-operator"])
        .output()
        .unwrap();
    assert!(listed.status.success());
    let mut acls = BTreeSet::new();
    let mut principal = String::new();
    for line in String::from_utf8(listed.stdout).unwrap().lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["ALLOW", operation, kind, name, rest @ ..] => {
                let operation = operation.replace('_', "");
                acls.insert((principal.clone(), operation, kind.to_string(), name.to_string(), rest == ["(prefixed)"]));
            }
            [user, ..] => principal = user.to_string(),
            [] => {}
        }
    }
    let strimzi: BTreeSet<_> =
        strimzi.into_iter().map(|(p, op, k, n, pre)| (p, op.replace('_', ""), k, n, pre)).collect();
    assert!(acls.len() > 100, "{} ACLs listed", acls.len());
    assert_eq!(strimzi, acls, "the KafkaUsers hold exactly what `gridsync acls` lists");

    // Each Deployment authenticates as its own user, with the Secret Strimzi makes for it.
    let users: BTreeSet<&str> = of_kind("KafkaUser").map(|u| u["metadata"]["name"].as_str().unwrap()).collect();
    for deployment in of_kind("Deployment") {
        let name = deployment["metadata"]["name"].as_str().unwrap();
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let env = container["env"].as_sequence().unwrap();
        let user = env.iter().find(|e| e["name"] == "GRIDSYNC_KAFKA_SASL_USERNAME").and_then(|e| e["value"].as_str());
        let user = user.unwrap_or_else(|| panic!("{name} has no Kafka user"));
        assert!(users.contains(user), "{name} authenticates as {user}, which is no KafkaUser");
        let volumes = deployment["spec"]["template"]["spec"]["volumes"].as_sequence().unwrap();
        assert!(volumes.iter().any(|v| v["secret"]["secretName"] == user), "{name}: {user}'s Secret is not mounted");
    }
    let config = of_kind("ConfigMap").find(|c| c["metadata"]["name"] == "gridsync-config").unwrap();
    assert_eq!(config["data"]["GRIDSYNC_KAFKA_SECURITY_PROTOCOL"], "SASL_SSL");
    assert!(config["data"]["GRIDSYNC_BROKERS"].as_str().unwrap().ends_with("-kafka-bootstrap:9093"));
    let validated = run_tool(
        "GRIDSYNC_KUBERNETES_VALIDATE",
        "kubernetes-validate",
        &["--strict", "--kubernetes-version", "1.30.0", &{
            let file = fresh.path().join("built.yaml");
            std::fs::write(&file, &yaml).unwrap();
            file.display().to_string()
        }],
    );
    assert!(
        validated.lines().all(|l| l.contains(" passed ") || l.contains("Couldn't find schema for kind Kafka")),
        "{validated}"
    );
}

/// The deployment files that cannot read the catalog are what `gridsync catalog` makes of it
/// (as `deploy/k8s/strimzi/` is what `gridsync strimzi` makes): a flow added to the catalog is
/// scraped and scaled once they are made again.
#[test]
fn the_files_made_from_the_catalog_are_as_it_makes_them_now() {
    let compose = root().join("docker-compose.yml").display().to_string();
    let mut made_files: Vec<(Vec<String>, String, String)> = [
        (&["catalog", "prometheus"][..], "deploy/prometheus/prometheus.yml"),
        (&["catalog", "prometheus", "--compose"][..], "deploy/prometheus/prometheus-compose.yml"),
        (&["catalog", "keda"][..], "deploy/k8s/keda/scaledobjects.yaml"),
        (&["catalog", "kustomization"][..], "deploy/k8s/base/kustomization.yaml"),
        (&["catalog", "postgres"][..], "deploy/postgres/init.sql"),
    ]
    .into_iter()
    .map(|(args, file)| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let command = format!("gridsync {} > {file}", args.join(" "));
        (args, file.to_owned(), command)
    })
    .collect();
    // The consumers' regions of docker-compose.yml, and each consumer's manifest but those the
    // catalog says are written by hand.
    made_files.push((
        vec!["catalog".into(), "compose".into(), compose],
        "docker-compose.yml".into(),
        "gridsync catalog compose --write".into(),
    ));
    let catalog = gridsync_schemas::catalog::catalog().unwrap();
    for consumer in catalog.consumers.iter().filter(|c| !c.deploy.by_hand) {
        let file = format!("deploy/k8s/base/{}.yaml", consumer.name);
        let command = format!("gridsync catalog k8s {} > {file}", consumer.name);
        made_files.push((vec!["catalog".into(), "k8s".into(), consumer.name.clone()], file, command));
    }
    assert!(made_files.len() > 6, "some consumers' manifests are made");
    for (args, file, command) in made_files {
        let made = Command::new(workspace_binary("gridsync")).args(&args).output().unwrap();
        assert!(made.status.success(), "{made:?}");
        let committed = std::fs::read_to_string(root().join(&file)).unwrap();
        assert_eq!(String::from_utf8(made.stdout).unwrap(), committed, "{file} is stale: run `{command}`");
    }
}

/// The quick start runs each producer and consumer of the catalog at the metrics port the
/// catalog gives it (as `gridsync catalog binaries` lists them), and nothing else of the
/// pipeline, and its Prometheus scrapes each there: the catalog is the one list of them.
#[test]
fn the_quick_start_runs_and_scrapes_each_binary_of_the_catalog_at_its_port() {
    let catalog = gridsync_schemas::catalog::catalog().unwrap();
    let run_local = std::fs::read_to_string(root().join("deploy/run-local.sh")).unwrap();
    assert!(
        run_local.contains(r#""$bin/gridsync" catalog binaries --port-offset "$offset""#),
        "run-local.sh asks the catalog"
    );
    assert!(
        !run_local.contains("-consumer $(port ") && !run_local.contains("-producer $(port "),
        "nor lists them itself"
    );
    let gridsync = workspace_binary("gridsync");
    let listed = Command::new(&gridsync).args(["catalog", "binaries", "--port-offset", "3"]).output().unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let listed: BTreeSet<String> = String::from_utf8(listed.stdout).unwrap().lines().map(str::to_owned).collect();
    let mut expected: BTreeSet<String> =
        catalog.binaries().into_iter().map(|(binary, _, port)| format!("{binary} {}", port + 3)).collect();
    let lag_exporter = listed.iter().find(|l| l.starts_with("lag-exporter ")).cloned();
    expected.extend(lag_exporter);
    assert_eq!(listed, expected, "each binary of the catalog at its port, shifted, and the lag exporter");

    let prometheus: Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join("deploy/prometheus/prometheus.yml")).unwrap())
            .unwrap();
    let jobs = prometheus["scrape_configs"].as_sequence().unwrap();
    let job = jobs.iter().find(|j| j["job_name"] == "gridsync").unwrap();
    let scraped: BTreeSet<(String, String)> = job["static_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|c| {
            let component = c["labels"]["component"].as_str().unwrap_or_default().to_owned();
            strings(&c["targets"]).into_iter().map(move |t| (t, component.clone()))
        })
        .collect();
    let expected =
        catalog.metrics_ports().into_iter().map(|(name, port)| (format!("127.0.0.1:{port}"), name.to_owned()));
    assert_eq!(scraped, expected.collect(), "deploy/prometheus/prometheus.yml scrapes each at its port");
}
