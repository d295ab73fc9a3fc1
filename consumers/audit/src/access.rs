//! Who may read the audit view, and from where.
//!
//! - **API tokens**: a file of named tokens, each stored as its SHA-256 (never the token), for
//!   every partner or for some (`partners = ["ACME"]`: a partner's account team sees its
//!   partners), revocable (`revoked = true`, or the entry removed: the file is read again when
//!   it changes, and a revoked token's sessions end with it). Programs send
//!   `Authorization: Bearer <token>`; people log in on `/login` with one and get a session
//!   cookie (HttpOnly, SameSite=Strict). `gridsync audit token` makes one.
//! - **Hosts**: a request must name one of the allowed hosts (DNS rebinding: a page on another
//!   site cannot make a browser read the view under its own name).
//! - **Headers**: every answer forbids framing, sniffing and referrers, and the page may load
//!   nothing but its own style sheet.
//!
//! Without a tokens file the view is open, which only a loopback address allows.

use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, Instant, SystemTime},
};

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "gridsync_audit";
/// How long a session lasts.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// How often the tokens file is looked at for changes, at most.
const RELOAD_EVERY: Duration = Duration::from_secs(1);
/// Hosts a loopback listener answers by default.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// What a reader may see: every partner, or some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The token's name (or `open` without tokens), for logs.
    pub name: String,
    /// `None`: every partner.
    pub partners: Option<BTreeSet<String>>,
}

impl Grant {
    /// What an open view (no tokens file, loopback only) grants.
    pub fn everything() -> Self {
        Grant { name: "open".to_owned(), partners: None }
    }

    /// Whether this reader may see what concerns `partner`.
    pub fn sees(&self, partner: &str) -> bool {
        self.partners.as_ref().is_none_or(|partners| partners.contains(partner))
    }

    /// Whether this reader sees every partner (what is not about one partner, such as dead
    /// letters, is for them alone).
    pub fn sees_all(&self) -> bool {
        self.partners.is_none()
    }
}

/// One entry of the tokens file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    /// The token's SHA-256, 64 hex digits.
    sha256: String,
    /// The partners it may see; every partner when absent.
    #[serde(default)]
    partners: Option<Vec<String>>,
    #[serde(default)]
    revoked: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("reading the audit tokens {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the audit tokens {path}: {why}")]
    Invalid { path: String, why: String },
}

/// The tokens file, read again when it changes.
#[derive(Debug)]
struct Tokens {
    path: PathBuf,
    loaded: RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    modified: Option<SystemTime>,
    checked: Instant,
    /// Token hash → what it grants; revoked tokens are not here.
    grants: HashMap<[u8; 32], Grant>,
}

fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The SHA-256 of `token`, as the tokens file holds it.
pub fn token_hash(token: &str) -> String {
    sha256(token).iter().map(|b| format!("{b:02x}")).collect()
}

/// A new token: 32 random bytes, URL-safe, with a prefix that says what it is.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("gsa_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The tokens file as it is now.
fn read_grants(path: &Path) -> Result<Loaded, AccessError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| AccessError::Read { path: shown.clone(), source })?;
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let file: TokensFile =
        toml::from_str(&text).map_err(|e| AccessError::Invalid { path: shown.clone(), why: e.to_string() })?;
    let mut grants = HashMap::new();
    for entry in file.token.into_iter().filter(|t| !t.revoked) {
        let hash = hex32(&entry.sha256).ok_or_else(|| AccessError::Invalid {
            path: shown.clone(),
            why: format!("token {:?}: sha256 must be 64 hex digits", entry.name),
        })?;
        grants.insert(hash, Grant { name: entry.name, partners: entry.partners.map(|p| p.into_iter().collect()) });
    }
    Ok(Loaded { modified, checked: Instant::now(), grants })
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Tokens {
    fn load(path: &Path) -> Result<Self, AccessError> {
        Ok(Tokens { path: path.to_owned(), loaded: RwLock::new(read_grants(path)?) })
    }

    /// What `token` grants, if it is a valid, unrevoked token (the file read again if it changed).
    fn grant(&self, token: &str) -> Option<Grant> {
        self.refresh();
        let hash = sha256(token);
        let loaded = self.loaded.read().unwrap_or_else(PoisonError::into_inner);
        // A map lookup by hash: equal hashes of different tokens are not a concern, and the
        // hash does not leak the token's bytes through timing.
        loaded.grants.get(&hash).cloned()
    }

    /// The grant of the token named `name`, if it is still valid (a session's token may have
    /// been revoked since).
    fn named(&self, name: &str) -> Option<Grant> {
        self.refresh();
        let loaded = self.loaded.read().unwrap_or_else(PoisonError::into_inner);
        loaded.grants.values().find(|g| g.name == name).cloned()
    }

    fn refresh(&self) {
        {
            let loaded = self.loaded.read().unwrap_or_else(PoisonError::into_inner);
            if loaded.checked.elapsed() < RELOAD_EVERY {
                return;
            }
        }
        let mut loaded = self.loaded.write().unwrap_or_else(PoisonError::into_inner);
        loaded.checked = Instant::now();
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if modified == loaded.modified {
            return;
        }
        match read_grants(&self.path) {
            Ok(now) => {
                tracing::info!(tokens = now.grants.len(), "audit tokens read again");
                *loaded = now;
            }
            // A file half-written or broken: nobody gets in until it is right (fail closed).
            Err(e) => {
                tracing::error!(error = %e, "audit tokens unreadable: every token refused until they are fixed");
                loaded.grants.clear();
                loaded.modified = modified;
            }
        }
    }
}

