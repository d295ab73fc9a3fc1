//! The Lens poller: asks Lens for transactions whose status changed since the
//! watermark (less a look-back, for updates that arrive late), publishes what
//! changed for each (see `lens_events`), and only then remembers the new
//! state and moves the watermark. A crash repeats at most the work since the
//! last remembered state, under the same event ids.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use gridsync_core::kafka::{EventProducer, PublishError};
use gridsync_core::retry::{logged_unless, retry_logged, retry_until, Backoff};
use gridsync_schemas::{
    events::{ExceptionKind, Severity},
    Event, Timestamp,
};
use gridsync_store::{SourceStates, Store, StoreError};
use gridsync_trading_grid::lens::{parse_lens_time, LensClient, LensError, LensTransaction, SearchQuery};
use tokio_util::sync::CancellationToken;

use crate::{
    args::LensPollArgs,
    exception::{self, About},
    lens_events::{changes, fingerprint, LensContext, CONTENT_KEYS},
    telemetry::LensMetrics,
};

/// Where the poller keeps its progress in the store.
const SOURCE: &str = "lens";

/// A page's transactions being handled at once, at most.
const TRANSACTIONS_IN_FLIGHT: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Lens(#[from] LensError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("shutting down")]
    Shutdown,
}

pub struct LensPoller {
    pub client: LensClient,
    pub store: Store,
    pub producer: EventProducer,
    pub metrics: LensMetrics,
    pub shutdown: CancellationToken,
    /// How a broker, store or mailbox away for a while is waited for.
    pub retry: Backoff,
    pub args: LensPollArgs,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl LensPoller {
    /// Polls until shutdown; a failed poll (Lens down past its retries, the
    /// store unavailable) is logged and counted, and the next one starts over
    /// from the same watermark.
    pub async fn run(self) {
        tracing::info!(every_ms = self.args.lens_poll_ms, "polling Lens for status changes");
        self.metrics.polling();
        loop {
            match self.poll().await {
                Ok(published) => {
                    self.metrics.poll("ok");
                    tracing::debug!(published, "polled Lens");
                }
                Err(PollError::Shutdown) => break,
                Err(e) => {
                    self.metrics.poll("error");
                    tracing::warn!(error = %e, "polling Lens failed; trying again next round");
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(self.args.lens_poll_ms)) => {}
            }
        }
    }

    /// One round: every page since the watermark. Returns the events published.
    pub async fn poll(&self) -> Result<usize, PollError> {
        let lookback = chrono::Duration::minutes(i64::from(self.args.lens_lookback_minutes));
        let marks = self.store.watermarks();
        let states = self.store.source_states(SOURCE);
        let watermark = marks.get(SOURCE).await?.as_deref().and_then(parse_lens_time);
        let mut newest = watermark.unwrap_or_else(|| Utc::now() - lookback);
        let mut query = SearchQuery {
            count: self.args.lens_page_size,
            offset: 0,
            status_since: Some(rfc3339(newest - lookback)),
            scrollid: None,
            content_keys: CONTENT_KEYS.map(str::to_owned).to_vec(),
        };
        let ctx = LensContext { own_addresses: &self.args.own_addresses, ingested_at: Timestamp::now() };
        let mut published = 0;
        loop {
            let page = self.client.search(&query).await?;
            // A page's transactions are handled together; each one's own changes in order.
            let mut handled = futures::stream::iter(&page.transactions)
                .map(|tx| self.handle(tx, &states, &ctx))
                .buffer_unordered(TRANSACTIONS_IN_FLIGHT);
            while let Some(events) = handled.next().await {
                published += events?;
            }
            for tx in &page.transactions {
                for date in [&tx.statusdate, &tx.fastatusdate] {
                    if let Some(at) = date.as_deref().and_then(parse_lens_time) {
                        newest = newest.max(at.min(Utc::now()));
                    }
                }
            }
            query.offset += page.transactions.len() as u64;
            if page.transactions.is_empty() || query.offset >= page.total {
                break;
            }
            query.scrollid = page.scrollid;
        }
        marks.set(SOURCE, &rfc3339(newest)).await?;
        Ok(published)
    }
}

impl LensPoller {
    /// Publishes what changed in one transaction since its remembered state, then remembers
    /// the new state. Returns the events published.
    async fn handle(
        &self,
        tx: &LensTransaction,
        states: &SourceStates,
        ctx: &LensContext<'_>,
    ) -> Result<usize, PollError> {
        let previous = states.get(&tx.transactionid).await?;
        let current = fingerprint(tx);
        if previous.as_deref() == Some(current.as_str()) {
            return Ok(0);
        }
        let mut published = 0;
        for event in changes(tx, previous.as_deref(), ctx) {
            let permanent = |e: &PublishError| !e.is_transient();
            let publish = || self.producer.publish(&event, None);
            match retry_until(&self.shutdown, &self.retry, publish, logged_unless("publishing", permanent)).await {
                None => return Err(PollError::Shutdown),
                Some(Ok(_)) => {
                    self.metrics.event(event.event_type().name());
                    published += 1;
                }
                // Never publishable as it is: said as an exception, and the poller
                // goes on instead of holding up every change behind it.
                Some(Err(e)) => {
                    self.metrics.event("unpublishable");
                    tracing::error!(transaction = %tx.transactionid, error = %e, "a Lens change cannot be published");
                    let exception = unpublishable(&event, &e);
                    retry_logged(&self.shutdown, &self.retry, "publishing", || self.producer.publish(&exception, None))
                        .await
                        .ok_or(PollError::Shutdown)?;
                }
            }
        }
        // Remembered only once its events are durable.
        states.set(&tx.transactionid, &current).await?;
        Ok(published)
    }
}

/// The exception saying `event` (a Lens change) could not be published, and why.
fn unpublishable(event: &Event, error: &PublishError) -> Event {
    let envelope = event.envelope();
    let reason = format!(
        "Lens reported a change of {} that cannot be published ({}: {error}); it is skipped",
        envelope.business_key, envelope.event_type
    );
    let about = About {
        what: "unpublishable",
        kind: ExceptionKind::Unpublishable,
        severity: Severity::Error,
        reason,
        details: Default::default(),
    };
    exception::about(event, about)
}
