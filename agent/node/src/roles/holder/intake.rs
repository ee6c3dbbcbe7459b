//! Intake under a flood. Anyone may post `requestSecret`, so a holder must keep serving genuine
//! requests however much junk arrives: every request is triaged on arrival by the kernel's cheap
//! checks (`replicatoor_core::attest::pipeline::precheck`, no I/O, microseconds), requests that pass
//! are decided at once, and junk waits in a bounded [`JunkQueue`] for its refusal, which is posted a
//! few per step within an hourly gas budget ([`RefusalGas`]), after the step's deliveries.
//!
//! The triage reads the request as the RPC showed it (unproven): it only orders the work. Whatever
//! it says, a request is decided by the release gate on proven state before anything is signed, so
//! a lying RPC can at most delay a request (which it can anyway, by hiding it).

use alloy::primitives::U256;
use replicatoor_chain::bindings::UpgradeOperator as Op;
use replicatoor_core::{
    attest::{pipeline::precheck, RequestBinding},
    protocol::Deployment,
    refusal::Refusal,
};
use std::{
    collections::{HashSet, VecDeque},
    time::{Duration, Instant},
};

/// Junk requests a holder keeps waiting for their refusal, at most (about 50 bytes each, so a few
/// MiB): a flood that outruns the refusal budget for longer is not remembered (see [`JunkQueue`]).
pub(super) const JUNK_QUEUE_CAP: usize = 65_536;

/// What a refusal is taken to cost before its receipt says (README, Benchmarks: 39,632 gas).
pub(super) const REFUSAL_GAS_ESTIMATE: u64 = 40_000;

/// How long refusal gas counts against the budget.
const BUDGET_WINDOW: Duration = Duration::from_secs(3_600);

/// The verdict of the cheap checks on a request as posted: `None` if it passed (it is decided now),
/// else the refusal it will get (it is junk).
pub(super) fn triage(deployment: &Deployment, ev: &Op::SecretRequested) -> Option<Refusal> {
    let binding = RequestBinding { request_id: ev.requestId, requester: ev.requester, hpke_pub_key: ev.hpkePubKey.0 };
    precheck(deployment, &binding, &ev.quote, &ev.eventLog).err().map(|(reason, _)| reason)
}

/// A junk request waiting for its refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Junk {
    pub(super) id: U256,
    /// The request's block.
    pub(super) block: u64,
    /// The first decision block at which this holder answers it (later than `block` when another
    /// holder ranks first for it: theirs to refuse first).
    pub(super) due_block: u64,
    /// What the cheap checks found (the gate decides again on the proven request before signing).
    pub(super) reason: Refusal,
}

/// Junk waiting for its refusal, oldest first, at most `cap` of them. When it is full a new junk
/// request is not taken: it stays pending on chain and this holder will not refuse it (refusing junk
/// is a courtesy to whoever posted it, PROTOCOL.md §5.2; nothing waits on it). Memory stays bounded
/// however long a flood lasts, and the work per step too ([`JunkQueue::take_due`]).
#[derive(Debug)]
pub(super) struct JunkQueue {
    queue: VecDeque<Junk>,
    /// The ids in `queue` (a request is queued once).
    ids: HashSet<U256>,
    cap: usize,
}

impl JunkQueue {
    pub(super) fn new(cap: usize) -> Self {
        JunkQueue { queue: VecDeque::new(), ids: HashSet::new(), cap }
    }

    /// Queue `junk`; false (not taken) when the queue is full or already holds the request.
    pub(super) fn push(&mut self, junk: Junk) -> bool {
        if self.queue.len() >= self.cap || !self.ids.insert(junk.id) {
            return false;
        }
        self.queue.push_back(junk);
        true
    }

    /// Take up to `n` requests due at decision block `at`, oldest first.
    pub(super) fn take_due(&mut self, at: u64, n: usize) -> Vec<Junk> {
        let mut taken = Vec::with_capacity(n.min(self.queue.len()));
        let mut i = 0;
        while taken.len() < n && i < self.queue.len() {
            if self.queue[i].due_block <= at {
                if let Some(j) = self.queue.remove(i) {
                    self.ids.remove(&j.id);
                    taken.push(j);
                }
            } else {
                i += 1;
            }
        }
        taken
    }

