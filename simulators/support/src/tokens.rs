//! Bearer tokens a simulator's token endpoint issues: who each belongs to and
//! when it expires; a test can expire them all at once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::{extract::State, http::header, http::HeaderMap, http::StatusCode, routing::post, Router};

#[derive(Debug, Default)]
pub struct Tokens {
    issued: Mutex<HashMap<String, (String, Instant)>>,
}

impl Tokens {
    /// A new token for `client`, valid for `ttl`.
    pub fn issue(&self, client: &str, ttl: Duration) -> String {
        let token = format!("{:032x}", rand_token());
        self.issued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.clone(), (client.to_owned(), Instant::now() + ttl));
        token
    }

    /// The client behind the request's `Authorization: Bearer` token, if it is known and unexpired.
    pub fn client(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let token = value.get(..7).filter(|p| p.eq_ignore_ascii_case("bearer ")).map(|_| value[7..].trim())?;
        let issued = self.issued.lock().unwrap_or_else(PoisonError::into_inner);
        issued.get(token).filter(|(_, expires)| Instant::now() < *expires).map(|(client, _)| client.clone())
    }

    /// Every issued token expires now, as if the sessions had timed out.
    pub fn expire_all(&self) {
        for (_, expires) in self.issued.lock().unwrap_or_else(PoisonError::into_inner).values_mut() {
            *expires = Instant::now();
        }
    }
}

/// 128 random-enough bits from the standard library's hasher seeds (no crypto needed in a simulator).
fn rand_token() -> u128 {
    use std::hash::{BuildHasher, RandomState};
    let state = RandomState::new();
    (u128::from(state.hash_one(1u8)) << 64) | u128::from(state.hash_one(2u8))
}

/// `POST /__sim/expire-tokens`, to merge into a simulator's router.
pub fn router<S: Clone + Send + Sync + 'static>(tokens: Arc<Tokens>) -> Router<S> {
    async fn expire(State(tokens): State<Arc<Tokens>>) -> StatusCode {
        tokens.expire_all();
        StatusCode::NO_CONTENT
    }
    Router::new().route("/__sim/expire-tokens", post(expire)).with_state(tokens)
}
