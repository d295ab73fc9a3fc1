//! The audit view is safe to expose: the real audit consumer with API tokens made by
//! `gridsync audit token` refuses a request without one, a token for one partner sees that
//! partner only, a revoked token (and its sessions) stops at once, a person logs in through the
//! page (in headless Chromium) and is refused another partner, a request naming another host is
//! refused, every answer carries the security headers, a flood of half-sent requests (slow loris)
//! is cut while the view still answers, and a view reachable from the network without tokens
//! refuses to start.

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::Command,
    time::{Duration, SystemTime},
};

use common::{browser::Browser, fixture, stop, World};
use gridsync_tests::{free_port, wait_for, workspace_binary};
use serde_json::Value;

/// `gridsync audit token` for `name` (and `partners`), adding it to `file`: the token.
fn token(file: &std::path::Path, name: &str, partners: &[&str]) -> String {
    let mut command = Command::new(workspace_binary("gridsync"));
    command.args(["audit", "token", "--name", name, "--tokens-file"]).arg(file);
    for partner in partners {
        command.args(["--partner", partner]);
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn get(url: &str, token: Option<&str>) -> reqwest::Response {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let request = client.get(url);
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_view_needs_a_token_sees_only_its_partners_and_survives_a_slow_loris() {
    let w = World::start("audit-access").await;
    let tokens = w.dir.path().join("audit-tokens.toml");
    let (everything, acme_team) = (token(&tokens, "compliance", &[]), token(&tokens, "acme-team", &["ACME"]));
    let text = std::fs::read_to_string(&tokens).unwrap();
    assert!(!text.contains(&everything) && !text.contains(&acme_team), "only hashes are kept: {text}");

    let store_url = format!("sqlite://{}", w.dir.path().join("audit.db").display());
    let port = free_port();
    let view = format!("http://127.0.0.1:{port}");
    let partners = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/partners.toml");
    let flags = [format!("--tokens-file={}", tokens.display()), format!("--partners={}", partners.display())];
    let (audit, _) = w.audit_with("audit", &store_url, port, &flags);
    w.drop_inbound("acme.edi", &std::fs::read(fixture("x12_multi_interchange_crlf.edi")).unwrap());
    w.drop_inbound("globex.edi", &std::fs::read(fixture("x12_pipes_00501_no_newlines.edi")).unwrap());
    let recorded = |partner: &'static str| {
        let (view, everything) = (view.clone(), everything.clone());
        async move {
            let url = format!("{view}/api/partners/{partner}");
            let Ok(response) = reqwest::Client::new().get(url).bearer_auth(&everything).send().await else {
                return false;
            };
            let answer: Value = response.json().await.unwrap_or_default();
            answer["events"]["items"].as_array().is_some_and(|items| !items.is_empty())
        }
    };
    let both =
        wait_for(Duration::from_secs(120), || async { recorded("ACME").await && recorded("GLOBEX").await }).await;
    assert!(both, "ACME's and GLOBEX's documents recorded\n{}", w.logs());

    // No token: the API says what it needs, the page sends people to log in.
    let refused = get(&format!("{view}/api/open"), None).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    let page = get(&format!("{view}/?q=4500012345"), None).await;
    assert_eq!((page.status().as_u16(), page.headers()["location"].to_str().unwrap()), (303, "/login"));
    assert_eq!(get(&format!("{view}/api/open"), Some("gsa_not-a-token")).await.status(), 401);

    // A token for every partner sees both; the ACME team's sees ACME alone.
    assert_eq!(get(&format!("{view}/api/partners/GLOBEX"), Some(&everything)).await.status(), 200);
    assert_eq!(get(&format!("{view}/api/dead-letters"), Some(&everything)).await.status(), 200);
    assert_eq!(get(&format!("{view}/api/partners/ACME"), Some(&acme_team)).await.status(), 200);
    assert_eq!(get(&format!("{view}/api/partners/GLOBEX"), Some(&acme_team)).await.status(), 403);
    assert_eq!(get(&format!("{view}/api/dead-letters"), Some(&acme_team)).await.status(), 403);
    let lineage = |reference: &str, token: &str| {
        let url = format!("{view}/api/lineage?ref={reference}&limit=500");
        let token = token.to_owned();
        async move {
            get(&url, Some(&token)).await.json::<Value>().await.unwrap()["events"]["items"].as_array().unwrap().len()
        }
    };
    // GLOBEX's ship notice 0101 (its BSN02, SHIP-0101-style reference) is not the ACME team's.
    let globex: Value = get(&format!("{view}/api/partners/GLOBEX"), Some(&everything)).await.json().await.unwrap();
    let reference = globex["events"]["items"][0]["business_key"].as_str().unwrap().to_owned();
    assert!(lineage(&reference, &everything).await > 0);
    assert_eq!(lineage(&reference, &acme_team).await, 0, "{reference}: another partner's lineage, filtered out");
    assert!(lineage("4500012345", &acme_team).await > 0);

    // Every answer forbids framing, sniffing and referrers; the page loads nothing but its style.
    let answer = get(&format!("{view}/api/open"), Some(&everything)).await;
    let headers = answer.headers();
    assert!(headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");

    // Any list as CSV: a header, a row per event, a formula-looking cell made text.
    let csv = get(&format!("{view}/api/lineage?ref=4500012345&format=csv"), Some(&everything)).await;
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("event_id,event_type,source_system,partner,business_key,seen_at"), "{csv}");
    assert!(csv.lines().any(|l| l.contains(",PurchaseOrderReceived,")), "{csv}");
    let partner_csv = get(&format!("{view}/api/partners/ACME?format=csv"), Some(&everything)).await;
    assert!(partner_csv.text().await.unwrap().lines().count() > 1);
    for (list, header) in [("open", "open,partner,subject,since"), ("dead-letters", "consumer,failed_at,stage")] {
        let exported = get(&format!("{view}/api/{list}?format=csv"), Some(&everything)).await.text().await.unwrap();
        assert!(exported.starts_with(header), "{list}: {exported}");
    }

    // Another host name (DNS rebinding) is refused, token or not.
    let rebound = reqwest::Client::new()
        .get(format!("{view}/api/open"))
        .header("host", format!("evil.example:{port}"))
        .bearer_auth(&everything)
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 400);

    // A body past the limit is refused before it is read whole.
    // (Raw, so that the answer is read before any of the body is sent: a client still writing a
    // body the server has refused may see its connection closed first.)
    let mut big = TcpStream::connect(("127.0.0.1", port)).unwrap();
    big.write_all(b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1048576\r\n\r\n").unwrap();
    big.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = [0u8; 12];
    big.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 413", "{}", String::from_utf8_lossy(&answer));

    // Slow loris: a flood of requests whose headers never end. The view still answers, and
    // each half-sent request is cut (its connection closed) once its headers are overdue.
    let mut slow: Vec<TcpStream> = (0..150)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream.write_all(b"GET /api/open HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").unwrap();
            stream
        })
        .collect();
    let answered = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let during = answered.get(format!("{view}/api/open")).bearer_auth(&everything).send().await.unwrap();
    assert_eq!(during.status(), 200, "the view answers during the flood");
    for stream in &mut slow {
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 512];
        // Cut: the server answers 408 or just closes; either way the read ends, never hangs.
        match stream.read(&mut buf) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("a half-sent request held open past its header timeout: {e}"),
        }
    }

    // A kept-alive connection left idle after its answer is closed too (the header timeout runs
    // while the next request is awaited).
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.write_all(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answered = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match idle.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => answered.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    assert!(answered.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answered));
    assert!(closed, "an idle kept-alive connection is closed");

    // A person logs in on the page with the ACME team's token, and is refused GLOBEX.
    let browser = Browser::start().await;
    browser.open(&format!("{view}/?q=4500012345")).await;
    assert!(browser.current_url().await.ends_with("/login"), "sent to log in");
    let violations = browser.accessibility_violations().await;
    assert!(violations.is_empty(), "serious accessibility violations on the login page: {violations:#?}");
    let field = browser.find("#token").await;
    browser.type_into(&field, &acme_team).await;
    let submit = browser.find("#login button").await;
    browser.click(&submit).await;
    // Logged in once the form's answer took the browser on from /login.
    let url = browser.url_until(|url| !url.ends_with("/login")).await;
    assert!(!url.ends_with("/login"), "the login form answered: {url}");
    browser.open(&format!("{view}/?q=4500012345")).await;
    let steps = browser.run("return document.querySelectorAll('#timeline li.step').length").await;
    assert!(steps.as_u64().is_some_and(|n| n > 0), "the ACME order's lineage, logged in: {steps}");
    // A console: the open items counted in the header, partners by name, times people read.
    let shown = browser.run("return document.body.innerText").await;
    let shown = shown.as_str().unwrap();
    assert!(shown.contains("Acme Retail Inc (ACME)"), "{shown}");
    assert!(shown.contains("unresolved tasks") && shown.contains("overdue invoices"), "{shown}");
    // Times in the reader's zone, the UTC time kept as each one's title.
    let utc = browser.run("return Array.from(document.querySelectorAll('#timeline time')).map(t => t.title)").await;
    let html =
        browser.run("return Array.from(document.querySelectorAll('#timeline time')).map(t => t.outerHTML)").await;
    let utc: Vec<&str> = utc.as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(!utc.is_empty() && utc.iter().all(|t| t.ends_with(" UTC")), "{utc:?} {html}");
    // Filters narrow the timeline: only the invoice, of today.
    let today = chrono::Utc::now().format("%Y-%m-%d");
    browser.open(&format!("{view}/?q=4500012345&type=InvoiceReceived&from={today}&to={today}")).await;
    let types = browser
        .run("return Array.from(document.querySelectorAll('#timeline li.step')).map(li => li.dataset.type)")
        .await;
    assert_eq!(types, serde_json::json!(["InvoiceReceived"]), "filtered by type and day");
    browser.open(&format!("{view}/?q=4500012345&flow=1")).await;
    let types = browser
        .run("return Array.from(document.querySelectorAll('#timeline li.step')).map(li => li.dataset.type)")
        .await;
    assert_eq!(types, serde_json::json!(["PurchaseOrderReceived"]), "flow 1: the order, not its invoice (flow 2)");
    browser.open(&format!("{view}/?q=4500012345")).await;
    browser.screenshot("audit-console-lineage").await;
    let violations = browser.accessibility_violations().await;
    assert!(violations.is_empty(), "serious accessibility violations on the timeline: {violations:#?}");
    // The partner's page: its exchanges and what is open with it.
    browser.open(&format!("{view}/partners/ACME")).await;
    let exchanges = browser.run("return document.querySelectorAll('#exchanges li').length").await;
    assert!(exchanges.as_u64().is_some_and(|n| n > 0), "ACME's exchanges: {exchanges}");
    let latency = browser.run("return document.getElementById('ack-latency').textContent").await;
    assert!(latency.as_str().unwrap().contains("acknowledg"), "{latency}");
    browser.screenshot("audit-console-partner").await;
    let violations = browser.accessibility_violations().await;
    assert!(violations.is_empty(), "serious accessibility violations on the partner page: {violations:#?}");
    browser.open(&format!("{view}/?q={reference}&partner=GLOBEX")).await;
    let body = browser.run("return document.body.textContent").await;
    assert!(body.as_str().unwrap().contains("does not see partner GLOBEX"), "{body}");
    // Revoked: its sessions end with it.
    let revoked = std::fs::read_to_string(&tokens)
        .unwrap()
        .replace("name = \"acme-team\"\n", "name = \"acme-team\"\nrevoked = true\n");
    std::fs::write(&tokens, revoked).unwrap();
    let later = SystemTime::now() + Duration::from_secs(2);
    std::fs::File::options().write(true).open(&tokens).unwrap().set_modified(later).unwrap();
    let out = wait_for(Duration::from_secs(10), || async {
        get(&format!("{view}/api/open"), Some(&acme_team)).await.status() == 401
    })
    .await;
    assert!(out, "a revoked token is refused");
    browser.open(&format!("{view}/?q=4500012345")).await;
    assert!(browser.current_url().await.ends_with("/login"), "a revoked token's session ends");
    browser.close().await;
    assert_eq!(get(&format!("{view}/api/open"), Some(&everything)).await.status(), 200);
    stop(audit).await;

    // Reachable from the network without tokens: it refuses to start, naming the settings.
    let exposed = Command::new(workspace_binary("audit-consumer"))
        .args(["--brokers", &w.pipeline.broker.brokers(), "--topic-prefix", &w.pipeline.kafka.topic_prefix])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port()), "--audit-store-url", &store_url])
        .args(["--listen", &format!("0.0.0.0:{}", free_port())])
        .output()
        .unwrap();
    assert!(!exposed.status.success());
    let why = String::from_utf8_lossy(&exposed.stderr);
    assert!(why.contains("--tokens-file") && why.contains("GRIDSYNC_AUDIT_TOKENS_FILE"), "{why}");
}

