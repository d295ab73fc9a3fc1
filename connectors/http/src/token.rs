//! OAuth2 client credentials: one token shared by every request of a client,
//! fetched when first needed, refreshed shortly before it expires, and dropped
//! when the API answers 401 (revoked or expired early).

use std::{marker::PhantomData, time::Duration};

use tokio::{sync::Mutex, time::Instant};

use crate::{ApiError, Secret};

/// Refresh this long before the token expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// How the client proves who it is, as each API documents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// `client_id` and `client_secret` in a form body (Amplience).
    Form,
    /// HTTP Basic `client_id:client_secret`, the grant type in the form body
    /// or in the token URL's query (Trading Grid).
    Basic,
}

#[derive(Debug, serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Debug, Clone)]
struct CachedToken {
    value: String,
    refresh_at: Instant,
}

/// A client-credentials token source for one client id; `E` is the API's error.
#[derive(Debug)]
pub struct TokenSource<E> {
    http: reqwest::Client,
    token_url: String,
    grant: Grant,
    client_id: String,
    client_secret: Secret,
    cached: Mutex<Option<CachedToken>>,
    error: PhantomData<fn() -> E>,
}

impl<E: ApiError> TokenSource<E> {
    pub fn new(
        http: reqwest::Client,
        token_url: String,
        grant: Grant,
        client_id: String,
        client_secret: Secret,
    ) -> Self {
        TokenSource { http, token_url, grant, client_id, client_secret, cached: Mutex::new(None), error: PhantomData }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// A valid token: the cached one, or a new one. Concurrent callers wait for
    /// one fetch instead of each fetching their own.
    pub async fn token(&self) -> Result<String, E> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(token.value.clone());
        }
        let fetched = self.fetch().await?;
        let value = fetched.value.clone();
        *cached = Some(fetched);
        Ok(value)
    }

    /// Forgets `rejected` (answered with 401) so the next call fetches a new
    /// token; a token already replaced by another caller is left alone.
    pub async fn invalidate(&self, rejected: &str) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|t| t.value == rejected) {
            *cached = None;
        }
    }

    async fn fetch(&self) -> Result<CachedToken, E> {
        let request = match self.grant {
            Grant::Form => self.http.post(&self.token_url).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.expose()),
            ]),
            Grant::Basic => self
                .http
                .post(&self.token_url)
                .basic_auth(&self.client_id, Some(self.client_secret.expose()))
                .form(&[("grant_type", "client_credentials")]),
        };
        let transport = |source| E::transport("POST", self.token_url.clone(), source);
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let retry_after = crate::retry_after(response.headers());
        let body = response.bytes().await.map_err(transport)?;
        if status == 429 || status >= 500 {
            return Err(E::from_response("POST", self.token_url.clone(), status, retry_after, &body));
        }
        if !(200..300).contains(&status) {
            // The body names the problem (`invalid_client`, ...) and holds no secret.
            let message = String::from_utf8_lossy(&body).chars().take(200).collect();
            return Err(E::credentials(status, message));
        }
        let token: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| E::unexpected("POST", self.token_url.clone(), format!("token response: {e}")))?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(300));
        let refresh_at = Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN).max(lifetime / 2);
        tracing::debug!(url = %self.token_url, expires_in = lifetime.as_secs(), "fetched an access token");
        Ok(CachedToken { value: token.access_token, refresh_at })
    }
}
