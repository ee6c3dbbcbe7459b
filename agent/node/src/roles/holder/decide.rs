//! The holder's side of the release gate (`replicatoor_core::gate`, which decides): the contract
//! state a step decides on (the gate's `ChainState`), and what the holder does with a verdict on one
//! request: check the witness RPCs and seal the bundle to its key, sign a refusal within the step's
//! budget, or record why not (after the witness RPCs, `witness.rs`, agree). This is the only place in
//! the agent that seals the secret (TRUST.md).

use super::{
    answer::{Answer, AnswerKind},
    outcome::{defer, not_answering, throttle, verification},
    witness,
};
use crate::roles::Agent;
use alloy::primitives::B256;
use anyhow::Context as _;
pub(super) use replicatoor_chain::state::StateError;
use replicatoor_chain::{
    anchor::Anchor,
    bindings::UpgradeOperator as Op,
    layout::Reads,
    state::{request_of, State},
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
use tracing::{info, warn};

/// The contract state one step's decisions are based on, read once at the decision block: with a
/// pinned deployment proven against a header the trust root authenticated, without one the RPC's
/// answers at the confirmed head (`replicatoor_chain::state`). `at()` is the block decided at.
pub(super) type StepView<'a> = State<'a, Anchor>;

/// The state at block `at` (the confirmed head); with a pinned deployment, at the newest trusted
/// header, which must be fresh by this TD's clock and cover `at`.
/// `own`: this node's own OS and app references, read in the same proof.
pub(super) async fn read<'a>(agent: &'a Agent, at: u64, own: &[B256]) -> Result<StepView<'a>, StateError> {
    let reads = own.iter().fold(Reads::state(), |r, id| r.reference(*id));
    State::read(&agent.chain, agent.verified.as_ref(), crate::roles::unix_now(), at, &reads).await
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
    let decided = gate::decide(&gate(agent, bundle), view, Question::Request(&claimed)).await;
    let verify_ms = verification(agent, decided.verified_in);
    // Only these two verdicts answer; what became of the others is recorded (outcome.rs).
    match decided.verdict {
        Verdict::Deliver { accepted, request } => {
            info!(target: "replicatoor::holder", os_ref = %accepted.os_ref(), app_ref = %accepted.app_ref(), tcb = %accepted.quote().tcb_status(), simulated = accepted.quote().is_simulated(), verify_ms, "request verified");
            if let Err(why) = witness::agree(agent, bundle, &request, &accepted, view.at()).await {
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
        unanswered => not_answering(agent, bundle.cluster_address(), id, block, unanswered).map(|()| None),
    }
}
