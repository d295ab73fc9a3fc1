//! A local Trading Grid for development and tests:
//! - Lens: `POST /v1/oauth2/tokens` (HTTP Basic consumer key and secret) and
//!   `POST /visibility_transaction_search` (GraphQL `getTransactions`, sorted
//!   by status date, paged by offset or scroll id), with injectable faults
//!   (`POST /__sim/faults`, scopes `lens` and `token`: 401, 429 + Retry-After,
//!   5xx, slow answers) and `POST /__sim/expire-tokens`;
//! - `POST|GET /__sim/transactions` to set or read what Lens reports;
//! - a mailbox partner ([`partner`]) that picks up outbound files as Trading
//!   Grid would, records them in Lens as delivered, and answers each EDI
//!   interchange with an accepting 997/CONTRL in the inbound mailbox.

mod lens;
pub mod partner;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use gridsync_sim_support::server::Server;
pub use lens::Ledger;

/// A consumer key allowed to get tokens.
#[derive(Debug, Clone)]
pub struct Consumer {
    pub key: String,
    pub secret: String,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub consumers: Vec<Consumer>,
    /// Token lifetime (Trading Grid's are about 10 hours).
    pub token_ttl: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            consumers: vec![Consumer { key: "gridsync".into(), secret: "gridsync-secret".into() }],
            token_ttl: Duration::from_secs(36_000),
        }
    }
}

/// A running simulator.
pub struct Simulator {
    pub addr: SocketAddr,
    /// What Lens reports; the mailbox partner adds to it.
    pub ledger: Arc<Ledger>,
    server: Server,
}

impl Simulator {
    /// Serves on `listener` until `shutdown`.
    pub async fn start(
        config: SimConfig,
        listener: tokio::net::TcpListener,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> std::io::Result<Self> {
        let ledger = Arc::new(Ledger::default());
        let server = Server::serve(listener, lens::router(config, ledger.clone()), shutdown)?;
        Ok(Simulator { addr: server.addr, ledger, server })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Waits for the server to stop.
    pub async fn stopped(self) -> std::io::Result<()> {
        self.server.stopped().await
    }
}