/// `gridsync audit ...` finds the store the quick start writes, or says where it looked: a
/// question never creates an empty store (which would answer "0 events").
#[test]
fn the_audit_cli_finds_the_local_store_or_says_where_it_looked_and_creates_none() {
    let dir = tempfile::tempdir().unwrap();
    let ask = |args: &[&str]| {
        Command::new(workspace_binary("gridsync"))
            .current_dir(dir.path())
            .env_remove("GRIDSYNC_AUDIT_STORE_URL")
            .args(["audit"])
            .args(args)
            .arg("counts")
            .output()
            .unwrap()
    };
    let nowhere = ask(&[]);
    assert!(!nowhere.status.success());
    let why = String::from_utf8_lossy(&nowhere.stderr);
    assert!(
        why.contains(".local/audit.db") && why.contains("gridsync-audit.db") && why.contains("--audit-store-url"),
        "{why}"
    );
    let missing = ask(&["--audit-store-url", "sqlite://elsewhere.db"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no audit store at elsewhere.db"), "{missing:?}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing created");

    // The quick start's store, found from the repository's root.
    std::fs::create_dir(dir.path().join(".local")).unwrap();
    let store = format!("sqlite://{}", dir.path().join(".local/audit.db").display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        gridsync_store::Store::connect(&store).await.unwrap().audit().counts().await.unwrap();
    });
    let found = ask(&[]);
    assert!(found.status.success(), "{}", String::from_utf8_lossy(&found.stderr));
    let counts: Value = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(counts["events"], 0);
}

/// Retention is enforced: an event gridsync learned of longer ago than `--retention-days` is
/// deleted from the audit store (with the personal data it carries) when the consumer starts and
/// hourly after, counted; a newer one stays.
#[tokio::test(flavor = "multi_thread")]
async fn the_audit_store_keeps_events_only_as_long_as_its_retention() {
    use gridsync_schemas::{samples::sample, EventType, Timestamp};
    let pipeline = gridsync_tests::Pipeline::start("audit-retention", None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let mut old = sample(EventType::PurchaseOrderReceived, "ACME", 1);
    let days_ago = |days: i64| Timestamp::from_millis(chrono::Utc::now().timestamp_millis() - days * 24 * 3600 * 1000);
    old.envelope_mut().ingested_at = days_ago(60);
    let mut recent = sample(EventType::PurchaseOrderReceived, "ACME", 2);
    recent.envelope_mut().ingested_at = days_ago(1);
    for event in [&old, &recent] {
        pipeline.producer.publish(event, None).await.unwrap();
    }
    let audit = |retention: &str, metrics: u16| {
        Command::new(workspace_binary("audit-consumer"))
            .args(["--brokers", &pipeline.broker.brokers(), "--topic-prefix", &pipeline.kafka.topic_prefix])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics}"), "--audit-store-url", &store_url])
            .args(["--listen", &format!("127.0.0.1:{}", free_port()), "--retention-days", retention])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let recorded = |id: String| {
        let store_url = store_url.clone();
        async move {
            let store = gridsync_store::Store::connect(&store_url).await.unwrap();
            store.audit().event(&id).await.unwrap().is_some()
        }
    };
    let (old_id, recent_id) = (old.envelope().event_id.clone(), recent.envelope().event_id.clone());
    // Kept whatever their age with a retention of 0.
    let keeper = audit("0", free_port());
    let both = wait_for(Duration::from_secs(60), || async {
        recorded(old_id.clone()).await && recorded(recent_id.clone()).await
    })
    .await;
    stop(keeper).await;
    assert!(both, "both recorded");
    // Thirty days: the sixty-day-old one goes at start, the recent one stays.
    let metrics = free_port();
    let pruner = audit("30", metrics);
    let gone = wait_for(Duration::from_secs(60), || async { !recorded(old_id.clone()).await }).await;
    assert!(gone, "the old event is deleted");
    assert!(recorded(recent_id.clone()).await, "the recent one stays");
    let url = format!("http://127.0.0.1:{metrics}/metrics");
    let counted = wait_for(Duration::from_secs(10), || async {
        gridsync_tests::metric_value(&url, "gridsync_audit_pruned_total", r#"what="events""#).await >= 1.0
    })
    .await;
    assert!(counted, "counted in gridsync_audit_pruned_total");
    stop(pruner).await;
}

/// A local OpenID Connect provider with a key of its own: discovery, its keys (one Ed25519 key),
/// an authorization endpoint that signs the person in at once and sends them back with a code,
/// and a token endpoint that answers the code (its client secret and PKCE verifier checked) with
/// an ID token carrying the sign-in's nonce and `partners`.
struct Issuer {
    url: String,
    key: jsonwebtoken::EncodingKey,
}

const CLIENT: (&str, &str) = ("gridsync-audit", "client-secret-for-the-test");

impl Issuer {
    async fn start(partners: Value) -> Self {
        use axum::{extract::Query, response::Redirect, routing::get, Form, Json, Router};
        use base64::Engine;
        let (key, jwk) = gridsync_tests::ed25519_key("k1").unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        // Codes handed out: code → (nonce, PKCE challenge).
        let codes: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (String, String)>>> =
            Default::default();
        let (issuer, signing, granted) = (url.clone(), key.clone(), codes.clone());
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get({
                    let url = url.clone();
                    move || async move {
                        Json(serde_json::json!({
                            "issuer": url, "authorization_endpoint": format!("{url}/authorize"),
                            "token_endpoint": format!("{url}/token"), "jwks_uri": format!("{url}/jwks"),
                        }))
                    }
                }),
            )
            .route("/jwks", get(move || async move { Json(serde_json::json!({"keys": [jwk]})) }))
            .route(
                "/authorize",
                get(move |Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    assert_eq!(q["client_id"], CLIENT.0);
                    assert_eq!(q["code_challenge_method"], "S256");
                    let code = format!("code-{}", q["state"]);
                    granted.lock().unwrap().insert(code.clone(), (q["nonce"].clone(), q["code_challenge"].clone()));
                    Redirect::to(&format!("{}?code={code}&state={}", q["redirect_uri"], q["state"]))
                }),
            )
            .route(
                "/token",
                axum::routing::post(move |Form(f): Form<std::collections::HashMap<String, String>>| async move {
                    let (nonce, challenge) = codes.lock().unwrap().remove(&f["code"]).expect("a code handed out");
                    assert_eq!((f["client_id"].as_str(), f["client_secret"].as_str()), CLIENT);
                    let verified = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(<sha2::Sha256 as sha2::Digest>::digest(f["code_verifier"].as_bytes()));
                    assert_eq!(verified, challenge, "PKCE");
                    let claims = claims(&issuer, CLIENT.0, 300, partners.clone(), Some(&nonce));
                    Json(serde_json::json!({"id_token": sign(&signing, &claims), "token_type": "Bearer"}))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Issuer { url, key }
    }

    fn token(&self, audience: &str, expires_in: i64, partners: Value) -> String {
        sign(&self.key, &claims(&self.url, audience, expires_in, partners, None))
    }
}

fn claims(issuer: &str, audience: &str, expires_in: i64, partners: Value, nonce: Option<&str>) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = serde_json::json!({
        "iss": issuer, "aud": audience, "sub": "u-1", "email": "compliance@example.com",
        "iat": now, "exp": now + expires_in, "gridsync_partners": partners,
    });
    if partners.is_null() {
        claims.as_object_mut().unwrap().remove("gridsync_partners");
    }
    if let Some(nonce) = nonce {
        claims["nonce"] = Value::from(nonce);
    }
    claims
}

fn sign(key: &jsonwebtoken::EncodingKey, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("k1".into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// People sign in through the company's OpenID Connect provider (a local one the test starts,
/// with its own key), and programs send its JWTs: checked against the issuer's keys, audience,
/// expiry; the partners claim decides what each sees.
#[tokio::test(flavor = "multi_thread")]
async fn people_sign_in_through_openid_connect_and_its_jwts_are_checked() {
    let issuer = Issuer::start(serde_json::json!(["ACME"])).await;
    let pipeline = gridsync_tests::Pipeline::start("audit-oidc", None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("oidc-secret");
    std::fs::write(&secret, CLIENT.1).unwrap();
    let port = free_port();
    let view = format!("http://127.0.0.1:{port}");
    let mut audit = Command::new(workspace_binary("audit-consumer"))
        .args(["--brokers", &pipeline.broker.brokers(), "--topic-prefix", &pipeline.kafka.topic_prefix])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port()), "--listen", &format!("127.0.0.1:{port}")])
        .arg(format!("--audit-store-url=sqlite://{}", dir.path().join("audit.db").display()))
        .args(["--oidc-issuer", &issuer.url, "--oidc-client-id", CLIENT.0])
        .arg(format!("--oidc-client-secret-file={}", secret.display()))
        .arg(format!("--oidc-redirect-url={view}/oidc/callback"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("audit.log")).unwrap())
        .spawn()
        .unwrap();
    let up = wait_for(Duration::from_secs(60), || async { reqwest::get(format!("{view}/login")).await.is_ok() }).await;
    assert!(up, "{}", std::fs::read_to_string(dir.path().join("audit.log")).unwrap_or_default());

    // Programs: the provider's JWTs, scoped by the partners claim.
    let status = |token: String, path: &'static str| {
        let view = view.clone();
        async move { get(&format!("{view}{path}"), Some(&token)).await.status().as_u16() }
    };
    let acme = issuer.token(CLIENT.0, 300, serde_json::json!(["ACME"]));
    assert_eq!(status(acme.clone(), "/api/partners/ACME").await, 200);
    assert_eq!(status(acme, "/api/partners/GLOBEX").await, 403);
    let everyone = issuer.token(CLIENT.0, 300, serde_json::json!("*"));
    assert_eq!(status(everyone, "/api/dead-letters").await, 200);
    for (why, refused) in [
        ("expired", issuer.token(CLIENT.0, -600, serde_json::json!("*"))),
        ("another audience", issuer.token("another-app", 300, serde_json::json!("*"))),
        ("no partners claim", issuer.token(CLIENT.0, 300, Value::Null)),
        ("another key", {
            let other = Issuer::start(Value::Null).await;
            sign(&other.key, &claims(&issuer.url, CLIENT.0, 300, serde_json::json!("*"), None))
        }),
        ("a shared secret", {
            let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            let claims = claims(&issuer.url, CLIENT.0, 300, serde_json::json!("*"), None);
            jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(b"guess")).unwrap()
        }),
    ] {
        assert_eq!(status(refused, "/api/open").await, 401, "{why}");
    }

    // People: the login page sends them to the provider and back, signed in for ACME.
    let browser = Browser::start().await;
    browser.open(&format!("{view}/")).await;
    assert!(browser.current_url().await.ends_with("/login"));
    let sign_in = browser.find("#sign-in").await;
    browser.click(&sign_in).await;
    let home = format!("{view}/");
    let url = browser.url_until(|url| url == home).await;
    assert_eq!(url, home, "back from the provider, signed in");
    let shown = browser.run("return document.body.innerText").await;
    assert!(shown.as_str().unwrap().contains("unresolved tasks"), "{shown}");
    browser.open(&format!("{view}/partners/GLOBEX")).await;
    let body = browser.run("return document.body.textContent").await;
    assert!(body.as_str().unwrap().contains("does not see partner GLOBEX"), "{body}");
    browser.close().await;
    let _ = audit.kill();
    let _ = audit.wait();
}
