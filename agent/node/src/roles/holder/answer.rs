//! A step's answer to one request, as the decide step signs it and the relay sends it: a sealed
//! delivery or a signed refusal. Its own leaf, so that deciding (`decide.rs`) and sending
//! (`relay.rs`) share the type without either importing the other.

use alloy::primitives::{B256, U256};
use replicatoor_core::{delivery, refusal::Refusal};

/// A signed answer to one request, ready to send.
pub(super) struct Answer {
    pub(super) id: U256,
    pub(super) block: u64,
    pub(super) kind: AnswerKind,
}

impl Answer {
    /// The request key the answer signs (`keccak256(pk ‖ requester)`), under which the contract keeps
    /// the request's status.
    pub(super) fn request(&self) -> B256 {
        match &self.kind {
            AnswerKind::Deliver(d) => d.request,
            AnswerKind::Refuse(_, request, _) => *request,
        }
    }
}

pub(super) enum AnswerKind {
    Deliver(delivery::SignedDelivery),
    /// The reason, the request's `request` key (signed with it), and the signature.
    Refuse(Refusal, B256, Vec<u8>),
}
