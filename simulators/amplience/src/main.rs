//! `amp-sim`: the Amplience simulator as a process, for the local demo.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use clap::Parser;
use gridsync_amp_sim::{Client, SimConfig, Simulator, WebhookTarget};
use gridsync_amplience::Secret;
use gridsync_sim_support::server;

#[derive(Debug, Parser)]
#[command(name = "amp-sim", about = "A local Amplience: token, Management and Delivery APIs, signed webhooks, faults.")]
struct Cli {
    /// Address to serve on.
    #[arg(long, env = "AMP_SIM_LISTEN", default_value = "127.0.0.1:9480")]
    listen: SocketAddr,
    /// A webhook subscription to every event made at start, to this URL (without it, webhooks
    /// go only where subscriptions made through the API say: `gridsync amplience setup`).
    #[arg(long, env = "AMP_SIM_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// The secret that subscription signs with.
    #[arg(long, env = "AMP_SIM_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// A client allowed to get tokens, `id:secret`; repeatable. Default: gridsync:gridsync-secret.
    #[arg(long = "client", env = "AMP_SIM_CLIENTS", value_delimiter = ',')]
    clients: Vec<String>,
    /// The client `gridsync`, with the secret in this file (as the binaries read theirs).
    #[arg(long, env = "AMP_SIM_CLIENT_SECRET_FILE")]
    client_secret_file: Option<std::path::PathBuf>,
    /// Token lifetime in seconds.
    #[arg(long, default_value_t = 300)]
    token_ttl_secs: u64,
    /// Management API requests a second answered before 429 with Retry-After (0: no limit).
    #[arg(long, env = "AMP_SIM_REQUESTS_PER_SECOND", default_value_t = 0.0)]
    requests_per_second: f64,
    /// Publishes a minute before 429 (Amplience allows 100).
    #[arg(long, env = "AMP_SIM_PUBLISHES_PER_MINUTE", default_value_t = gridsync_amp_sim::PUBLISHES_PER_MINUTE)]
    publishes_per_minute: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::init_logging();
    let cli = Cli::parse();
    let mut config = SimConfig {
        token_ttl: Duration::from_secs(cli.token_ttl_secs),
        requests_per_second: cli.requests_per_second,
        publishes_per_minute: cli.publishes_per_minute,
        ..SimConfig::default()
    };
    if !cli.clients.is_empty() {
        let clients = server::credentials(&cli.clients, "--client").map_err(anyhow::Error::msg)?;
        config.clients = clients.into_iter().map(|(id, secret)| Client { id, secret }).collect();
    }
    if let Some(path) = &cli.client_secret_file {
        let secret = Secret::read_file(path).with_context(|| format!("reading {}", path.display()))?;
        config.clients.retain(|c| c.id != "gridsync");
        config.clients.push(Client { id: "gridsync".into(), secret: secret.expose().to_owned() });
    }
    config.webhook = match (cli.webhook_url, cli.webhook_secret) {
        (Some(url), Some(secret)) => Some(WebhookTarget { url, secret: Secret::new(&secret) }),
        (Some(_), None) => anyhow::bail!("--webhook-url needs --webhook-secret (or AMP_SIM_WEBHOOK_SECRET)"),
        (None, _) => None,
    };
    let listener =
        tokio::net::TcpListener::bind(cli.listen).await.with_context(|| format!("binding {}", cli.listen))?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let sim = Simulator::start(config.clone(), listener, shutdown.clone()).await?;
    tracing::info!(url = %sim.url(), hub = %config.hub_id, repositories = ?config.repositories, "amp-sim ready");
    server::cancel_on_signal(shutdown.clone());
    sim.stopped().await?;
    Ok(())
}
