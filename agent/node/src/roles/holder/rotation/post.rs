//! Rotation's transport and pacing (`super`, `rotation.rs`, decides): posting a proposal already
//! endorsed, and when a proposal that could not be made is tried again. Nothing here decides or
//! signs: the endorsement is made (only for the rotation under way, on an allowed build) before it
//! gets here, the owner verifies the proposal's quote before approving, and the new bundle is
//! installed only when the proven cluster is the key this node made (`check`). A bug here can post
//! nothing, post again, or post bytes the contract or the owner refuses, never install or release.

use crate::{provider::Attestation, roles::Agent};
use alloy::primitives::Address;
use anyhow::Context as _;
use replicatoor_chain::bindings::UpgradeOperator as Op;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// A proposal that could not be made (this build not allowed, no quote, the chain unavailable) is
/// tried again this long after, not every step: each try asks the TD for a quote.
const PROPOSE_RETRY: Duration = Duration::from_secs(30);

/// Why this holder did not propose for a rotation (logged once per epoch, not every step), and when
/// it tries again.
#[derive(Default)]
pub(in crate::roles::holder) struct Quiet {
    logged_for: Option<u64>,
    next_try: Option<Instant>,
}

impl Quiet {
    /// Whether a proposal may be tried now.
    pub(super) fn due(&self) -> bool {
        self.next_try.is_none_or(|t| Instant::now() >= t)
    }

    /// A proposal for the rotation after `epoch` could not be made: try again after [`PROPOSE_RETRY`],
    /// and say why once per epoch.
    pub(super) fn failed(&mut self, epoch: u64, e: &anyhow::Error) {
        self.next_try = Some(Instant::now() + PROPOSE_RETRY);
        if self.logged_for != Some(epoch) {
            warn!(target: "replicatoor::rotation", error = %format!("{e:#}"), retry_in_secs = PROPOSE_RETRY.as_secs(), "not proposing for the rotation under way");
            self.logged_for = Some(epoch);
        }
    }
}

/// Post `proposeRotation` for the new key `cluster`, with `att`'s quote (which binds it) and the
/// current key's `endorsement`, and record the proposal's id.
pub(super) async fn post(
    agent: &Agent,
    cluster: Address,
    att: &Attestation,
    endorsement: Vec<u8>,
) -> anyhow::Result<()> {
    if agent.provider.is_simulated() {
        warn!(target: "replicatoor::rotation", "proposing a rotation with a SIMULATED quote");
    }
    let chain = &agent.chain;
    let call = chain.contract().proposeRotation(
        cluster,
        att.posted_quote().into(),
        att.event_log.clone().into(),
        endorsement.into(),
    );
    let outcome = chain.send(call).await.context("posting proposeRotation")?;
    let ev =
        outcome.event::<Op::RotationProposed>().context("proposeRotation receipt has no RotationProposed event")?;
    crate::failpoint::hit("rotation_after_propose");
    agent.store.set_rotation_proposed(ev.proposalId)?;
    info!(target: "replicatoor::rotation", proposal_id = %ev.proposalId, epoch = ev.epoch, cluster = %ev.cluster, block = outcome.block, tx = %outcome.tx_hash, "rotation proposed: waiting for the owner (replicatoor admin rotate approve)");
    Ok(())
}
