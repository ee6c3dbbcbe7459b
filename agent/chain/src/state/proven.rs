//! The gate's port on proven state: every value checked against a header the pinned trust root
//! authenticated (storage proofs, events from proven receipts). This is what a pinned holder decides
//! on (TRUST.md).

use super::request_of;
use crate::{
    bindings::UpgradeOperator as Op,
    layout::{Reads, Views},
    proof::{ProofError, ProvenStorage, TrustedHeader},
    verified::{HeaderSource, VerifiedView, ViewError},
};
use alloy::primitives::{Address, B256};
use replicatoor_core::{
    attest::pipeline::References,
    gate::{ChainState, Request},
    protocol::{Policy, RefKind, RequestStatus},
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// A block's `SecretRequested` events, proven from its receipts once (concurrent decisions on its
/// requests wait for the same proof).
type ProvenBlock = tokio::sync::OnceCell<Vec<Op::SecretRequested>>;

/// Contract state proven at one trusted header: the slots read up front answer at once, any other
/// read is proven at the same header when asked (reference answers are then remembered).
pub struct Proven<'a, S> {
    view: &'a VerifiedView<S>,
    storage: ProvenStorage,
    refs: Mutex<HashMap<(B256, u8), bool>>,
    /// The requests of each block, proven once from its receipts for all of the block's requests.
    blocks: Mutex<HashMap<u64, Arc<ProvenBlock>>>,
}

impl<'a, S: HeaderSource> Proven<'a, S> {
    /// `reads` proven at `head`, or at its parent when the RPC cannot prove them at `head` yet, while
    /// the parent still reaches block `need` ([`VerifiedView::storage_near`]).
    pub async fn near(
        view: &'a VerifiedView<S>,
        head: &TrustedHeader,
        need: u64,
        reads: &Reads,
    ) -> Result<Proven<'a, S>, ViewError> {
        let storage = view.storage_near(head, need, reads).await?;
        Ok(Proven { view, storage, refs: Default::default(), blocks: Default::default() })
    }

    /// The header every value is proven at.
    pub fn header(&self) -> &TrustedHeader {
        self.storage.header()
    }

    /// The slots read up front.
    pub fn views(&self) -> Views<'_> {
        Views(&self.storage)
    }

    /// `read` from the slots read up front, or, when its slot is not among them, from `reads` proven
    /// at the same header.
    async fn read<T>(&self, reads: Reads, read: impl Fn(Views<'_>) -> Result<T, ProofError>) -> Result<T, ViewError> {
        match read(self.views()) {
            Err(ProofError::MissingSlot(_)) => Ok(read(Views(&self.view.storage(self.header(), &reads).await?))?),
            r => Ok(r?),
        }
    }
}

impl<S: HeaderSource> References for Proven<'_, S> {
    type Error = ViewError;
    async fn is_allowed(&self, id: B256, kind: RefKind) -> Result<bool, ViewError> {
        let key = (id, kind as u8);
        if let Some(v) = self.refs.lock().ok().and_then(|m| m.get(&key).copied()) {
            return Ok(v);
        }
        let v = self.read(Reads::default().reference(id), |v| v.is_allowed(id, kind)).await?;
        if let Ok(mut m) = self.refs.lock() {
            m.insert(key, v);
        }
        Ok(v)
    }
}

impl<S: HeaderSource> ChainState for Proven<'_, S> {
    fn now(&self) -> u64 {
        self.header().timestamp
    }

    async fn policy(&self) -> Result<Policy, ViewError> {
        Ok(self.views().policy()?)
    }

    async fn cluster(&self) -> Result<Address, ViewError> {
        Ok(self.views().cluster()?)
    }

    async fn status(&self, request: B256) -> Result<RequestStatus, ViewError> {
        self.read(Reads::default().request(request), |v| v.request_status(request)).await
    }

    async fn commitment(&self, holder: Address) -> Result<B256, ViewError> {
        self.read(Reads::default().commitment(holder), |v| v.commitment(holder)).await
    }

    /// The request event as its block's receipts prove it.
    ///
    /// A block too far below the header to link (beyond the history contract's window, or 256
    /// blocks where there is none) is proven through storage instead: `requestIdOf(key, requester)`
    /// must be this id at the header. The quote and event log are then the RPC's, which is safe:
    /// they pass the same pipeline, and a quote counts only if its report_data binds this requester
    /// and key, so any other quote the RPC could show releases only to the holder of the same key,
    /// the TD that made this request.
    async fn request(&self, claimed: &Request) -> Result<Option<Request>, ViewError> {
        let block = claimed.block;
        let cell = self.blocks.lock().map(|mut blocks| blocks.entry(block).or_default().clone()).unwrap_or_default();
        let proven =
            cell.get_or_try_init(|| self.view.events_in_block::<Op::SecretRequested>(self.header(), block)).await;
        let id = claimed.binding.request_id;
        match proven {
            Ok(proven) => Ok(proven.iter().find(|p| p.requestId == id).map(|p| request_of(p, block))),
            Err(e) if e.is_unlinkable() => {
                let request = claimed.binding.request_key();
                let on_chain = self.read(Reads::default().request(request), |v| v.request_id(request)).await?;
                tracing::debug!(target: "replicatoor::holder", block, "request block beyond the link range: bound by requestIdOf instead");
                Ok((on_chain == id).then(|| claimed.clone()))
            }
            Err(e) => Err(e),
        }
    }
}
