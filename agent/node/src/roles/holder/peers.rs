//! Who answers a request first. Holders split a burst instead of racing for every request: each one
//! ranks itself and the other holders it saw answer recently by a hash of (request id, address); the
//! first answers at once, the others are backups that answer only if the request is still pending a
//! few blocks later. This is liveness only: whoever answers decides the usual way, and a holder that
//! knows no other holder (alone, or its peers fell silent) answers everything at once.
//!
//! The other holders are learned from chain history the holder follows anyway: the `relayer` of
//! `SecretDelivered` and `RequestRefused` events of its epoch. Anyone may relay, so a relayer is not
//! necessarily a live holder; one that is not costs the requests it ranks first for one backup delay
//! until it is dropped (a peer that let a request it ranked first for go unanswered is forgotten until
//! it answers again) or ages out ([`PEER_WINDOW`]). The requester a delivery answered is not counted
//! although it now holds the secret: a node may install and never serve (or be a test's requester), and
//! every such node would cost a backup delay. So a holder is known to the others from its first
//! answer on; until then the holders race for the requests it would rank first for (lost races, at
//! worst a reverted duplicate, never a missed request).

use crate::roles::Agent;
use alloy::{
    primitives::{keccak256, Address, B256, U256},
    rpc::types::{Filter, Log},
    sol_types::SolEvent,
};
use replicatoor_chain::bindings::UpgradeOperator as Op;
use std::collections::HashMap;
use tracing::debug;

/// Blocks after its last answer during which a relayer counts as another holder.
pub(super) const PEER_WINDOW: u64 = 600;

/// The other holders this holder knows of, with the block of each one's latest answer.
#[derive(Debug)]
pub(super) struct Peers {
    own: Address,
    last_answer: HashMap<Address, u64>,
}

/// Where this holder stands for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rank {
    /// 0: this holder answers first.
    pub(super) position: u64,
    /// Holders ranked before this one (the ones a late answer blames).
    pub(super) ahead: Vec<Address>,
    /// Other holders known at all (0: alone as far as this holder knows).
    pub(super) known: usize,
}

impl Peers {
    pub(super) fn new(own: Address) -> Self {
        Peers { own, last_answer: HashMap::new() }
    }

    /// An answer relayed by `relayer` in block `block` (of this holder's epoch).
    pub(super) fn saw(&mut self, relayer: Address, block: u64) {
        if relayer != self.own && relayer != Address::ZERO {
            let last = self.last_answer.entry(relayer).or_default();
            *last = (*last).max(block);
        }
    }

    /// `peer` let a request it ranked first for go unanswered: not counted until it answers again.
    pub(super) fn forget(&mut self, peer: Address) {
        self.last_answer.remove(&peer);
    }

    /// This holder's rank for request `id`, among itself and the holders that answered within
    /// [`PEER_WINDOW`] blocks before `at`.
    pub(super) fn rank(&mut self, id: U256, at: u64) -> Rank {
        self.last_answer.retain(|_, last| *last + PEER_WINDOW >= at);
        let own = priority(id, self.own);
        let mut ahead: Vec<(B256, Address)> =
            self.last_answer.keys().map(|a| (priority(id, *a), *a)).filter(|(p, _)| *p < own).collect();
        ahead.sort_unstable();
        Rank {
            position: ahead.len() as u64,
            ahead: ahead.into_iter().map(|(_, a)| a).collect(),
            known: self.last_answer.len(),
        }
    }
}

