//! Rotation, the holder's part (PROTOCOL.md §5.4). Once the owner starts a rotation, a holder whose
//! own build is allowed at the step's state (proven at a fresh header when pinned) makes the next
//! epoch's cluster key and secret inside its TD, endorses the new key with the current one and
//! proposes it with a quote that binds it; when the owner's approval is proven it installs the new
//! bundle (the old secrets in its keyring) and serves the new epoch. A holder whose epoch another
//! cluster replaced stops serving; after a rotation (another holder's proposal won) it requests the
//! new epoch like a new node (`roles::run`): its quote is judged again, so a revoked build is refused.

mod post;

use super::decide::StepView;
use crate::roles::Agent;
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context as _;
pub(super) use post::Quiet;
use replicatoor_core::{
    attest::pipeline::References as _,
    crypto::{
        eip712::{self, Rotation},
        SecretBundle,
    },
    protocol::RefKind,
};
use tracing::{info, warn};
use zeroize::Zeroizing;

/// What the chain's custody means for this holder.
pub(super) enum Custody {
    /// Its bundle's cluster is the contract's: serve.
    Serve,
    /// The owner approved this holder's proposal: the store holds the new epoch's bundle, installed.
    Rotated,
    /// Another cluster holds epoch `epoch`, past this holder's bundle: stop serving, request it.
    Superseded { epoch: u64 },
}

/// Look at the step's custody: switch to this holder's approved proposal, leave a superseded epoch,
/// or propose for a rotation under way. A state that does not say (unreadable) changes nothing.
pub(super) async fn check(
    agent: &Agent,
    bundle: &SecretBundle,
    view: &StepView<'_>,
    quiet: &mut Quiet,
) -> anyhow::Result<Custody> {
    let custody = match view.custody() {
        Ok(c) => c,
        Err(e) => {
            warn!(target: "replicatoor::rotation", error = %e, "cannot read the cluster and the rotation under way this step");
            return Ok(Custody::Serve);
        }
    };
    if let Some(next) = agent.store.rotation_bundle()? {
        if custody.epoch == next.epoch() && custody.cluster == next.cluster_address() {
            let digest = agent.hold(&next, Some("rotation_after_install"))?;
            agent.store.clear_rotation()?;
            let keyring: Vec<u64> = next.keyring().iter().map(|(e, _)| *e).collect();
            info!(target: "replicatoor::rotation", epoch = next.epoch(), cluster = %next.cluster_address(), sha256 = %digest, ?keyring, "rotation approved: this node holds the new epoch (earlier secrets in the keyring)");
            return Ok(Custody::Rotated);
        }
        // Kept while the owner may still approve it (its key would then be the only one accepted):
        // until the epoch passes it, or the rotation is not under way (cancelled: a proposal made
        // under it can never be approved, even once a rotation to the same epoch starts again).
        if custody.epoch >= next.epoch() {
            warn!(target: "replicatoor::rotation", epoch = custody.epoch, cluster = %custody.cluster, ours = %next.cluster_address(), "the owner approved another cluster for the epoch this node proposed: its proposal is dropped");
            agent.store.clear_rotation()?;
        } else if custody.rotating_to() != Some(next.epoch()) {
            info!(target: "replicatoor::rotation", epoch = next.epoch(), "the rotation was cancelled: this node's next-epoch key and secret are dropped");
            agent.store.clear_rotation()?;
        }
    }
    if custody.epoch > bundle.epoch() && custody.cluster != bundle.cluster_address() {
        return Ok(Custody::Superseded { epoch: custody.epoch });
    }
    let rotating = custody.rotating_to() == Some(bundle.epoch().saturating_add(1));
    // A proposal made before the rotation under way started (the owner cancelled and started again
    // between two steps) can never be approved: propose again.
    let proposed = agent.store.rotation_proposed()?.is_some_and(|id| id > custody.rotation_after);
    if rotating && custody.cluster == bundle.cluster_address() && !proposed && quiet.due() {
        if let Err(e) = propose(agent, bundle, view).await {
            quiet.failed(bundle.epoch(), &e);
        }
    }
    Ok(Custody::Serve)
}

/// Make (or take back, after a restart) the next epoch's bundle, check that this node's own build is
/// allowed now, endorse the new key with the current one and post `proposeRotation`.
async fn propose(agent: &Agent, bundle: &SecretBundle, view: &StepView<'_>) -> anyhow::Result<()> {
    let (next, made) = match agent.store.rotation_bundle()? {
        Some(n) if n.epoch() == bundle.epoch().saturating_add(1) => (n, false),
        _ => {
            // A new random secret as long as the current one (a key's length stays the key's).
            let mut secret = Zeroizing::new(vec![0u8; bundle.file().len().max(32)]);
            getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("OS randomness unavailable: {e}"))?;
            let key = Zeroizing::new(PrivateKeySigner::random().to_bytes().0);
            (bundle.rotated(key, secret)?, true)
        }
    };
    let dep = agent.chain.deployment();
    let report_data = dep.genesis_report_data(next.cluster_address(), next.epoch());
    let att = agent.provider.attest(report_data).await.context("getting a quote for the rotation proposal")?;
    // The owner can approve only a proposal whose quote measures references allowed now; a holder
    // on a build that is not (revoked, expired) must not make the next epoch's secret at all.
    let (Some(os), Some(app)) = att.claimed_references() else {
        anyhow::bail!("this node's quote does not name its OS and app references");
    };
    let allowed = view.is_allowed(os, RefKind::Os).await? && view.is_allowed(app, RefKind::App).await?;
    anyhow::ensure!(
        allowed,
        "this node's build (OS {os}, app {app}) is not allowed now: a holder on an allowed one proposes"
    );
    if made {
        // Flushed before its key goes anywhere: the owner may approve it, and then only it signs.
        agent.store.set_rotation_bundle(&next)?;
        info!(target: "replicatoor::rotation", epoch = next.epoch(), cluster = %next.cluster_address(), "rotation under way: the next epoch's cluster key and secret made");
    }
    let endorsement = Rotation { epoch: next.epoch(), cluster: next.cluster_address() };
    let signature = eip712::sign(&dep, &endorsement, bundle.cluster_signer()).context("signing the endorsement")?;
    post::post(agent, next.cluster_address(), &att, signature.to_vec()).await
}
