//! Retrying transient failures (broker, store, disk or network unavailable)
//! until they pass, without ever skipping work, and giving up only on shutdown.

use std::{fmt::Display, future::Future};

use gridsync_core::kafka::RetryPolicy;
use tokio_util::sync::CancellationToken;

/// Runs `op` until it succeeds, backing off between failures; `None` on shutdown.
pub async fn retrying<T, E: Display, Fut: Future<Output = Result<T, E>>>(
    shutdown: &CancellationToken,
    what: &str,
    mut op: impl FnMut() -> Fut,
) -> Option<T> {
    let policy = RetryPolicy::default();
    let mut attempt = 0;
    loop {
        match op().await {
            Ok(value) => return Some(value),
            Err(e) => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "{what} failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(policy.delay(attempt)) => {}
                }
            }
        }
    }
}

/// As [`retrying`], except that a failure `permanent` says will never pass
/// ends the retries at once, as `Some(Err)`: it must not hold up the work.
pub async fn retrying_unless<T, E: Display, Fut: Future<Output = Result<T, E>>>(
    shutdown: &CancellationToken,
    what: &str,
    mut op: impl FnMut() -> Fut,
    permanent: impl Fn(&E) -> bool,
) -> Option<Result<T, E>> {
    let permanent = &permanent;
    let attempt = || {
        let running = op();
        async move {
            match running.await {
                Err(e) if permanent(&e) => Ok(Err(e)),
                other => other.map(Ok),
            }
        }
    };
    retrying(shutdown, what, attempt).await
}
