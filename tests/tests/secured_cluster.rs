//! gridsync on a Kafka cluster as production runs one: TLS everywhere, every client
//! authenticated (SCRAM over SASL_SSL, or a client certificate), ACLs enforced, and each
//! component only the ACLs `gridsync acls` derives for it from the catalog. A partner's order
//! flows end to end (tg-producer as `User:tg-producer` → notifications-consumer as the
//! certificate `CN=notifications` → Amplience, and the audit consumer as `User:audit` records
//! it), the operator commands run as `User:operator` with the operator's ACLs, and a component
//! short of one ACL stops at once naming the principal, the resource and the operation.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use gridsync_tests::{
    ed25519_key, is_ready, metric_sum, pipeline_env, set_up_hub, wait_for, workspace_binary, x12_purchase_orders,
    SecuredBroker,
};

/// A gridsync binary's command line (`args` first: the CLI's subcommand) against the cluster
/// with `settings`.
fn command(binary: &str, args: &[&str], settings: &[(String, String)]) -> Command {
    let mut command = Command::new(workspace_binary(binary));
    command.args(args).args(SecuredBroker::args(settings));
    command
}

fn run(mut command: Command) -> (bool, String) {
    let output = command.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Kills the long-running binaries at the end, however the test ends.
struct Running(Vec<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flow_runs_end_to_end_with_each_component_its_own_principal_and_only_its_acls() {
    let broker =
        SecuredBroker::start(&["operator", "tg-producer", "audit", "lag-exporter"], &["notifications"]).unwrap();
    let admin = broker.sasl("admin");
    let operator = broker.sasl("operator");

    // Least privilege, from the catalog: what `gridsync acls` prints is what it applies.
    let (listed, printed) = run(command("gridsync", &["acls", "--operator", "User:operator"], &admin));
    assert!(listed, "{printed}");
    let apply = ["acls", "--operator", "User:operator", "--apply"];
    let (applied, applied_text) = run(command("gridsync", &apply, &admin));
    assert!(applied, "{applied_text}");
    assert!(applied_text.starts_with(&printed), "the ACLs applied are those listed:\n{applied_text}");
    let count: usize = printed.lines().filter(|l| l.trim_start().starts_with("ALLOW ")).count();
    assert!(applied_text.contains(&format!("applied {count} ACLs for 9 principals")), "{applied_text}");
    // Again: nothing changes, nothing fails.
    assert!(run(command("gridsync", &apply, &admin)).0);

    // The operator commands, as the operator.
    let (created, text) = run(command("gridsync", &["topics", "apply"], &operator));
    assert!(created, "topics apply as User:operator: {text}");
    // A component may not: creating topics is the operator's.
    let (allowed, text) = run(command("gridsync", &["topics", "apply"], &broker.sasl("tg-producer")));
    assert!(!allowed && text.contains("TopicAuthorizationFailed"), "{text}");

    // The hub, and the three components, each as itself.
    let sim_config = gridsync_amp_sim::SimConfig::default();
    let stop_sim = tokio_util::sync::CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = gridsync_amp_sim::Simulator::start(sim_config.clone(), listener, stop_sim.clone()).await.unwrap();
    set_up_hub(&sim.url(), &sim_config.hub_id, &sim_config.repositories, None).await.unwrap();
    let _stop_sim = stop_sim.drop_guard();
    let state = tempfile::tempdir().unwrap();
    let mailbox = state.path().join("mailbox");
    let ports = [gridsync_tests::free_port(), gridsync_tests::free_port(), gridsync_tests::free_port()];
    let spawn = |binary: &str, settings: &[(String, String)], port: u16| {
        let mut command = command(binary, &["--metrics-addr", &format!("127.0.0.1:{port}")], settings);
        command
            .envs(pipeline_env(state.path(), binary, &sim.url(), &sim_config.hub_id))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(state.path().join(format!("{binary}.log"))).unwrap());
        command.spawn().unwrap()
    };
    let running = Running(vec![
        spawn("tg-producer", &broker.sasl("tg-producer"), ports[0]),
        spawn("notifications-consumer", &broker.tls("notifications"), ports[1]),
        spawn("audit-consumer", &broker.sasl("audit"), ports[2]),
    ]);
    let log = |binary: &str| std::fs::read_to_string(state.path().join(format!("{binary}.log"))).unwrap_or_default();
    for (binary, port) in ["tg-producer", "notifications-consumer", "audit-consumer"].iter().zip(ports) {
        let readyz = format!("http://127.0.0.1:{port}/readyz");
        let ready = wait_for(Duration::from_secs(60), || is_ready(&readyz)).await;
        assert!(ready, "{binary} never became ready:\n{}", log(binary));
    }

    // ACME sends two orders.
    std::fs::create_dir_all(mailbox.join("inbound")).unwrap();
    let orders = ["PO-SEC-1".to_owned(), "PO-SEC-2".to_owned()];
    std::fs::write(mailbox.join("inbound/acme.edi"), x12_purchase_orders("ACME", 7001, &orders, 1)).unwrap();
    // Each order's three side effects in Amplience, reported, and recorded by the audit consumer.
    let notifications = format!("http://127.0.0.1:{}/metrics", ports[1]);
    let audit = format!("http://127.0.0.1:{}/metrics", ports[2]);
    let done = wait_for(Duration::from_secs(120), || {
        let (notifications, audit) = (notifications.clone(), audit.clone());
        async move {
            let effects = metric_sum(&notifications, "gridsync_flow_side_effects_total", "").await;
            // Each topic is its own partition stream: the audit consumer may record the
            // deliveries before the orders, so the wait is for both.
            let recorded = |event_type: &'static str| {
                let audit = audit.clone();
                async move {
                    let labels = format!("event_type=\"{event_type}\"");
                    metric_sum(&audit, "gridsync_audit_events_recorded_total", &labels).await
                }
            };
            effects >= 6.0
                && recorded("DeliveryPerformed").await >= 6.0
                && recorded("PurchaseOrderReceived").await >= 2.0
        }
    })
    .await;
    let figures = |url: &str| {
        let url = url.to_owned();
        async move {
            let text = reqwest::get(url).await.unwrap().text().await.unwrap();
            let wanted = [
                "gridsync_flow_side_effects_total",
                "gridsync_audit_events_recorded_total",
                "gridsync_records_processed_total",
                "gridsync_failures_total",
            ];
            text.lines().filter(|l| wanted.iter().any(|w| l.starts_with(w))).collect::<Vec<_>>().join("\n")
        }
    };
    assert!(
        done,
        "the orders did not flow:\n{}\n{}\n--- tg-producer\n{}\n--- notifications\n{}\n--- audit\n{}",
        figures(&notifications).await,
        figures(&audit).await,
        log("tg-producer"),
        log("notifications-consumer"),
        log("audit-consumer")
    );
    let orders_recorded =
        metric_sum(&audit, "gridsync_audit_events_recorded_total", "event_type=\"PurchaseOrderReceived\"").await;
    assert_eq!(orders_recorded, 2.0);
    let created =
        reqwest::get(format!("{}/__sim/items?prefix=gridsync/", sim.url())).await.unwrap().text().await.unwrap();
    assert!(created.contains("PO-SEC-1") && created.contains("PO-SEC-2"), "{created}");

    // The operator, and the lag exporter's principal, see every group's lag.
    for settings in [&operator, &broker.sasl("lag-exporter")] {
        let (read, text) = run(command("gridsync", &["groups", "lag"], settings));
        assert!(read && text.contains("gridsync.notifications  (") && text.contains("gridsync.audit  ("), "{text}");
    }
    drop(running);

    // A component with another's credentials is short of ACLs: it stops at once, saying which.
    let metrics = format!("127.0.0.1:{}", gridsync_tests::free_port());
    let mut amp = command("amp-producer", &["--metrics-addr", &metrics], &broker.sasl("audit"));
    amp.env("GRIDSYNC_AMP_WEBHOOK_SECRET", "secret")
        .env("GRIDSYNC_AMP_STORE_URL", format!("sqlite://{}", state.path().join("amp.db").display()));
    let started = std::time::Instant::now();
    let (ran, text) = run(amp);
    assert!(!ran, "{text}");
    assert!(started.elapsed() < Duration::from_secs(30), "it stopped at once, not after retrying");
    assert!(
        text.contains("Kafka does not allow User:audit to WRITE topic gridsync.amp")
            && text.contains("`gridsync acls` lists what amp-producer needs"),
        "{text}"
    );
    // And no secret on its way out: the password is masked in what it logged.
    let password = &broker.sasl("audit")[4].1;
    assert!(!text.contains(password.as_str()), "the SASL password reached the output");
}

