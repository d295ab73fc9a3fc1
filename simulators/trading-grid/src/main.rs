//! `tg-sim`: the Trading Grid simulator as a process, for the local demo.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Parser;
use gridsync_sim_support::server;
use gridsync_tg_sim::{
    partner::{self, PartnerConfig},
    Consumer, SimConfig, Simulator,
};

#[derive(Debug, Parser)]
#[command(name = "tg-sim", about = "A local Trading Grid: Lens token and search with faults, and a mailbox partner.")]
struct Cli {
    /// Address to serve Lens on.
    #[arg(long, env = "TG_SIM_LISTEN", default_value = "127.0.0.1:9490")]
    listen: SocketAddr,
    /// A consumer allowed to get tokens, `key:secret`; repeatable. Default: gridsync:gridsync-secret.
    #[arg(long = "consumer", env = "TG_SIM_CONSUMERS", value_delimiter = ',', hide_env_values = true)]
    consumers: Vec<String>,
    /// Token lifetime in seconds.
    #[arg(long, default_value_t = 36_000)]
    token_ttl_secs: u64,
    /// gridsync's outbound mailbox: the partner picks files up from here.
    #[arg(long, env = "TG_SIM_OUTBOUND_DIR")]
    outbound_dir: Option<PathBuf>,
    /// gridsync's inbound arrivals folder: the partner's acknowledgements go here.
    #[arg(long, env = "TG_SIM_INBOUND_DIR")]
    inbound_dir: Option<PathBuf>,
    /// How often the partner looks for outbound files, in milliseconds.
    #[arg(long, default_value_t = 500)]
    poll_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::init_logging();
    let cli = Cli::parse();
    let mut config = SimConfig { token_ttl: Duration::from_secs(cli.token_ttl_secs), ..SimConfig::default() };
    if !cli.consumers.is_empty() {
        let consumers = server::credentials(&cli.consumers, "--consumer").map_err(anyhow::Error::msg)?;
        config.consumers = consumers.into_iter().map(|(key, secret)| Consumer { key, secret }).collect();
    }
    let listener =
        tokio::net::TcpListener::bind(cli.listen).await.with_context(|| format!("binding {}", cli.listen))?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let sim = Simulator::start(config, listener, shutdown.clone()).await?;
    tracing::info!(url = %sim.url(), "tg-sim ready");
    let partner = match (cli.outbound_dir, cli.inbound_dir) {
        (Some(outbound), Some(inbound)) => {
            let config = PartnerConfig { outbound, inbound, poll: Duration::from_millis(cli.poll_ms) };
            Some(tokio::spawn(partner::run(config, sim.ledger.clone(), shutdown.clone())))
        }
        (None, None) => None,
        _ => anyhow::bail!("the mailbox partner needs both --outbound-dir and --inbound-dir"),
    };
    server::cancel_on_signal(shutdown.clone());
    sim.stopped().await?;
    if let Some(partner) = partner {
        partner.await.context("the mailbox partner")?.context("the mailbox partner")?;
    }
    Ok(())
}
