//! The holder's side of the release gate (`replicatoor_core::gate`, which decides): the contract
//! state a step decides on (the gate's `ChainState`), and what the holder does with a verdict on one
//! request: check the witness RPCs and seal the bundle to its key, sign a refusal within the step's
//! budget, or record why not (after the witness RPCs, `witness.rs`, agree). This is the only place in
//! the agent that seals the secret (TRUST.md).

use super::{
    outcome::{defer, record, throttle, waiting},
    relay::{Answer, AnswerKind},
    witness,
};
use crate::{
    roles::Agent,
    store::{Outcome, RequestRecord},
};
use alloy::primitives::B256;
use anyhow::Context as _;
pub(super) use replicatoor_chain::state::StateError;
use replicatoor_chain::{
    anchor::Anchor,
    bindings::UpgradeOperator as Op,
    layout::Reads,
    state::{request_of, State},
    verified::ViewError,
};
use replicatoor_core::{
    crypto::{
        eip712::{self, Refusal as RefusalMsg},
        SecretBundle,
    },
    delivery,
    gate::{self, Gate, Question, Verdict},
};
use std::sync::atomic::{AtomicU32, Ordering};
use tracing::{debug, info, warn};

/// The contract state one step's decisions are based on, read once at the decision block: with a
/// pinned deployment proven against a header the trust root authenticated, without one the RPC's
/// answers at the confirmed head (`replicatoor_chain::state`).
pub(super) struct StepView<'a> {
    state: State<'a, Anchor>,
    /// The block decided at.
    pub(super) at: u64,
    /// When this node's own OS or app reference ends (the earlier), if the owner scheduled it
    /// (proven; pinned deployments only).
    pub(super) own_expiry: Option<u64>,
}

impl<'a> StepView<'a> {
    /// The state at block `at` (the confirmed head); with a pinned deployment, at the newest trusted
    /// header, which must be fresh by this TD's clock and cover `at`.
    /// `own`: this node's own OS and app references, whose scheduled end is read in the same proof.
    pub(super) async fn read(agent: &'a Agent, at: u64, own: &[B256]) -> Result<StepView<'a>, StateError> {
        let reads = own.iter().fold(Reads::state(), |r, id| r.reference(*id));
        let state = State::read(&agent.chain, agent.verified.as_ref(), crate::roles::unix_now(), at, &reads).await?;
        let mut own_expiry = None;
        if let State::Proven(proven) = &state {
            for id in own {
                let expires = proven.views().expires_at(*id).map_err(ViewError::from)?;
                own_expiry = own_expiry.into_iter().chain(expires).min();
            }
        }
        Ok(StepView { at: state.at(), state, own_expiry })
    }

    /// The state decided on.
    pub(super) fn state(&self) -> &State<'a, Anchor> {
        &self.state
    }
}

/// The gate this holder decides with: its deployment, its verifier, the cluster its bundle names.
pub(super) fn gate<'a>(agent: &'a Agent, bundle: &SecretBundle) -> Gate<'a> {
    Gate {
        deployment: agent.chain.deployment(),
        verifier: &agent.verifier,
        cluster: bundle.cluster_address(),
        clock: &crate::roles::CLOCK,
    }
}

/// Ask the gate about one request and act on its verdict: seal (after the witness RPCs agree), sign a
/// refusal within this step's budget (`budget` refusals, counted in `refusals`), or record why not.
pub(super) async fn handle_request(
    agent: &Agent,
    bundle: &SecretBundle,
    ev: &Op::SecretRequested,
    block: u64,
    view: &StepView<'_>,
    (refusals, budget): (&AtomicU32, u32),
) -> anyhow::Result<Option<Answer>> {
    let chain = &agent.chain;
    let id = ev.requestId;
    let claimed = request_of(ev, block);
    agent.store.set_request_key(id, claimed.binding.request_key())?;
    let decided = gate::decide(&gate(agent, bundle), &view.state, Question::Request(&claimed)).await;
    let verify_ms = decided.verified_in.map_or(0.0, |t| t.as_secs_f64() * 1e3);
    if decided.verified_in.is_some() {
        agent.telemetry.observe_verification(verify_ms / 1e3);
    }
    match decided.verdict {
        Verdict::Answered(status) => {
            let status = status as u8;
            debug!(target: "replicatoor::holder", status, "already answered");
            // Answered before we got to it (catch-up, restart): stored, but not counted as a race.
            agent.store.set_request(id, &RequestRecord { block, outcome: Outcome::AlreadyAnswered { status } })?;
            Ok(None)
        }
        Verdict::NotHolder(chain_cluster) => {
            warn!(target: "replicatoor::holder", %chain_cluster, ours = %bundle.cluster_address(), "this node does not hold the current cluster key; not answering");
            Ok(None)
        }
        Verdict::Deliver { accepted, request } => {
            info!(target: "replicatoor::holder", os_ref = %accepted.os_ref(), app_ref = %accepted.app_ref(), tcb = %accepted.quote().tcb_status(), simulated = accepted.quote().is_simulated(), verify_ms, "request verified");
            if let Err(why) = witness::agree(agent, bundle, &request, &accepted, view.at).await {
                return defer(agent, id, block, format!("witness RPCs disagree, not delivering: {why}")).map(|_| None);
            }
            let d = delivery::seal(&chain.deployment(), &accepted, bundle).context("sealing the bundle")?;
            crate::failpoint::hit("holder_after_seal");
            Ok(Some(Answer { id, block, kind: AnswerKind::Deliver(d) }))
        }
        Verdict::Refuse { reason, detail, request } => {
            info!(target: "replicatoor::holder", reason = reason.name(), code = reason.code(), detail = %detail, "refusing request");
            if refusals.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < budget).then_some(n + 1)).is_err() {
                warn!(target: "replicatoor::holder", reason = reason.name(), "refusal budget for this step spent; not posting");
                throttle(agent, id, block, reason)?;
                return Ok(None);
            }
            let msg = RefusalMsg { requestId: id, request, reason: reason.code() };
            let sig =
                eip712::sign(&chain.deployment(), &msg, bundle.cluster_signer()).context("signing the refusal")?;
            Ok(Some(Answer { id, block, kind: AnswerKind::Refuse(reason, request, sig.to_vec()) }))
        }
        Verdict::Abstain(why) => {
            warn!(target: "replicatoor::holder", why = %why, "abstaining: leaving this request to other holders");
            record(agent, id, block, Outcome::Abstained { why })?;
            Ok(None)
        }
        Verdict::Wait(wait) => defer(agent, id, block, waiting(agent, wait)).map(|_| None),
        // Only a sealed delivery's re-check stands.
        Verdict::Stands => Ok(None),
    }
}
