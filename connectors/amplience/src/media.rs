//! Media that content links to (Amplience's image and video links), fetched
//! from the media CDN to a local file: streamed a chunk at a time (memory
//! bounded whatever the size), checked against the length the server
//! announced, retried from the start when a fetch fails part-way, and renamed
//! into place only once whole, so a half-fetched file is never used.
//!
//! A link in a content body is `{"_meta": {"schema": ".../image-link"}, "id",
//! "name", "endpoint", "defaultHost"}`; its URL is
//! `https://{defaultHost}/i/{endpoint}/{name}` for images and `/v/` for
//! videos. That URL scheme is Amplience's public convention, not an API
//! contract, so it is a template (`url_template`), as is the host.

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::Arc,
    time::Duration,
};

#[cfg(test)]
use gridsync_http::DEFAULT_BACKOFF;
use gridsync_http::{retry_after, ApiError, Backoff};
use gridsync_retry::{retry_bounded, Verdict};
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::AmplienceError;

/// The default URL of a media link; `{defaultHost}`, `{kind}` (`i` or `v`),
/// `{endpoint}` and `{name}` are filled in (the name percent-encoded).
pub const DEFAULT_URL_TEMPLATE: &str = "https://{defaultHost}/{kind}/{endpoint}/{name}";

/// A media link found in a content body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLink {
    /// The asset's id, when the link carries it.
    pub id: Option<String>,
    pub name: String,
    pub endpoint: String,
    pub default_host: String,
    /// `i` (image) or `v` (video).
    pub kind: &'static str,
}

impl MediaLink {
    /// `value` as a media link, if it is one.
    pub fn parse(value: &Value) -> Option<MediaLink> {
        let text = |field: &str| value.get(field).and_then(Value::as_str).filter(|s| !s.is_empty());
        let schema = value.pointer("/_meta/schema").and_then(Value::as_str).unwrap_or_default();
        Some(MediaLink {
            id: text("id").map(str::to_owned),
            name: text("name")?.to_owned(),
            endpoint: text("endpoint")?.to_owned(),
            default_host: text("defaultHost")?.to_owned(),
            kind: if schema.ends_with("video-link") { "v" } else { "i" },
        })
    }

    /// Every media link in `body`, in document order, each once.
    pub fn find_all(body: &Value) -> Vec<MediaLink> {
        fn walk(value: &Value, found: &mut Vec<MediaLink>) {
            if let Some(link) = MediaLink::parse(value) {
                if !found.contains(&link) {
                    found.push(link);
                }
                return;
            }
            match value {
                Value::Object(fields) => fields.values().for_each(|v| walk(v, found)),
                Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        walk(body, &mut found);
        found
    }
}

/// Everything but RFC 3986's unreserved characters is percent-encoded in a path segment.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn encode(part: &str) -> String {
    percent_encoding::utf8_percent_encode(part, SEGMENT).to_string()
}

/// `template` with the link's parts filled in.
fn fill(template: &str, link: &MediaLink) -> String {
    template
        .replace("{defaultHost}", &link.default_host)
        .replace("{kind}", link.kind)
        .replace("{endpoint}", &encode(&link.endpoint))
        .replace("{name}", &encode(&link.name))
}

/// Why `template` cannot be a media URL template: it must name `{name}` and, filled in, be a URL.
pub fn check_template(template: &str) -> Result<(), String> {
    let sample = MediaLink { id: None, name: "n".into(), endpoint: "e".into(), default_host: "h".into(), kind: "i" };
    if template.contains("{name}") && reqwest::Url::parse(&fill(template, &sample)).is_ok() {
        return Ok(());
    }
    Err(format!(
        "{template:?} is not a URL template with {{name}} (and {{defaultHost}}, {{kind}}, {{endpoint}} if needed)"
    ))
}

/// Amplience's media CDN hosts, fetched from by default: the hosts `defaultHost` names in links.
pub const DEFAULT_MEDIA_HOSTS: &[&str] = &["cdn.media.amplience.net", "*.amplience.net", "i1.adis.ws"];

/// Where media may be fetched from. A link's host comes from content editors (`defaultHost`),
/// so it is checked before anything is fetched: the host must be one of `hosts` (exact, or
/// `*.suffix`), or the URL template's own fixed host; and unless `allow_private`, every address
/// it resolves to must be public (no loopback, private, link-local, CGNAT or unique-local
/// address, checked on every connection, so a name that later resolves inward is caught too).
/// A redirect is followed only to an allowed host.
#[derive(Debug, Clone)]
pub struct MediaPolicy {
    pub hosts: Vec<String>,
    pub allow_private: bool,
}

impl Default for MediaPolicy {
    fn default() -> Self {
        MediaPolicy { hosts: DEFAULT_MEDIA_HOSTS.iter().map(|h| (*h).to_owned()).collect(), allow_private: false }
    }
}

impl MediaPolicy {
    /// Whether `host` is one media may come from.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.iter().any(|allowed| {
            let allowed = allowed.trim().to_ascii_lowercase();
            match allowed.strip_prefix("*.") {
                Some(suffix) => host.len() > suffix.len() && host.ends_with(&format!(".{suffix}")),
                None => host == allowed,
            }
        })
    }
}

