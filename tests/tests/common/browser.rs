//! A real headless browser for page tests: Debian's chromium driven through
//! chromedriver's W3C WebDriver API (plain HTTP), both installed by
//! `deploy/test.sh`.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use gridsync_tests::free_port;
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one headless chromium session in it.
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
}

impl Browser {
    pub async fn start() -> Self {
        for binary in ["/usr/bin/chromedriver", "/usr/bin/chromium"] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: deploy/test.sh installs Debian's chromium and chromium-driver"
            );
        }
        let port = free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let http = reqwest::Client::new();
        let driver_url = format!("http://127.0.0.1:{port}");
        let ready = gridsync_tests::wait_for(Duration::from_secs(10), || async {
            let Ok(answer) = http.get(format!("{driver_url}/status")).send().await else { return false };
            answer.json::<Value>().await.is_ok_and(|s| s["value"]["ready"] == true)
        })
        .await;
        assert!(ready, "chromedriver never became ready on {driver_url}");
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
            }
        }}});
        let session: Value =
            http.post(format!("{driver_url}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let id = session["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {session}")).to_owned();
        Browser { driver, base: format!("{driver_url}/session/{id}"), http }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if method != reqwest::Method::GET {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(answer["value"].get("error").is_none(), "WebDriver {path}: {answer}");
        answer["value"].clone()
    }

    pub async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url })).await;
    }

    /// The element `css` selects (the first).
    pub async fn find(&self, css: &str) -> String {
        let found =
            self.call(reqwest::Method::POST, "/element", json!({ "using": "css selector", "value": css })).await;
        found[ELEMENT].as_str().unwrap().to_owned()
    }

    pub async fn type_into(&self, element: &str, text: &str) {
        self.call(reqwest::Method::POST, &format!("/element/{element}/value"), json!({ "text": text })).await;
    }

    pub async fn click(&self, element: &str) {
        self.call(reqwest::Method::POST, &format!("/element/{element}/click"), json!({})).await;
    }

    /// Runs `script` in the page; returns what it returns.
    pub async fn run(&self, script: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", json!({ "script": script, "args": [] })).await
    }

    /// Saves what the browser shows as `target/test-artifacts/<name>.png` (kept for people to
    /// look at after a run); returns where.
    pub async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        use base64::Engine;
        let png = self.call(reqwest::Method::GET, "/screenshot", Value::Null).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// The serious and critical accessibility violations axe-core finds on the page (`id: help
    /// (n elements)`), axe-core being the one `deploy/test.sh` installs (`GRIDSYNC_AXE_JS`).
    pub async fn accessibility_violations(&self) -> Vec<String> {
        let axe = std::env::var("GRIDSYNC_AXE_JS").unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_default();
            format!("{home}/.cache/gridsync/axe-core/node_modules/axe-core/axe.min.js")
        });
        let source = std::fs::read_to_string(&axe)
            .unwrap_or_else(|e| panic!("{axe}: {e} (deploy/test.sh installs axe-core from npm)"));
        self.run(&format!("{source}\n;return true;")).await;
        let script = "const done = arguments[arguments.length - 1];
            axe.run(document, { resultTypes: ['violations'] }).then(r => done(r.violations
              .filter(v => v.impact === 'serious' || v.impact === 'critical')
              .map(v => v.id + ': ' + v.help + ' (' + v.nodes.length + ' elements)')));";
        let found = self.call(reqwest::Method::POST, "/execute/async", json!({ "script": script, "args": [] })).await;
        found.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    }

    /// Waits (up to ten seconds) until the browser's URL is one `wanted` accepts, as after a
    /// click that submits a form (the click returns before the navigation ends); the URL then.
    pub async fn url_until(&self, wanted: impl Fn(&str) -> bool) -> String {
        gridsync_tests::poll_until(Duration::from_secs(10), || self.current_url(), |url| wanted(url)).await
    }

    pub async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", Value::Null).await.as_str().unwrap_or_default().to_owned()
    }
}

impl Browser {
    /// Ends the session (chromium exits with it).
    pub async fn close(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