/// A token issuer for Kafka's OAUTHBEARER, as an OIDC provider is to Confluent Cloud or MSK: its
/// keys (one Ed25519 key, as a JWKS) and a token endpoint that gives each client it knows (HTTP
/// Basic, the client-credentials grant librdkafka uses) a JWT for audience `kafka` whose subject
/// is the client's id.
struct TokenIssuer {
    url: String,
}

impl TokenIssuer {
    async fn start(clients: &[(&str, &str)]) -> Self {
        use axum::{http::HeaderMap, routing::get, Json, Router};
        use base64::Engine;
        let (key, jwk) = ed25519_key("k1").unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let known: Vec<String> = clients
            .iter()
            .map(|(id, secret)| base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
            .collect();
        let issuer = url.clone();
        let app =
            Router::new().route("/jwks", get(move || async move { Json(serde_json::json!({"keys": [jwk]})) })).route(
                "/token",
                axum::routing::post(move |headers: HeaderMap| async move {
                    let basic = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Basic "))
                        .filter(|b| known.iter().any(|k| k == b));
                    let Some(basic) = basic else {
                        return (
                            axum::http::StatusCode::UNAUTHORIZED,
                            Json(serde_json::json!({"error": "invalid_client"})),
                        );
                    };
                    let decoded = base64::engine::general_purpose::STANDARD.decode(basic).unwrap_or_default();
                    let client = String::from_utf8_lossy(&decoded).split(':').next().unwrap_or_default().to_owned();
                    let now = chrono::Utc::now().timestamp();
                    let claims = serde_json::json!({
                        "iss": issuer, "aud": "kafka", "sub": client, "iat": now, "exp": now + 300, "scope": "kafka",
                    });
                    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
                    header.kid = Some("k1".into());
                    let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
                    let answer = serde_json::json!({"access_token": token, "token_type": "bearer", "expires_in": 300});
                    (axum::http::StatusCode::OK, Json(answer))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        TokenIssuer { url }
    }
}

/// OAUTHBEARER/OIDC, as Confluent Cloud, Amazon MSK and Azure Event Hubs offer it: librdkafka
/// fetches a token from the issuer with the client's id and secret, the broker validates it
/// against the issuer's keys (Kafka's own validator, with a JWKS URL) and knows the client as
/// `User:<sub>`; with only its ACLs, the operator applies the topics and tg-producer publishes a
/// partner's orders.
#[tokio::test(flavor = "multi_thread")]
async fn components_authenticate_with_oidc_tokens_the_broker_checks_against_the_issuers_keys() {
    let issuer = TokenIssuer::start(&[("operator", "operator-secret"), ("tg-producer", "tg-secret")]).await;
    let broker = SecuredBroker::start_with(&[], &[], Some(&format!("{}/jwks", issuer.url))).unwrap();
    let apply = ["acls", "--operator", "User:operator", "--apply"];
    let (applied, text) = run(command("gridsync", &apply, &broker.sasl("admin")));
    assert!(applied, "{text}");
    let token_url = format!("{}/token", issuer.url);
    let operator = broker.oauth("operator", "operator-secret", &token_url);
    let (created, text) = run(command("gridsync", &["topics", "apply"], &operator));
    assert!(created, "topics apply with the operator's token: {text}");

    let state = tempfile::tempdir().unwrap();
    let mailbox = state.path().join("mailbox");
    std::fs::create_dir_all(mailbox.join("inbound")).unwrap();
    let port = gridsync_tests::free_port();
    let producer = command(
        "tg-producer",
        &["--metrics-addr", &format!("127.0.0.1:{port}")],
        &broker.oauth("tg-producer", "tg-secret", &token_url),
    )
    .env("GRIDSYNC_TG_MAILBOX_DIR", &mailbox)
    .env("GRIDSYNC_TG_STORE_URL", format!("sqlite://{}", state.path().join("tg.db").display()))
    .env("GRIDSYNC_PARTNERS_FILE", Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/partners.toml"))
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(state.path().join("tg-producer.log")).unwrap())
    .spawn()
    .unwrap();
    let _running = Running(vec![producer]);
    let orders = ["PO-OIDC-1".to_owned(), "PO-OIDC-2".to_owned()];
    std::fs::write(mailbox.join("inbound/acme.edi"), x12_purchase_orders("ACME", 7101, &orders, 1)).unwrap();
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let published = wait_for(Duration::from_secs(90), || {
        let metrics = metrics.clone();
        async move { metric_sum(&metrics, "gridsync_tg_documents_total", "partner=\"ACME\"").await >= 2.0 }
    })
    .await;
    let log = std::fs::read_to_string(state.path().join("tg-producer.log")).unwrap_or_default();
    assert!(published, "tg-producer did not publish with its token:\n{log}");
    assert!(!log.contains("tg-secret"), "the client secret reached the log");
}
