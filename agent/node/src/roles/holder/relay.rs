//! Sending a step's signed answers: at once when the holders split requests ([`super::peers`]),
//! jittered while this holder knows no other (so racing holders rarely collide), only while the
//! request is still pending, checked and sent concurrently, then confirmed together and recorded. Nothing
//! here decides anything: a lost race or a failed send is recorded, never re-decided. One check
//! stands between a sealed delivery and the RPC, and the release gate makes it
//! (`replicatoor_core::gate`, `Question::Sealed`): with a pinned deployment the state the delivery was
//! decided on (policy, both references, the request still pending) is proven again at the newest
//! trusted header, so a narrowing or a revocation mined during the jitter keeps the ciphertext in the TD.
//!
//! That header must also be later than the decision whatever view the operator shows the TD, and
//! not much older than the send by a clock the operator cannot move (PROTOCOL.md §5.3, protocol v5):
//! before a batch's first sealed delivery, the holder draws a random nonce and posts its commitment
//! (`commit`), and a delivery leaves only on a header whose proven state holds that commitment, while
//! the TD's monotonic clock says the commitment was drawn less than `reveal_within_secs` ago. An
//! operator who froze the view never shows such a header; one who withholds it past the bound gets
//! the batch given up (deferred, decided again with a new commitment).

use super::{
    answer::{Answer, AnswerKind},
    outcome::{defer, record},
};
use crate::{roles::Agent, store::Outcome};
use alloy::contract::CallBuilder;
use alloy::{
    eips::BlockId,
    primitives::{keccak256, U256},
};
use futures::StreamExt as _;
use replicatoor_chain::{
    anchor::{Anchor, Verified},
    layout::Reads,
    state::Proven,
    verified::ViewError,
    ChainError, TxOutcome,
};
use replicatoor_core::{
    clock::Clock as _,
    delivery,
    gate::{self, Commitment, Gate, Question, Verdict, Wait},
    protocol::{self, RequestStatus},
};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, info_span, Instrument};

/// A per-holder, per-request delay so that racing holders rarely send the same answer.
fn jitter(agent: &Agent, id: U256) -> Duration {
    jitter_delay(id, agent.chain.sender().unwrap_or_default(), agent.cfg.jitter_ms)
}

/// The delay a holder sending as `sender` waits before answering request `id`, under a bound of
/// `bound_ms`: derived from both, so racing holders spread out and each one's delay is reproducible.
pub fn jitter_delay(id: U256, sender: alloy::primitives::Address, bound_ms: u64) -> Duration {
    if bound_ms == 0 {
        return Duration::ZERO;
    }
    let h = keccak256([id.to_be_bytes::<32>().as_slice(), sender.as_slice()].concat());
    Duration::from_millis(u64::from_be_bytes(h[..8].try_into().unwrap_or_default()) % bound_ms)
}

/// Answers being checked and sent at once, at most.
const SEND_CONCURRENCY: usize = 48;

/// How long to wait for an answer's receipt before re-checking the request instead.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// A sent answer whose receipt is awaited in the background, so that the holder reads the next
/// blocks meanwhile. Its request is stored as `Sent` (flushed) before the checkpoint moves past it.
pub(super) struct InFlight {
    answer: Answer,
    receipt: tokio::task::JoinHandle<Result<TxOutcome, ChainError>>,
}

impl InFlight {
    pub(super) fn id(&self) -> U256 {
        self.answer.id
    }

    pub(super) fn is_refusal(&self) -> bool {
        matches!(self.answer.kind, AnswerKind::Refuse(..))
    }
}

