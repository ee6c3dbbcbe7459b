//! The custody tree: each epoch's genesis (or the rotation proposal that began it), every delivery and
//! refusal its cluster key signed, and which holder (by relaying account) each new holder descends from.

use super::{
    collect::{History, Pos},
    model::{Custody, DeliveryRecord, EpochRecord, GenesisProposal, RefusalRecord, RequestRecord},
};
use alloy::primitives::{Address, U256};
use replicatoor_chain::bindings::UpgradeOperator::{self as Op, UpgradeOperatorEvents as Ev};
use replicatoor_core::refusal::Refusal;
use std::collections::{BTreeMap, HashSet};

fn id64(v: U256) -> u64 {
    v.try_into().unwrap_or(u64::MAX)
}

fn proposal(id: U256, cluster: Address, epoch: u64, proposer: Address, at: Pos, endorsed: bool) -> GenesisProposal {
    GenesisProposal {
        proposal_id: id64(id),
        cluster,
        epoch,
        proposer,
        block: at.block,
        tx: at.tx,
        approved: false,
        endorsed,
    }
}

/// Build the custody record (without re-verification results).
pub fn build(h: &History) -> Custody {
    let mut b = Builder::default();
    for e in &h.entries {
        match &e.event {
            Ev::GenesisProposed(g) => {
                b.c.genesis_proposals.push(proposal(g.proposalId, g.cluster, g.epoch, g.proposer, e.pos, false))
            }
            // A rotation proposal is approved like a genesis proposal (its id is in the same sequence).
            Ev::RotationProposed(g) => {
                b.c.genesis_proposals.push(proposal(g.proposalId, g.cluster, g.epoch, g.proposer, e.pos, true))
            }
            Ev::ClusterBootstrapped(x) => b.bootstrapped(x, e.pos),
            Ev::CustodyReset(r) => {
                if let Some(ep) = b.epochs.get_mut(&r.epoch) {
                    ep.previous_cluster = Some(r.previousCluster);
                }
            }
            Ev::SecretRequested(r) => b.requested(r, e.pos),
            Ev::SecretDelivered(d) => b.delivered(d, e.pos),
            Ev::RequestRefused(r) => b.refused(r, e.pos),
            _ => {}
        }
    }
    let mut c = b.c;
    c.unanswered = b.requests.values().filter(|r| r.status == "pending").map(|r| r.request_id).collect();
    c.requests = b.requests.into_values().collect();
    c.epochs = b.epochs.into_values().collect();
    c
}

/// The custody record as the history builds it, event by event.
#[derive(Default)]
struct Builder {
    c: Custody,
    requests: BTreeMap<u64, RequestRecord>,
    epochs: BTreeMap<u64, EpochRecord>,
    /// Accounts known to hold each epoch's bundle: its genesis proposer, then every recipient.
    holders: BTreeMap<u64, HashSet<Address>>,
}

impl Builder {
    fn bootstrapped(&mut self, b: &Op::ClusterBootstrapped, at: Pos) {
        let Pos { block, time, tx, .. } = at;
        let pid = id64(b.proposalId);
        let proposal = self.c.genesis_proposals.iter_mut().find(|p| p.proposal_id == pid);
        let proposer = proposal.map(|p| {
            p.approved = true;
            p.proposer
        });
        self.holders.entry(b.epoch).or_default().extend(proposer);
        self.epochs.insert(
            b.epoch,
            EpochRecord {
                epoch: b.epoch,
                cluster: b.cluster,
                proposal_id: pid,
                proposer,
                os_ref: b.osRef,
                app_ref: b.appRef,
                block,
                time,
                tx,
                note: b.note.clone(),
                previous_cluster: None,
                reverify: None,
                attested_os: None,
                deliveries: vec![],
                refusals: vec![],
            },
        );
    }

    fn requested(&mut self, r: &Op::SecretRequested, at: Pos) {
        let Pos { block, time, tx, .. } = at;
        self.requests.insert(
            id64(r.requestId),
            RequestRecord {
                request_id: id64(r.requestId),
                requester: r.requester,
                hpke_pub_key: r.hpkePubKey,
                epoch: r.epoch,
                block,
                time,
                tx,
                quote_bytes: r.quote.len(),
                quote_form: replicatoor_compact_quote::QuoteForm::of(&r.quote),
                event_log_bytes: r.eventLog.len(),
                status: "pending",
                answered_block: None,
            },
        );
    }

    fn delivered(&mut self, d: &Op::SecretDelivered, at: Pos) {
        let Pos { block, time, tx, .. } = at;
        let rid = id64(d.requestId);
        let req = self.requests.get_mut(&rid);
        let (requester, request_block) = req.as_ref().map_or((Address::ZERO, 0), |r| (r.requester, r.block));
        if let Some(r) = req {
            r.status = "delivered";
            r.answered_block = Some(block);
        }
        let known = self.holders.entry(d.epoch).or_default();
        let served_by = known.contains(&d.relayer).then_some(d.relayer);
        known.insert(requester);
        if let Some(ep) = self.epochs.get_mut(&d.epoch) {
            ep.deliveries.push(DeliveryRecord {
                request_id: rid,
                requester,
                os_ref: d.osRef,
                app_ref: d.appRef,
                relayer: d.relayer,
                served_by,
                request_block,
                block,
                time,
                tx,
                reverify: None,
                attested_os: None,
            });
        }
    }

    fn refused(&mut self, r: &Op::RequestRefused, at: Pos) {
        let Pos { block, time, tx, .. } = at;
        let rid = id64(r.requestId);
        let req = self.requests.get_mut(&rid);
        let requester = req.as_ref().map_or(Address::ZERO, |r| r.requester);
        if let Some(q) = req {
            q.status = "refused";
            q.answered_block = Some(block);
        }
        if let Some(ep) = self.epochs.get_mut(&r.epoch) {
            ep.refusals.push(RefusalRecord {
                request_id: rid,
                requester,
                reason: Refusal::from_code(r.reason).map_or("unknown", Refusal::name),
                code: r.reason,
                relayer: r.relayer,
                block,
                time,
                tx,
            });
        }
    }
}
