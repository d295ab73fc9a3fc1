//! The hub's request budget, shared: with `--amplience-hub-requests-per-second`
//! every flow consumer (each replica of each) heartbeats into a store they all
//! share (`--amplience-budget-store-url`) and spaces its requests to an equal
//! share of the budget among the members alive. Scaling a consumer group out
//! lowers each share instead of multiplying the load on the hub; a member that
//! stops leaves, and the others' shares grow at their next heartbeat.

use std::{sync::Arc, time::Duration};

use gridsync_amplience::ManagementClient;
use gridsync_core::app::{AppError, ConsumerDeps};
use gridsync_store::{HubBudget, Store};

/// How often a member says it is alive; members silent for three of these no longer count.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// Requests a member may send at once after a quiet spell.
const BURST: u32 = 5;

struct Member {
    budget: HubBudget,
    hub: String,
    id: String,
    per_second: f64,
    client: Arc<ManagementClient>,
    share: prometheus::Gauge,
}

impl Member {
    /// Heartbeats and takes its share; answers the share.
    async fn beat(&self) -> Result<f64, gridsync_store::StoreError> {
        let window = i64::try_from(3 * HEARTBEAT.as_millis()).unwrap_or(i64::MAX);
        let members = self.budget.heartbeat(&self.hub, &self.id, window).await?;
        let share = self.per_second / members as f64;
        self.client.limiter().set_per_second(share, BURST).await;
        self.share.set(share);
        Ok(share)
    }
}

/// Joins the hub's budget when one is configured: the client's rate is set to this member's
/// share now, and kept to it until shutdown.
pub async fn join(
    args: &crate::FlowArgs,
    client: &Arc<ManagementClient>,
    member: &str,
    deps: &ConsumerDeps,
) -> Result<(), AppError> {
    if args.hub_requests_per_second <= 0.0 {
        return Ok(());
    }
    let url = args.budget_store_url.as_deref().ok_or_else(|| {
        AppError::other(
            "--amplience-hub-requests-per-second needs --amplience-budget-store-url \
             (GRIDSYNC_AMPLIENCE_BUDGET_STORE_URL): a store every component using the hub shares",
        )
    })?;
    let share = prometheus::Gauge::new(
        "amplience_budget_share_requests_per_second",
        "This process's share of the Amplience hub's request budget, in requests per second.",
    )?;
    deps.metrics.register(Box::new(share.clone()))?;
    let member = Member {
        budget: connect(url).await?.hub_budget(),
        hub: args.amplience.hub_id.clone().unwrap_or_default(),
        id: member.to_owned(),
        per_second: args.hub_requests_per_second,
        client: client.clone(),
        share,
    };
    let first = member.beat().await.map_err(AppError::other)?;
    tracing::info!(share = first, hub_budget = member.per_second, "sharing the Amplience hub's request budget");
    let shutdown = deps.shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(HEARTBEAT) => {}
            }
            if let Err(e) = member.beat().await {
                // The share last taken stays in force until the store answers again.
                tracing::warn!(error = %e, "the hub budget's store did not answer; keeping the last share");
            }
        }
        if let Err(e) = member.budget.leave(&member.hub, &member.id).await {
            tracing::warn!(error = %e, "leaving the hub budget");
        }
    });
    Ok(())
}

/// The shared store; several processes starting at once on one SQLite file may find it busy
/// creating its tables: a few more tries.
async fn connect(url: &str) -> Result<Store, AppError> {
    let mut tries = 0;
    loop {
        match Store::connect(url).await {
            Ok(store) => return Ok(store),
            Err(e) if tries < 10 => {
                tries += 1;
                tracing::info!(error = %e, "the hub budget's store is busy; trying again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(AppError::other(e)),
        }
    }
}
