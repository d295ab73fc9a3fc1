//! The hub's set-up through the Management API, as Amplience exposes it:
//! the hub, its repositories (and the content types assigned to each),
//! content-type schemas, content types (and their cached schemas), webhooks.

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    response::Response,
};
use serde_json::{json, Value};

use crate::{
    api::{answer, lock, parse, Actor, PageQuery, Shared},
    hub::{request, Hub, HubError},
    types::{Assign, CreateSchema, RegisterType, UpdateSchema, UpdateType},
    webhooks::{Subscription, SubscriptionChange},
};

/// A HAL page of `items` under `_embedded[embedded]`.
pub fn hal_page(embedded: &str, items: Vec<Value>, page: &PageQuery, base: &str) -> Value {
    let size = page.size.clamp(1, 100);
    let total_pages = items.len().div_ceil(size);
    let total = items.len();
    let shown: Vec<Value> = items.into_iter().skip(page.page * size).take(size).collect();
    let mut links = json!({ "self": { "href": format!("{base}?page={}&size={size}", page.page) } });
    if page.page + 1 < total_pages {
        links["next"] = json!({ "href": format!("{base}?page={}&size={size}", page.page + 1) });
    }
    json!({
        "_embedded": { embedded: shown },
        "_links": links,
        "page": { "size": size, "totalElements": total, "totalPages": total_pages, "number": page.page },
    })
}

/// A HAL page of one of hub `hub`'s lists (`/hubs/{hub}/<embedded>`), its items from `items`.
fn listed(
    state: &Shared,
    hub: &str,
    page: &PageQuery,
    embedded: &str,
    items: impl FnOnce(&Hub) -> Vec<Value>,
) -> Response {
    let h = lock(&state.hub);
    let base = format!("/v2/content/hubs/{hub}/{embedded}");
    answer(check_hub(&h, hub).map(|()| hal_page(embedded, items(&h), page, &base)), StatusCode::OK)
}

fn check_hub(hub: &Hub, id: &str) -> Result<(), HubError> {
    if hub.hub_id == id {
        Ok(())
    } else {
        Err(HubError::new(404, "HUB_NOT_FOUND", format!("no hub {id}")))
    }
}

fn repository_json(hub: &Hub, id: &str) -> Value {
    json!({
        "id": id, "name": id, "label": id, "status": "ACTIVE", "features": [],
        "contentTypes": hub.types.assigned_json(id),
        "_links": {
            "self": { "href": format!("/v2/content/content-repositories/{id}") },
            "assign-content-type": { "href": format!("/v2/content/content-repositories/{id}/content-types") },
        },
    })
}

pub async fn get_hub(State(state): State<Shared>, Path(hub): Path<String>) -> Response {
    let h = lock(&state.hub);
    let found = check_hub(&h, &hub).map(|()| {
        json!({
            "id": h.hub_id, "name": "amp-sim", "label": "amp-sim", "status": "ACTIVE",
            "_links": { "self": { "href": format!("/v2/content/hubs/{hub}") } },
        })
    });
    answer(found, StatusCode::OK)
}

pub async fn list_repositories(
    State(state): State<Shared>,
    Path(hub): Path<String>,
    Query(page): Query<PageQuery>,
) -> Response {
    listed(&state, &hub, &page, "content-repositories", |h| {
        h.repositories.iter().map(|r| repository_json(h, r)).collect()
    })
}

pub async fn get_repository(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let h = lock(&state.hub);
    answer(h.repository(&id).map(|()| repository_json(&h, &id)), StatusCode::OK)
}

pub async fn assign_type(State(state): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let mut h = lock(&state.hub);
    let assigned = (|| {
        h.repository(&id)?;
        let request: Assign = request(parse(&body)?)?;
        h.types.assign(&id, &request)?;
        Ok(repository_json(&h, &id))
    })();
    answer(assigned, StatusCode::OK)
}

pub async fn unassign_type(State(state): State<Shared>, Path((id, type_id)): Path<(String, String)>) -> Response {
    let mut h = lock(&state.hub);
    let unassigned = h.repository(&id).and_then(|()| h.types.unassign(&id, &type_id)).map(|()| Value::Null);
    answer(unassigned, StatusCode::NO_CONTENT)
}

