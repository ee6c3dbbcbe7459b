//! Holder: follow `SecretRequested` logs from a persisted checkpoint and answer each request once.
//! Two halves: [`decide`] asks the release gate (`replicatoor_core::gate`) about each request at the
//! decision block's contract state, then seals the bundle or signs a refusal (nothing else seals), [`relay`] sends the
//! signed answers, confirms them and records what became of each. [`peers`] splits requests among
//! the holders (who answers first, who is a backup). [`outcome`] records what became of each request
//! (and when a postponed one is due again). [`intake`] triages each request on arrival by the cheap
//! checks, so that junk waits in a bounded queue for its refusal (a few per step, within an hourly gas
//! budget) while requests that pass are decided and delivered first. This file runs the loop, one
//! step at a time.

mod answer;
mod decide;
mod intake;
mod outcome;
mod peers;
mod relay;
mod rotation;
mod witness;

pub use relay::jitter_delay;

use super::Agent;
use crate::store::{Outcome, RequestRecord};
use alloy::{
    eips::BlockId,
    primitives::{B256, U256},
    rpc::types::{Filter, Log},
    sol_types::SolEvent,
};
use answer::{Answer, AnswerKind};
use anyhow::Context as _;
use decide::{handle_request, StepView};
use futures::{StreamExt as _, TryStreamExt as _};
use intake::{Junk, JunkQueue, RefusalGas};
use outcome::{due, unix_ms};
use peers::Peers;
use relay::{send_answers, settle, InFlight};
use replicatoor_chain::{
    bindings::UpgradeOperator as Op,
    follower::{Checkpoint, Follower, FollowerConfig, Step},
    state::State,
    verified::ViewError,
    Backoff,
};
use replicatoor_core::{
    crypto::SecretBundle,
    gate::Gate,
    protocol::{request_key, RequestStatus},
};
use std::{collections::HashSet, ops::ControlFlow, sync::atomic::AtomicU32, time::Duration};
use tracing::{debug, info, info_span, warn, Instrument};

/// Requests of one step decided at once, at most: their chain reads (status, event proof) overlap
/// instead of adding up, while a flood keeps a bounded number in flight.
const DECIDE_CONCURRENCY: usize = 16;

/// Most blocks one step reads (catch-up over empty history goes this fast).
const MAX_STEP_BLOCKS: u64 = 2_000;
/// Logs a step aims to hold at most: over it the next step reads half the blocks (down to one block,
/// whose gas limit bounds its calldata), well under it twice as many, so what a step holds in memory
/// stays bounded during a flood however far behind the holder is, and empty history is still read
/// 2,000 blocks a step.
const STEP_LOGS: usize = 1_024;

/// The blocks the step after one of `range` blocks that saw `logs` logs reads.
fn next_range(range: u64, logs: usize) -> u64 {
    if logs > STEP_LOGS {
        (range / 2).max(1)
    } else if logs < STEP_LOGS / 4 {
        range.saturating_mul(2).min(MAX_STEP_BLOCKS)
    } else {
        range
    }
}

/// Why [`run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// Shutting down.
    Stopped,
    /// The owner approved this holder's rotation proposal: the store holds the new epoch's bundle.
    Rotated,
    /// Another cluster holds epoch `epoch`, past this holder's bundle: request it like a new node.
    Superseded { epoch: u64 },
}

