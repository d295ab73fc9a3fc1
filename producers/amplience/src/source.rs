//! The producer's source: the webhook server, from start to a clean stop.

use std::{sync::Arc, time::Duration};

use gridsync_amplience::{management::ManagementArgs, DeliveryClient, ManagementClient};
use gridsync_core::app::{wait_for_brokers, AppError, ProducerDeps};
use gridsync_store::Store;

use crate::{
    args::WebhookArgs,
    receiver::{Credentials, Receiver},
    rejected::RejectedSampler,
    resolve::{is_credentials, Resolver},
    telemetry::WebhookMetrics,
};

/// How often refused credentials are tried again while webhooks are not arriving.
const CREDENTIALS_PROBE: Duration = Duration::from_secs(15);

/// While Amplience refuses gridsync's credentials, asks it again every [`CREDENTIALS_PROBE`]
/// (an unready producer may get no webhook to find out by), and brings the producer back when
/// it answers.
async fn probe_credentials(receiver: Arc<Receiver>, shutdown: tokio_util::sync::CancellationToken) {
    let Some(management) = receiver.resolver.management.clone() else { return };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CREDENTIALS_PROBE) => {}
        }
        if !receiver.credentials.is_failing() {
            continue;
        }
        match management.workflow_states().await {
            Ok(_) => receiver.credentials.accepted(&receiver.metrics),
            Err(e) if is_credentials(&e) => {
                tracing::warn!(error = %e, "Amplience still refuses gridsync's credentials")
            }
            Err(e) => tracing::debug!(error = %e, "credentials probe: Amplience unavailable"),
        }
    }
}

fn source_error(e: impl std::error::Error + Send + Sync + 'static) -> AppError {
    AppError::Source(Box::new(e))
}

pub async fn run(deps: ProducerDeps, args: WebhookArgs) -> Result<(), AppError> {
    let secrets = args.secrets().map_err(source_error)?;
    let config = args.mapping().map_err(source_error)?;
    let store = Store::connect(&args.store_url).await.map_err(source_error)?;
    let management = if args.management.is_configured() {
        // Answers are due within seconds: fewer, shorter retries than the default.
        let bounded = ManagementArgs {
            max_attempts: args.management.max_attempts.min(3),
            max_backoff_ms: args.management.max_backoff_ms.min(2_000),
            ..args.management.clone()
        };
        Some(Arc::new(ManagementClient::new(&bounded).map_err(source_error)?))
    } else {
        tracing::warn!(
            "no Management API client configured: workflow states are matched by id, publishes are quarantined"
        );
        None
    };
    let delivery = args
        .delivery_url
        .as_deref()
        .map(|url| DeliveryClient::new(url, Duration::from_secs(5), args.delivery_retry()))
        .transpose()
        .map_err(source_error)?;
    let producer = deps.producer.clone();
    let catalog = producer.catalog().clone();
    let receiver = Arc::new(Receiver {
        secrets,
        resolver: Resolver { config, hub_id: args.management.hub_id.clone(), management, delivery },
        deliveries: store.webhook_deliveries(),
        producer: producer.clone(),
        dead_letter_topic: catalog.dead_letter_topic("amp-producer")?.to_owned(),
        publish_timeout: args.publish_timeout(),
        metrics: WebhookMetrics::register(&deps.metrics)?,
        locks: Receiver::locks(),
        pending: std::sync::Mutex::default(),
        rejected: RejectedSampler::default(),
        credentials: Credentials { health: deps.health.clone(), failing: Default::default() },
        claims: store.side_effects(),
        // Unique per process, as the flows' ledger owners are: a restarted replica is a new owner.
        instance: format!("amp-producer/{}/{}", std::process::id(), uuid::Uuid::new_v4().simple()),
    });
    tokio::spawn(probe_credentials(receiver.clone(), deps.shutdown.clone()));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| AppError::Io { what: "binding the webhook address", source })?;
    let bound = listener.local_addr().map_err(|source| AppError::Io { what: "reading the webhook address", source })?;
    tracing::info!(url = %format!("http://{bound}{}", crate::receiver::WEBHOOK_PATH), store = %store.backend(), "webhook endpoint listening");
    let app = crate::receiver::router(receiver, args.max_body_bytes);
    // Timeouts and a connection cap as every listener has. The body limit is the receiver's own
    // (`--max-body-bytes`, which bounds what is read, and counts and samples what it refuses):
    // one in front of it would answer 413 uncounted.
    let limits = gridsync_core::serve::Limits { max_body_bytes: usize::MAX, ..gridsync_core::serve::Limits::default() };
    // Serving starts at once: while Kafka is unreachable, webhooks get 503 and come back.
    let server = tokio::spawn(gridsync_core::serve::serve(listener, app, limits, deps.shutdown.clone()));
    let retention = Duration::from_secs(u64::from(args.store_retention_days) * 24 * 3600);
    let pruning = deps.shutdown.clone().cancelled_owned();
    tokio::spawn(async move { store.prune_hourly(retention, pruning).await });
    wait_for_brokers(&deps).await;
    deps.shutdown.cancelled().await;
    deps.health.set_ready(false);
    // In-flight webhooks finish (graceful shutdown); the runtime then flushes the producer.
    server.await.map_err(source_error)
}
