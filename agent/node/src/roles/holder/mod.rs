//! Holder: follow `SecretRequested` logs from a persisted checkpoint and answer each request once.
//! Two halves: [`decide`] is the release gate (verify the request against the contract state at the
//! decision block, then seal the bundle or sign a refusal; nothing else seals), [`relay`] sends the
//! signed answers, confirms them and records what became of each. [`peers`] splits requests among
//! the holders (who answers first, who is a backup). This file runs the loop.

mod decide;
mod peers;
mod relay;

pub use relay::jitter_delay;

use super::Agent;
use crate::store::{Outcome, RequestRecord};
use alloy::{
    eips::BlockId,
    primitives::U256,
    rpc::types::{Filter, Log},
    sol_types::SolEvent,
};
use anyhow::Context as _;
use decide::{handle_request, StepView};
use futures::{StreamExt as _, TryStreamExt as _};
use peers::Peers;
use relay::{send_answers, settle, Answer, InFlight};
use replicatoor_chain::{
    bindings::UpgradeOperator as Op,
    follower::{Follower, FollowerConfig, Step},
    Backoff,
};
use replicatoor_core::{
    crypto::SecretBundle,
    protocol::{request_key, RequestStatus},
    refusal::Refusal,
};
use std::{sync::atomic::AtomicU32, time::Duration};
use tracing::{debug, info, info_span, warn, Instrument};

/// Requests of one step decided at once, at most: their chain reads (status, event proof) overlap
/// instead of adding up, while a flood keeps a bounded number in flight.
const DECIDE_CONCURRENCY: usize = 16;