/// Serve requests until shutdown, or until this holder's epoch ends ([`Left`]): one
/// [`Holder::step`] after another, each step's checkpoint persisted once its answers are sent (or
/// stored as `Sent`, or postponed).
pub async fn run(agent: &Agent) -> anyhow::Result<Left> {
    let bundle = agent.store.bundle()?.context("holder without a bundle")?;
    let chain = &agent.chain;
    // Requests to answer, and the answers that show which other holders are alive.
    let filter = Filter::new().address(chain.deployment().contract).event_signature(vec![
        Op::SecretRequested::SIGNATURE_HASH,
        Op::SecretDelivered::SIGNATURE_HASH,
        Op::RequestRefused::SIGNATURE_HASH,
    ]);
    let follower = Follower::new(
        chain.clone(),
        filter,
        FollowerConfig { confirmations: agent.cfg.confirmations, max_range: MAX_STEP_BLOCKS, ..Default::default() },
    );
    agent.telemetry.update(|s| {
        s.cluster = Some(bundle.cluster_address().to_string());
        s.epoch = Some(bundle.epoch());
    });
    info!(target: "replicatoor::holder", cluster = %bundle.cluster_address(), epoch = bundle.epoch(), confirmations = agent.cfg.confirmations, "serving as holder");
    let own = own_references(agent).await;
    let mut peers = Peers::new(chain.sender().unwrap_or_default());
    peers.learn_recent(agent, bundle.epoch()).await;
    let gate = decide::gate(agent, &bundle);
    let (own_expiry, in_flight, backoff) = (None, Vec::new(), agent.backoff());
    let junk = JunkQueue::new(intake::JUNK_QUEUE_CAP);
    let refusal_gas = RefusalGas::new(agent.cfg.max_refusal_gas_per_hour);
    let mut holder = Holder {
        agent,
        bundle: &bundle,
        gate,
        follower,
        own,
        own_expiry,
        peers,
        in_flight,
        backoff,
        junk,
        refusal_gas,
        budget_spent_logged: false,
        quiet: rotation::Quiet::default(),
    };
    let mut left = Left::Stopped;
    while !agent.stopping() {
        let pause = match holder.step().await? {
            Next::Checkpoint { checkpoint, from, to, head, logs } => {
                if logs > 0 {
                    crate::failpoint::hit("holder_before_checkpoint");
                }
                agent.store.set_checkpoint(checkpoint)?;
                agent.telemetry.update(|s| {
                    s.checkpoint = Some(to);
                    s.chain_head = Some(head);
                });
                debug!(target: "replicatoor::holder", from, to, head, requests = logs, "checkpoint saved");
                // Caught up: wait for the next block; otherwise catch up at once.
                (to >= head.saturating_sub(agent.cfg.confirmations)).then(|| agent.poll())
            }
            Next::Rewind(checkpoint) => {
                agent.store.set_checkpoint(checkpoint)?;
                None
            }
            Next::Wait(delay) => Some(delay),
            Next::Stop => break,
            Next::Leave(why) => {
                left = why;
                break;
            }
        };
        if let Some(delay) = pause {
            if !agent.pause(delay).await {
                break;
            }
        }
    }
    holder.settle(true).await?;
    info!(target: "replicatoor::holder", epoch = bundle.epoch(), why = ?left, "holder stopped");
    Ok(left)
}

/// What the holder carries from one step to the next.
struct Holder<'a> {
    agent: &'a Agent,
    bundle: &'a SecretBundle,
    gate: Gate<'a>,
    follower: Follower,
    /// This node's own OS and app references, and when the earlier of them ends (if scheduled).
    own: Vec<B256>,
    own_expiry: Option<u64>,
    peers: Peers,
    /// Sent answers whose receipts are awaited while the next blocks are read.
    in_flight: Vec<InFlight>,
    /// The wait before a step that failed is tried again.
    backoff: Backoff,
    /// Junk requests (failed the cheap checks on arrival) waiting for their refusal.
    junk: JunkQueue,
    /// Refusal gas spent in the last hour, against `--max-refusal-gas-per-hour`.
    refusal_gas: RefusalGas,
    /// Whether the spent budget was logged (once each time it runs out, not once per step).
    budget_spent_logged: bool,
    /// Why this holder did not propose for a rotation, once logged.
    quiet: rotation::Quiet,
}

/// What a step leaves to the loop.
enum Next {
    /// The step's requests are answered, postponed or in flight: persist `checkpoint` (blocks
    /// `from..=to` handled, the chain at `head`, `logs` logs seen).
    Checkpoint { checkpoint: Checkpoint, from: u64, to: u64, head: u64, logs: usize },
    /// A reorg replaced the checkpoint's block: persist this earlier one and go on.
    Rewind(Checkpoint),
    /// Nothing new at the required depth (a poll interval), or the chain or its state could not be
    /// read (a back-off): wait this long before the next step.
    Wait(Duration),
    /// Shutting down in the middle of a step: its checkpoint is not saved.
    Stop,
    /// This holder's epoch ended (a rotation): its checkpoint is not saved, the next bundle's
    /// holder takes the step again.
    Leave(Left),
}