/// A logged-in person: the token they logged in with (by name, so that revoking it ends the
/// session), or what their sign-in through the OpenID Connect provider granted.
#[derive(Debug, Clone)]
enum Holder {
    Token(String),
    Person(Grant),
}

#[derive(Debug, Clone)]
struct Session {
    holder: Holder,
    expires: Instant,
}

/// The audit view's access rules.
#[derive(Debug)]
pub struct Access {
    tokens: Option<Tokens>,
    oidc: Option<Arc<crate::oidc::Oidc>>,
    sessions: Mutex<HashMap<String, Session>>,
    /// Host names (without port) a request may name.
    allowed_hosts: Vec<String>,
}

impl Access {
    /// Tokens from `tokens_file` (none: the view is open), requests naming one of
    /// `allowed_hosts`.
    pub fn new(tokens_file: Option<&Path>, allowed_hosts: Vec<String>) -> Result<Self, AccessError> {
        let tokens = tokens_file.map(Tokens::load).transpose()?;
        let allowed_hosts = allowed_hosts.into_iter().map(|h| h.trim().to_ascii_lowercase()).collect();
        Ok(Access { tokens, oidc: None, sessions: Mutex::default(), allowed_hosts })
    }

    /// People sign in through `oidc` too, and its JWTs are taken as bearer tokens.
    pub fn with_oidc(mut self, oidc: crate::oidc::Oidc) -> Self {
        self.oidc = Some(Arc::new(oidc));
        self
    }

    pub fn oidc(&self) -> Option<&Arc<crate::oidc::Oidc>> {
        self.oidc.as_ref()
    }

    pub fn requires_login(&self) -> bool {
        self.tokens.is_some() || self.oidc.is_some()
    }

    /// A session for `holder`, lasting `ttl` at most.
    fn open_session(&self, holder: Holder, ttl: Duration) -> String {
        let id = new_token();
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(id.clone(), Session { holder, expires: now + ttl.min(SESSION_TTL) });
        id
    }

    /// What `token` grants, and a session for it; `None` for an unknown or revoked one (or when
    /// there are no tokens).
    pub fn login(&self, token: &str) -> Option<(String, Grant)> {
        let grant = self.tokens.as_ref()?.grant(token.trim())?;
        let id = self.open_session(Holder::Token(grant.name.clone()), SESSION_TTL);
        Some((id, grant))
    }

    /// A session for someone who signed in through the provider, for as long as their ID token
    /// holds (eight hours at most).
    pub fn person_signed_in(&self, grant: Grant, lasts: Duration) -> String {
        self.open_session(Holder::Person(grant), lasts)
    }

    pub fn logout(&self, session: &str) {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner).remove(session);
    }

    /// Who is asking: a bearer token (an API token, or a JWT of the provider's), or a session
    /// cookie whose token is still valid.
    async fn grant(&self, headers: &HeaderMap) -> Option<Grant> {
        if !self.requires_login() {
            return Some(Grant::everything());
        }
        if let Some(bearer) = header_str(headers, header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer ")) {
            return match (&self.oidc, &self.tokens) {
                (Some(oidc), _) if crate::oidc::Oidc::is_jwt(bearer) => match oidc.bearer(bearer).await {
                    Ok(grant) => Some(grant),
                    Err(e) => {
                        tracing::warn!(error = %e, "audit bearer token refused");
                        None
                    }
                },
                (_, Some(tokens)) => tokens.grant(bearer),
                (_, None) => None,
            };
        }
        let session = session_cookie(headers)?;
        let holder = {
            let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            sessions.get(session).filter(|s| s.expires > Instant::now())?.holder.clone()
        };
        match holder {
            Holder::Token(name) => self.tokens.as_ref()?.named(&name),
            Holder::Person(grant) => Some(grant),
        }
    }

    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(host) = header_str(headers, header::HOST) else { return false };
        let host = host.trim().to_ascii_lowercase();
        // The port is the listener's own; the name is what matters.
        let name = match host.rsplit_once(':') {
            Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name.to_owned(),
            _ => host,
        };
        self.allowed_hosts.contains(&name)
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The session id the request's cookie holds.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (name, value) = c.trim().split_once('=')?;
        (name == SESSION_COOKIE).then_some(value)
    })
}

