//! The Content Delivery API: published content by id or delivery key.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use gridsync_http::{Backoff, RateLimiter};

use crate::{error::AmplienceError, Transport};

/// Reads published content from `https://{hub}.cdn.content.amplience.net`.
#[derive(Debug, Clone)]
pub struct DeliveryClient {
    transport: Transport,
    base_url: String,
}

impl DeliveryClient {
    pub fn new(base_url: &str, timeout: Duration, retry: Backoff) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("gridsync/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let transport = Transport::new(http, None, RateLimiter::new(0.0, 1), retry);
        Ok(DeliveryClient { transport, base_url: base_url.trim_end_matches('/').to_owned() })
    }

    /// The published content of item `id` (`content`, with `_meta`), linked items inlined.
    pub async fn by_id(&self, id: &str) -> Result<Value, AmplienceError> {
        self.content(&format!("/content/id/{id}?depth=all&format=inlined")).await
    }

    /// The published content with delivery key `key`.
    pub async fn by_key(&self, key: &str) -> Result<Value, AmplienceError> {
        self.content(&format!("/content/key/{key}?depth=all&format=inlined")).await
    }

    async fn content(&self, path: &str) -> Result<Value, AmplienceError> {
        let url = format!("{}{path}", self.base_url);
        let response = self.transport.send(Method::GET, &url, None, None).await?;
        let mut body: Value = response.json::<_, AmplienceError>("GET", &url)?;
        body.get_mut("content").map(Value::take).ok_or_else(|| AmplienceError::Unexpected {
            method: "GET",
            url,
            message: "no `content` in the response".into(),
        })
    }
}