/// Send a step's answers: each after this holder's jitter for it (when `jittered`: it knows no other
/// holder to split requests with) and only if the request is still pending (mempool included), up to
/// [`SEND_CONCURRENCY`] at once, without waiting for receipts, so they can share a block. Returns
/// the sent ones; [`settle`] records what became of each. The nonce is read from the node again
/// unless earlier answers are still `in_flight` (the client re-reads it after any failure anyway).
/// `decided_at`: the block of the state the answers were decided on.
pub(super) async fn send_answers(
    agent: &Agent,
    gate: &Gate<'_>,
    mut answers: Vec<Answer>,
    decided_at: u64,
    jittered: bool,
    in_flight: usize,
) -> anyhow::Result<Vec<InFlight>> {
    if answers.is_empty() {
        return Ok(Vec::new());
    }
    let chain = &agent.chain;
    let delay = |id: U256| if jittered { jitter(agent, id) } else { Duration::ZERO };
    answers.sort_by_key(|a| delay(a.id));
    if in_flight == 0 {
        chain.forget_nonce().await;
    }
    // One fee quote for the batch instead of one per transaction (none: each send asks the node).
    let fees = chain.fees().await.ok();
    let recheck = match &agent.verified {
        Some(v) => match commit(agent, &answers, fees).await {
            Ok(c) => c.map(|c| Recheck::new(v, gate, &answers, decided_at, c)),
            Err(e) => {
                // No commitment, no sealed delivery: the deliveries wait for the next step, the
                // refusals (which release nothing) go.
                let why = format!("posting the batch's commitment: {e:#}");
                let (deliveries, refusals): (Vec<_>, Vec<_>) =
                    answers.into_iter().partition(|a| matches!(a.kind, AnswerKind::Deliver(_)));
                for a in deliveries {
                    defer(agent, a.id, a.block, why.clone())?;
                }
                answers = refusals;
                None
            }
        },
        None => None,
    };
    let recheck = recheck.as_ref();
    let start = tokio::time::Instant::now();
    // Each answer is checked and sent when its jitter is up, overlapping with the others' round trips
    // (the client assigns nonces, so sends need not wait for each other).
    let sent: Vec<_> = futures::stream::iter(answers)
        .map(|a| async move {
            let at = start + delay(a.id);
            tokio::time::sleep_until(at).await;
            let span = info_span!("request", id = %a.id);
            submit_answer(agent, recheck, fees, at.into_std(), a).instrument(span).await
        })
        .buffer_unordered(SEND_CONCURRENCY)
        .collect()
        .await;
    Ok(sent.into_iter().collect::<anyhow::Result<Vec<_>>>()?.into_iter().flatten().collect())
}

/// Post this batch's commitment (PROTOCOL.md §5.3) when it holds a sealed delivery: a nonce drawn
/// now, after the decision, bound to the batch's request ids, sent from this holder's account. Only
/// the transaction is sent here; each delivery then waits for a trusted header that proves it
/// ([`Recheck::still_decided`]). `None`: nothing in the batch needs one.
async fn commit(agent: &Agent, answers: &[Answer], fees: Option<Fees>) -> anyhow::Result<Option<Commitment>> {
    let ids: Vec<U256> = answers.iter().filter(|a| matches!(a.kind, AnswerKind::Deliver(_))).map(|a| a.id).collect();
    if ids.is_empty() {
        return Ok(None);
    }
    let chain = &agent.chain;
    let holder = chain.sender().ok_or_else(|| anyhow::anyhow!("no sender account to commit from"))?;
    let mut nonce = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(nonce.as_mut()).map_err(|e| anyhow::anyhow!("OS randomness unavailable: {e}"))?;
    let drawn = crate::roles::CLOCK.monotonic();
    let value = protocol::commitment(&nonce, &ids);
    let within = Duration::from_secs(agent.cfg.deployment.as_ref().map_or(
        replicatoor_chain::deployment::DEFAULT_REVEAL_WITHIN_SECS,
        replicatoor_chain::deployment::PinnedDeployment::reveal_within_secs,
    ));
    let tx = chain.submit(priced(chain.contract().commit(value), fees)).await?;
    info!(target: "replicatoor::holder", commitment = %value, tx = %tx.tx_hash(), deliveries = ids.len(), "batch commitment posted");
    // Its receipt only tells the operator's RPC's story; what counts is the proof at a trusted
    // header. Awaited in the background so that a dropped commitment is noticed in the log.
    let chain = chain.clone();
    tokio::spawn(async move {
        if let Err(e) = chain.confirm(tx, RECEIPT_TIMEOUT).await {
            tracing::warn!(target: "replicatoor::holder", error = %e, "batch commitment not mined");
        }
    });
    Ok(Some(Commitment { holder, value, drawn, within }))
}

/// Record the answers whose receipts came (all of them, waiting up to the receipt timeout, when
/// `wait`); the others stay in flight. Returns, for each refusal settled, its gas if it was mined
/// (the hourly refusal budget counts it).
pub(super) async fn settle(
    agent: &Agent,
    in_flight: &mut Vec<InFlight>,
    wait: bool,
) -> anyhow::Result<Vec<Option<u64>>> {
    let (done, pending): (Vec<_>, Vec<_>) =
        std::mem::take(in_flight).into_iter().partition(|f| wait || f.receipt.is_finished());
    *in_flight = pending;
    let mut refusals = Vec::new();
    for f in done {
        let result = f.receipt.await.unwrap_or_else(|e| Err(ChainError::Rpc(format!("receipt task: {e}"))));
        if matches!(f.answer.kind, AnswerKind::Refuse(..)) {
            refusals.push(result.as_ref().ok().map(|o| o.gas_used));
        }
        let span = info_span!("request", id = %f.answer.id);
        record_answer(agent, f.answer, result).instrument(span).await?;
    }
    Ok(refusals)
}

