//! `admin rotate start|cancel|approve`: the owner's side of a key rotation (PROTOCOL.md §5.4). The owner
//! starts one; a holder on an allowed build proposes a new cluster key endorsed by the current one; the
//! owner verifies that proposal here (record, endorsement, quote) and approves it, which moves custody at
//! once.

use super::{connect, done, print_calldata, read_only, QuoteCheck, TxArgs, TxOnly};
use crate::admin::{self, call};
use alloy::{primitives::U256, sol_types::SolCall};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use replicatoor_chain::bindings::UpgradeOperator as Op;
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum RotateCommand {
    /// Ask the cluster to rotate to epoch+1: a new cluster key and a new secret, made by a holder on a
    /// build allowed now and endorsed by the current cluster key (owner; needs a cluster).
    Start(TxOnly),
    /// Cancel the rotation under way: its proposals can no longer be approved (owner).
    Cancel(TxOnly),
    /// Verify a rotation proposal (the contract's record, the current cluster's endorsement, its quote
    /// as `approve-genesis` verifies one) and approve it: custody moves to its cluster at once.
    Approve(Approve),
}

/// As for `approve-genesis`, the proposal is read and verified even with `--calldata-only` (which then
/// needs `--rpc-url` but no key).
#[derive(Debug, Args)]
pub struct Approve {
    #[command(flatten)]
    pub tx: TxArgs,
    /// The proposal id (from its RotationProposed event).
    pub proposal: u64,
    #[command(flatten)]
    pub check: QuoteCheck,
}

pub async fn run(cmd: RotateCommand) -> anyhow::Result<()> {
    match cmd {
        RotateCommand::Start(a) => start_or_cancel(&a.tx, true).await,
        RotateCommand::Cancel(a) => start_or_cancel(&a.tx, false).await,
        RotateCommand::Approve(a) => approve(a).await,
    }
}

async fn start_or_cancel(tx: &TxArgs, start: bool) -> anyhow::Result<()> {
    let calldata =
        if start { call::start_rotation(&tx.note).abi_encode() } else { call::cancel_rotation(&tx.note).abi_encode() };
    if tx.calldata_only {
        return print_calldata(tx, calldata, json!({}));
    }
    let chain = connect(tx).await?;
    let (o, epoch) = if start {
        let o = chain.send(chain.contract().call_builder(&call::start_rotation(&tx.note))).await?;
        let epoch = o.event::<Op::RotationStarted>().map(|e| e.epoch);
        (o, epoch)
    } else {
        let o = chain.send(chain.contract().call_builder(&call::cancel_rotation(&tx.note))).await?;
        let epoch = o.event::<Op::RotationCancelled>().map(|e| e.epoch);
        (o, epoch)
    };
    let what = match (start, epoch) {
        (true, Some(e)) => format!("rotation to epoch {e} started"),
        (false, Some(e)) => format!("rotation to epoch {e} cancelled"),
        (true, None) => "rotation started".into(),
        (false, None) => "rotation cancelled".into(),
    };
    done(tx, json!({ "epoch": epoch }), &o, what)
}

async fn approve(a: Approve) -> anyhow::Result<()> {
    let tx = &a.tx;
    let why = "to read and verify the proposal on chain";
    tx.rpc.require(why)?;
    let verifier = a.check.verifier()?;
    let chain = if tx.calldata_only { read_only(tx, why).await? } else { connect(tx).await? };
    let r = admin::verify_rotation(&chain, &verifier, U256::from(a.proposal))
        .await
        .with_context(|| format!("rotation proposal {} refused", a.proposal))?;
    let g = &r.proposal;
    let info = json!({
        "proposal": a.proposal,
        "cluster": g.cluster,
        "epoch": g.epoch,
        "previous_cluster": r.previous_cluster,
        "os_reference_id": g.os_ref,
        "app_reference_id": g.app_ref,
    });
    let call = call::approve_rotation(g, &tx.note);
    if tx.calldata_only {
        return print_calldata(tx, call.abi_encode(), info);
    }
    let o = chain.send(chain.contract().call_builder(&call)).await?;
    let what = format!(
        "rotation proposal {} verified and approved: epoch {} is cluster {} (was {})",
        a.proposal, g.epoch, g.cluster, r.previous_cluster
    );
    done(tx, info, &o, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use alloy::primitives::{keccak256, Address, B256};
    use clap::Parser as _;

    fn selector(signature: &str) -> [u8; 4] {
        let h = keccak256(signature);
        [h[0], h[1], h[2], h[3]]
    }

    /// The calldata `rotate start|cancel --calldata-only` prints is the contract's call, note included.
    #[test]
    fn start_and_cancel_calldata_are_the_contract_calls() {
        let start = call::start_rotation("rotate quarterly").abi_encode();
        assert_eq!(start[..4], selector("startRotation(string)"));
        assert_eq!(Op::startRotationCall::abi_decode(&start).map(|c| c.note).ok().as_deref(), Some("rotate quarterly"));
        let cancel = call::cancel_rotation("").abi_encode();
        assert_eq!(cancel[..4], selector("cancelRotation(string)"));
        let g = admin::VerifiedGenesis {
            proposal_id: U256::from(7),
            cluster: Address::repeat_byte(1),
            epoch: 3,
            os_ref: B256::repeat_byte(2),
            app_ref: B256::repeat_byte(3),
        };
        let approve = call::approve_rotation(&g, "n").abi_encode();
        assert_eq!(approve[..4], selector("approveRotation(uint256,address,uint64,bytes32,bytes32,string)"));
        let back = Op::approveRotationCall::abi_decode(&approve).expect("decodes");
        assert_eq!(
            (back.proposalId, back.clusterAddress, back.forEpoch, back.osRef, back.appRef),
            (g.proposal_id, g.cluster, g.epoch, g.os_ref, g.app_ref)
        );
    }

    /// `rotate start --calldata-only` needs neither RPC nor key; `approve` takes the id as a positional.
    #[test]
    fn the_command_line_parses() {
        let contract = Address::repeat_byte(9).to_string();
        let cli = Cli::try_parse_from([
            "replicatoor",
            "admin",
            "rotate",
            "start",
            "--contract",
            &contract,
            "--note",
            "n",
            "--calldata-only",
            "--json",
        ])
        .expect("parses");
        let Command::Admin(super::super::AdminCommand::Rotate(RotateCommand::Start(a))) = cli.command else {
            panic!("not rotate start: {cli:?}")
        };
        assert!(a.tx.calldata_only && a.tx.json && a.tx.note == "n");
        let cli = Cli::try_parse_from([
            "replicatoor",
            "admin",
            "rotate",
            "approve",
            "12",
            "--contract",
            &contract,
            "--rpc-url",
            "http://127.0.0.1:1",
            "--allow-simulated-quotes",
        ])
        .expect("parses");
        let Command::Admin(super::super::AdminCommand::Rotate(RotateCommand::Approve(a))) = cli.command else {
            panic!("not rotate approve: {cli:?}")
        };
        assert_eq!((a.proposal, a.check.allow_simulated_quotes), (12, true));
    }
}
