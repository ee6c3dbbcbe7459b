//! What became of a request, recorded and counted, and when a postponed one is looked at again: the
//! one place the holder's loop, its decide step and its relay write a request's outcome, and why a
//! request waits, in words. A leaf: it uses the store and telemetry, and nothing else of the holder.

use crate::{
    roles::Agent,
    store::{Outcome, RequestRecord},
};
use alloy::primitives::{Address, U256};
use replicatoor_chain::{state::StateError, Backoff};
use replicatoor_core::{
    gate::{Read, Verdict, Wait},
    refusal::Refusal,
};
use std::time::Duration;
use tracing::{debug, warn};

/// Longest wait between two evaluations of a deferred request: a genuine request held up by a local
/// fault (collateral, RPC) is looked at again at least this often once the fault clears.
const DEFER_CAP: Duration = Duration::from_secs(60);

/// Whether a deferred or throttled request is due for another evaluation at unix time `now_ms`.
pub(super) fn due(outcome: &Outcome, now_ms: u64) -> bool {
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

pub(super) fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
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

/// The gate's verification latency, observed when the pipeline ran; in milliseconds for the log.
pub(super) fn verification(agent: &Agent, verified_in: Option<Duration>) -> f64 {
    let verify_ms = verified_in.map_or(0.0, |t| t.as_secs_f64() * 1e3);
    if verified_in.is_some() {
        agent.telemetry.observe_verification(verify_ms / 1e3);
    }
    verify_ms
}

/// Record a verdict on a request that answers nothing (the decide step seals or signs only on
/// `Deliver` and `Refuse`, and never passes those here): already answered, another cluster's than
/// `ours`, abstained, or waiting. It takes no bundle and returns no answer.
pub(super) fn not_answering(
    agent: &Agent,
    ours: Address,
    id: U256,
    block: u64,
    verdict: Verdict<StateError>,
) -> anyhow::Result<()> {
    match verdict {
        Verdict::Answered(status) => {
            let status = status as u8;
            debug!(target: "replicatoor::holder", status, "already answered");
            // Answered before we got to it (catch-up, restart): stored, but not counted as a race.
            agent.store.set_request(id, &RequestRecord { block, outcome: Outcome::AlreadyAnswered { status } })?;
            Ok(())
        }
        Verdict::NotHolder(chain_cluster) => {
            warn!(target: "replicatoor::holder", %chain_cluster, %ours, "this node does not hold the current cluster key; not answering");
            Ok(())
        }
        Verdict::Abstain(why) => {
            warn!(target: "replicatoor::holder", why = %why, "abstaining: leaving this request to other holders");
            record(agent, id, block, Outcome::Abstained { why })
        }
        Verdict::Wait(wait) => defer(agent, id, block, waiting(agent, wait)),
        // Only a sealed delivery's re-check stands; `Deliver` and `Refuse` are answered, not recorded here.
        Verdict::Stands | Verdict::Deliver { .. } | Verdict::Refuse { .. } => Ok(()),
    }
}

/// Why a request waits, as its deferral records it; a read the verified view could not prove is
/// counted (an RPC failure counts as one already).
pub(super) fn waiting(agent: &Agent, wait: Wait<StateError>) -> String {
    let unproven = || agent.telemetry.unproven_read("holder");
    match wait {
        Wait::Unreadable(what, e) => {
            if matches!(e, StateError::View(_)) {
                unproven();
            }
            match what {
                Read::Status => format!("reading status: {e}"),
                Read::Request => format!("proving the request event: {e}"),
                Read::Cluster | Read::Policy | Read::Reference | Read::Commitment => {
                    format!("reading the contract state: {e}")
                }
            }
        }
        Wait::NotOnChain => {
            unproven();
            "the RPC's request log is not in its block's proven receipts".into()
        }
        Wait::Retry(why) => why,
        Wait::Changed(what) => {
            format!("{what} changed since the decision (proven at the newest header): deciding again")
        }
        // Asked only of a sealed delivery (relay.rs), never of a request.
        Wait::NotCommitted | Wait::Late { .. } => "the batch's commitment is not proven in time".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
