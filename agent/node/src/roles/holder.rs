//! Holder: follow `SecretRequested` logs from a persisted checkpoint and answer each request once:
//! verify → seal and sign → deliver, or sign and post the refusal reason.

use super::Agent;
use crate::store::{Outcome, RequestRecord};
use alloy::{
    eips::BlockId,
    primitives::{keccak256, Address, B256, U256},
    rpc::types::{Filter, Log},
    sol_types::SolEvent,
};
use anyhow::Context as _;
use replicatoor_chain::{
    bindings::UpgradeOperator as Op,
    client::Submitted,
    follower::{Follower, FollowerConfig, Step},
    Chain, ChainError, TxOutcome,
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
    protocol::{RefKind, RequestStatus},
    refusal::Refusal,
};
use std::time::Duration;
use tracing::{debug, info, info_span, warn, Instrument};

/// The contract state one step's decisions are based on, read once at the decision block (the
/// confirmed head): policy, cluster, time, and reference answers memoized per step.
struct StepView<'a> {
    chain: &'a Chain,
    at: u64,
    now: u64,
    policy: replicatoor_core::protocol::Policy,
    cluster: Address,
    refs: std::sync::Mutex<std::collections::HashMap<(B256, u8), bool>>,
}

impl<'a> StepView<'a> {
    async fn read(chain: &'a Chain, at: u64) -> Result<StepView<'a>, ChainError> {
        let id = BlockId::number(at);
        let (policy, (cluster, _), block) =
            tokio::try_join!(chain.policy_at(id), chain.cluster_at(id), chain.block(at))?;
        Ok(StepView { chain, at, now: block.timestamp, policy, cluster, refs: Default::default() })
    }
}

impl References for StepView<'_> {
    type Error = ChainError;
    async fn is_allowed(&self, id: B256, kind: RefKind) -> Result<bool, ChainError> {
        let key = (id, kind as u8);
        if let Some(v) = self.refs.lock().ok().and_then(|m| m.get(&key).copied()) {
            return Ok(v);
        }
        let v = self.chain.is_allowed_at(id, kind, BlockId::number(self.at)).await?;
        if let Ok(mut m) = self.refs.lock() {
            m.insert(key, v);
        }
        Ok(v)
    }
}

/// Serve requests until shutdown.
pub async fn run(agent: &Agent) -> anyhow::Result<()> {
    let bundle = agent.store.bundle()?.context("holder without a bundle")?;
    let chain = &agent.chain;
    let filter =
        Filter::new().address(chain.deployment().contract).event_signature(Op::SecretRequested::SIGNATURE_HASH);
    let follower = Follower::new(
        chain.clone(),
        filter,
        FollowerConfig { confirmations: agent.cfg.confirmations, ..Default::default() },
    );
    agent.telemetry.update(|s| {
        s.cluster = Some(bundle.cluster_address().to_string());
        s.epoch = Some(bundle.epoch());
    });
    info!(target: "replicatoor::holder", cluster = %bundle.cluster_address(), epoch = bundle.epoch(), confirmations = agent.cfg.confirmations, "serving as holder");
    let mut backoff = agent.backoff();
    while !agent.stopping() {
        let step = follower.step(agent.store.checkpoint()?, agent.cfg.start_block).await;
        match step {
            Ok(Step::Logs { from, to, logs, checkpoint, head }) => {
                backoff.reset();
                // Decide at the confirmed head: the freshest state a reorg cannot easily take back,
                // and one that a non-archive node still serves during catch-up.
                let decide_at = head.saturating_sub(agent.cfg.confirmations).max(to);
                let view = match StepView::read(chain, decide_at).await {
                    Ok(v) => v,
                    Err(e) => {
                        agent.telemetry.rpc_error();
                        warn!(target: "replicatoor::holder", error = %e, "cannot read the contract state; retrying the step");
                        if !agent.pause(backoff.next_delay()).await {
                            break;
                        }
                        continue;
                    }
                };
                let mut refusals = 0u32;
                let mut answers = Vec::new();
                for log in &logs {
                    if agent.stopping() {
                        return Ok(());
                    }
                    answers.extend(handle_log(agent, &bundle, log, &view, &mut refusals).await?);
                }
                answers.extend(retry_deferred(agent, &bundle, &view, &mut refusals).await?);
                send_answers(agent, answers).await?;
                if !logs.is_empty() {
                    crate::failpoint::hit("holder_before_checkpoint");
                }
                agent.store.set_checkpoint(checkpoint)?;
                agent.telemetry.update(|s| {
                    s.checkpoint = Some(to);
                    s.chain_head = Some(head);
                });
                debug!(target: "replicatoor::holder", from, to, head, requests = logs.len(), "checkpoint saved");
                if to >= head.saturating_sub(agent.cfg.confirmations) && !agent.pause(agent.poll()).await {
                    break;
                }
            }
            Ok(Step::Reorg { dropped, checkpoint }) => {
                warn!(target: "replicatoor::holder", dropped_block = dropped.block, rewind_to = checkpoint.block, "reorg: re-processing from an earlier block");
                agent.store.set_checkpoint(checkpoint)?;
            }
            Ok(Step::Idle { head }) => {
                agent.telemetry.update(|s| s.chain_head = Some(head));
                if !agent.pause(agent.poll()).await {
                    break;
                }
            }
            Err(e) => {
                agent.telemetry.rpc_error();
                let delay = backoff.next_delay();
                warn!(target: "replicatoor::holder", error = %e, retry_in_ms = delay.as_millis() as u64, "chain unavailable");
                if !agent.pause(delay).await {
                    break;
                }
            }
        }
    }
    info!(target: "replicatoor::holder", "holder stopped");
    Ok(())
}