/// Whether `ip` is an address media must not be fetched from unless private ones are allowed.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // CGNAT, 100.64.0.0/10
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

/// Resolves names as the system does, keeping public addresses only.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = resolved.into_iter().filter(|a| !is_internal(a.ip())).collect();
            if public.is_empty() {
                let why =
                    format!("{host} resolves to private or loopback addresses only: media is not fetched from them");
                return Err(why.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// A media file fetched whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub bytes: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
    pub content_type: Option<String>,
}

/// Fetches media links to local files.
#[derive(Debug, Clone)]
pub struct MediaClient {
    http: reqwest::Client,
    retry: Backoff,
    url_template: String,
    max_bytes: u64,
    policy: Arc<MediaPolicy>,
}

impl MediaClient {
    /// `read_timeout` bounds each wait for data, not the whole fetch: a large file may take long.
    /// Media is fetched only as `policy` allows; the template's own fixed host (one without
    /// `{defaultHost}`) is allowed as configured.
    pub fn new(
        url_template: &str,
        read_timeout: Duration,
        retry: Backoff,
        max_bytes: u64,
        policy: MediaPolicy,
    ) -> Result<Self, reqwest::Error> {
        let mut policy = policy;
        if !url_template.contains("{defaultHost}") {
            if let Some(host) = reqwest::Url::parse(url_template).ok().and_then(|u| u.host_str().map(str::to_owned)) {
                policy.hosts.push(host);
            }
        }
        let policy = Arc::new(policy);
        let redirects = policy.clone();
        let mut http = reqwest::Client::builder()
            .connect_timeout(read_timeout)
            .read_timeout(read_timeout)
            .user_agent(concat!("gridsync/", env!("CARGO_PKG_VERSION")))
            // A redirect may only lead to another allowed host (and its addresses are checked
            // as the first one's are).
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                let allowed = attempt.url().host_str().is_some_and(|h| redirects.allows_host(h));
                if !allowed {
                    let to = attempt.url().to_string();
                    attempt.error(format!("redirected to {to}, not an allowed media host"))
                } else if attempt.previous().len() >= 5 {
                    attempt.error("more than 5 redirects")
                } else {
                    attempt.follow()
                }
            }));
        if !policy.allow_private {
            http = http.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(MediaClient { http: http.build()?, retry, url_template: url_template.to_owned(), max_bytes, policy })
    }

    /// Why `url` must not be fetched, if it must not: a host not allowed, or an address literal
    /// that is internal (names are checked as they resolve).
    fn refusal(&self, url: &str) -> Option<String> {
        let parsed = match reqwest::Url::parse(url) {
            Ok(parsed) => parsed,
            Err(e) => return Some(format!("not a URL: {e}")),
        };
        let Some(host) = parsed.host_str() else { return Some("no host".to_owned()) };
        if !["https", "http"].contains(&parsed.scheme()) {
            return Some(format!("scheme {} is not http(s)", parsed.scheme()));
        }
        if !self.policy.allows_host(host) {
            return Some(format!(
                "{host} is not one of the media hosts ({}; --amplience-media-hosts)",
                self.policy.hosts.join(", ")
            ));
        }
        let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
        if !self.policy.allow_private && literal.is_some_and(is_internal) {
            return Some(format!("{host} is a private or loopback address"));
        }
        None
    }

    pub fn url(&self, link: &MediaLink) -> String {
        fill(&self.url_template, link)
    }

    /// Fetches `link` to `dest` (replacing it), retrying a failed or cut-short fetch from the
    /// start with backoff; a 4xx or a file over the limit fails at once.
    pub async fn fetch_to(&self, link: &MediaLink, dest: &Path) -> Result<Fetched, AmplienceError> {
        let url = self.url(link);
        if let Some(why) = self.refusal(&url) {
            return Err(AmplienceError::MediaRefused { url, why });
        }
        let partial = dest.with_extension("part");
        let fetch = || async {
            let fetched = self.attempt(&url, &partial).await;
            if fetched.is_err() {
                // Nothing half-fetched is left behind, whatever happens next.
                let _ = tokio::fs::remove_file(&partial).await;
            }
            fetched
        };
        let classify = |error: &AmplienceError, attempt| {
            if !error.is_retryable() {
                return Verdict::GiveUp;
            }
            tracing::warn!(%error, attempt, "media fetch failed; retrying");
            Verdict::Retry { after: gridsync_http::ApiError::retry_after(error) }
        };
        let fetched = retry_bounded(&self.retry, fetch, classify).await?;
        tokio::fs::rename(&partial, dest)
            .await
            .map_err(|source| AmplienceError::MediaFile { path: dest.to_owned(), source })?;
        Ok(fetched)
    }

    async fn attempt(&self, url: &str, partial: &Path) -> Result<Fetched, AmplienceError> {
        let transport = |source| AmplienceError::transport("GET", url.to_owned(), source);
        let file_error = |source| AmplienceError::MediaFile { path: partial.to_owned(), source };
        let mut response = self.http.get(url).send().await.map_err(|e| {
            // A redirect off the allowed hosts: refused, the same every time.
            if e.is_redirect() {
                let why = std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string);
                AmplienceError::MediaRefused { url: url.to_owned(), why }
            } else {
                transport(e)
            }
        })?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            let after = retry_after(response.headers());
            let body = response.bytes().await.unwrap_or_default();
            return Err(AmplienceError::from_response("GET", url.to_owned(), status, after, &body));
        }
        let too_large = || AmplienceError::MediaTooLarge { url: url.to_owned(), limit: self.max_bytes };
        let expected = response.content_length();
        if expected.is_some_and(|n| n > self.max_bytes) {
            return Err(too_large());
        }
        let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut file = tokio::fs::File::create(partial).await.map_err(file_error)?;
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            received += chunk.len() as u64;
            if received > self.max_bytes {
                return Err(too_large());
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(file_error)?;
        }
        if let Some(expected) = expected.filter(|&n| n != received) {
            return Err(AmplienceError::MediaTruncated { url: url.to_owned(), expected, received });
        }
        file.sync_all().await.map_err(file_error)?;
        Ok(Fetched { bytes: received, sha256: format!("{:x}", hasher.finalize()), content_type })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_image_and_video_links_anywhere_in_a_body_once_each() {
        let image = json!({
            "_meta": { "schema": "http://bigcontent.io/cms/schema/v1/core#/definitions/image-link" },
            "id": "a1", "name": "terms diagram", "endpoint": "acme", "defaultHost": "cdn.media.amplience.net"
        });
        let video = json!({
            "_meta": { "schema": "http://bigcontent.io/cms/schema/v1/core#/definitions/video-link" },
            "id": "v1", "name": "walkthrough", "endpoint": "acme", "defaultHost": "cdn.media.amplience.net"
        });
        let body =
            json!({ "title": "T", "hero": image, "sections": [{ "media": [video, image] }], "name": "not a link" });
        let links = MediaLink::find_all(&body);
        assert_eq!(
            links.iter().map(|l| (l.name.as_str(), l.kind)).collect::<Vec<_>>(),
            [("terms diagram", "i"), ("walkthrough", "v")]
        );
        let client =
            MediaClient::new(DEFAULT_URL_TEMPLATE, Duration::from_secs(1), DEFAULT_BACKOFF, 10, MediaPolicy::default())
                .unwrap();
        assert_eq!(client.url(&links[0]), "https://cdn.media.amplience.net/i/acme/terms%20diagram");
        assert_eq!(client.url(&links[1]), "https://cdn.media.amplience.net/v/acme/walkthrough");
        assert!(check_template(DEFAULT_URL_TEMPLATE).is_ok());
        assert!(check_template("http://x/{kind").is_err() && check_template("no url {name}").is_err());
    }

    fn link(host: &str) -> MediaLink {
        MediaLink { id: None, name: "terms".into(), endpoint: "acme".into(), default_host: host.into(), kind: "i" }
    }

    /// A link's host comes from content editors: only the media hosts are fetched from, never an
    /// internal address, whatever the link says.
    #[tokio::test]
    async fn links_to_other_hosts_or_internal_addresses_are_refused_unfetched() {
        let client =
            MediaClient::new(DEFAULT_URL_TEMPLATE, Duration::from_secs(1), DEFAULT_BACKOFF, 10, MediaPolicy::default())
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        for host in [
            "169.254.169.254",
            "localhost",
            "internal.svc.cluster.local",
            "evil.example",
            "amplience.net.evil.example",
            "[::1]",
        ] {
            let refused = client.fetch_to(&link(host), &dir.path().join("x")).await.unwrap_err();
            assert!(matches!(refused, AmplienceError::MediaRefused { .. }), "{host}: {refused}");
            assert!(!refused.is_retryable(), "{host}");
        }
        assert!(client.refusal(&client.url(&link("cdn.media.amplience.net"))).is_none());
        assert!(client.refusal(&client.url(&link("acme.a.amplience.net"))).is_none());
        // Allowed by name, internal by address: refused too.
        let inward = MediaPolicy { hosts: vec!["10.0.0.7".into()], allow_private: false };
        let client =
            MediaClient::new(DEFAULT_URL_TEMPLATE, Duration::from_secs(1), DEFAULT_BACKOFF, 10, inward).unwrap();
        assert!(client.refusal(&client.url(&link("10.0.0.7"))).is_some_and(|why| why.contains("private")));
        for (ip, internal) in [
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("192.168.1.1", true),
            ("127.0.0.1", true),
            ("169.254.169.254", true),
            ("100.64.0.1", true),
            ("0.0.0.0", true),
            ("::1", true),
            ("fd00::1", true),
            ("fe80::1", true),
            ("::ffff:127.0.0.1", true),
            ("8.8.8.8", false),
            ("2606:4700::1111", false),
        ] {
            assert_eq!(is_internal(ip.parse().unwrap()), internal, "{ip}");
        }
    }

    /// A redirect off the allowed hosts is not followed; one to an allowed host is.
    #[tokio::test]
    async fn a_redirect_is_followed_only_to_an_allowed_host() {
        use axum::{response::Redirect, routing::get, Router};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new()
            .route("/i/acme/away", get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }))
            .route(
                "/i/acme/here",
                get(move || async move { Redirect::temporary(&format!("http://127.0.0.1:{port}/i/acme/terms")) }),
            )
            .route("/i/acme/terms", get(|| async { "the terms" }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        // The simulator's case: a fixed loopback host, private addresses allowed.
        let template = format!("http://127.0.0.1:{port}/{{kind}}/{{endpoint}}/{{name}}");
        let policy = MediaPolicy { hosts: vec![], allow_private: true };
        let retry = DEFAULT_BACKOFF.giving_up_after(1);
        let client = MediaClient::new(&template, Duration::from_secs(2), retry, 1000, policy).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let away = MediaLink { name: "away".into(), ..link("ignored") };
        let refused = client.fetch_to(&away, &dir.path().join("away")).await.unwrap_err();
        assert!(refused.to_string().contains("not an allowed media host"), "{refused}");
        let here = MediaLink { name: "here".into(), ..link("ignored") };
        let fetched = client.fetch_to(&here, &dir.path().join("here")).await.unwrap();
        assert_eq!(fetched.bytes, 9);
        // Without private addresses allowed, the same loopback host is refused before any request.
        let strict =
            MediaClient::new(&template, Duration::from_secs(2), DEFAULT_BACKOFF, 1000, MediaPolicy::default()).unwrap();
        let refused = strict.fetch_to(&here, &dir.path().join("strict")).await.unwrap_err();
        assert!(matches!(refused, AmplienceError::MediaRefused { .. }), "{refused}");
    }
}