impl Holder<'_> {
    /// Record the answers whose receipts came (all of them, waiting, when `wait`), and count the
    /// refusals' gas against the hourly budget.
    async fn settle(&mut self, wait: bool) -> anyhow::Result<()> {
        let refusals = settle(self.agent, &mut self.in_flight, wait).await?;
        let now = std::time::Instant::now();
        for gas in refusals {
            if let Some(gas) = gas {
                self.agent.telemetry.refusal_gas(gas);
            }
            self.refusal_gas.settled(gas, now);
        }
        let spent = self.refusal_gas.spent(now);
        self.agent.telemetry.refusal_gas_last_hour(spent);
        Ok(())
    }

    /// How many refusals this step may post: the per-step batch, within what is left of the hourly
    /// gas budget (logged and counted once when that runs out).
    fn refusal_allowance(&mut self) -> u32 {
        let agent = self.agent;
        let hourly = self.refusal_gas.allowance(std::time::Instant::now());
        if hourly == 0 {
            if self.junk.len() > 0 {
                agent.telemetry.refusal_budget_spent();
            }
            if !std::mem::replace(&mut self.budget_spent_logged, true) {
                warn!(target: "replicatoor::holder", budget_gas = agent.cfg.max_refusal_gas_per_hour, junk_waiting = self.junk.len(), "refusal gas budget for this hour spent: refusals wait (deliveries go on)");
            }
        } else {
            self.budget_spent_logged = false;
        }
        agent.cfg.max_refusals_per_step.min(u32::try_from(hourly).unwrap_or(u32::MAX))
    }

    /// One step: the follower's next logs from the checkpoint, each request decided at the confirmed
    /// head (or left to the holder ranked first), postponed ones due again, the answers sent.
    async fn step(&mut self) -> anyhow::Result<Next> {
        let agent = self.agent;
        self.settle(false).await?;
        let (from, to, logs, checkpoint, head) = match self.next_logs().await? {
            ControlFlow::Continue(step) => step,
            ControlFlow::Break(next) => return Ok(next),
        };
        // Decide at the confirmed head: the freshest state a reorg cannot easily take back, and one
        // that a non-archive node still serves during catch-up.
        let decide_at = head.saturating_sub(agent.cfg.confirmations).max(to);
        let read = decide::read(agent, decide_at, &self.own).await;
        let (view, own_expiry) = match read.and_then(|v| own_expiry(&v, &self.own).map(|e| (v, e))) {
            Ok(v) => v,
            Err(e) => {
                match &e {
                    decide::StateError::View(_) => agent.telemetry.unproven_read("holder"),
                    decide::StateError::Chain(_) => agent.telemetry.rpc_error(),
                }
                warn!(target: "replicatoor::holder", error = %e, "cannot read the contract state; retrying the step");
                return Ok(Next::Wait(self.backoff.next_delay()));
            }
        };
        match rotation::check(agent, self.bundle, &view, &mut self.quiet).await? {
            rotation::Custody::Serve => {}
            rotation::Custody::Rotated => return Ok(Next::Leave(Left::Rotated)),
            rotation::Custody::Superseded { epoch } => return Ok(Next::Leave(Left::Superseded { epoch })),
        }
        self.note_own_expiry(own_expiry);
        let requests = self.peers.learn(&logs, self.bundle.epoch());
        let alone = self.peers.rank(U256::ZERO, view.at()).known == 0;
        // An answer still in flight is settled by its receipt (a reorg may show its request again).
        let busy: HashSet<U256> = self.in_flight.iter().map(InFlight::id).collect();
        let now = self.sort(requests, &view, &busy)?;
        if !self.answer(now, &view, &busy, alone).await? {
            return Ok(Next::Stop);
        }
        Ok(Next::Checkpoint { checkpoint, from, to, head, logs: logs.len() })
    }

    /// The follower's next logs from the checkpoint (`from`, `to`, the logs, the checkpoint after them,
    /// the head), or what the loop does instead: rewind after a reorg, wait for new blocks, back off.
    async fn next_logs(&mut self) -> anyhow::Result<ControlFlow<Next, (u64, u64, Vec<Log>, Checkpoint, u64)>> {
        let agent = self.agent;
        let step = self.follower.step(agent.store.checkpoint()?, agent.cfg.start_block).await;
        Ok(match step {
            Ok(Step::Logs { from, to, logs, checkpoint, head }) => {
                self.backoff.reset();
                self.follower.set_max_range(next_range(self.follower.max_range(), logs.len()));
                ControlFlow::Continue((from, to, logs, checkpoint, head))
            }
            Ok(Step::Reorg { dropped, checkpoint }) => {
                warn!(target: "replicatoor::holder", dropped_block = dropped.block, rewind_to = checkpoint.block, "reorg: re-processing from an earlier block");
                ControlFlow::Break(Next::Rewind(checkpoint))
            }
            Ok(Step::Idle { head }) => {
                agent.telemetry.update(|s| s.chain_head = Some(head));
                ControlFlow::Break(Next::Wait(agent.poll()))
            }
            Err(e) => {
                agent.telemetry.rpc_error();
                let delay = self.backoff.next_delay();
                warn!(target: "replicatoor::holder", error = %e, retry_in_ms = delay.as_millis() as u64, "chain unavailable");
                ControlFlow::Break(Next::Wait(delay))
            }
        })
    }

    /// Say once when this node's own version becomes scheduled to end (proven at the step's state).
    fn note_own_expiry(&mut self, own_expiry: Option<u64>) {
        if own_expiry == self.own_expiry {
            return;
        }
        self.own_expiry = own_expiry;
        self.agent.telemetry.set_own_reference_expiry(own_expiry);
        if let Some(at) = own_expiry {
            warn!(target: "replicatoor::holder", expires_at = at, "this node's version is scheduled to end: from then on no holder serves it and new nodes of it are refused; upgrade before then");
        }
    }

    /// Sort a step's new requests: junk (failing the cheap checks, intake.rs) to its queue, those
    /// another holder ranks first recorded as backups, and the rest, returned, to decide now. Requests
    /// whose answer is in flight (`busy`) are skipped.
    fn sort<'l>(
        &mut self,
        requests: Vec<&'l Log>,
        view: &StepView<'_>,
        busy: &HashSet<U256>,
    ) -> anyhow::Result<Vec<&'l Log>> {
        let agent = self.agent;
        let mut now = Vec::with_capacity(requests.len());
        let (mut triaged, mut junk, mut dropped, mut triage_time) = (0u64, 0u64, 0u64, Duration::ZERO);
        for log in requests {
            if log.topics().get(1).is_some_and(|id| busy.contains(&U256::from_be_bytes(id.0))) {
                continue;
            }
            agent.telemetry.request_seen();
            // Junk waits behind every request that passes the cheap checks (intake.rs).
            let started = std::time::Instant::now();
            let reason = log
                .log_decode::<Op::SecretRequested>()
                .ok()
                .and_then(|l| intake::triage(&agent.chain.deployment(), &l.inner.data));
            (triaged, triage_time) = (triaged + 1, triage_time + started.elapsed());
            if let (Some(reason), Some(id), Some(block)) = (reason, log.topics().get(1), log.block_number) {
                let id = U256::from_be_bytes(id.0);
                let due_block = self
                    .peers
                    .backup_due(log, view.at(), agent.cfg.backup_delay_blocks)
                    .map_or(block, |(_, _, due)| due);
                junk += 1;
                if !self.junk.push(Junk { id, block, due_block, reason }) {
                    dropped += 1;
                }
                continue;
            }
            match self.peers.backup_due(log, view.at(), agent.cfg.backup_delay_blocks) {
                Some((id, block, due_block)) => {
                    debug!(target: "replicatoor::holder", request_id = %id, due_block, "another holder ranks first: backup");
                    // Its key first (the status is looked up by it when the backup is due), from the
                    // event's indexed (hpkePubKey, requester); flushed with the record.
                    if let (Some(pk), Some(requester)) = (log.topics().get(2), log.topics().get(3)) {
                        let key = request_key(&pk.0, alloy::primitives::Address::from_word(*requester));
                        agent.store.set_request_key(id, key)?;
                    }
                    agent.store.set_request(id, &RequestRecord { block, outcome: Outcome::Backup { due_block } })?;
                }
                None => now.push(log),
            }
        }
        let micros = u64::try_from(triage_time.as_micros()).unwrap_or(u64::MAX);
        agent.telemetry.triaged(triaged, junk, micros);
        agent.telemetry.junk_queue(self.junk.len(), dropped);
        agent.telemetry.update(|s| s.junk_queue = self.junk.len() as u64);
        if dropped > 0 {
            warn!(target: "replicatoor::holder", dropped, queued = self.junk.len(), "junk queue full: these junk requests are not queued and this holder will not refuse them (they stay pending)");
        }
        Ok(now)
    }

    /// Decide the step's requests (`now`) and the postponed ones due again, send the deliveries, then
    /// the refusals with junk ones within the step's budget. False when shutting down mid-step.
    async fn answer(
        &mut self,
        now: Vec<&Log>,
        view: &StepView<'_>,
        busy: &HashSet<U256>,
        alone: bool,
    ) -> anyhow::Result<bool> {
        let agent = self.agent;
        // The step's refusal budget: what is left of it after the requests that passed the cheap
        // checks goes to the junk queue.
        let budget = self.refusal_allowance();
        let refusals = AtomicU32::new(0);
        let bundle = self.bundle;
        let decided = futures::stream::iter(now)
            .map(|log| async {
                match agent.stopping() {
                    true => Ok(None),
                    false => handle_log(agent, bundle, log, view, (&refusals, budget)).await,
                }
            })
            .buffered(DECIDE_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?;
        if agent.stopping() {
            return Ok(false);
        }
        let mut answers: Vec<Answer> = decided.into_iter().flatten().collect();
        answers.extend(retry_deferred(agent, bundle, view, (&refusals, budget), &mut self.peers, busy).await?);
        // Deliveries leave first, in their own batch: no refusal is ever sent ahead of one (nor
        // takes a nonce before it).
        let (deliveries, mut refusals_out): (Vec<Answer>, Vec<Answer>) =
            answers.into_iter().partition(|a| matches!(a.kind, AnswerKind::Deliver(_)));
        let in_flight = self.in_flight.len();
        let sent = send_answers(agent, &self.gate, deliveries, view.at(), alone, in_flight).await?;
        self.in_flight.extend(sent);
        // One batch of junk refusals at a time: a refusal still unmined holds a nonce below this
        // holder's next delivery, so junk refusals wait until the previous batch is mined.
        let junk_busy = self.in_flight.iter().any(InFlight::is_refusal);
        let left = match junk_busy {
            true => 0,
            false => budget.saturating_sub(refusals.load(std::sync::atomic::Ordering::Relaxed)),
        };
        refusals_out.extend(self.refuse_junk(view, left as usize, busy).await?);
        let sent = send_answers(agent, &self.gate, refusals_out, view.at(), alone, self.in_flight.len()).await?;
        self.refusal_gas.sent(sent.len() as u64);
        self.in_flight.extend(sent);
        Ok(true)
    }

    /// Up to `n` junk requests from the queue, due at the step's decision block, decided by the gate
    /// on proven state like any request (it refuses them on the cheap checks, without collateral):
    /// their signed refusals. Their logs are read again in one call (the queue keeps only ids).
    async fn refuse_junk(
        &mut self,
        view: &StepView<'_>,
        n: usize,
        busy: &HashSet<U256>,
    ) -> anyhow::Result<Vec<Answer>> {
        let agent = self.agent;
        let mut taken = self.junk.take_due(view.at(), n);
        taken.retain(|j| !busy.contains(&j.id));
        let (Some(from), Some(to)) = (taken.iter().map(|j| j.block).min(), taken.iter().map(|j| j.block).max()) else {
            return Ok(Vec::new());
        };
        let filter = Filter::new()
            .address(agent.chain.deployment().contract)
            .event_signature(Op::SecretRequested::SIGNATURE_HASH)
            .topic1(taken.iter().map(|j| B256::from(j.id)).collect::<Vec<_>>())
            .from_block(from)
            .to_block(to);
        let logs = match replicatoor_chain::scan::get_logs(&agent.chain, &filter, from, to).await {
            Ok(l) => l,
            Err(e) => {
                debug!(target: "replicatoor::holder", error = %e, "junk requests' logs not readable this step");
                self.junk.put_back(taken);
                return Ok(Vec::new());
            }
        };
        let found = |j: &Junk| logs.iter().any(|l| l.topics().get(1).is_some_and(|t| U256::from_be_bytes(t.0) == j.id));
        let (found_junk, missing): (Vec<Junk>, Vec<Junk>) = taken.into_iter().partition(found);
        // Not in its block any more (a reorg): the follower shows it again where it now is.
        drop(missing);
        let unlimited = AtomicU32::new(0);
        let mut answers = Vec::new();
        for log in &logs {
            let Some(j) =
                found_junk.iter().find(|j| log.topics().get(1).is_some_and(|t| U256::from_be_bytes(t.0) == j.id))
            else {
                continue;
            };
            debug!(target: "replicatoor::holder", request_id = %j.id, reason = j.reason.name(), "refusing junk from the queue");
            answers.extend(handle_log(agent, self.bundle, log, view, (&unlimited, u32::MAX)).await?);
        }
        agent.telemetry.junk_queue(self.junk.len(), 0);
        agent.telemetry.update(|s| s.junk_queue = self.junk.len() as u64);
        Ok(answers)
    }
}

