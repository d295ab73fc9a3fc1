//! Fires a flow's durable timers (see `gridsync_store::Timers`) when the flow's
//! clock says they are due: claims them (one replica wins each), hands each to
//! the flow's [`Fire`] work, and marks it fired only after the work succeeded.
//! Work that fails is retried after a back-off (longer when it cannot succeed
//! as it is, e.g. an unapproved template), never dropped; failures are counted.

use std::{future::Future, sync::Arc, time::Duration};

use gridsync_core::telemetry::Metrics;
use gridsync_store::{Timer, Timers};
use prometheus::{opts, IntCounterVec, IntGaugeVec};
use tokio_util::sync::CancellationToken;

use crate::{clock::Clock, FlowError};

/// How many due timers one look claims.
const BATCH: i64 = 64;
/// Back-off after work that may succeed when tried again (Amplience down).
const TRANSIENT_RETRY: Duration = Duration::from_secs(5);
/// Back-off after work that cannot succeed as it is (an operator must act).
const PERMANENT_RETRY: Duration = Duration::from_secs(300);

/// What a flow does when one of its timers is due.
pub trait Fire: Send + Sync + 'static {
    fn fire(&self, timer: &Timer) -> impl Future<Output = Result<(), FlowError>> + Send;

    /// The kinds of timer this work sets: their series start at zero, so an alert on the
    /// first overdue acknowledgement sees it.
    fn kinds(&self) -> &'static [&'static str] {
        &[]
    }
}

pub struct Scheduler {
    pub timers: Timers,
    pub clock: Clock,
    pub tick: Duration,
    /// Longer than one timer's work, so a live firer keeps its claim.
    pub lease: Duration,
    pub owner: String,
}

impl Scheduler {
    /// Runs in the background until `shutdown` (see [`Self::run`]).
    pub fn spawn<W: Fire>(
        self,
        flow: &'static str,
        work: Arc<W>,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            if let Err(e) = self.run(flow, work, &metrics, shutdown).await {
                tracing::error!(error = %e, flow, "the timers could not start");
            }
        })
    }

    /// Runs until `shutdown`, finishing the timer in hand first.
    pub async fn run<W: Fire>(
        self,
        flow: &str,
        work: Arc<W>,
        metrics: &Metrics,
        shutdown: CancellationToken,
    ) -> Result<(), prometheus::Error> {
        let fired = IntCounterVec::new(
            opts!("flow_timers_fired_total", "Durable timers fired (payment reminders, overdue acknowledgements)."),
            &["flow", "kind"],
        )?;
        let failed = IntCounterVec::new(
            opts!("flow_timer_failures_total", "Timer work that failed and will be retried, by error class."),
            &["flow", "kind", "class"],
        )?;
        let pending = IntGaugeVec::new(
            opts!("flow_timers_pending", "Durable timers waiting for their time."),
            &["flow", "kind"],
        )?;
        let looks = IntCounterVec::new(opts!("flow_timer_looks_total", "Looks for due timers."), &["flow"])?;
        metrics.register(Box::new(fired.clone()))?;
        metrics.register(Box::new(failed.clone()))?;
        metrics.register(Box::new(pending.clone()))?;
        metrics.register(Box::new(looks.clone()))?;
        for kind in work.kinds() {
            fired.with_label_values(&[flow, kind]);
        }
        while !shutdown.is_cancelled() {
            match self.timers.claim_due(self.clock.now_ms(), &self.owner, self.lease, BATCH).await {
                Ok(due) => {
                    for timer in due {
                        if shutdown.is_cancelled() {
                            // Not begun: give it back at once for the next owner.
                            self.release(&timer, Duration::ZERO).await;
                            continue;
                        }
                        match work.fire(&timer).await {
                            Ok(()) => {
                                if let Err(e) = self.timers.fired(&timer.key, &self.owner).await {
                                    tracing::warn!(error = %e, timer = timer.key, "marking a timer fired; it fires again and its work finds itself done");
                                }
                                fired.with_label_values(&[flow, &timer.kind]).inc();
                            }
                            Err(e) => {
                                let transient = e.is_transient();
                                failed.with_label_values(&[flow, &timer.kind, e.class()]).inc();
                                tracing::error!(error = %e, timer = timer.key, transient, "a timer's work failed; retrying later");
                                self.release(&timer, if transient { TRANSIENT_RETRY } else { PERMANENT_RETRY }).await;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading due timers"),
            }
            looks.with_label_values(&[flow]).inc();
            if let Ok(counts) = self.timers.pending_by_kind().await {
                pending.reset();
                for (kind, n) in counts {
                    pending.with_label_values(&[flow, &kind]).set(n);
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(self.tick) => {}
            }
        }
        Ok(())
    }

    async fn release(&self, timer: &Timer, after: Duration) {
        if let Err(e) = self.timers.release(&timer.key, &self.owner, after).await {
            tracing::warn!(error = %e, timer = timer.key, "releasing a timer; its claim expires by itself");
        }
    }
}

/// The event a timer was set for, kept in its payload (Avro, hex) so that its
/// work can report against it as if the record had just arrived.
pub fn encode_source(event: &gridsync_schemas::Event) -> Result<String, FlowError> {
    let codec = gridsync_schemas::codec().map_err(|e| FlowError::Invalid(e.to_string()))?;
    let bytes = codec.encode(event);
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The record of a timer's source event (see [`encode_source`]).
pub fn decode_source(hex: &str) -> Result<gridsync_core::kafka::Record, FlowError> {
    let invalid = |what: String| FlowError::Invalid(format!("a timer's source event: {what}"));
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| invalid("not hex".into()))?;
    let codec = gridsync_schemas::codec().map_err(|e| invalid(e.to_string()))?;
    let decoded = codec.decode(&bytes).map_err(|e| invalid(e.to_string()))?;
    Ok(gridsync_core::kafka::Record {
        event: decoded.event,
        writer_version: 0,
        topic: "timer".into(),
        partition: -1,
        offset: -1,
        key: None,
        trace: gridsync_core::telemetry::TraceContext::new_root(),
    })
}