pub async fn list_schemas(
    State(state): State<Shared>,
    Path(hub): Path<String>,
    Query(page): Query<PageQuery>,
) -> Response {
    listed(&state, &hub, &page, "content-type-schemas", |h| {
        h.types.schemas().into_iter().map(|s| s.to_json()).collect()
    })
}

pub async fn create_schema(
    State(state): State<Shared>,
    actor: axum::Extension<Actor>,
    Path(hub): Path<String>,
    body: Bytes,
) -> Response {
    let mut h = lock(&state.hub);
    let created = (|| {
        check_hub(&h, &hub)?;
        let request: CreateSchema = request(parse(&body)?)?;
        Ok(h.types.create_schema(request, &actor.0 .0)?.to_json())
    })();
    answer(created, StatusCode::CREATED)
}

pub async fn get_schema(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    answer(lock(&state.hub).types.schema(&id).map(|s| s.to_json()), StatusCode::OK)
}

pub async fn update_schema(
    State(state): State<Shared>,
    actor: axum::Extension<Actor>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let updated = (|| {
        let request: UpdateSchema = request(parse(&body)?)?;
        Ok(lock(&state.hub).types.update_schema(&id, request, &actor.0 .0)?.to_json())
    })();
    answer(updated, StatusCode::OK)
}

pub async fn list_types(
    State(state): State<Shared>,
    Path(hub): Path<String>,
    Query(page): Query<PageQuery>,
) -> Response {
    listed(&state, &hub, &page, "content-types", |h| h.types.types().into_iter().map(|t| t.to_json()).collect())
}

pub async fn register_type(State(state): State<Shared>, Path(hub): Path<String>, body: Bytes) -> Response {
    let mut h = lock(&state.hub);
    let registered = (|| {
        check_hub(&h, &hub)?;
        let request: RegisterType = request(parse(&body)?)?;
        Ok(h.types.register(request)?.to_json())
    })();
    answer(registered, StatusCode::CREATED)
}

pub async fn get_type(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    answer(lock(&state.hub).types.content_type(&id).map(|t| t.to_json()), StatusCode::OK)
}

pub async fn update_type(State(state): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let updated = (|| {
        let request: UpdateType = request(parse(&body)?)?;
        Ok(lock(&state.hub).types.update_type(&id, request)?.to_json())
    })();
    answer(updated, StatusCode::OK)
}

pub async fn get_cached_schema(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let h = lock(&state.hub);
    answer(h.types.content_type(&id).map(|t| t.cached_json(&h.hub_id)), StatusCode::OK)
}

/// `PATCH /content-types/{id}/schema`: the type caches its schema's current version.
pub async fn sync_cached_schema(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let mut h = lock(&state.hub);
    let hub_id = h.hub_id.clone();
    answer(h.types.sync(&id).map(|t| t.cached_json(&hub_id)), StatusCode::OK)
}

pub async fn list_webhooks(
    State(state): State<Shared>,
    Path(hub): Path<String>,
    Query(page): Query<PageQuery>,
) -> Response {
    listed(&state, &hub, &page, "webhooks", |_| state.webhooks.subscriptions.list(&hub))
}

pub async fn create_webhook(State(state): State<Shared>, Path(hub): Path<String>, body: Bytes) -> Response {
    let created = (|| {
        check_hub(&lock(&state.hub), &hub)?;
        let subscription: Subscription = request(parse(&body)?)?;
        state.webhooks.subscriptions.create(&hub, subscription)
    })();
    answer(created, StatusCode::CREATED)
}

pub async fn get_webhook(State(state): State<Shared>, Path((hub, id)): Path<(String, String)>) -> Response {
    let found = check_hub(&lock(&state.hub), &hub).and_then(|()| state.webhooks.subscriptions.get(&hub, &id));
    answer(found, StatusCode::OK)
}

pub async fn update_webhook(
    State(state): State<Shared>,
    Path((hub, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let updated = (|| {
        check_hub(&lock(&state.hub), &hub)?;
        let change: SubscriptionChange = request(parse(&body)?)?;
        state.webhooks.subscriptions.update(&hub, &id, change)
    })();
    answer(updated, StatusCode::OK)
}

pub async fn delete_webhook(State(state): State<Shared>, Path((hub, id)): Path<(String, String)>) -> Response {
    let deleted = check_hub(&lock(&state.hub), &hub)
        .and_then(|()| state.webhooks.subscriptions.delete(&id))
        .map(|()| Value::Null);
    answer(deleted, StatusCode::NO_CONTENT)
}