/// Paths anyone may load: the login form, the sign-in's way there and back, the style sheet.
fn is_public(path: &str) -> bool {
    ["/login", "/oidc/login", "/oidc/callback"].contains(&path) || path.starts_with("/assets/")
}

/// The guard every request passes: an allowed host, then a valid token or session (the grant
/// put in the request for the handlers), and the security headers on every answer.
pub async fn guard(State(access): State<Arc<Access>>, mut request: Request, next: Next) -> Response {
    let mut response = if !access.host_allowed(request.headers()) {
        (StatusCode::BAD_REQUEST, "this host name is not one the audit view answers to\n").into_response()
    } else if is_public(request.uri().path()) {
        next.run(request).await
    } else {
        match access.grant(request.headers()).await {
            Some(grant) => {
                request.extensions_mut().insert(grant);
                next.run(request).await
            }
            None if request.uri().path().starts_with("/api/") => {
                let mut response = (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(serde_json::json!({"error": "a valid token is needed: Authorization: Bearer <token>"})),
                )
                    .into_response();
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            None => Redirect::to("/login").into_response(),
        }
    };
    let headers = response.headers_mut();
    let policy = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; \
                  frame-ancestors 'none'; base-uri 'none'";
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[tokio::test]
    async fn tokens_are_kept_hashed_scoped_and_revocable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        let (all, acme) = (new_token(), new_token());
        let file = format!(
            "[[token]]\nname = \"all\"\nsha256 = \"{}\"\n\n[[token]]\nname = \"acme-team\"\nsha256 = \"{}\"\npartners = [\"ACME\"]\n",
            token_hash(&all),
            token_hash(&acme)
        );
        std::fs::write(&path, &file).unwrap();
        let access = Access::new(Some(&path), vec!["localhost".into()]).unwrap();
        let bearer = |t: &str| {
            let asked = headers(&[(header::AUTHORIZATION, &format!("Bearer {t}"))]);
            let access = &access;
            async move { access.grant(&asked).await }
        };
        assert_eq!(bearer(&all).await.map(|g| g.sees_all()), Some(true));
        let scoped = bearer(&acme).await.unwrap();
        assert!(scoped.sees("ACME") && !scoped.sees("GLOBEX") && !scoped.sees_all());
        assert_eq!(bearer("gsa_guessed").await, None);
        assert_eq!(access.grant(&HeaderMap::new()).await, None, "no token, no entry");

        // A session from a login holds while its token does.
        let (session, _) = access.login(&acme).unwrap();
        let cookie = headers(&[(header::COOKIE, &format!("other=1; {SESSION_COOKIE}={session}"))]);
        assert_eq!(access.grant(&cookie).await.map(|g| g.name), Some("acme-team".to_owned()));
        std::thread::sleep(RELOAD_EVERY + Duration::from_millis(50));
        let revoked = file.replace("partners = [\"ACME\"]\n", "partners = [\"ACME\"]\nrevoked = true\n");
        std::fs::write(&path, revoked).unwrap();
        // Some file systems keep whole-second times: the change must show as a new time.
        let later = SystemTime::now() + Duration::from_secs(2);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(later).unwrap();
        assert_eq!(access.grant(&cookie).await, None, "revoked: its session ends too");
        assert_eq!(bearer(&acme).await, None);
        assert!(bearer(&all).await.is_some());
        assert!(Access::new(Some(&path), vec![]).is_ok());
        std::fs::write(&path, "[[token]]\nname = \"x\"\nsha256 = \"plain-token\"\n").unwrap();
        assert!(Access::new(Some(&path), vec![]).unwrap_err().to_string().contains("64 hex digits"));
    }

    #[test]
    fn only_the_allowed_host_names_are_answered() {
        let access = Access::new(None, LOOPBACK_HOSTS.map(str::to_owned).to_vec()).unwrap();
        for allowed in ["127.0.0.1:9476", "localhost", "LOCALHOST:80", "[::1]:9476"] {
            assert!(access.host_allowed(&headers(&[(header::HOST, allowed)])), "{allowed}");
        }
        for refused in ["evil.example", "evil.example:9476", "127.0.0.1.evil.example"] {
            assert!(!access.host_allowed(&headers(&[(header::HOST, refused)])), "{refused}");
        }
        assert!(!access.host_allowed(&HeaderMap::new()), "no Host, no answer");
    }
}
