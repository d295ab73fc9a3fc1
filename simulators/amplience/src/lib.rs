//! A local Amplience: the token endpoint, the Content Management API, the
//! Content Delivery API and a signed webhook sender, on one port, as strict as
//! a hub is documented to be: content items only under content types
//! registered and assigned to their repository, their bodies validated
//! against the type's JSON Schema; delivery keys unique; versions checked;
//! unknown request fields refused; webhooks only to the subscriptions made
//! through the API; a request rate and the publish limit answered with 429 and
//! `Retry-After`; errors as `{"errors":[...]}`. It starts empty (no content
//! types, templates or webhooks): `gridsync amplience setup` prepares it as it
//! prepares a real hub. Faults can be injected (429 + Retry-After, 5xx, slow
//! answers, expired tokens). Used by the tests and the local demo.

mod admin;
mod api;
mod demo;
mod hub;
mod limits;
pub mod media;
mod types;
mod webhooks;

use std::{net::SocketAddr, sync::Arc, time::Duration};

pub use api::Client;
pub use gridsync_sim_support::faults::FaultSpec;
use gridsync_sim_support::server::Server;
pub use limits::PUBLISHES_PER_MINUTE;
pub use types::CORE_URI;
pub use webhooks::{DeliveryLog, WebhookTarget};

/// Amplience's core definitions as amp-sim resolves them (`$ref`s to `CORE_URI`).
pub const CORE_SCHEMA: &str = include_str!("core-schema.json");

/// How the simulated hub is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub hub_id: String,
    pub repositories: Vec<String>,
    pub workflow_states: Vec<String>,
    pub clients: Vec<Client>,
    pub token_ttl: Duration,
    /// A webhook subscription to every event, made at start (else only those made through the API).
    pub webhook: Option<WebhookTarget>,
    /// Management API requests a second before 429s (0: no limit).
    pub requests_per_second: f64,
    /// Publishes a minute before 429s.
    pub publishes_per_minute: usize,
}

/// The defaults: one hub, two repositories, the workflow states gridsync's
/// default mapping uses, and one client (`gridsync` / `gridsync-secret`).
impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            hub_id: "5f0000000000000000000001".into(),
            repositories: vec!["5f00000000000000000000a1".into(), "5f00000000000000000000a2".into()],
            workflow_states: [
                "Draft",
                "In review",
                "Approved",
                "Payment confirmed",
                "Dispute resolved",
                "Open",
                "Resolved",
                "Withdrawn",
            ]
            .map(String::from)
            .to_vec(),
            clients: vec![Client { id: "gridsync".into(), secret: "gridsync-secret".into() }],
            token_ttl: Duration::from_secs(300),
            webhook: None,
            requests_per_second: 0.0,
            publishes_per_minute: PUBLISHES_PER_MINUTE,
        }
    }
}

/// A running simulator.
pub struct Simulator {
    pub addr: SocketAddr,
    server: Server,
}

impl Simulator {
    /// Serves on `listener` until `shutdown` (or the task is dropped).
    pub async fn start(
        config: SimConfig,
        listener: tokio::net::TcpListener,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> std::io::Result<Self> {
        let hub = hub::Hub::new(&config.hub_id, config.repositories.clone(), &config.workflow_states);
        let sender = webhooks::WebhookSender::start(config.webhook.clone());
        let limits = limits::Limits::new(config.requests_per_second, config.publishes_per_minute);
        let state = Arc::new(api::SimState::new(hub, config.clients.clone(), config.token_ttl, sender, limits));
        let server = Server::serve(listener, api::router(state), shutdown)?;
        Ok(Simulator { addr: server.addr, server })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Waits for the server to stop.
    pub async fn stopped(self) -> std::io::Result<()> {
        self.server.stopped().await
    }
}
