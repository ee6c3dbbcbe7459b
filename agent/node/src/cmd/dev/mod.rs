//! `replicatoor dev beacon`: a SIMULATED beacon chain for a local dev chain (anvil), serving the
//! standard light-client API, so agents on a laptop decide on proven state with the same code as on
//! mainnet; `replicatoor dev guest-agent`: a SIMULATED Dstack guest agent ([`guest_agent`]). Only in
//! builds with the `simulated` feature. Their keys are public: they prove nothing.

pub mod guest_agent;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve a simulated beacon for the chain at --rpc-url until stopped; print (or write) the
    /// deployment pin agents pass as --deployment.
    Beacon(BeaconArgs),
    /// Serve a simulated Dstack guest agent on a unix socket (GetQuote, Info) for a CVM running the
    /// app-compose.json given, until stopped: containers that mount the socket get simulated quotes.
    GuestAgent(guest_agent::Args),
}

#[derive(Debug, clap::Args)]
pub struct BeaconArgs {
    /// The dev chain's JSON-RPC endpoint and the UpgradeOperator on it (for the pin).
    #[command(flatten)]
    pub target: crate::args::ReadTarget,
    /// Where to serve the beacon API.
    #[arg(long, default_value = "127.0.0.1:5052")]
    pub listen: SocketAddr,
    /// Its deployment block (for the pin).
    #[arg(long, default_value_t = 0)]
    pub start_block: u64,
    /// Also write the pin to this file.
    #[arg(long)]
    pub pin_file: Option<PathBuf>,
}

pub async fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Beacon(a) => serve(a).await,
        Command::GuestAgent(a) => guest_agent::run(a).await,
    }
}

#[cfg(feature = "simulated")]
async fn serve(a: BeaconArgs) -> anyhow::Result<ExitCode> {
    use alloy::providers::{Provider, ProviderBuilder};
    use anyhow::Context as _;
    use replicatoor_testkit::beacon::{self, Committee};
    let (rpc_url, contract) = a.target.get()?;
    let chain_id = ProviderBuilder::new()
        .connect_http(rpc_url.parse().context("RPC URL")?)
        .get_chain_id()
        .await
        .context("reading the chain id")?;
    let b = beacon::serve(rpc_url, a.listen, Committee::Public).await.context("starting the simulated beacon")?;
    let pin = crate::simulated::beacon_pin(&b, chain_id, contract, a.start_block);
    if let Some(p) = &a.pin_file {
        std::fs::write(p, &pin).with_context(|| format!("writing {}", p.display()))?;
    }
    tracing::warn!(target: "replicatoor", url = b.url(), "!!! SIMULATED BEACON serving: a public dev sync committee; dev chains only !!!");
    println!("beacon url: {}\n{pin}", b.url());
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "simulated"))]
async fn serve(_: BeaconArgs) -> anyhow::Result<ExitCode> {
    Err(crate::simulated::NotBuilt.into())
}
