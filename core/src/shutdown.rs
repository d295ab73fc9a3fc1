//! Graceful shutdown: SIGTERM or SIGINT cancels one token that every task of
//! the process watches. Tasks finish their in-flight work, then return; the
//! binary waits for them (drop-to-wait) before committing and exiting.

use tokio_util::sync::CancellationToken;

/// Returns a token cancelled on the first SIGTERM or SIGINT.
pub fn on_signals() -> std::io::Result<CancellationToken> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let which = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = cancel.cancelled() => return,
        };
        tracing::info!(signal = which, "shutting down: finishing in-flight work");
        cancel.cancel();
    });
    Ok(token)
}
