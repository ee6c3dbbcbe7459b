//! `audit --reverify`: re-run the holder pipeline offline on every quote that was accepted on chain
//! (each delivered request, each approved genesis proposal), with the policy and reference values
//! reconstructed from events at the moment of the answer, and the quote checked at its own block time.

use super::{
    collect::{History, Pos},
    model::{Custody, Reverification},
    state::{At, State},
};
use alloy::primitives::{Bytes, B256, U256};
use replicatoor_chain::bindings::UpgradeOperator::UpgradeOperatorEvents as Ev;
use replicatoor_core::{
    attest::{
        pipeline::{self, Binding, Context, Decision, References},
        GenesisBinding, RequestBinding, Verifier,
    },
    protocol::RefKind,
};
use std::collections::HashMap;

/// The contract's `isAllowed`, answered from reconstructed state at one position.
struct RefsAt<'a> {
    state: &'a State,
    at: At,
    time: u64,
}

impl References for RefsAt<'_> {
    type Error = std::convert::Infallible;
    async fn is_allowed(&self, id: B256, kind: RefKind) -> Result<bool, Self::Error> {
        Ok(self.state.is_allowed(id, kind as u8, self.at, self.time))
    }
}

/// What was attested: the binding, the quote and event log, and when it was posted.
struct Attestation<B> {
    binding: B,
    quote: Bytes,
    event_log: Bytes,
    posted: Pos,
}

/// Fill `reverify` on every epoch and delivery of `custody`.
pub async fn reverify(h: &History, state: &State, custody: &mut Custody, verifier: &Verifier) {
    let mut requests = HashMap::new();
    let mut proposals = HashMap::new();
    for e in &h.entries {
        match &e.event {
            Ev::SecretRequested(r) => {
                let binding =
                    RequestBinding { request_id: r.requestId, requester: r.requester, hpke_pub_key: r.hpkePubKey.0 };
                let a = Attestation { binding, quote: r.quote.clone(), event_log: r.eventLog.clone(), posted: e.pos };
                requests.insert(r.requestId, a);
            }
            Ev::GenesisProposed(g) => {
                let binding = GenesisBinding { cluster: g.cluster, epoch: g.epoch };
                let a = Attestation { binding, quote: g.quote.clone(), event_log: g.eventLog.clone(), posted: e.pos };
                proposals.insert(g.proposalId, a);
            }
            // A rotation proposal's quote binds its cluster exactly as a genesis quote does.
            Ev::RotationProposed(g) => {
                let binding = GenesisBinding { cluster: g.cluster, epoch: g.epoch };
                let a = Attestation { binding, quote: g.quote.clone(), event_log: g.eventLog.clone(), posted: e.pos };
                proposals.insert(g.proposalId, a);
            }
            _ => {}
        }
    }
    // Answers sit at their own log; the pipeline sees the state just before it.
    let answer_at = |block: u64, tx: B256| {
        h.entries.iter().find(|e| e.pos.block == block && e.pos.tx == tx).map(|e| e.pos).unwrap_or(Pos {
            block,
            log_index: 0,
            time: 0,
            tx,
        })
    };
    for ep in &mut custody.epochs {
        let at = answer_at(ep.block, ep.tx);
        ep.reverify = Some(match proposals.get(&U256::from(ep.proposal_id)) {
            Some(a) => check(h, state, verifier, a, at, (ep.os_ref, ep.app_ref)).await,
            None => missing("the genesis proposal is outside the audited range"),
        });
        for d in &mut ep.deliveries {
            let at = answer_at(d.block, d.tx);
            d.reverify = Some(match requests.get(&U256::from(d.request_id)) {
                Some(a) => check(h, state, verifier, a, at, (d.os_ref, d.app_ref)).await,
                None => missing("the request is outside the audited range"),
            });
        }
    }
}

fn missing(why: &str) -> Reverification {
    Reverification { verdict: "inconclusive", reason: None, detail: why.into(), tcb_status: None, simulated: None }
}

async fn check<B: Binding>(
    h: &History,
    state: &State,
    verifier: &Verifier,
    a: &Attestation<B>,
    answer: Pos,
    claimed: (B256, B256),
) -> Reverification {
    let Some((_, policy)) = state.policy_at(answer.key(), answer.time) else {
        return missing("no policy known at the answer (history incomplete)");
    };
    let refs = RefsAt { state, at: answer.key(), time: answer.time };
    let ctx = Context { deployment: h.deployment, verifier, policy, references: &refs, now: a.posted.time };
    let rejected = |reason: &str, detail: String| Reverification {
        verdict: "rejected",
        reason: Some(reason.into()),
        detail,
        tcb_status: None,
        simulated: None,
    };
    match pipeline::evaluate(&ctx, a.binding, &a.quote, &a.event_log).await {
        Decision::Accept(acc) => {
            let q = acc.quote();
            let base = Reverification {
                verdict: "accepted",
                reason: None,
                detail: format!("accepted at block time {} under the policy in force", a.posted.time),
                tcb_status: Some(q.tcb_status().name().into()),
                simulated: Some(q.is_simulated()),
            };
            if (acc.os_ref(), acc.app_ref()) == claimed {
                base
            } else {
                Reverification {
                    verdict: "rejected",
                    reason: Some("reference_mismatch".into()),
                    detail: format!(
                        "the quote measures osRef {} / appRef {}, but the answer claims {} / {}",
                        acc.os_ref(),
                        acc.app_ref(),
                        claimed.0,
                        claimed.1
                    ),
                    ..base
                }
            }
        }
        Decision::Refuse(r, detail) => rejected(r.name(), detail),
        Decision::Abstain(why) => rejected(
            "simulated_quote_not_trusted",
            format!("{why}; the policy allowed simulated quotes (pass --allow-simulated-quotes to accept them)"),
        ),
        Decision::Retry(why) => missing(&why),
    }
}