    /// Put back requests taken but not answered this step (their proof or log was not readable), at
    /// the front, so they keep their turn.
    pub(super) fn put_back(&mut self, junk: Vec<Junk>) {
        for j in junk.into_iter().rev() {
            if self.queue.len() < self.cap && self.ids.insert(j.id) {
                self.queue.push_front(j);
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }
}

/// The hourly refusal gas budget: refusals mined in the last hour count with their receipts' gas,
/// refusals in flight with [`REFUSAL_GAS_ESTIMATE`]. Time is passed in (a monotonic clock in the
/// agent, fixed instants in tests).
#[derive(Debug)]
pub(super) struct RefusalGas {
    budget: u64,
    mined: VecDeque<(Instant, u64)>,
    in_flight: u64,
}

impl RefusalGas {
    pub(super) fn new(budget: u64) -> Self {
        RefusalGas { budget, mined: VecDeque::new(), in_flight: 0 }
    }

    /// Gas counted against the budget at `now`.
    pub(super) fn spent(&mut self, now: Instant) -> u64 {
        while self.mined.front().is_some_and(|(at, _)| now.saturating_duration_since(*at) >= BUDGET_WINDOW) {
            self.mined.pop_front();
        }
        let mined: u64 = self.mined.iter().map(|(_, gas)| gas).sum();
        mined.saturating_add(self.in_flight.saturating_mul(REFUSAL_GAS_ESTIMATE))
    }

    /// How many more refusals fit in the budget at `now`.
    pub(super) fn allowance(&mut self, now: Instant) -> u64 {
        self.budget.saturating_sub(self.spent(now)) / REFUSAL_GAS_ESTIMATE
    }

    /// `n` refusals sent.
    pub(super) fn sent(&mut self, n: u64) {
        self.in_flight = self.in_flight.saturating_add(n);
    }

    /// A sent refusal is settled at `now`: mined with `gas` (None: not mined, e.g. a lost race).
    pub(super) fn settled(&mut self, gas: Option<u64>, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(gas) = gas {
            self.mined.push_back((now, gas));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn junk(id: u64, due_block: u64) -> Junk {
        Junk { id: U256::from(id), block: 1, due_block, reason: Refusal::QuoteMalformed }
    }

    /// However many junk requests arrive, the queue holds at most its cap (the rest is not taken,
    /// and said so), and a step takes at most what it asks for, due ones only, oldest first.
    #[test]
    fn the_junk_queue_is_bounded_and_serves_the_oldest_due_first() {
        let mut q = JunkQueue::new(100);
        let taken = (0..1_000).filter(|n| q.push(junk(*n, if n % 2 == 0 { 5 } else { 9 }))).count();
        assert_eq!((taken, q.len()), (100, 100));
        assert!(!q.push(junk(5_000, 0)), "full");
        let step = q.take_due(5, 10);
        assert_eq!(
            step.iter().map(|j| j.id).collect::<Vec<_>>(),
            (0..20).step_by(2).map(U256::from).collect::<Vec<_>>()
        );
        assert!(step.iter().all(|j| j.due_block <= 5));
        assert_eq!(q.len(), 90);
        q.put_back(step.clone());
        assert_eq!(q.take_due(5, 1), [step[0]], "put back at the front");
        assert_eq!((q.take_due(9, 1_000).len(), q.len()), (99, 0), "the rest, once due");
        let mut q = JunkQueue::new(10);
        assert!(q.push(junk(3, 0)) && !q.push(junk(3, 0)), "a queued request is not queued twice");
        assert_eq!(q.len(), 1);
    }

    /// The budget counts in-flight refusals at the estimate and mined ones at their gas, for an
    /// hour; an hour after a refusal was mined its gas no longer counts.
    #[test]
    fn refusal_gas_counts_for_one_hour() {
        let t0 = Instant::now();
        let mut g = RefusalGas::new(10 * REFUSAL_GAS_ESTIMATE);
        assert_eq!(g.allowance(t0), 10);
        g.sent(4);
        assert_eq!(g.allowance(t0), 6);
        for _ in 0..3 {
            g.settled(Some(2 * REFUSAL_GAS_ESTIMATE), t0);
        }
        g.settled(None, t0);
        assert_eq!(g.spent(t0), 6 * REFUSAL_GAS_ESTIMATE);
        assert_eq!(g.allowance(t0 + Duration::from_secs(3_599)), 4);
        assert_eq!(g.allowance(t0 + BUDGET_WINDOW), 10, "an hour later it no longer counts");
        let mut g = RefusalGas::new(REFUSAL_GAS_ESTIMATE - 1);
        assert_eq!(g.allowance(t0), 0, "a budget below one refusal allows none");
    }
}
