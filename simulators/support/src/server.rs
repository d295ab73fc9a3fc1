//! What every simulator process does the same way: serve a router until a
//! shutdown token fires, stop on SIGTERM or Ctrl-C, log to stderr, and read
//! `id:secret` credentials from flags.

use std::net::SocketAddr;

use axum::Router;
use tokio_util::sync::CancellationToken;

/// A simulator serving on a loopback port.
pub struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Serves `app` on `listener` until `shutdown`.
    pub fn serve(listener: tokio::net::TcpListener, app: Router, shutdown: CancellationToken) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
        });
        Ok(Server { addr, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits for the server to stop.
    pub async fn stopped(self) -> std::io::Result<()> {
        self.task.await.unwrap_or(Ok(()))
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
}

/// Cancels `shutdown` on SIGTERM or Ctrl-C.
pub fn cancel_on_signal(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else { return };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        shutdown.cancel();
    });
}

/// `id:secret` pairs from a repeatable flag named `flag`.
pub fn credentials(values: &[String], flag: &str) -> Result<Vec<(String, String)>, String> {
    values
        .iter()
        .map(|c| {
            c.split_once(':')
                .map(|(id, secret)| (id.to_owned(), secret.to_owned()))
                .ok_or(format!("{flag} takes id:secret"))
        })
        .collect()
}