/// Send one answer if its request is still pending (mempool included).
async fn submit_answer(
    agent: &Agent,
    recheck: Option<&Recheck<'_>>,
    fees: Option<Fees>,
    due: std::time::Instant,
    a: Answer,
) -> anyhow::Result<Option<InFlight>> {
    let chain = &agent.chain;
    let started = std::time::Instant::now();
    // Both checks at once: two round trips in the time of one.
    let reproven = async {
        match (&a.kind, recheck) {
            (AnswerKind::Deliver(d), Some(recheck)) => Some(recheck.still_decided(a.block, d, due).await),
            _ => None,
        }
    };
    let (status, reproven) = tokio::join!(chain.request_status(a.request(), BlockId::pending()), reproven);
    match status {
        Ok(RequestStatus::Pending) => {}
        Ok(_) => return lost_race(agent, &a).await.map(|_| None),
        Err(e) => return defer(agent, a.id, a.block, format!("status before answering: {e}")).map(|_| None),
    }
    let unproven = |e: ViewError| {
        agent.telemetry.unproven_read("holder");
        format!("re-proving the decision before sending: {e}")
    };
    let not_now = match reproven {
        None | Some(Ok(Verdict::Stands)) => None,
        Some(Ok(Verdict::Wait(Wait::Changed(what)))) => {
            Some(format!("{what} changed since the decision (proven at the newest header): deciding again"))
        }
        Some(Ok(Verdict::Wait(Wait::Late { waited, within }))) => Some(format!(
            "no trusted header proved the batch's commitment within {} s of drawing it (waited {} ms by the \
             TD's monotonic clock): the view may be withheld or frozen; deciding again",
            within.as_secs(),
            waited.as_millis()
        )),
        Some(Ok(Verdict::Wait(Wait::Unreadable(_, e))) | Err(e)) => Some(unproven(e)),
        // The gate answers a sealed delivery with one of the above; anything else is not a go.
        Some(Ok(other)) => Some(format!("re-checking the decision before sending: {other:?}")),
    };
    if let Some(why) = not_now {
        return defer(agent, a.id, a.block, why).map(|_| None);
    }
    debug!(target: "replicatoor::holder", checks_ms = started.elapsed().as_millis() as u64, "still pending, still decided: sending");
    let sent = match &a.kind {
        AnswerKind::Deliver(d) => {
            let call = chain.contract().deliverSecret(
                a.id,
                d.request,
                d.policy,
                d.os_ref,
                d.app_ref,
                d.encapsulated_key.clone().into(),
                d.ciphertext.clone().into(),
                d.signature.clone().into(),
            );
            chain.submit(priced(call, fees)).await
        }
        AnswerKind::Refuse(reason, request, sig) => {
            let call = chain.contract().refuseRequest(a.id, *request, reason.code(), sig.clone().into());
            chain.submit(priced(call, fees)).await
        }
    };
    match sent {
        Ok(tx) => {
            let outcome = Outcome::Sent { tx_hash: tx.tx_hash() };
            agent.store.set_request(a.id, &crate::store::RequestRecord { block: a.block, outcome })?;
            let chain = chain.clone();
            let receipt = tokio::spawn(async move { chain.confirm(tx, RECEIPT_TIMEOUT).await });
            Ok(Some(InFlight { answer: a, receipt }))
        }
        Err(e) => answer_failed(agent, &a, e).await.map(|_| None),
    }
}

type Fees = alloy::eips::eip1559::Eip1559Estimation;

/// `call` at the batch's fee quote, if there is one.
fn priced<P: alloy::providers::Provider, C: alloy::contract::CallDecoder>(
    call: CallBuilder<P, C>,
    fees: Option<Fees>,
) -> CallBuilder<P, C> {
    match fees {
        Some(f) => call.max_fee_per_gas(f.max_fee_per_gas).max_priority_fee_per_gas(f.max_priority_fee_per_gas),
        None => call,
    }
}

/// The state a step's deliveries were decided on, proven again before each is sent: one proof per
/// trusted header for all of the step's deliveries (policy, their references, their requests'
/// status, this holder's commitment), not one per delivery; the gate judges each delivery on it.
struct Recheck<'a> {
    v: &'a Verified,
    gate: &'a Gate<'a>,
    reads: Reads,
    /// The batch's commitment: a header that proves it is later than the decision.
    commitment: Commitment,
    /// The block of the header the answers were decided at: a re-proof is never older.
    decided_at: u64,
    /// The proof at the newest header asked for so far (its hash), shared by the deliveries sent under it.
    proven: tokio::sync::Mutex<Option<(alloy::primitives::B256, Arc<Proven<'a, Anchor>>)>>,
}