async fn handle_log(
    agent: &Agent,
    bundle: &SecretBundle,
    log: &Log,
    view: &StepView<'_>,
    refusals: &mut u32,
) -> anyhow::Result<Option<Answer>> {
    let Ok(decoded) = log.log_decode::<Op::SecretRequested>() else {
        warn!(target: "replicatoor::holder", tx = ?log.transaction_hash, "undecodable SecretRequested log skipped");
        return Ok(None);
    };
    let ev = decoded.inner.data;
    let block = log.block_number.unwrap_or(view.at);
    agent.telemetry.request_seen();
    let span = info_span!("request", id = %ev.requestId);
    handle_request(agent, bundle, &ev, block, view, refusals).instrument(span).await
}

/// Blocks after a request during which a holder checks that the request's answer is still on chain
/// (the follower's default reorg rewind depth).
const REANSWER_WINDOW: u64 = 64;

/// Re-evaluate requests deferred by local faults (collateral, RPC) from earlier steps, and recent
/// requests whose answer a reorg dropped.
async fn retry_deferred(
    agent: &Agent,
    bundle: &SecretBundle,
    view: &StepView<'_>,
    refusals: &mut u32,
) -> anyhow::Result<Vec<Answer>> {
    let mut answers = Vec::new();
    for (id, rec) in agent.store.requests()? {
        let again = match rec.outcome {
            Outcome::Deferred { .. } => true,
            // An answer mined after the follower's checkpoint can be reorged away without the
            // checkpoint's block changing, so the follower would never rewind over the request.
            Outcome::Served { .. } | Outcome::Refused { .. } | Outcome::AlreadyAnswered { .. } => {
                rec.block + REANSWER_WINDOW > view.at && answer_dropped(agent, id).await
            }
            Outcome::Abstained { .. } | Outcome::Throttled { .. } => false,
        };
        if !again {
            continue;
        }
        let filter = Filter::new()
            .address(agent.chain.deployment().contract)
            .event_signature(Op::SecretRequested::SIGNATURE_HASH)
            .topic1(id)
            .from_block(rec.block)
            .to_block(rec.block);
        let logs = match replicatoor_chain::scan::get_logs(&agent.chain, &filter, rec.block, rec.block).await {
            Ok(l) => l,
            Err(e) => {
                debug!(target: "replicatoor::holder", request_id = %id, error = %e, "deferred request: log not readable yet");
                continue;
            }
        };
        for log in &logs {
            answers.extend(handle_log(agent, bundle, log, view, refusals).await?);
        }
    }
    Ok(answers)
}

