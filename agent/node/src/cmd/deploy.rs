//! `replicatoor deploy`: deploy an UpgradeOperator and print its address and deployment block.

use crate::cli::{ChainArgs, PolicyArgs};
use anyhow::Context as _;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub chain: ChainArgs,
    /// Owner (default: the deployer).
    #[arg(long)]
    pub owner: Option<String>,
    /// Seconds widening changes wait (one day by default; 0 only for local development).
    #[arg(long, default_value_t = 86_400)]
    pub widening_delay: u64,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(a: Args) -> anyhow::Result<ExitCode> {
    let key = a.chain.sender_key.signer().context("sender key")?;
    let owner = match &a.owner {
        Some(o) => o.parse().context("owner address")?,
        None => key.address(),
    };
    let (address, block) =
        crate::admin::deploy(&a.chain.rpc_url, key, owner, a.widening_delay, a.policy.policy(0)).await?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({ "address": address.to_string(), "block": block, "owner": owner.to_string() })
        );
    } else {
        println!("contract: {address}\nblock:    {block}\nowner:    {owner}");
    }
    Ok(ExitCode::SUCCESS)
}
