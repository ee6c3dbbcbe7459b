//! Reconstructing the contract's trust state (policy, reference values) at any point of its history
//! from events alone (PROTOCOL.md §4.4), without archive-node state reads.

use super::{
    collect::{Blocks, Entry, History, Pos},
    model::{PolicySegment, PolicyView, RefKindName, ReferenceState},
    AuditError,
};
use alloy::primitives::{Bytes, B256};
use replicatoor_chain::bindings::UpgradeOperator::UpgradeOperatorEvents as Ev;
use replicatoor_core::protocol::Policy;
use std::collections::BTreeMap;

/// A position in the chain: (block, log index). A call at `at` sees the events strictly before it.
pub type At = (u64, u64);

/// One `PolicySet` event.
#[derive(Debug, Clone)]
pub struct PolicyEvent {
    pub pos: Pos,
    pub policy: Policy,
    pub effective_at: u64,
    pub note: String,
}

/// One proposal of a reference id (a revoked id may be proposed again).
#[derive(Debug, Clone)]
pub struct RefProposal {
    pub pos: Pos,
    pub kind: u8,
    pub measurement: Bytes,
    pub activates_at: u64,
    pub note: String,
    /// The revocation that ended this proposal, if any.
    pub revoked: Option<(Pos, String)>,
    /// Its scheduled ends, in chain order (each brings the previous one forward; protocol v2).
    pub expiries: Vec<(Pos, u64)>,
    /// What the proposal published in `ReferenceDescribed` (PROTOCOL.md §4.5): the app-compose.json
    /// or the OS description. `None` when nothing was published (and on contracts before it).
    pub description: Option<Bytes>,
}

/// The trust state's history.
#[derive(Debug, Default)]
pub struct State {
    pub policies: Vec<PolicyEvent>,
    /// Per id, its proposals in chain order.
    pub refs: BTreeMap<B256, Vec<RefProposal>>,
}

impl State {
    pub fn from_history(h: &History) -> State {
        let mut s = State::default();
        for Entry { pos, event } in &h.entries {
            match event {
                Ev::PolicySet(e) => s.policies.push(PolicyEvent {
                    pos: *pos,
                    policy: e.policy(),
                    effective_at: e.effectiveAt,
                    note: e.note.clone(),
                }),
                Ev::ReferenceProposed(e) => s.refs.entry(e.id).or_default().push(RefProposal {
                    pos: *pos,
                    kind: e.kind,
                    measurement: e.measurement.clone(),
                    activates_at: e.activatesAt,
                    note: e.note.clone(),
                    revoked: None,
                    expiries: Vec::new(),
                    description: None,
                }),
                // Emitted right after its ReferenceProposed, in the same call: it describes that proposal.
                Ev::ReferenceDescribed(e) => {
                    if let Some(p) = s.refs.get_mut(&e.id).and_then(|v| v.last_mut()) {
                        p.description = Some(e.description.clone());
                    }
                }
                Ev::ReferenceExpiryScheduled(e) => {
                    if let Some(p) = s.refs.get_mut(&e.id).and_then(|v| v.last_mut()) {
                        p.expiries.push((*pos, e.expiresAt));
                    }
                }
                Ev::ReferenceRevoked(e) => {
                    if let Some(p) = s.refs.get_mut(&e.id).and_then(|v| v.last_mut()) {
                        p.revoked.get_or_insert((*pos, e.note.clone()));
                    }
                }
                _ => {}
            }
        }
        s
    }

    /// Whether `PolicySet` `i` was cancelled by a later one (among those before `at`) emitted
    /// before it took effect.
    fn cancelled_before(&self, i: usize, at: At) -> bool {
        let a = self.policies[i].effective_at;
        self.policies[i + 1..].iter().take_while(|j| j.pos.key() < at).any(|j| j.pos.time < a)
    }

    /// Whether `PolicySet` `i` never took effect (cancelled by any later event).
    pub fn cancelled(&self, i: usize) -> bool {
        self.cancelled_before(i, (u64::MAX, u64::MAX))
    }

    /// The policy in force for a call at `at` in a block with timestamp `time`, and the index of
    /// the `PolicySet` that set it (`None` before the first one).
    pub fn policy_at(&self, at: At, time: u64) -> Option<(usize, Policy)> {
        let before = self.policies.iter().take_while(|p| p.pos.key() < at).count();
        (0..before)
            .rev()
            .find(|&i| self.policies[i].effective_at <= time && !self.cancelled_before(i, at))
            .map(|i| (i, self.policies[i].policy))
    }

