//! The release gate's port (`replicatoor_core::gate::ChainState`) on the chain: [`Proven`], every
//! value proven against a header the pinned trust root authenticated, and [`Rpc`], what one RPC says
//! (`--dangerously-trust-rpc`); [`State`] is either, as the deployment says. Each read is written
//! once per kind of state, and the gate decides the same way on both.

mod proven;
mod rpc;

pub use proven::Proven;
pub use rpc::Rpc;

use crate::{
    bindings::UpgradeOperator as Op,
    client::{Chain, ChainError},
    layout::Reads,
    verified::{HeaderSource, VerifiedView, ViewError},
};
use alloy::primitives::{Address, B256, U256};
use replicatoor_core::{
    attest::{pipeline::References, RequestBinding},
    gate::{ChainState, Request},
    protocol::{Policy, RefKind, RequestStatus},
};

/// `ev`, in block `block`, as the gate reads a request.
pub fn request_of(ev: &Op::SecretRequested, block: u64) -> Request {
    Request {
        binding: RequestBinding { request_id: ev.requestId, requester: ev.requester, hpke_pub_key: ev.hpkePubKey.0 },
        block,
        epoch: ev.epoch,
        quote: ev.quote.to_vec(),
        event_log: ev.eventLog.to_vec(),
    }
}

/// Why the state a decision needs could not be read (the step or the request waits; never a refusal).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The RPC failed (unverified mode).
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A verified read failed: no fresh trusted header, or an answer that does not prove itself.
    #[error("verified read: {0}")]
    View(#[from] ViewError),
}

/// Who holds custody at a state, and whether the owner asked for a rotation (PROTOCOL.md §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Custody {
    /// `cluster()`.
    pub cluster: Address,
    /// `epoch()`.
    pub epoch: u64,
    /// `rotationFor()`: a rotation is under way while it is `epoch + 1`.
    pub rotation_for: u64,
    /// `rotationAfter()`: proposals up to this id predate the rotation under way (none is approvable).
    pub rotation_after: U256,
}

impl Custody {
    /// The epoch a rotation under way would create, if one is.
    pub fn rotating_to(&self) -> Option<u64> {
        (self.rotation_for != 0 && self.rotation_for == self.epoch.saturating_add(1)).then_some(self.rotation_for)
    }
}

/// A decision's state: proven with a pinned deployment, the RPC's without one.
pub enum State<'a, S> {
    /// Proven against a trusted header (boxed: it holds the proof).
    Proven(Box<Proven<'a, S>>),
    /// The RPC's answers.
    Rpc(Rpc<'a>),
}

impl<'a, S: HeaderSource> State<'a, S> {
    /// The state at block `at` (the confirmed head); with a pinned deployment (`verified`), at the
    /// newest trusted header, which must be fresh by this TD's clock (`now`) and cover `at`, with
    /// `reads` proven up front.
    pub async fn read(
        chain: &'a Chain,
        verified: Option<&'a VerifiedView<S>>,
        now: u64,
        at: u64,
        reads: &Reads,
    ) -> Result<State<'a, S>, StateError> {
        Ok(match verified {
            Some(v) => State::Proven(Box::new(Proven::near(v, &v.decision_header(now, at).await?, at, reads).await?)),
            None => State::Rpc(Rpc::read(chain, at).await?),
        })
    }

    /// The block the state is at.
    pub fn at(&self) -> u64 {
        match self {
            State::Proven(p) => p.header().number,
            State::Rpc(r) => r.at(),
        }
    }

    /// Cluster, epoch and the rotation under way (read up front, with the state).
    pub fn custody(&self) -> Result<Custody, StateError> {
        Ok(match self {
            State::Proven(p) => {
                let v = p.views();
                let read = || {
                    let custody = Custody {
                        cluster: v.cluster()?,
                        epoch: v.epoch()?,
                        rotation_for: v.rotation_for()?,
                        rotation_after: v.rotation_after()?,
                    };
                    Ok::<_, crate::proof::ProofError>(custody)
                };
                read().map_err(ViewError::from)?
            }
            State::Rpc(r) => r.custody(),
        })
    }
}

impl<S: HeaderSource> References for State<'_, S> {
    type Error = StateError;
    async fn is_allowed(&self, id: B256, kind: RefKind) -> Result<bool, StateError> {
        Ok(match self {
            State::Proven(p) => p.is_allowed(id, kind).await?,
            State::Rpc(r) => r.is_allowed(id, kind).await?,
        })
    }
}

impl<S: HeaderSource> ChainState for State<'_, S> {
    fn now(&self) -> u64 {
        match self {
            State::Proven(p) => p.now(),
            State::Rpc(r) => r.now(),
        }
    }

    async fn policy(&self) -> Result<Policy, StateError> {
        Ok(match self {
            State::Proven(p) => p.policy().await?,
            State::Rpc(r) => r.policy().await?,
        })
    }

    async fn cluster(&self) -> Result<Address, StateError> {
        Ok(match self {
            State::Proven(p) => p.cluster().await?,
            State::Rpc(r) => r.cluster().await?,
        })
    }

    async fn status(&self, request: B256) -> Result<RequestStatus, StateError> {
        Ok(match self {
            State::Proven(p) => p.status(request).await?,
            State::Rpc(r) => r.status(request).await?,
        })
    }

    async fn request(&self, claimed: &Request) -> Result<Option<Request>, StateError> {
        Ok(match self {
            State::Proven(p) => p.request(claimed).await?,
            State::Rpc(r) => r.request(claimed).await?,
        })
    }

    async fn commitment(&self, holder: Address) -> Result<B256, StateError> {
        Ok(match self {
            State::Proven(p) => p.commitment(holder).await?,
            State::Rpc(r) => r.commitment(holder).await?,
        })
    }
}
