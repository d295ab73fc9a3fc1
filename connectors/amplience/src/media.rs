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

use std::{path::Path, time::Duration};

use gridsync_http::{retry_after, ApiError, RetryPolicy};
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
    retry: RetryPolicy,
    url_template: String,
    max_bytes: u64,
}

impl MediaClient {
    /// `read_timeout` bounds each wait for data, not the whole fetch: a large file may take long.
    pub fn new(
        url_template: &str,
        read_timeout: Duration,
        retry: RetryPolicy,
        max_bytes: u64,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(read_timeout)
            .read_timeout(read_timeout)
            .user_agent(concat!("gridsync/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(MediaClient { http, retry, url_template: url_template.to_owned(), max_bytes })
    }

    pub fn url(&self, link: &MediaLink) -> String {
        fill(&self.url_template, link)
    }

    /// Fetches `link` to `dest` (replacing it), retrying a failed or cut-short fetch from the
    /// start with backoff; a 4xx or a file over the limit fails at once.
    pub async fn fetch_to(&self, link: &MediaLink, dest: &Path) -> Result<Fetched, AmplienceError> {
        let url = self.url(link);
        let partial = dest.with_extension("part");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.attempt(&url, &partial).await {
                Ok(fetched) => {
                    tokio::fs::rename(&partial, dest)
                        .await
                        .map_err(|source| AmplienceError::MediaFile { path: dest.to_owned(), source })?;
                    return Ok(fetched);
                }
                Err(error) => error,
            };
            // Nothing half-fetched is left behind, whatever happens next.
            let _ = tokio::fs::remove_file(&partial).await;
            if !error.is_retryable() || attempt >= self.retry.max_attempts {
                return Err(error);
            }
            let delay = self.retry.delay(attempt, gridsync_http::ApiError::retry_after(&error));
            tracing::warn!(%error, attempt, delay_ms = delay.as_millis() as u64, "media fetch failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self, url: &str, partial: &Path) -> Result<Fetched, AmplienceError> {
        let transport = |source| AmplienceError::transport("GET", url.to_owned(), source);
        let file_error = |source| AmplienceError::MediaFile { path: partial.to_owned(), source };
        let mut response = self.http.get(url).send().await.map_err(transport)?;
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
            MediaClient::new(DEFAULT_URL_TEMPLATE, Duration::from_secs(1), RetryPolicy::default(), 10).unwrap();
        assert_eq!(client.url(&links[0]), "https://cdn.media.amplience.net/i/acme/terms%20diagram");
        assert_eq!(client.url(&links[1]), "https://cdn.media.amplience.net/v/acme/walkthrough");
        assert!(check_template(DEFAULT_URL_TEMPLATE).is_ok());
        assert!(check_template("http://x/{kind").is_err() && check_template("no url {name}").is_err());
    }
}
