//! A local Amplience: the token endpoint, the Content Management API, the
//! Content Delivery API and a signed webhook sender, on one port, behaving as
//! documented (versions and 409s, HAL paging, workflow states, `{"errors"}`
//! bodies) with injectable faults (429 + Retry-After, 5xx, slow answers,
//! expired tokens). Used by the tests and the local demo.

mod api;
mod demo;
mod hub;
pub mod media;
pub mod templates;
mod webhooks;

use std::{net::SocketAddr, sync::Arc, time::Duration};

pub use api::Client;
pub use gridsync_sim_support::faults::FaultSpec;
use gridsync_sim_support::server::Server;
pub use webhooks::{DeliveryLog, WebhookTarget};

/// How the simulated hub is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub hub_id: String,
    pub repositories: Vec<String>,
    pub workflow_states: Vec<String>,
    pub clients: Vec<Client>,
    pub token_ttl: Duration,
    pub webhook: Option<WebhookTarget>,
    /// Seed the message templates of the notifications flow at start (approved).
    pub seed_templates: bool,
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
            seed_templates: false,
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
        let mut hub = hub::Hub::new(&config.hub_id, config.repositories.clone(), &config.workflow_states);
        if config.seed_templates {
            templates::seed(&mut hub)
                .map_err(|e| std::io::Error::other(format!("seeding templates: {}", e.message)))?;
        }
        let sender = webhooks::WebhookSender::start(config.webhook.clone());
        let state = Arc::new(api::SimState::new(hub, config.clients.clone(), config.token_ttl, sender));
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
