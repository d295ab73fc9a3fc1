//! The media CDN: `GET /i/{endpoint}/{name}` (images) and `/v/...` (videos),
//! as Amplience serves the assets content links to. Tests and the demo put
//! assets with `PUT /__sim/media/{endpoint}/{name}`: the request body as the
//! asset, or `?generated_bytes=N` for a large asset produced on the fly (a
//! known byte pattern, never held in memory), to show a client streams it.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use axum::{
    body::{Body, Bytes},
    extract::{Path, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use crate::api::Shared;

/// One asset.
#[derive(Debug, Clone)]
enum Asset {
    Stored { content_type: String, bytes: Bytes },
    Generated { content_type: String, bytes: u64 },
}

/// Assets by `(endpoint, name)`, and how often each was asked for.
#[derive(Debug, Default)]
pub struct MediaStore {
    assets: Mutex<HashMap<(String, String), Asset>>,
    fetches: Mutex<HashMap<String, u64>>,
}

impl MediaStore {
    pub fn put_stored(&self, endpoint: &str, name: &str, content_type: &str, bytes: Bytes) {
        let asset = Asset::Stored { content_type: content_type.to_owned(), bytes };
        self.assets.lock().unwrap_or_else(PoisonError::into_inner).insert((endpoint.into(), name.into()), asset);
    }

    /// Requests per `endpoint/name`, faulted ones included.
    pub fn fetches(&self) -> HashMap<String, u64> {
        self.fetches.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Byte `i` of a generated asset: what a test recomputes to check it whole.
pub fn generated_byte(i: u64) -> u8 {
    (i % 251) as u8
}

const CHUNK: u64 = 64 * 1024;

#[derive(Deserialize)]
pub struct PutQuery {
    generated_bytes: Option<u64>,
}

/// `PUT /__sim/media/{endpoint}/{*name}`.
pub async fn put(
    State(state): State<Shared>,
    Path((endpoint, name)): Path<(String, String)>,
    Query(query): Query<PutQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let asset = match query.generated_bytes {
        Some(bytes) => Asset::Generated { content_type, bytes },
        None => Asset::Stored { content_type, bytes: body },
    };
    state.media.assets.lock().unwrap_or_else(PoisonError::into_inner).insert((endpoint, name), asset);
    StatusCode::NO_CONTENT
}

/// `GET /i/{endpoint}/{*name}` and `/v/...`.
pub async fn get(State(state): State<Shared>, Path((endpoint, name)): Path<(String, String)>) -> Response {
    *state
        .media
        .fetches
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(format!("{endpoint}/{name}"))
        .or_default() += 1;
    let asset = state.media.assets.lock().unwrap_or_else(PoisonError::into_inner).get(&(endpoint, name)).cloned();
    let (content_type, length, body) = match asset {
        None => return (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
        Some(Asset::Stored { content_type, bytes }) => (content_type, bytes.len() as u64, Body::from(bytes)),
        Some(Asset::Generated { content_type, bytes }) => {
            let chunks = futures::stream::iter((0..bytes).step_by(CHUNK as usize).map(move |start| {
                let chunk: Vec<u8> = (start..(start + CHUNK).min(bytes)).map(generated_byte).collect();
                Ok::<_, std::convert::Infallible>(Bytes::from(chunk))
            }));
            (content_type, bytes, Body::from_stream(chunks))
        }
    };
    ([(header::CONTENT_TYPE, content_type), (header::CONTENT_LENGTH, length.to_string())], body).into_response()
}