    /// `isAllowed(id, kind)` for a call at `at` in a block with timestamp `time`.
    pub fn is_allowed(&self, id: B256, kind: u8, at: At, time: u64) -> bool {
        let Some(p) = self.refs.get(&id).and_then(|v| v.iter().rev().find(|p| p.pos.key() < at)) else {
            return false;
        };
        let expiry = p.expiries.iter().rev().find(|(e, _)| e.key() < at).map(|(_, t)| *t);
        kind != 0
            && p.kind == kind
            && p.revoked.as_ref().is_none_or(|(r, _)| r.key() >= at)
            && time >= p.activates_at
            && expiry.is_none_or(|t| time < t)
    }

    /// A policy that was set, never cancelled, and is still waiting for its time at `time`.
    pub fn pending_policy(&self, time: u64) -> Option<&PolicyEvent> {
        (0..self.policies.len())
            .rev()
            .find(|&i| self.policies[i].effective_at > time && !self.cancelled(i))
            .map(|i| &self.policies[i])
    }

    /// Every reference id's latest state at `time`.
    pub fn references(&self, time: u64) -> Vec<ReferenceState> {
        let mut out: Vec<ReferenceState> = self
            .refs
            .iter()
            .filter_map(|(id, props)| {
                let p = props.last()?;
                let expires_at = p.expiries.last().map(|(_, t)| *t);
                let status = match (&p.revoked, p.activates_at > time, expires_at) {
                    (Some(_), _, _) => "revoked",
                    (None, _, Some(t)) if t <= time => "expired",
                    (None, true, _) => "pending",
                    (None, false, _) => "active",
                };
                Some(ReferenceState {
                    id: *id,
                    ref_kind: RefKindName(p.kind),
                    measurement: hex::encode(&p.measurement),
                    status,
                    proposed_block: p.pos.block,
                    activates_at: p.activates_at,
                    note: p.note.clone(),
                    revoked_block: p.revoked.as_ref().map(|(r, _)| r.block),
                    revoke_note: p.revoked.as_ref().map(|(_, n)| n.clone()),
                    expires_at,
                    proposals: props.len(),
                    app: None,
                    os: None,
                })
            })
            .collect();
        out.sort_by_key(|r| (r.proposed_block, r.id));
        out
    }