/// A step's refusal count and its limit.
type Budget<'a> = (&'a AtomicU32, u32);

async fn handle_log(
    agent: &Agent,
    bundle: &SecretBundle,
    log: &Log,
    view: &StepView<'_>,
    refusals: Budget<'_>,
) -> anyhow::Result<Option<Answer>> {
    let Ok(decoded) = log.log_decode::<Op::SecretRequested>() else {
        warn!(target: "replicatoor::holder", tx = ?log.transaction_hash, "undecodable SecretRequested log skipped");
        return Ok(None);
    };
    let ev = decoded.inner.data;
    let block = log.block_number.unwrap_or(view.at());
    let span = info_span!("request", id = %ev.requestId);
    handle_request(agent, bundle, &ev, block, view, refusals).instrument(span).await
}

/// When this node's own OS or app reference ends (the earlier), if the owner scheduled it (proven
/// in the step's state, pinned deployments only; shown, never decided on).
fn own_expiry(view: &StepView<'_>, own: &[B256]) -> Result<Option<u64>, decide::StateError> {
    let mut own_expiry = None;
    if let State::Proven(proven) = view {
        for id in own {
            let expires = proven.views().expires_at(*id).map_err(ViewError::from)?;
            own_expiry = own_expiry.into_iter().chain(expires).min();
        }
    }
    Ok(own_expiry)
}