/// True when a request we saw answered is pending again, mempool included (its answer was reorged away).
async fn answer_dropped(agent: &Agent, id: U256) -> bool {
    let dropped = matches!(agent.chain.request_status(id, BlockId::pending()).await, Ok(RequestStatus::Pending));
    if dropped {
        warn!(target: "replicatoor::holder", request_id = %id, "the answer is no longer on chain (reorg); answering again");
    }
    dropped
}

async fn handle_request(
    agent: &Agent,
    bundle: &SecretBundle,
    ev: &Op::SecretRequested,
    block: u64,
    view: &StepView<'_>,
    refusals: &mut u32,
) -> anyhow::Result<Option<Answer>> {
    let chain = &agent.chain;
    let id = ev.requestId;
    let status = match chain.request_status(id, BlockId::latest()).await {
        Ok(s) => s,
        Err(e) => return defer(agent, id, block, format!("reading status: {e}")).map(|_| None),
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
            if *refusals >= agent.cfg.max_refusals_per_step {
                warn!(target: "replicatoor::holder", reason = reason.name(), "refusal budget for this step spent; not posting");
                record(agent, id, block, Outcome::Throttled { reason: reason.code() })?;
                return Ok(None);
            }
            *refusals += 1;
            let msg = RefusalMsg { requestId: id, reason: reason.code() };
            let sig =
                eip712::sign(&chain.deployment(), &msg, bundle.cluster_signer()).context("signing the refusal")?;
            Ok(Some(Answer { id, block, kind: AnswerKind::Refuse(reason, sig.to_vec()) }))
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

/// Persist what became of a request and count it.
fn record(agent: &Agent, id: U256, block: u64, outcome: Outcome) -> anyhow::Result<()> {
    use crate::telemetry::Outcome as T;
    let counted = match &outcome {
        Outcome::Served { .. } => T::Served,
        Outcome::Refused { reason, .. } => T::Refused(Refusal::from_code(*reason).map_or("unknown", Refusal::name)),
        Outcome::AlreadyAnswered { .. } => T::LostRace,
        Outcome::Deferred { .. } => T::Deferred,
        Outcome::Abstained { .. } => T::Abstained,
        Outcome::Throttled { .. } => T::Throttled,
    };
    agent.store.set_request(id, &RequestRecord { block, outcome })?;
    agent.telemetry.outcome(&id.to_string(), counted);
    Ok(())
}

fn defer(agent: &Agent, id: U256, block: u64, why: String) -> anyhow::Result<()> {
    warn!(target: "replicatoor::holder", request_id = %id, why = %why, "request deferred; will retry");
    record(agent, id, block, Outcome::Deferred { why })?;
    Ok(())
}

/// A per-holder, per-request delay so that racing holders rarely send the same answer.
fn jitter(agent: &Agent, id: U256) -> Duration {
    if agent.cfg.jitter_ms == 0 {
        return Duration::ZERO;
    }
    let sender = agent.chain.sender().unwrap_or_default();
    let h = keccak256([id.to_be_bytes::<32>().as_slice(), sender.as_slice()].concat());
    Duration::from_millis(u64::from_be_bytes(h[..8].try_into().unwrap_or_default()) % agent.cfg.jitter_ms)
}

/// A signed answer to one request, ready to send.
pub(crate) struct Answer {
    id: U256,
    block: u64,
    kind: AnswerKind,
}

enum AnswerKind {
    Deliver(delivery::SignedDelivery),
    Refuse(Refusal, Vec<u8>),
}

/// How long to wait for an answer's receipt before re-checking the request instead.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Send a step's answers: each after this holder's jitter for it and only if the request is still
/// pending (mempool included), all without waiting for receipts, so they can share a block; then
/// wait for the receipts together and record each outcome.
async fn send_answers(agent: &Agent, mut answers: Vec<Answer>) -> anyhow::Result<()> {
    if answers.is_empty() {
        return Ok(());
    }
    let chain = &agent.chain;
    answers.sort_by_key(|a| jitter(agent, a.id));
    let start = tokio::time::Instant::now();
    let mut in_flight = Vec::new();
    for a in answers {
        tokio::time::sleep_until(start + jitter(agent, a.id)).await;
        let span = info_span!("request", id = %a.id);
        if let Some(sent) = submit_answer(agent, a).instrument(span).await? {
            in_flight.push(sent);
        }
    }
    let confirmations = in_flight.into_iter().map(|(a, tx)| async move {
        let result = chain.confirm(tx, RECEIPT_TIMEOUT).await;
        (a, result)
    });
    for (a, result) in futures::future::join_all(confirmations).await {
        let span = info_span!("request", id = %a.id);
        record_answer(agent, a, result).instrument(span).await?;
    }
    Ok(())
}

/// Send one answer if its request is still pending (mempool included).
async fn submit_answer(agent: &Agent, a: Answer) -> anyhow::Result<Option<(Answer, Submitted)>> {
    let chain = &agent.chain;
    match chain.request_status(a.id, BlockId::pending()).await {
        Ok(RequestStatus::Pending) => {}
        Ok(_) => return lost_race(agent, a.id, a.block).await.map(|_| None),
        Err(e) => return defer(agent, a.id, a.block, format!("status before answering: {e}")).map(|_| None),
    }
    let sent = match &a.kind {
        AnswerKind::Deliver(d) => {
            let call = chain.contract().deliverSecret(
                a.id,
                d.os_ref,
                d.app_ref,
                d.encapsulated_key.clone().into(),
                d.ciphertext.clone().into(),
                d.signature.clone().into(),
            );
            chain.submit(call).await
        }
        AnswerKind::Refuse(reason, sig) => {
            chain.submit(chain.contract().refuseRequest(a.id, reason.code(), sig.clone().into())).await
        }
    };
    match sent {
        Ok(tx) => Ok(Some((a, tx))),
        Err(e) => answer_failed(agent, a.id, a.block, e).await.map(|_| None),
    }
}

/// Record what became of a sent answer.
async fn record_answer(agent: &Agent, a: Answer, result: Result<TxOutcome, ChainError>) -> anyhow::Result<()> {
    match (result, a.kind) {
        (Ok(o), AnswerKind::Deliver(_)) => {
            crate::failpoint::hit("holder_after_send");
            info!(target: "replicatoor::holder", tx = %o.tx_hash, block = o.block, gas_used = o.gas_used, "secret delivered");
            record(agent, a.id, a.block, Outcome::Served { tx_hash: o.tx_hash, block: o.block })
        }
        (Ok(o), AnswerKind::Refuse(reason, _)) => {
            info!(target: "replicatoor::holder", tx = %o.tx_hash, reason = reason.name(), "refusal posted");
            record(agent, a.id, a.block, Outcome::Refused { reason: reason.code(), tx_hash: o.tx_hash, block: o.block })
        }
        (Err(e), _) => answer_failed(agent, a.id, a.block, e).await,
    }
}

/// A send failed: if another holder answered, that is a lost race, not an error.
async fn answer_failed(agent: &Agent, id: U256, block: u64, e: ChainError) -> anyhow::Result<()> {
    match agent.chain.request_status(id, BlockId::latest()).await {
        Ok(s) if s != RequestStatus::Pending => lost_race(agent, id, block).await,
        _ => defer(agent, id, block, format!("sending the answer: {e}")),
    }
}

async fn lost_race(agent: &Agent, id: U256, block: u64) -> anyhow::Result<()> {
    let status = agent.chain.request_status(id, BlockId::pending()).await.map_or(0, u8::from);
    info!(target: "replicatoor::holder", status, "another holder answered first (lost race)");
    record(agent, id, block, Outcome::AlreadyAnswered { status })?;
    Ok(())
}
