//! The hub check every flow consumer runs at start: what its flow needs of
//! Amplience (credentials, repositories, content types assigned with
//! gridsync's schemas, workflow states) is there. Until it is, the consumer
//! stays unready and says why (`/readyz`, the log), and checks again; it
//! consumes nothing meanwhile, so no record fails for a hub that is not set up
//! yet. A template missing, unapproved or broken is logged as a warning and
//! does not hold the flow: it fails only the records that need it
//! (dead-lettered with the reason), while the others flow.

use std::time::Duration;

use gridsync_amplience::setup::{check, HubSpec, Requirements};
use gridsync_core::app::AppError;

use crate::FlowContext;

impl FlowContext {
    /// Checks the hub against `requirements` until it passes (or shutdown), again every
    /// `--hub-check-retry-ms` meanwhile.
    pub async fn await_hub(&self, requirements: &Requirements) -> Result<(), AppError> {
        let retry = Duration::from_millis(self.args.hub_check_retry_ms);
        let spec = HubSpec::shipped().map_err(AppError::other)?;
        let health = &self.deps.health;
        loop {
            let (templates, missing): (Vec<_>, Vec<String>) = match check(&self.amplience, requirements, &spec).await {
                Ok(findings) => {
                    let (templates, hub): (Vec<_>, Vec<_>) =
                        findings.into_iter().filter(|f| !f.ok).partition(|f| f.template);
                    (templates, hub.iter().map(ToString::to_string).collect())
                }
                Err(e) => (Vec::new(), vec![format!("checking the hub: {e}")]),
            };
            if missing.is_empty() {
                for finding in &templates {
                    tracing::warn!(finding = %finding, "the records needing this template will be dead-lettered until it is fixed");
                }
                health.waiting_for(None);
                tracing::info!("the Amplience hub has what this flow needs");
                return Ok(());
            }
            for finding in &missing {
                tracing::warn!(finding = %finding, "the Amplience hub is not ready for this flow; checking again");
            }
            health.waiting_for(Some(format!(
                "the Amplience hub lacks what this flow needs ({}); `gridsync amplience check` says how to fix it",
                missing.join(" | ").replace('\n', " ")
            )));
            tokio::select! {
                _ = self.deps.shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(retry) => {}
            }
        }
    }
}
