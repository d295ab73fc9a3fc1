//! Metrics of the API clients a flow uses, read from the clients' own counts
//! when Prometheus scrapes.

use std::sync::Arc;

use gridsync_amplience::ManagementClient;
use prometheus::{core::Collector, core::Desc, proto::MetricFamily, IntCounterVec, Opts};

/// `gridsync_amplience_api_responses_total{status}`: the Management API's
/// answers by HTTP status (0: none: refused, reset, timed out), retries included.
pub struct AmplienceCalls {
    client: Arc<ManagementClient>,
    opts: Opts,
    desc: Vec<Desc>,
}

impl AmplienceCalls {
    pub fn new(client: Arc<ManagementClient>) -> Result<Self, prometheus::Error> {
        let opts = Opts::new(
            "amplience_api_responses_total",
            "Amplience Management API answers by HTTP status (0: no answer), retries included.",
        );
        let desc = IntCounterVec::new(opts.clone(), &["status"])?.desc().into_iter().cloned().collect();
        Ok(AmplienceCalls { client, opts, desc })
    }
}

impl Collector for AmplienceCalls {
    fn desc(&self) -> Vec<&Desc> {
        self.desc.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Ok(counts) = IntCounterVec::new(self.opts.clone(), &["status"]) else { return Vec::new() };
        for (status, n) in self.client.stats().responses() {
            counts.with_label_values(&[&status.to_string()]).inc_by(n);
        }
        counts.collect()
    }
}