/// Serve requests until shutdown.
pub async fn run(agent: &Agent) -> anyhow::Result<()> {
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
        FollowerConfig { confirmations: agent.cfg.confirmations, ..Default::default() },
    );
    agent.telemetry.update(|s| {
        s.cluster = Some(bundle.cluster_address().to_string());
        s.epoch = Some(bundle.epoch());
    });
    info!(target: "replicatoor::holder", cluster = %bundle.cluster_address(), epoch = bundle.epoch(), confirmations = agent.cfg.confirmations, "serving as holder");
    let gate = decide::gate(agent, &bundle);
    let own = own_references(agent).await;
    let mut own_expiry = None;
    let mut peers = Peers::new(chain.sender().unwrap_or_default());
    peers.learn_recent(agent, bundle.epoch()).await;
    // Sent answers whose receipts are awaited while the next blocks are read.
    let mut in_flight: Vec<InFlight> = Vec::new();
    let mut backoff = agent.backoff();
    while !agent.stopping() {
        settle(agent, &mut in_flight, false).await?;
        let step = follower.step(agent.store.checkpoint()?, agent.cfg.start_block).await;
        match step {
            Ok(Step::Logs { from, to, logs, checkpoint, head }) => {
                backoff.reset();
                // Decide at the confirmed head: the freshest state a reorg cannot easily take back,
                // and one that a non-archive node still serves during catch-up.
                let decide_at = head.saturating_sub(agent.cfg.confirmations).max(to);
                let view = match StepView::read(agent, decide_at, &own).await {
                    Ok(v) => v,
                    Err(e) => {
                        match &e {
                            decide::StateError::View(_) => agent.telemetry.unproven_read("holder"),
                            decide::StateError::Chain(_) => agent.telemetry.rpc_error(),
                        }
                        warn!(target: "replicatoor::holder", error = %e, "cannot read the contract state; retrying the step");
                        if !agent.pause(backoff.next_delay()).await {
                            break;
                        }
                        continue;
                    }
                };
                if view.own_expiry != own_expiry {
                    own_expiry = view.own_expiry;
                    agent.telemetry.set_own_reference_expiry(own_expiry);
                    if let Some(at) = own_expiry {
                        warn!(target: "replicatoor::holder", expires_at = at, "this node's version is scheduled to end: from then on no holder serves it and new nodes of it are refused; upgrade before then");
                    }
                }
                let requests = peers.learn(&logs, bundle.epoch());
                let alone = peers.rank(U256::ZERO, view.at).known == 0;
                // An answer still in flight is settled by its receipt (a reorg may show its request again).
                let busy: std::collections::HashSet<U256> = in_flight.iter().map(InFlight::id).collect();
                let mut now = Vec::with_capacity(requests.len());
                for log in requests {
                    if log.topics().get(1).is_some_and(|id| busy.contains(&U256::from_be_bytes(id.0))) {
                        continue;
                    }
                    match peers.backup_due(log, view.at, agent.cfg.backup_delay_blocks) {
                        Some((id, block, due_block)) => {
                            debug!(target: "replicatoor::holder", request_id = %id, due_block, "another holder ranks first: backup");
                            // Its key first (the status is looked up by it when the backup is due),
                            // from the event's indexed (hpkePubKey, requester); flushed with the record.
                            if let (Some(pk), Some(requester)) = (log.topics().get(2), log.topics().get(3)) {
                                let key = request_key(&pk.0, alloy::primitives::Address::from_word(*requester));
                                agent.store.set_request_key(id, key)?;
                            }
                            agent
                                .store
                                .set_request(id, &RequestRecord { block, outcome: Outcome::Backup { due_block } })?;
                        }
                        None => now.push(log),
                    }
                }
                let refusals = AtomicU32::new(0);
                let decided = futures::stream::iter(now)
                    .map(|log| async {
                        match agent.stopping() {
                            true => Ok(None),
                            false => handle_log(agent, &bundle, log, &view, &refusals).await,
                        }
                    })
                    .buffered(DECIDE_CONCURRENCY)
                    .try_collect::<Vec<_>>()
                    .await?;
                if agent.stopping() {
                    break;
                }
                let mut answers: Vec<Answer> = decided.into_iter().flatten().collect();
                answers.extend(retry_deferred(agent, &bundle, &view, &refusals, &mut peers, &busy).await?);
                let sent = send_answers(agent, &gate, answers, view.at, alone, in_flight.len()).await?;
                in_flight.extend(sent);
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
    settle(agent, &mut in_flight, true).await?;
    info!(target: "replicatoor::holder", "holder stopped");
    Ok(())
}

async fn handle_log(
    agent: &Agent,
    bundle: &SecretBundle,
    log: &Log,
    view: &StepView<'_>,
    refusals: &AtomicU32,
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
    refusals: &AtomicU32,
    peers: &mut Peers,
    in_flight: &std::collections::HashSet<U256>,
) -> anyhow::Result<Vec<Answer>> {
    let mut answers = Vec::new();
    let mut plan = plan_rechecks(&agent.store.watched()?, unix_ms(), view.at);
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
                let rank = peers.rank(id, view.at);
                warn!(target: "replicatoor::holder", request_id = %id, silent = ?rank.ahead, "still pending after the backup delay: answering it");
                rank.ahead.iter().for_each(|a| peers.forget(*a));
                again.push((id, block));
            }
            Ok(s) => {
                let outcome = Outcome::AlreadyAnswered { status: u8::from(s) };
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

/// Longest wait between two evaluations of a deferred request: a genuine request held up by a local
/// fault (collateral, RPC) is looked at again at least this often once the fault clears.
const DEFER_CAP: Duration = Duration::from_secs(60);

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

/// Whether a deferred or throttled request is due for another evaluation at unix time `now_ms`.
fn due(outcome: &Outcome, now_ms: u64) -> bool {
    match outcome {
        Outcome::Deferred { retry_at_ms, .. } | Outcome::Throttled { retry_at_ms, .. } => now_ms >= *retry_at_ms,
        _ => false,
    }
}

/// One more postponement at `now_ms` after `prev`: `(attempts, retry_at_ms)`, the next evaluation one
/// back-off later (`base` doubling per attempt up to [`DEFER_CAP`]), so each postponed request costs
/// one evaluation (its RPC reads, fsync and log line) per back-off, not one per step.
fn postpone(prev: Option<&Outcome>, now_ms: u64, base: Duration) -> (u32, u64) {
    let attempts = match prev {
        Some(Outcome::Deferred { attempts, .. } | Outcome::Throttled { attempts, .. }) => attempts.saturating_add(1),
        _ => 1,
    };
    let mut backoff = Backoff::new(base, DEFER_CAP);
    // Past 32 doublings any base has reached the cap.
    let delay = (0..attempts.min(32)).map(|_| backoff.next_delay()).last().unwrap_or(base);
    (attempts, now_ms.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)))
}

/// The record of one more deferral at `now_ms`.
fn next_deferral(prev: Option<&Outcome>, why: String, now_ms: u64, base: Duration) -> Outcome {
    let (attempts, retry_at_ms) = postpone(prev, now_ms, base);
    Outcome::Deferred { why, attempts, retry_at_ms }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
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

/// Persist what became of a request and count it.
pub(super) fn record(agent: &Agent, id: U256, block: u64, outcome: Outcome) -> anyhow::Result<()> {
    use crate::telemetry::Tally as T;
    let counted = match &outcome {
        Outcome::Served { .. } => Some(T::Served),
        Outcome::Refused { reason, .. } => {
            Some(T::Refused(Refusal::from_code(*reason).map_or("unknown", Refusal::name)))
        }
        Outcome::AlreadyAnswered { .. } => Some(T::LostRace),
        Outcome::Deferred { .. } => Some(T::Deferred),
        Outcome::Abstained { .. } => Some(T::Abstained),
        Outcome::Throttled { .. } => Some(T::Throttled),
        // Not an outcome yet.
        Outcome::Sent { .. } | Outcome::Backup { .. } => None,
    };
    agent.store.set_request(id, &RequestRecord { block, outcome })?;
    if let Some(counted) = counted {
        agent.telemetry.outcome(&id.to_string(), counted);
    }
    Ok(())
}

/// Record a refusal left unposted because this step's refusal budget is spent: it is evaluated
/// again (and posted, budget permitting) one back-off later.
pub(super) fn throttle(agent: &Agent, id: U256, block: u64, reason: Refusal) -> anyhow::Result<()> {
    let prev = agent.store.request(id)?.map(|r| r.outcome);
    let (attempts, retry_at_ms) = postpone(prev.as_ref(), unix_ms(), agent.poll());
    record(agent, id, block, Outcome::Throttled { reason: reason.code(), attempts, retry_at_ms })
}

pub(super) fn defer(agent: &Agent, id: U256, block: u64, why: String) -> anyhow::Result<()> {
    let now = unix_ms();
    let prev = agent.store.request(id)?.map(|r| r.outcome);
    let outcome = next_deferral(prev.as_ref(), why, now, agent.poll());
    if let Outcome::Deferred { why, attempts, retry_at_ms } = &outcome {
        let retry_in_ms = retry_at_ms.saturating_sub(now);
        warn!(target: "replicatoor::holder", request_id = %id, why = %why, attempts, retry_in_ms, "request deferred; will retry");
    }
    record(agent, id, block, outcome)?;
    Ok(())
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

    /// A request whose collateral never comes, under a holder that steps every 100 ms for ten
    /// minutes: each evaluation defers it again (one log line, one RPC round, one fsync). It must be
    /// evaluated once per back-off, not once per step.
    #[test]
    fn a_deferred_request_is_evaluated_once_per_back_off_not_once_per_step() {
        let (poll_ms, steps) = (100u64, 6_000u64);
        let mut outcome = next_deferral(None, "collateral unavailable".into(), 0, Duration::from_millis(poll_ms));
        let mut evaluations = 0;
        for step in 1..=steps {
            let now = step * poll_ms;
            if due(&outcome, now) {
                evaluations += 1;
                outcome =
                    next_deferral(Some(&outcome), "collateral unavailable".into(), now, Duration::from_millis(poll_ms));
            }
        }
        // 0.1, 0.2, 0.4 … 51.2 s, then every DEFER_CAP (60 s): 10 + about 9 more in ten minutes.
        assert!(evaluations <= 20, "{evaluations} evaluations in {steps} steps");
        assert!(evaluations >= 10, "still retried: {evaluations}");
        let Outcome::Deferred { attempts, .. } = outcome else { panic!("{outcome:?}") };
        assert_eq!(attempts, evaluations + 1, "attempts counted");
        // Another kind of record is never "due".
        assert!(!due(&Outcome::Abstained { why: String::new() }, u64::MAX));
    }
}
