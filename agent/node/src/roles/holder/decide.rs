//! The release gate: the contract state a step decides on, and the decision on one request: verify
//! it with the trust kernel's pipeline, then seal the bundle to its key or sign a refusal. This is
//! the only place in the agent that seals the secret (TRUST.md).

use super::{
    defer, record,
    relay::{Answer, AnswerKind},
    throttle,
};
use crate::roles::anchor::Verified;
use crate::{
    roles::Agent,
    store::{Outcome, RequestRecord},
};
use alloy::{
    eips::BlockId,
    primitives::{Address, B256},
    rpc::types::Filter,
    sol_types::SolEvent,
};
use anyhow::Context as _;
use replicatoor_chain::{
    bindings::UpgradeOperator as Op,
    layout::{Reads, Views},
    proof::TrustedHeader,
    verified::ViewError,
    Chain, ChainError,
};
use replicatoor_core::{
    attest::{
        pipeline::{self, Context, Decision, References},
        AcceptedRequest, RequestBinding,
    },
    crypto::{
        eip712::{self, Refusal as RefusalMsg},
        SecretBundle,
    },
    delivery,
    protocol::{request_key, RefKind, RequestStatus},
};
use std::sync::atomic::{AtomicU32, Ordering};
use tracing::{debug, info, warn};

/// The contract state one step's decisions are based on, read once at the decision block: policy,
/// cluster, time, and reference answers memoized per step. With a pinned deployment every value is
/// proven against a header the trust root authenticated (`proven`); without one it is the RPC's
/// answer at the confirmed head.
pub(super) struct StepView<'a> {
    chain: &'a Chain,
    proven: Option<(&'a Verified, TrustedHeader)>,
    pub(super) at: u64,
    now: u64,
    policy: replicatoor_core::protocol::Policy,
    cluster: Address,
    refs: std::sync::Mutex<std::collections::HashMap<(B256, u8), bool>>,
    /// The requests of each block, proven once from its receipts for all of the block's requests.
    blocks: std::sync::Mutex<std::collections::HashMap<u64, std::sync::Arc<ProvenBlock>>>,
    /// When this node's own OS or app reference ends (the earlier), if the owner scheduled it
    /// (proven; pinned deployments only).
    pub(super) own_expiry: Option<u64>,
}

/// A block's `SecretRequested` events, proven from its receipts once (concurrent decisions on its
/// requests wait for the same proof).
type ProvenBlock = tokio::sync::OnceCell<Vec<Op::SecretRequested>>;

