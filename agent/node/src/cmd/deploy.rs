//! `replicatoor deploy`: deploy an UpgradeOperator and print its address and deployment block.

use crate::args::{ChainArgs, PolicyArgs};
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
    // No floor given: the newest TCB evaluation this release knows, never 0 (collateral of any age)
    // by omission. Dev chains with the simulated PKI pass its evaluation (17) explicitly.
    let newest = replicatoor_core::attest::NEWEST_TCB_EVALUATION_DATA_NUMBER;
    let policy = a.policy.policy(newest);
    let floor = policy.min_tcb_evaluation_data_number;
    if a.policy.min_tcb_evaluation_data_number.is_none() {
        eprintln!(
            "TCB evaluation floor: {floor}, the newest this release knows (--min-tcb-evaluation-data-number to choose)"
        );
    } else if floor == 0 {
        eprintln!(
            "WARNING: TCB evaluation floor 0: holders judge quotes with collateral of any age, so a stale or lying \
             collateral source can pass a platform a TCB recovery downgraded (the audit reports it)"
        );
    }
    let (address, block) =
        crate::admin::deploy(a.chain.rpc.require("to deploy")?, key, owner, a.widening_delay, policy).await?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "address": address.to_string(),
                "block": block,
                "owner": owner.to_string(),
                "min_tcb_evaluation_data_number": floor,
            })
        );
    } else {
        println!("contract: {address}\nblock:    {block}\nowner:    {owner}\ntcb evaluation floor: {floor}");
    }
    Ok(ExitCode::SUCCESS)
}
