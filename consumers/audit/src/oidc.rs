//! People sign in to the audit view through the company's OpenID Connect provider, and programs
//! may send the provider's JWTs: the authorization-code flow (with PKCE, a state and a nonce)
//! for the page, bearer tokens validated against the issuer's published keys (JWKS) for the API.
//!
//! What a person may read comes from a claim of theirs (`--oidc-partners-claim`, by default
//! `gridsync_partners`): a list of partner ids, or `"*"` for every partner. Without the claim,
//! nothing: an account the provider knows is not, by that alone, one that may read the audit.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{PoisonError, RwLock},
    time::{Duration, Instant},
};

use base64::Engine;
use jsonwebtoken::{jwk::JwkSet, Algorithm, DecodingKey, Validation};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::access::Grant;

/// How long a sign-in may take between leaving for the provider and coming back.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// How often the provider's keys are fetched again, at most (a token signed with a key not
/// seen yet asks for them sooner, once this long has passed).
const KEYS_REFRESH: Duration = Duration::from_secs(60);

/// How to reach the provider and what it calls gridsync.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The issuer URL (`iss`); its `/.well-known/openid-configuration` says the rest.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Where the provider sends people back: this view's `/oidc/callback`, as they reach it.
    pub redirect_url: String,
    /// The claim holding the partners someone may see.
    pub partners_claim: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("OpenID Connect provider {issuer}: {why}")]
    Provider { issuer: String, why: String },
    #[error("the token is not valid: {0}")]
    Token(String),
    #[error("the sign-in is not valid: {0}")]
    SignIn(String),
}

#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

#[derive(Debug)]
struct Keys {
    set: JwkSet,
    fetched: Instant,
}

/// A sign-in under way: what must come back with it.
#[derive(Debug)]
struct Pending {
    nonce: String,
    verifier: String,
    started: Instant,
}

/// The provider, as discovered at start.
#[derive(Debug)]
pub struct Oidc {
    config: OidcConfig,
    discovery: Discovery,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    pending: std::sync::Mutex<HashMap<String, Pending>>,
}

fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Oidc {
    /// Reads the provider's configuration and keys; an issuer that names itself otherwise than
    /// it was given is refused.
    pub async fn discover(config: OidcConfig) -> Result<Self, OidcError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| OidcError::Provider { issuer: config.issuer.clone(), why: e.to_string() })?;
        let provider = |why: String| OidcError::Provider { issuer: config.issuer.clone(), why };
        let url = format!("{}/.well-known/openid-configuration", config.issuer.trim_end_matches('/'));
        let discovery: Discovery = http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| provider(format!("GET {url}: {e}")))?
            .json()
            .await
            .map_err(|e| provider(format!("{url}: {e}")))?;
        if discovery.issuer.trim_end_matches('/') != config.issuer.trim_end_matches('/') {
            return Err(provider(format!("it names itself {:?}", discovery.issuer)));
        }
        let set = fetch_keys(&http, &discovery.jwks_uri).await.map_err(provider)?;
        Ok(Oidc {
            config,
            discovery,
            http,
            keys: RwLock::new(Keys { set, fetched: Instant::now() }),
            pending: std::sync::Mutex::default(),
        })
    }

    /// Where to send someone to sign in: the provider's authorization endpoint, with a state,
    /// a nonce and a PKCE challenge kept for their return.
    pub fn sign_in_url(&self) -> String {
        let (state, nonce, verifier) = (random(), random(), random());
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.retain(|_, p| p.started.elapsed() < PENDING_TTL);
        pending.insert(state.clone(), Pending { nonce: nonce.clone(), verifier, started: Instant::now() });
        let query = [
            ("response_type", "code"),
            ("client_id", &self.config.client_id),
            ("redirect_uri", &self.config.redirect_url),
            ("scope", "openid profile email"),
            ("state", &state),
            ("nonce", &nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        let encoded: Vec<String> = query
            .iter()
            .map(|(k, v)| {
                format!("{k}={}", percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC))
            })
            .collect();
        let separator = if self.discovery.authorization_endpoint.contains('?') { '&' } else { '?' };
        format!("{}{separator}{}", self.discovery.authorization_endpoint, encoded.join("&"))
    }

    /// Someone back from the provider with `code` for `state`: the code exchanged for an ID
    /// token, validated (issuer, audience, expiry, signature, nonce); what they may see, and
    /// for how long.
    pub async fn finish_sign_in(&self, code: &str, state: &str) -> Result<(Grant, Duration), OidcError> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(state)
            .filter(|p| p.started.elapsed() < PENDING_TTL)
            .ok_or_else(|| OidcError::SignIn("no sign-in under way for this state (expired, or not ours)".into()))?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.config.redirect_url),
            ("client_id", &self.config.client_id),
            ("client_secret", &self.config.client_secret),
            ("code_verifier", &pending.verifier),
        ];
        #[derive(Deserialize)]
        struct TokenResponse {
            id_token: String,
        }
        let answer: TokenResponse = self
            .http
            .post(&self.discovery.token_endpoint)
            .form(&form)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| OidcError::SignIn(format!("exchanging the code: {e}")))?
            .json()
            .await
            .map_err(|e| OidcError::SignIn(format!("the token endpoint's answer: {e}")))?;
        let claims = self.validate(&answer.id_token).await?;
        if claims.get("nonce").and_then(|n| n.as_str()) != Some(pending.nonce.as_str()) {
            return Err(OidcError::SignIn("the ID token's nonce is not this sign-in's".into()));
        }
        let grant = self.grant(&claims)?;
        let now = chrono::Utc::now().timestamp();
        let lasts = claims.get("exp").and_then(serde_json::Value::as_i64).map_or(0, |exp| (exp - now).max(0));
        Ok((grant, Duration::from_secs(lasts.unsigned_abs())))
    }

    /// Whether `token` looks like a JWT (three dot-separated parts), not an API token.
    pub fn is_jwt(token: &str) -> bool {
        token.split('.').count() == 3
    }

    /// What the bearer of `token`, a JWT of the provider's, may see.
    pub async fn bearer(&self, token: &str) -> Result<Grant, OidcError> {
        let claims = self.validate(token).await?;
        self.grant(&claims)
    }

    /// The claims of `token`, once its signature (a key the issuer publishes), issuer, audience
    /// and times are checked.
    async fn validate(&self, token: &str) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| OidcError::Token(e.to_string()))?;
        if matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(OidcError::Token("a shared-secret signature (HS*) is not accepted".into()));
        }
        let key = match self.key(header.kid.as_deref()) {
            Some(key) => key,
            None => {
                self.refresh_keys().await;
                self.key(header.kid.as_deref())
                    .ok_or_else(|| OidcError::Token(format!("no key {:?} among the issuer's", header.kid)))?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[self.discovery.issuer.as_str()]);
        validation.set_audience(&[self.config.client_id.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| OidcError::Token(e.to_string()))
    }

    fn key(&self, kid: Option<&str>) -> Option<DecodingKey> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let jwk = match kid {
            Some(kid) => keys.set.find(kid),
            None if keys.set.keys.len() == 1 => keys.set.keys.first(),
            None => None,
        }?;
        DecodingKey::from_jwk(jwk).ok()
    }

    async fn refresh_keys(&self) {
        if self.keys.read().unwrap_or_else(PoisonError::into_inner).fetched.elapsed() < KEYS_REFRESH {
            return;
        }
        match fetch_keys(&self.http, &self.discovery.jwks_uri).await {
            Ok(set) => {
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Keys { set, fetched: Instant::now() }
            }
            Err(why) => tracing::warn!(%why, "fetching the OpenID Connect provider's keys"),
        }
    }

    /// What the claims grant: the partners claim's ids, or every partner for `"*"`.
    fn grant(&self, claims: &serde_json::Map<String, serde_json::Value>) -> Result<Grant, OidcError> {
        let who = ["email", "preferred_username", "sub"]
            .iter()
            .find_map(|c| claims.get(*c).and_then(|v| v.as_str()))
            .unwrap_or("someone")
            .to_owned();
        let claim = &self.config.partners_claim;
        let partners = match claims.get(claim) {
            Some(serde_json::Value::String(all)) if all == "*" => None,
            Some(serde_json::Value::Array(ids)) => {
                Some(ids.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect::<BTreeSet<String>>())
            }
            _ => return Err(OidcError::Token(format!("{who} has no {claim:?} claim: they may not read the audit"))),
        };
        Ok(Grant { name: format!("oidc:{who}"), partners })
    }
}

async fn fetch_keys(http: &reqwest::Client, url: &str) -> Result<JwkSet, String> {
    http.get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("GET {url}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("{url}: {e}"))
}