/// This node's own OS and app reference ids, from a fresh attestation of its own (the quote's
/// measurements and the event log's compose hash): what it watches for a scheduled end. Empty when
/// the quote source does not answer (the holder serves on; it only cannot warn).
async fn own_references(agent: &Agent) -> Vec<alloy::primitives::B256> {
    match agent.provider.attest([0u8; 64]).await {
        Ok(att) => {
            let (os, app) = att.claimed_references();
            os.into_iter().chain(app).collect()
        }
        Err(e) => {
            warn!(target: "replicatoor::holder", error = %e, "cannot read this node's own measurements; its version's end will not be watched");
            Vec::new()
        }
    }
}

/// Blocks after a request during which a holder checks that the request's answer is still on chain
/// (the follower's default reorg rewind depth).
const REANSWER_WINDOW: u64 = 64;

/// Re-evaluate requests postponed by local faults (collateral, RPC) or the refusal budget in earlier
/// steps, and recent requests whose answer a reorg dropped: a bounded number per step
/// ([`plan_rechecks`]).
async fn retry_deferred(
    agent: &Agent,
    bundle: &SecretBundle,
    view: &StepView<'_>,
    refusals: Budget<'_>,
    peers: &mut Peers,
    in_flight: &HashSet<U256>,
) -> anyhow::Result<Vec<Answer>> {
    let mut answers = Vec::new();
    let mut plan = plan_rechecks(&agent.store.watched()?, unix_ms(), view.at());
    for list in [&mut plan.retry, &mut plan.check_answer, &mut plan.backup] {
        list.retain(|(id, _)| !in_flight.contains(id));
    }
    for id in &plan.unwatch {
        agent.store.unwatch(*id)?;
    }
    let mut again = plan.retry;
    // An answer mined after the follower's checkpoint can be reorged away without the checkpoint's
    // block changing, so the follower would never rewind over the request.
    let dropped = futures::stream::iter(plan.check_answer)
        .map(|(id, block)| async move { answer_dropped(agent, id).await.then_some((id, block)) })
        .buffered(DECIDE_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    again.extend(dropped.into_iter().flatten());
    let backups = futures::stream::iter(plan.backup)
        .map(|(id, block)| async move { (id, block, status_of(agent, id, BlockId::pending()).await) })
        .buffered(DECIDE_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    for (id, block, status) in backups {
        match status {
            Ok(RequestStatus::Pending) => {
                // The holders ranked first let it wait past their turn: answer it, and stop
                // counting them until they answer again.
                let rank = peers.rank(id, view.at());
                warn!(target: "replicatoor::holder", request_id = %id, silent = ?rank.ahead, "still pending after the backup delay: answering it");
                rank.ahead.iter().for_each(|a| peers.forget(*a));
                again.push((id, block));
            }
            Ok(s) => {
                let outcome = Outcome::AlreadyAnswered { status: s as u8 };
                agent.store.set_request(id, &RequestRecord { block, outcome })?;
            }
            Err(e) => {
                debug!(target: "replicatoor::holder", request_id = %id, error = %e, "backup: status not readable yet")
            }
        }
    }
    // Each looked at again as a new request would be, several at once (a dead peer's share of a burst).
    let decided = futures::stream::iter(again)
        .map(|(id, block)| async move {
            let filter = Filter::new()
                .address(agent.chain.deployment().contract)
                .event_signature(Op::SecretRequested::SIGNATURE_HASH)
                .topic1(id)
                .from_block(block)
                .to_block(block);
            let logs = match replicatoor_chain::scan::get_logs(&agent.chain, &filter, block, block).await {
                Ok(l) => l,
                Err(e) => {
                    debug!(target: "replicatoor::holder", request_id = %id, error = %e, "deferred request: log not readable yet");
                    return Ok(Vec::new());
                }
            };
            let mut answers = Vec::new();
            for log in &logs {
                answers.extend(handle_log(agent, bundle, log, view, refusals).await?);
            }
            anyhow::Ok(answers)
        })
        .buffered(DECIDE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    answers.extend(decided.into_iter().flatten());
    Ok(answers)
}

/// Postponed requests a step evaluates again, at most: a flood of postponed junk costs each step a
/// bounded amount of work (and is served earliest-due first, so nothing starves).
const MAX_RETRIES_PER_STEP: usize = 64;
/// Refusals and others' answers a step checks for having been reorged away, at most (newest first);
/// this holder's own deliveries are always checked.
const MAX_ANSWER_CHECKS_PER_STEP: usize = 64;

/// What one step looks at again, from the watched records.
#[derive(Debug, Default, PartialEq, Eq)]
struct Rechecks {
    /// Postponed requests due now: `(id, request block)`.
    retry: Vec<(U256, u64)>,
    /// Answers still inside the re-answer window, to check for a reorg: `(id, request block)`.
    check_answer: Vec<(U256, u64)>,
    /// Requests another holder ranked first for, whose backup delay is over: `(id, request block)`.
    backup: Vec<(U256, u64)>,
    /// Records no step needs to look at again.
    unwatch: Vec<U256>,
}

fn plan_rechecks(watched: &[(U256, RequestRecord)], now_ms: u64, at: u64) -> Rechecks {
    let mut plan = Rechecks::default();
    let mut due_now = Vec::new();
    let mut others = Vec::new();
    let mut backups = Vec::new();
    for (id, rec) in watched {
        match &rec.outcome {
            Outcome::Deferred { retry_at_ms, .. } | Outcome::Throttled { retry_at_ms, .. } => {
                if due(&rec.outcome, now_ms) {
                    due_now.push((*retry_at_ms, *id, rec.block));
                }
            }
            Outcome::Served { .. }
            | Outcome::Sent { .. }
            | Outcome::Refused { .. }
            | Outcome::AlreadyAnswered { .. }
                if rec.block + REANSWER_WINDOW <= at =>
            {
                plan.unwatch.push(*id)
            }
            Outcome::Served { .. } | Outcome::Sent { .. } => plan.check_answer.push((*id, rec.block)),
            Outcome::Refused { .. } | Outcome::AlreadyAnswered { .. } => others.push((rec.block, *id)),
            Outcome::Abstained { .. } => plan.unwatch.push(*id),
            Outcome::Backup { due_block } if *due_block <= at => backups.push((*due_block, *id, rec.block)),
            Outcome::Backup { .. } => {}
        }
    }
    backups.sort_unstable();
    plan.backup = backups.into_iter().take(MAX_RETRIES_PER_STEP).map(|(_, id, block)| (id, block)).collect();
    due_now.sort_unstable();
    plan.retry = due_now.into_iter().take(MAX_RETRIES_PER_STEP).map(|(_, id, block)| (id, block)).collect();
    others.sort_unstable_by(|a, b| b.cmp(a));
    plan.check_answer.extend(others.into_iter().take(MAX_ANSWER_CHECKS_PER_STEP).map(|(block, id)| (id, block)));
    plan
}

/// True when a request we saw answered is pending again, mempool included (its answer was reorged away).
async fn answer_dropped(agent: &Agent, id: U256) -> bool {
    let status = status_of(agent, id, BlockId::pending()).await;
    if let Err(e) = &status {
        debug!(target: "replicatoor::holder", request_id = %id, error = %e, "cannot check the answer this step");
    }
    let dropped = matches!(status, Ok(RequestStatus::Pending));
    if dropped {
        warn!(target: "replicatoor::holder", request_id = %id, "the answer is no longer on chain (reorg); answering again");
    }
    dropped
}

/// Request `id`'s status at `at` (`pending`: mempool included). The contract keeps it under the
/// request's key, which the holder stored when it first saw the request, before any record of it.
async fn status_of(agent: &Agent, id: U256, at: BlockId) -> anyhow::Result<RequestStatus> {
    let request = agent.store.request_key(id)?.with_context(|| format!("request {id} has no stored request key"))?;
    Ok(agent.chain.request_status(request, at).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::B256;

    /// A flood of postponed junk and of refused junk still in the re-answer window: one step looks
    /// at a bounded number of them, earliest due first (so a genuine request due now is among them
    /// however many junk ones are due later), and always at this holder's own deliveries.
    #[test]
    fn a_step_rechecks_a_bounded_number_of_requests() {
        let rec = |block: u64, outcome: Outcome| RequestRecord { block, outcome };
        let mut watched = Vec::new();
        for n in 0..10_000u64 {
            let postponed = Outcome::Deferred { why: "junk".into(), attempts: 3, retry_at_ms: 1_000 + n };
            watched.push((U256::from(n), rec(100, postponed)));
            let refused = Outcome::Refused { reason: 1, tx_hash: B256::ZERO, block: 100 };
            watched.push((U256::from(20_000 + n), rec(100 + n % 50, refused)));
        }
        let genuine = Outcome::Deferred { why: "collateral".into(), attempts: 1, retry_at_ms: 500 };
        watched.push((U256::from(50_000), rec(120, genuine)));
        let served = Outcome::Served { tx_hash: B256::ZERO, block: 130 };
        watched.push((U256::from(50_001), rec(125, served)));
        watched.push((U256::from(50_002), rec(10, Outcome::Refused { reason: 1, tx_hash: B256::ZERO, block: 11 })));

        let plan = plan_rechecks(&watched, 5_000, 150);
        assert_eq!(plan.retry.len(), MAX_RETRIES_PER_STEP, "postponed requests evaluated this step");
        assert_eq!(plan.retry[0], (U256::from(50_000), 120), "the earliest due first");
        assert!(plan.check_answer.len() <= MAX_ANSWER_CHECKS_PER_STEP + 1, "{}", plan.check_answer.len());
        assert!(plan.check_answer.contains(&(U256::from(50_001), 125)), "our own delivery is checked");
        assert_eq!(plan.unwatch, [U256::from(50_002)], "out of the window: no longer watched");
        // Nothing is due before its time.
        assert!(plan_rechecks(&watched, 0, 150).retry.is_empty());
    }

    /// A flood shrinks the blocks a step reads until a step holds about `STEP_LOGS` logs (one block
    /// at the least); quiet history grows them back to `MAX_STEP_BLOCKS`.
    #[test]
    fn a_step_reads_fewer_blocks_while_they_hold_many_logs() {
        let mut range = MAX_STEP_BLOCKS;
        for _ in 0..20 {
            // 200 logs a block.
            range = next_range(range, usize::try_from(range * 200).unwrap_or(usize::MAX));
        }
        assert!((1..=8).contains(&range), "{range}");
        assert!(range * 200 <= 2 * STEP_LOGS as u64, "a step holds at most about STEP_LOGS logs");
        assert_eq!(next_range(1, 100_000), 1, "never below one block");
        for _ in 0..20 {
            range = next_range(range, 0);
        }
        assert_eq!(range, MAX_STEP_BLOCKS);
        assert_eq!(next_range(100, STEP_LOGS / 2), 100, "steady in between");
    }

    /// A request another holder ranks first for is looked at again once its backup delay is over,
    /// not before, and stays watched until then.
    #[test]
    fn a_backup_is_looked_at_once_its_delay_is_over() {
        let watched = [
            (U256::from(1), RequestRecord { block: 100, outcome: Outcome::Backup { due_block: 103 } }),
            (U256::from(2), RequestRecord { block: 101, outcome: Outcome::Backup { due_block: 104 } }),
        ];
        let plan = plan_rechecks(&watched, 0, 102);
        assert!(plan.backup.is_empty() && plan.unwatch.is_empty() && plan.retry.is_empty(), "{plan:?}");
        assert_eq!(plan_rechecks(&watched, 0, 103).backup, [(U256::from(1), 100)]);
        assert_eq!(plan_rechecks(&watched, 0, 500).backup, [(U256::from(1), 100), (U256::from(2), 101)]);
        assert!(plan_rechecks(&watched, 0, 500).unwatch.is_empty(), "a backup is never dropped unanswered");
    }
}
