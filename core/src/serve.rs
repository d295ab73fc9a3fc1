//! Every HTTP listener of gridsync (metrics and health, the webhooks, the audit view) is served
//! here, with the limits a listener reachable from a network needs: a client must send its
//! request headers within a time, a request must be answered within another (`408`), a body is
//! refused past a size (`413`), and the connections held at once are capped. A slow client
//! sending its headers a byte at a time (slow loris) is cut, and while many are, the listener
//! still answers others.
//!
//! axum's own `serve` has none of these: a half-sent request was held open indefinitely.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use axum::{body::Body, extract::ConnectInfo, http::StatusCode, Router};
use hyper::{body::Incoming, Request};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// What a listener allows each client.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A client has this long to send a request's headers, on a new connection and between the
    /// requests of a kept-alive one; then the connection is closed.
    pub header_read_timeout: Duration,
    /// A request not answered within this is answered `408 Request Timeout`.
    pub request_timeout: Duration,
    /// Connections served at once; more wait to be accepted until one closes.
    pub max_connections: usize,
    /// Request bodies larger than this are refused (`413 Payload Too Large`).
    pub max_body_bytes: usize,
}

/// 10 s to send the headers.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// 30 s to answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// 256 connections at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// 64 KiB of body: gridsync's GET endpoints take none; the webhook receiver sets its own.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// Binds `addr` and serves `app` under `limits` until `shutdown`; returns the address bound and
/// the server task.
pub async fn bind(
    addr: SocketAddr,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, tokio::spawn(serve(listener, app, limits, shutdown))))
}

/// Serves `app` on `listener` under `limits` until `shutdown`, then lets the requests in flight
/// finish (for at most the request timeout). Handlers can read the client's address
/// (`ConnectInfo<SocketAddr>`).
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, shutdown: CancellationToken) {
    let app = app.layer(tower_http::limit::RequestBodyLimitLayer::new(limits.max_body_bytes)).layer(
        tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout),
    );
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
            () = shutdown.cancelled() => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, a connection reset before it was accepted: the
                    // listener goes on once the moment passes.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.oneshot(request.map(Body::new)).await.unwrap_or_else(|e| match e {})) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client gone or cut off by a timeout: nothing to do but let the slot go.
            if let Err(e) = connection.await {
                tracing::debug!(%remote, error = %e, "connection ended");
            }
            drop(permit);
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.request_timeout) => tracing::warn!("requests still in flight at shutdown were cut"),
    }
}
