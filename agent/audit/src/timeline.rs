//! The governance timeline: every owner action and deployment event, with its actor and note.

use super::{
    collect::{is_governance, History},
    model::{GovernanceEvent as G, PolicyView, RefKindName, TimelineEntry},
    state::State,
};
use alloy::primitives::{keccak256, U256};
use replicatoor_chain::bindings::UpgradeOperator::UpgradeOperatorEvents as Ev;

fn id64(v: U256) -> u64 {
    v.try_into().unwrap_or(u64::MAX)
}

pub fn build(h: &History, state: &State) -> Vec<TimelineEntry> {
    let mut policy_index = 0;
    let mut out = Vec::new();
    for e in h.entries.iter().filter(|e| is_governance(&e.event)) {
        let (event, note) = match &e.event {
            Ev::PolicySet(p) => {
                let cancelled = state.cancelled(policy_index);
                policy_index += 1;
                let policy = p.policy();
                (
                    G::PolicySet { policy: PolicyView::from(policy), effective_at: p.effectiveAt, cancelled },
                    p.note.clone(),
                )
            }
            ev => match governance_event(ev, e.pos.time) {
                Some(x) => x,
                None => continue,
            },
        };
        out.push(TimelineEntry {
            block: e.pos.block,
            log_index: e.pos.log_index,
            time: e.pos.time,
            tx: e.pos.tx,
            actor: h.actors.get(&e.pos.tx).copied(),
            note,
            event,
        });
    }
    out
}

/// A governance event other than `PolicySet` (whose cancellation `build` asks the state), with its
/// note; `None` for an event that is not governance. `time` is its block's.
fn governance_event(ev: &Ev, time: u64) -> Option<(G, String)> {
    Some(match ev {
        Ev::Deployed(d) => (G::Deployed { owner: d.owner, widening_delay: d.wideningDelay }, String::new()),
        Ev::ReferenceProposed(r) => {
            let preimage = [&[r.kind][..], &r.measurement[..]].concat();
            let g = G::ReferenceProposed {
                id: r.id,
                ref_kind: RefKindName(r.kind),
                measurement: hex::encode(&r.measurement),
                activates_at: r.activatesAt,
                immediate: r.activatesAt <= time,
                id_matches_measurement: keccak256(preimage) == r.id,
            };
            (g, r.note.clone())
        }
        Ev::ReferenceRevoked(r) => (G::ReferenceRevoked { id: r.id, ref_kind: RefKindName(r.kind) }, r.note.clone()),
        Ev::ReferenceDescribed(r) => (
            G::ReferenceDescribed { id: r.id, ref_kind: RefKindName(r.kind), bytes: r.description.len() },
            String::new(),
        ),
        Ev::OwnershipTransferStarted(t) => {
            (G::OwnershipTransferStarted { previous_owner: t.previousOwner, new_owner: t.newOwner }, String::new())
        }
        Ev::OwnershipTransferred(t) => {
            (G::OwnershipTransferred { previous_owner: t.previousOwner, new_owner: t.newOwner }, String::new())
        }
        Ev::ClusterBootstrapped(b) => (
            G::ClusterBootstrapped {
                epoch: b.epoch,
                cluster: b.cluster,
                proposal_id: id64(b.proposalId),
                os_ref: b.osRef,
                app_ref: b.appRef,
            },
            b.note.clone(),
        ),
        Ev::CustodyReset(r) => (
            G::CustodyReset { epoch: r.epoch, previous_cluster: r.previousCluster, new_cluster: r.newCluster },
            r.note.clone(),
        ),
        Ev::ReferenceExpiryScheduled(r) => (
            G::ReferenceExpiryScheduled { id: r.id, ref_kind: RefKindName(r.kind), expires_at: r.expiresAt },
            r.note.clone(),
        ),
        Ev::BootstrapScheduled(b) => (
            G::BootstrapScheduled {
                epoch: b.epoch,
                cluster: b.cluster,
                proposal_id: id64(b.proposalId),
                executable_at: b.executableAt,
            },
            b.note.clone(),
        ),
        Ev::BootstrapCancelled(b) => (G::BootstrapCancelled { proposal_id: id64(b.proposalId) }, b.note.clone()),
        Ev::RotationStarted(r) => (G::RotationStarted { epoch: r.epoch }, r.note.clone()),
        Ev::RotationCancelled(r) => (G::RotationCancelled { epoch: r.epoch }, r.note.clone()),
        Ev::ClusterRotated(r) => (
            G::ClusterRotated { epoch: r.epoch, previous_cluster: r.previousCluster, new_cluster: r.newCluster },
            r.note.clone(),
        ),
        _ => return None,
    })
}