    /// The policy in force over the audited blocks, as consecutive ranges.
    pub async fn policy_segments(&self, h: &History, blocks: &Blocks<'_>) -> Result<Vec<PolicySegment>, AuditError> {
        // A change point: where a policy may start. Events apply right after their log; a
        // pending policy applies from the first block whose timestamp reaches its `effective_at`.
        struct Point {
            at: At,
            block: u64,
            tx: Option<B256>,
            time: u64,
        }
        let mut points = Vec::new();
        for (i, p) in self.policies.iter().enumerate() {
            points.push(Point {
                at: (p.pos.block, p.pos.log_index + 1),
                block: p.pos.block,
                tx: Some(p.pos.tx),
                time: p.pos.time,
            });
            if p.effective_at > p.pos.time && !self.cancelled(i) {
                if let Some(b) = blocks.first_at_or_after(p.effective_at, p.pos.block, h.to_block).await? {
                    points.push(Point { at: (b, 0), block: b, tx: None, time: blocks.time(b).await? });
                }
            }
        }
        points.sort_by_key(|p| p.at);
        let mut out: Vec<PolicySegment> = Vec::new();
        for (k, cp) in points.iter().enumerate() {
            let next = points.get(k + 1);
            // Superseded within the same transaction (setPolicy's narrowing step): never in force for a call.
            if next.is_some_and(|n| n.tx.is_some() && n.tx == cp.tx) {
                continue;
            }
            let Some((i, policy)) = self.policy_at(cp.at, cp.time) else { continue };
            let (to_block, open) = match next {
                None => (h.to_block, true),
                Some(n) if n.tx.is_some() => (n.block, false),
                Some(n) => (n.block.saturating_sub(1).max(cp.block), false),
            };
            match out.last_mut() {
                Some(last) if last.policy.policy() == policy => {
                    last.to_block = to_block;
                    last.open = open;
                }
                _ => out.push(PolicySegment {
                    from_block: cp.block,
                    to_block,
                    open,
                    policy: PolicyView::from(policy),
                    set_in_block: self.policies[i].pos.block,
                }),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(block: u64, log_index: u64, time: u64) -> Pos {
        Pos { block, log_index, time, tx: B256::with_last_byte(block as u8) }
    }

    fn ev(block: u64, time: u64, mask: u16, effective_at: u64) -> PolicyEvent {
        PolicyEvent {
            pos: pos(block, 0, time),
            policy: Policy {
                tcb_statuses: mask,
                allow_debug: false,
                allow_simulated: false,
                min_tcb_evaluation_data_number: 0,
            },
            effective_at,
            note: String::new(),
        }
    }

    #[test]
    fn policy_reconstruction_follows_the_timelock_and_cancellation() {
        // Block 1 (t=100): initial 0x1. Block 2 (t=200): widening to 0x11 pending until t=1200.
        // Block 3 (t=300): a new setPolicy cancels it (0x1 immediately). Block 4 (t=400): widening
        // to 0x3 pending until 1400, which nothing cancels.
        let s = State {
            policies: vec![ev(1, 100, 1, 100), ev(2, 200, 0x11, 1200), ev(3, 300, 1, 300), ev(4, 400, 3, 1400)],
            refs: BTreeMap::new(),
        };
        assert!(s.cancelled(1) && !s.cancelled(3));
        assert_eq!(s.policy_at((1, 0), 100), None, "nothing before the first event");
        assert_eq!(s.policy_at((2, 5), 250).map(|p| p.1.tcb_statuses), Some(1));
        // Before block 3 is mined, event 1 is not yet cancelled but not yet effective either.
        assert_eq!(s.policy_at((3, 0), 300).map(|p| p.1.tcb_statuses), Some(1));
        assert_eq!(s.policy_at((9, 0), 1300).map(|p| p.1.tcb_statuses), Some(1), "0x11 was cancelled");
        assert_eq!(s.policy_at((9, 0), 1400).map(|p| p.1.tcb_statuses), Some(3));
        assert_eq!(s.pending_policy(1000).map(|p| p.policy.tcb_statuses), Some(3));
        assert!(s.pending_policy(1400).is_none());
    }

    #[test]
    fn references_respect_activation_revocation_and_order() {
        let id = B256::repeat_byte(7);
        let mut s = State::default();
        s.refs.insert(
            id,
            vec![
                RefProposal {
                    pos: pos(1, 0, 100),
                    kind: 2,
                    measurement: Bytes::new(),
                    activates_at: 150,
                    note: String::new(),
                    revoked: Some((pos(5, 2, 500), "bad build".into())),
                    expiries: Vec::new(),
                    description: None,
                },
                RefProposal {
                    pos: pos(7, 0, 700),
                    kind: 2,
                    measurement: Bytes::new(),
                    activates_at: 700,
                    note: String::new(),
                    revoked: None,
                    // Scheduled to end at 1000, then brought forward to 900.
                    expiries: vec![(pos(8, 0, 800), 1000), (pos(9, 0, 850), 900)],
                    description: None,
                },
            ],
        );
        assert!(!s.is_allowed(id, 2, (1, 1), 100), "pending");
        assert!(s.is_allowed(id, 2, (2, 0), 150));
        assert!(!s.is_allowed(id, 1, (2, 0), 150), "wrong kind");
        assert!(s.is_allowed(id, 2, (5, 2), 500), "the revocation's own position still sees it");
        assert!(!s.is_allowed(id, 2, (5, 3), 500), "revoked at once");
        assert!(s.is_allowed(id, 2, (7, 1), 700), "proposed again");
        assert_eq!(s.references(800)[0].status, "active");
        assert_eq!(s.references(800)[0].proposals, 2);
        assert!(s.is_allowed(id, 2, (8, 1), 899), "before its end");
        assert!(!s.is_allowed(id, 2, (8, 1), 1000), "the first scheduled end");
        assert!(s.is_allowed(id, 2, (9, 0), 950), "the earlier end is not seen before its event");
        assert!(!s.is_allowed(id, 2, (9, 1), 900), "brought forward");
        assert_eq!((s.references(901)[0].status, s.references(901)[0].expires_at), ("expired", Some(900)));
    }
}