/// Why the state a decision needs could not be read (the step or the request waits; never a refusal).
#[derive(Debug, thiserror::Error)]
pub(super) enum StateError {
    /// The RPC failed (unverified mode).
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A verified read failed: no fresh trusted header, or an answer that does not prove itself.
    #[error("verified read: {0}")]
    View(#[from] ViewError),
}

impl From<replicatoor_chain::proof::ProofError> for StateError {
    fn from(e: replicatoor_chain::proof::ProofError) -> Self {
        StateError::View(e.into())
    }
}

impl<'a> StepView<'a> {
    /// The state at block `at` (the confirmed head); with a pinned deployment, at the newest trusted
    /// header, which must be fresh by this TD's clock and cover `at`.
    /// `own`: this node's own OS and app references, whose scheduled end is read in the same proof.
    pub(super) async fn read(agent: &'a Agent, at: u64, own: &[B256]) -> Result<StepView<'a>, StateError> {
        let chain = &agent.chain;
        let (refs, blocks) = Default::default();
        if let Some(v) = &agent.verified {
            let newest = v.decision_header(crate::roles::unix_now(), at).await?;
            let reads = own.iter().fold(Reads::state(), |r, id| r.reference(*id));
            let (header, storage) = v.storage_near(&newest, at, &reads).await?;
            let views = Views(&storage);
            let (policy, cluster) = (views.policy()?, views.cluster()?);
            let mut own_expiry = None;
            for id in own {
                own_expiry = own_expiry.into_iter().chain(views.expires_at(*id)?).min();
            }
            return Ok(StepView {
                chain,
                proven: Some((v, header)),
                at: header.number,
                now: header.timestamp,
                policy,
                cluster,
                refs,
                blocks,
                own_expiry,
            });
        }
        let id = BlockId::number(at);
        let (policy, (cluster, _), block) =
            tokio::try_join!(chain.policy_at(id), chain.cluster_at(id), chain.block(at))?;
        Ok(StepView { chain, proven: None, at, now: block.timestamp, policy, cluster, refs, blocks, own_expiry: None })
    }

    /// The status of the request named `request` at the decision block (proven when the deployment
    /// is pinned; else the RPC's latest view, which is fresher for racing holders).
    async fn status(&self, request: B256) -> Result<RequestStatus, StateError> {
        match &self.proven {
            Some((v, h)) => {
                Ok(Views(&v.storage(h, &Reads::default().request(request)).await?).request_status(request)?)
            }
            None => Ok(self.chain.request_status(request, BlockId::latest()).await?),
        }
    }

    /// The request event as its block's receipts prove it (pinned deployments); the RPC's log otherwise.
    ///
    /// A block too far below the decision header to link (beyond the history contract's window, or
    /// 256 blocks where there is none) is proven through storage instead: `requestIdOf(key,
    /// requester)` must be this id at the decision header. The quote and event log are then the
    /// RPC's, which is safe: they pass the same pipeline, and a quote counts only if its report_data
    /// binds this requester and key, so any other quote the RPC could show releases only to the
    /// holder of the same key, the TD that made this request.
    async fn request_event(
        &self,
        ev: &Op::SecretRequested,
        block: u64,
    ) -> Result<Option<Op::SecretRequested>, StateError> {
        let Some((v, h)) = &self.proven else { return Ok(Some(ev.clone())) };
        let cell = match self.blocks.lock() {
            Ok(mut blocks) => blocks.entry(block).or_default().clone(),
            Err(_) => Default::default(),
        };
        let proven = cell
            .get_or_try_init(|| async {
                let events = v.events_in_block::<Op::SecretRequested>(h, block).await?;
                Ok::<_, ViewError>(events.into_iter().map(|p| p.event).collect())
            })
            .await;
        match proven {
            Ok(proven) => Ok(proven.iter().find(|p| p.requestId == ev.requestId).cloned()),
            Err(e) if e.is_unlinkable() => {
                let request = request_key(&ev.hpkePubKey.0, ev.requester);
                let id = Views(&v.storage(h, &Reads::default().request(request)).await?).request_id(request)?;
                debug!(target: "replicatoor::holder", block, "request block beyond the link range: bound by requestIdOf instead");
                Ok((id == ev.requestId).then(|| ev.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl References for StepView<'_> {
    type Error = StateError;
    async fn is_allowed(&self, id: B256, kind: RefKind) -> Result<bool, StateError> {
        let key = (id, kind as u8);
        if let Some(v) = self.refs.lock().ok().and_then(|m| m.get(&key).copied()) {
            return Ok(v);
        }
        let v = match &self.proven {
            Some((view, h)) => Views(&view.storage(h, &Reads::default().reference(id)).await?).is_allowed(id, kind)?,
            None => self.chain.is_allowed_at(id, kind, BlockId::number(self.at)).await?,
        };
        if let Ok(mut m) = self.refs.lock() {
            m.insert(key, v);
        }
        Ok(v)
    }
}

/// Count a read the verified view could not prove (an RPC failure counts as one already).
fn unproven(agent: &Agent, e: &StateError) {
    if matches!(e, StateError::View(_)) {
        agent.telemetry.unproven_read("holder");
    }
}

pub(super) async fn handle_request(
    agent: &Agent,
    bundle: &SecretBundle,
    ev: &Op::SecretRequested,
    block: u64,
    view: &StepView<'_>,
    refusals: &AtomicU32,
) -> anyhow::Result<Option<Answer>> {
    let chain = &agent.chain;
    let id = ev.requestId;
    let request = request_key(&ev.hpkePubKey.0, ev.requester);
    agent.store.set_request_key(id, request)?;
    let status = match view.status(request).await {
        Ok(s) => s,
        Err(e) => {
            unproven(agent, &e);
            return defer(agent, id, block, format!("reading status: {e}")).map(|_| None);
        }
    };
    if status != RequestStatus::Pending {
        let status = u8::from(status);
        debug!(target: "replicatoor::holder", status, "already answered");
        // Answered before we got to it (catch-up, restart): stored, but not counted as a race.
        agent.store.set_request(id, &RequestRecord { block, outcome: Outcome::AlreadyAnswered { status } })?;
        return Ok(None);
    }
    if view.cluster != bundle.cluster_address() {
        warn!(target: "replicatoor::holder", chain_cluster = %view.cluster, ours = %bundle.cluster_address(), "this node does not hold the current cluster key; not answering");
        return Ok(None);
    }
    // The request as consensus recorded it: an RPC cannot show a request that is not on chain.
    let ev = match view.request_event(ev, block).await {
        Ok(Some(proven)) => proven,
        Ok(None) => {
            agent.telemetry.unproven_read("holder");
            return defer(agent, id, block, "the RPC's request log is not in its block's proven receipts".into())
                .map(|_| None);
        }
        Err(e) => {
            unproven(agent, &e);
            return defer(agent, id, block, format!("proving the request event: {e}")).map(|_| None);
        }
    };
    let ev = &ev;
    let policy = view.policy;
    // Verified at the decision block's time: the platform must be trustworthy when the secret goes.
    let ctx =
        Context { deployment: chain.deployment(), verifier: &agent.verifier, policy, references: view, now: view.now };
    let binding = RequestBinding { request_id: id, requester: ev.requester, hpke_pub_key: ev.hpkePubKey.0 };
    let started = std::time::Instant::now();
    let decision = pipeline::evaluate(&ctx, binding, &ev.quote, &ev.eventLog).await;
    let verify_ms = started.elapsed().as_secs_f64() * 1e3;
    agent.telemetry.observe_verification(verify_ms / 1e3);
    match decision {
        Decision::Accept(accepted) => {
            info!(target: "replicatoor::holder", os_ref = %accepted.os_ref(), app_ref = %accepted.app_ref(), tcb = %accepted.quote().tcb_status(), simulated = accepted.quote().is_simulated(), verify_ms, "request verified");
            if let Err(why) = witnesses_agree(agent, bundle, ev, &accepted, block, view.at, &policy).await {
                return defer(agent, id, block, format!("witness RPCs disagree, not delivering: {why}")).map(|_| None);
            }
            let d = delivery::seal(&chain.deployment(), &accepted, bundle).context("sealing the bundle")?;
            crate::failpoint::hit("holder_after_seal");
            Ok(Some(Answer { id, block, kind: AnswerKind::Deliver(d) }))
        }
        Decision::Refuse(reason, detail) => {
            info!(target: "replicatoor::holder", reason = reason.name(), code = reason.code(), detail = %detail, "refusing request");
            let budget = agent.cfg.max_refusals_per_step;
            if refusals.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < budget).then_some(n + 1)).is_err() {
                warn!(target: "replicatoor::holder", reason = reason.name(), "refusal budget for this step spent; not posting");
                throttle(agent, id, block, reason)?;
                return Ok(None);
            }
            let request = binding.request_key();
            let msg = RefusalMsg { requestId: id, request, reason: reason.code() };
            let sig =
                eip712::sign(&chain.deployment(), &msg, bundle.cluster_signer()).context("signing the refusal")?;
            Ok(Some(Answer { id, block, kind: AnswerKind::Refuse(reason, request, sig.to_vec()) }))
        }
        Decision::Retry(why) => defer(agent, id, block, why).map(|_| None),
        Decision::Abstain(why) => {
            warn!(target: "replicatoor::holder", why = %why, "abstaining: leaving this request to other holders");
            record(agent, id, block, Outcome::Abstained { why })?;
            Ok(None)
        }
    }
}

/// Every witness RPC must show the same decision block, the same request and the same contract
/// state (cluster, policy, both references allowed) as the primary RPC, so that one lying RPC cannot
/// make this holder release the secret.
async fn witnesses_agree(
    agent: &Agent,
    bundle: &SecretBundle,
    ev: &Op::SecretRequested,
    accepted: &AcceptedRequest,
    block: u64,
    decide_at: u64,
    policy: &replicatoor_core::protocol::Policy,
) -> Result<(), String> {
    if agent.cfg.witness_rpc_urls.is_empty() {
        return Ok(());
    }
    let primary = &agent.chain;
    let decide_hash = primary.block(decide_at).await.map_err(|e| e.to_string())?.hash;
    let request_hash = primary.block(block).await.map_err(|e| e.to_string())?.hash;
    let at = BlockId::number(decide_at);
    for url in &agent.cfg.witness_rpc_urls {
        let host = url.split('/').nth(2).unwrap_or(url);
        let w = Chain::connect(url, primary.deployment().contract, None).await.map_err(|e| format!("{host}: {e}"))?;
        let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(format!("{host}: {what} differs")) };
        check(w.deployment() == primary.deployment(), "chain id")?;
        let e = |err: ChainError| format!("{host}: {err}");
        check(w.block(decide_at).await.map_err(e)?.hash == decide_hash, "decision block hash")?;
        check(w.block(block).await.map_err(e)?.hash == request_hash, "request block hash")?;
        let filter = Filter::new()
            .address(primary.deployment().contract)
            .event_signature(Op::SecretRequested::SIGNATURE_HASH)
            .topic1(ev.requestId)
            .from_block(block)
            .to_block(block);
        let logs = replicatoor_chain::scan::get_logs(&w, &filter, block, block).await.map_err(e)?;
        let same = logs.iter().filter_map(|l| l.log_decode::<Op::SecretRequested>().ok()).any(|l| l.inner.data == *ev);
        check(same, "request event")?;
        check(w.cluster_at(at).await.map_err(e)?.0 == bundle.cluster_address(), "cluster")?;
        check(w.policy_at(at).await.map_err(e)? == *policy, "policy")?;
        check(w.is_allowed_at(accepted.os_ref(), RefKind::Os, at).await.map_err(e)?, "OS reference status")?;
        check(w.is_allowed_at(accepted.app_ref(), RefKind::App, at).await.map_err(e)?, "app reference status")?;
    }
    Ok(())
}