impl<'a> Recheck<'a> {
    fn new(v: &'a Verified, gate: &'a Gate<'a>, answers: &[Answer], decided_at: u64, commitment: Commitment) -> Self {
        let mut refs = std::collections::BTreeSet::new();
        let mut reads = Reads::state().commitment(commitment.holder);
        for a in answers {
            if let AnswerKind::Deliver(d) = &a.kind {
                refs.extend([d.os_ref, d.app_ref]);
                reads = reads.request(d.request);
            }
        }
        let reads = refs.into_iter().fold(reads, Reads::reference);
        Recheck { v, gate, reads, commitment, decided_at, proven: Default::default() }
    }

    /// The gate's verdict on delivery `d`, for a request in block `block`, on the state proven at the
    /// newest trusted header as of `due` (when it was to leave: a trust-root sync begun since). Until
    /// a header shows the batch's commitment, newer headers are asked for, as long as the commitment
    /// is younger than its bound; then the gate's answer is that it came too late.
    async fn still_decided(
        &self,
        block: u64,
        d: &delivery::SignedDelivery,
        due: std::time::Instant,
    ) -> Result<Verdict<ViewError>, ViewError> {
        let c = &self.commitment;
        let mut since = due;
        loop {
            let verdict = self.at_newest(block, d, since).await;
            let waited = crate::roles::CLOCK.monotonic().saturating_duration_since(c.drawn);
            match verdict {
                // Not shown yet (the header predates the commitment's block, or the RPC cannot prove
                // it there yet): a newer header, while the bound allows.
                Ok(Verdict::Wait(Wait::NotCommitted)) | Err(_) if waited < c.within => {
                    debug!(target: "replicatoor::holder", waited_ms = waited.as_millis() as u64, "waiting for a trusted header that proves the batch's commitment");
                    tokio::time::sleep(COMMIT_POLL).await;
                    since = crate::roles::CLOCK.monotonic();
                }
                Ok(Verdict::Wait(Wait::NotCommitted)) | Err(_) => {
                    return Ok(Verdict::Wait(Wait::Late { waited, within: c.within }));
                }
                other => return other,
            }
        }
    }

    /// One look at the newest trusted header as of `since`.
    async fn at_newest(
        &self,
        block: u64,
        d: &delivery::SignedDelivery,
        since: std::time::Instant,
    ) -> Result<Verdict<ViewError>, ViewError> {
        let head = self.v.decision_header_since(crate::roles::unix_now(), block, since).await?;
        let state = {
            let mut proven = self.proven.lock().await;
            match &*proven {
                Some((hash, s)) if *hash == head.hash => s.clone(),
                _ => {
                    // At the newest header, or its parent when the RPC cannot prove there yet (still
                    // at or after the request's block, and newer than the decision's header or equal).
                    let s = Arc::new(Proven::near(self.v, &head, block.max(self.decided_at), &self.reads).await?);
                    *proven = Some((head.hash, s.clone()));
                    s
                }
            }
        };
        Ok(gate::decide(self.gate, &*state, Question::Sealed(d, &self.commitment)).await.verdict)
    }
}

/// How often a delivery waiting for its batch's commitment asks for a newer trusted header.
const COMMIT_POLL: Duration = Duration::from_millis(250);

/// Record what became of a sent answer.
async fn record_answer(agent: &Agent, a: Answer, result: Result<TxOutcome, ChainError>) -> anyhow::Result<()> {
    match (result, &a.kind) {
        (Ok(o), AnswerKind::Deliver(_)) => {
            crate::failpoint::hit("holder_after_send");
            info!(target: "replicatoor::holder", tx = %o.tx_hash, block = o.block, gas_used = o.gas_used, "secret delivered");
            record(agent, a.id, a.block, Outcome::Served { tx_hash: o.tx_hash, block: o.block })
        }
        (Ok(o), AnswerKind::Refuse(reason, ..)) => {
            info!(target: "replicatoor::holder", tx = %o.tx_hash, reason = reason.name(), "refusal posted");
            record(agent, a.id, a.block, Outcome::Refused { reason: reason.code(), tx_hash: o.tx_hash, block: o.block })
        }
        (Err(e), _) => answer_failed(agent, &a, e).await,
    }
}

/// A send failed: if another holder answered, that is a lost race, not an error.
async fn answer_failed(agent: &Agent, a: &Answer, e: ChainError) -> anyhow::Result<()> {
    match agent.chain.request_status(a.request(), BlockId::latest()).await {
        Ok(s) if s != RequestStatus::Pending => lost_race(agent, a).await,
        _ => defer(agent, a.id, a.block, format!("sending the answer: {e}")),
    }
}

async fn lost_race(agent: &Agent, a: &Answer) -> anyhow::Result<()> {
    let status = agent.chain.request_status(a.request(), BlockId::pending()).await.map_or(0, |s| s as u8);
    info!(target: "replicatoor::holder", status, "another holder answered first (lost race)");
    record(agent, a.id, a.block, Outcome::AlreadyAnswered { status })?;
    Ok(())
}
