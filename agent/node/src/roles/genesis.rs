//! Genesis node: create the cluster key and the bundle, propose genesis, wait for the owner's
//! approval, install the secret file, then serve as a holder.

use super::{Agent, Exit};
use crate::store::OwnGenesis;
use alloy::{
    eips::BlockId, primitives::Address, rpc::types::Filter, signers::local::PrivateKeySigner, sol_types::SolEvent,
};
use anyhow::Context as _;
use replicatoor_chain::anchor::Verified;
use replicatoor_chain::{
    bindings::UpgradeOperator as Op,
    layout::{Reads, Views},
    verified::ViewError,
};
use replicatoor_core::crypto::SecretBundle;
use tracing::{info, warn};
use zeroize::Zeroizing;

pub async fn run(agent: &Agent) -> anyhow::Result<Exit> {
    let chain = &agent.chain;
    let (cluster_now, epoch_now) =
        agent.retrying("reading the cluster", || chain.cluster_at(BlockId::latest())).await?;
    let bundle = match agent.store.pending_bundle()? {
        Some(b) => b,
        None => {
            let b = new_bundle(agent, epoch_now + 1)?;
            agent.store.set_pending_bundle(&b)?;
            info!(target: "replicatoor::genesis", cluster = %b.cluster_address(), epoch = b.epoch(), secret_bytes = b.file().len(), "cluster key created");
            b
        }
    };
    if epoch_now >= bundle.epoch() && cluster_now != bundle.cluster_address() {
        anyhow::bail!(
            "epoch {} already has cluster {cluster_now}; this node's proposal ({}) can no longer be approved. \
             Remove the state directory to propose again for epoch {}",
            bundle.epoch(),
            bundle.cluster_address(),
            epoch_now + 1
        );
    }
    if cluster_now != bundle.cluster_address() && agent.store.own_genesis()?.is_none() {
        match earlier_proposal(agent, &bundle).await? {
            Some(g) => {
                info!(target: "replicatoor::genesis", proposal_id = %g.proposal_id, "adopting the genesis proposal posted before a restart");
                agent.store.set_own_genesis(&g)?;
            }
            None => propose(agent, &bundle).await?,
        }
    }
    info!(target: "replicatoor::genesis", cluster = %bundle.cluster_address(), "waiting for the owner to approve genesis (replicatoor admin approve-genesis)");
    loop {
        let (cluster, epoch) = match &agent.verified {
            None => agent.retrying("reading the cluster", || chain.cluster_at(BlockId::latest())).await?,
            // Pinned: the approval counts only once the cluster is proven at a trusted header.
            Some(v) => match proven_cluster(v).await {
                Ok(c) => c,
                Err(e) => {
                    agent.telemetry.unproven_read("genesis");
                    warn!(target: "replicatoor::genesis", error = %e, "cannot prove the cluster yet");
                    if !agent.pause(agent.poll()).await {
                        return Ok(Exit::Done);
                    }
                    continue;
                }
            },
        };
        if cluster == bundle.cluster_address() {
            break;
        }
        if epoch >= bundle.epoch() {
            anyhow::bail!("the owner approved another cluster ({cluster}) for epoch {epoch}");
        }
        if !agent.pause(agent.poll()).await {
            return Ok(Exit::Done);
        }
    }
    let digest = agent.hold(&bundle, None)?;
    agent.store.erase_install_secrets()?;
    info!(target: "replicatoor::genesis", cluster = %bundle.cluster_address(), epoch = bundle.epoch(), sha256 = %digest, "genesis approved: this node holds the secret");
    Ok(Exit::Done)
}

/// `(cluster, epoch)` proven at the newest trusted header.
async fn proven_cluster(v: &Verified) -> Result<(Address, u64), ViewError> {
    let head = v.decision_header(super::unix_now(), 0).await?;
    let storage = v.storage(&head, &Reads::state()).await?;
    Ok((Views(&storage).cluster()?, Views(&storage).epoch()?))
}

fn new_bundle(agent: &Agent, epoch: u64) -> anyhow::Result<SecretBundle> {
    let file = match agent.cfg.generate_secret {
        Some(n) => {
            let mut buf = Zeroizing::new(vec![0u8; n]);
            getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("OS randomness unavailable: {e}"))?;
            buf
        }
        None => {
            let p = &agent.cfg.secret_file;
            Zeroizing::new(std::fs::read(p).with_context(|| {
                format!("reading the app's secret file {} (or pass --generate-secret N)", p.display())
            })?)
        }
    };
    let key = Zeroizing::new(PrivateKeySigner::random().to_bytes().0);
    Ok(SecretBundle::new(key, epoch, file)?)
}

/// This cluster's proposal, if one is on chain already (a crash between proposing and recording it).
async fn earlier_proposal(agent: &Agent, bundle: &SecretBundle) -> anyhow::Result<Option<OwnGenesis>> {
    let filter =
        Filter::new().event_signature(Op::GenesisProposed::SIGNATURE_HASH).topic2(bundle.cluster_address().into_word());
    let logs = agent.contract_logs("looking for an earlier genesis proposal", filter, agent.cfg.start_block).await?;
    Ok(logs.iter().find_map(|l| {
        let ev = l.log_decode::<Op::GenesisProposed>().ok()?.inner.data;
        (ev.epoch == bundle.epoch()).then_some(OwnGenesis {
            proposal_id: ev.proposalId,
            epoch: ev.epoch,
            block: l.block_number?,
        })
    }))
}

async fn propose(agent: &Agent, bundle: &SecretBundle) -> anyhow::Result<()> {
    let chain = &agent.chain;
    let cluster = bundle.cluster_address();
    let report_data = chain.deployment().genesis_report_data(cluster, bundle.epoch());
    let att = agent.provider.attest(report_data).await.context("getting a quote for the genesis proposal")?;
    if agent.provider.is_simulated() {
        warn!(target: "replicatoor::genesis", "proposing genesis with a SIMULATED quote");
    }
    let quote = att.posted_quote();
    let outcome = agent
        .retrying("posting proposeGenesis", || {
            let call = chain.contract().proposeGenesis(cluster, quote.clone().into(), att.event_log.clone().into());
            async move { chain.send(call).await }
        })
        .await?;
    let ev = outcome.event::<Op::GenesisProposed>().context("proposeGenesis receipt has no GenesisProposed event")?;
    crate::failpoint::hit("genesis_after_propose");
    agent.store.set_own_genesis(&OwnGenesis { proposal_id: ev.proposalId, epoch: ev.epoch, block: outcome.block })?;
    info!(target: "replicatoor::genesis", proposal_id = %ev.proposalId, epoch = ev.epoch, block = outcome.block, tx = %outcome.tx_hash, "genesis proposed");
    Ok(())
}