impl Peers {
    /// Feed a step's answers of this holder's `epoch` in; returns the step's requests.
    pub(super) fn learn<'l>(&mut self, logs: &'l [Log], epoch: u64) -> Vec<&'l Log> {
        let mut requests = Vec::with_capacity(logs.len());
        for log in logs {
            let topics = log.topics();
            match topics.first() {
                Some(t) if *t == Op::SecretRequested::SIGNATURE_HASH => requests.push(log),
                Some(t) if *t == Op::SecretDelivered::SIGNATURE_HASH || *t == Op::RequestRefused::SIGNATURE_HASH => {
                    // Both events index (requestId, epoch, relayer).
                    let (Some(e), Some(relayer), Some(block)) = (topics.get(2), topics.get(3), log.block_number) else {
                        continue;
                    };
                    if U256::from_be_bytes(e.0) == U256::from(epoch) {
                        self.saw(Address::from_word(*relayer), block);
                    }
                }
                _ => {}
            }
        }
        requests
    }

    /// The answers of the last [`PEER_WINDOW`] blocks, so that a restarted holder knows its peers
    /// before they answer again. Best effort: without them it only races more until they do.
    pub(super) async fn learn_recent(&mut self, agent: &Agent, epoch: u64) {
        let chain = &agent.chain;
        let filter = Filter::new()
            .address(chain.deployment().contract)
            .event_signature(vec![Op::SecretDelivered::SIGNATURE_HASH, Op::RequestRefused::SIGNATURE_HASH]);
        let logs = match chain.head().await {
            Ok(head) => {
                let from = head.saturating_sub(PEER_WINDOW).max(agent.cfg.start_block);
                replicatoor_chain::scan::get_logs(chain, &filter, from, head).await
            }
            Err(e) => Err(e),
        };
        match logs {
            Ok(logs) => {
                self.learn(&logs, epoch);
            }
            Err(e) => {
                debug!(target: "replicatoor::holder", error = %e, "recent answers not readable: other holders learned as they answer")
            }
        }
    }

    /// When another holder ranks first for the request `log` (and its turn is not over at the decision
    /// block `at`): `(id, request block, block from which this holder answers it)`, `delay` blocks per
    /// holder ahead of it after the request's block.
    pub(super) fn backup_due(&mut self, log: &Log, at: u64, delay: u64) -> Option<(U256, u64, u64)> {
        let id = U256::from_be_bytes(log.topics().get(1)?.0);
        let block = log.block_number?;
        let due = block.saturating_add(self.rank(id, at).position.saturating_mul(delay));
        (due > at).then_some((id, block, due))
    }
}

/// A holder's place in the order for request `id`: lower answers earlier. Every holder computes
/// the same order from public values.
fn priority(id: U256, holder: Address) -> B256 {
    keccak256([id.to_be_bytes::<32>().as_slice(), holder.as_slice()].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    /// Two holders that know each other agree on who is first for every request, and split a
    /// burst roughly in half.
    #[test]
    fn two_holders_split_requests_without_overlap() {
        let (a, b) = (addr(1), addr(2));
        let (mut pa, mut pb) = (Peers::new(a), Peers::new(b));
        pa.saw(b, 10);
        pb.saw(a, 10);
        let mut firsts = (0, 0);
        for n in 0..200u64 {
            let id = U256::from(n);
            let (ra, rb) = (pa.rank(id, 20), pb.rank(id, 20));
            assert_eq!(ra.position + rb.position, 1, "exactly one is first for request {n}");
            match ra.position {
                0 => {
                    firsts.0 += 1;
                    assert_eq!(rb.ahead, [a]);
                }
                _ => {
                    firsts.1 += 1;
                    assert_eq!(ra.ahead, [b]);
                }
            }
        }
        assert!(firsts.0 > 60 && firsts.1 > 60, "{firsts:?}");
    }

    /// Alone, or once the other holder is silent for the window or was forgotten, a holder is
    /// first for every request: its liveness never depends on another holder.
    #[test]
    fn a_lone_or_abandoned_holder_answers_everything_first() {
        let mut p = Peers::new(addr(1));
        for n in 0..50u64 {
            assert_eq!(p.rank(U256::from(n), 5).position, 0);
        }
        p.saw(addr(2), 100);
        p.saw(addr(1), 100); // its own answers do not make it a peer of itself
        let behind = (0..50u64).map(U256::from).find(|id| p.rank(*id, 100).position == 1).expect("some");
        assert_eq!(p.rank(behind, 100).known, 1);
        assert_eq!(p.rank(behind, 100 + PEER_WINDOW).position, 1, "still recent");
        assert_eq!(p.rank(behind, 101 + PEER_WINDOW).position, 0, "aged out");
        p.saw(addr(2), 200);
        assert_eq!(p.rank(behind, 201).position, 1, "answered again: counted again");
        p.forget(addr(2));
        assert_eq!(p.rank(behind, 201), Rank { position: 0, ahead: vec![], known: 0 });
    }
}
