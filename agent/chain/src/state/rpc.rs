//! The gate's port on one RPC's answers (`--dangerously-trust-rpc`, dev and test chains only):
//! nothing proven, so not on the trust path of a pinned release.

use crate::client::{Chain, ChainError};
use alloy::{
    eips::BlockId,
    primitives::{Address, B256, U256},
};
use replicatoor_core::{
    attest::pipeline::References,
    gate::{ChainState, Request},
    protocol::{Policy, RefKind, RequestStatus},
};
use std::{collections::HashMap, sync::Mutex};

/// Contract state as one RPC answers it, at one block (`--dangerously-trust-rpc`: nothing proven).
/// Policy and cluster are read up front; reference answers are remembered.
pub struct Rpc<'a> {
    chain: &'a Chain,
    at: u64,
    now: u64,
    policy: Policy,
    custody: super::Custody,
    refs: Mutex<HashMap<(B256, u8), bool>>,
}

impl<'a> Rpc<'a> {
    /// The state at block `at`.
    pub async fn read(chain: &'a Chain, at: u64) -> Result<Rpc<'a>, ChainError> {
        let id = BlockId::number(at);
        let c = chain.contract();
        let err = |what: &str, e: alloy::contract::Error| ChainError::Rpc(format!("{what}: {e}"));
        let rotation_for = async { c.rotationFor().block(id).call().await.map_err(|e| err("rotationFor", e)) };
        let rotation_after = async { c.rotationAfter().block(id).call().await.map_err(|e| err("rotationAfter", e)) };
        let (policy, (cluster, epoch), block, rotation_for, rotation_after) =
            tokio::try_join!(chain.policy_at(id), chain.cluster_at(id), chain.block(at), rotation_for, rotation_after)?;
        let custody = super::Custody { cluster, epoch, rotation_for, rotation_after: U256::from(rotation_after) };
        Ok(Rpc { chain, at, now: block.timestamp, policy, custody, refs: Default::default() })
    }

    /// Cluster, epoch and the rotation under way at the state's block.
    pub fn custody(&self) -> super::Custody {
        self.custody
    }

    /// The block the state is at.
    pub fn at(&self) -> u64 {
        self.at
    }
}

impl References for Rpc<'_> {
    type Error = ChainError;
    async fn is_allowed(&self, id: B256, kind: RefKind) -> Result<bool, ChainError> {
        let key = (id, kind as u8);
        if let Some(v) = self.refs.lock().ok().and_then(|m| m.get(&key).copied()) {
            return Ok(v);
        }
        let v = self.chain.is_allowed_at(id, kind, BlockId::number(self.at)).await?;
        if let Ok(mut m) = self.refs.lock() {
            m.insert(key, v);
        }
        Ok(v)
    }
}

impl ChainState for Rpc<'_> {
    fn now(&self) -> u64 {
        self.now
    }

    async fn policy(&self) -> Result<Policy, ChainError> {
        Ok(self.policy)
    }

    async fn cluster(&self) -> Result<Address, ChainError> {
        Ok(self.custody.cluster)
    }

    /// The RPC's latest view, not the state's block: fresher for racing holders, and nothing here is
    /// proven anyway.
    async fn status(&self, request: B256) -> Result<RequestStatus, ChainError> {
        self.chain.request_status(request, BlockId::latest()).await
    }

    /// The RPC's latest view (nothing here is proven: an unpinned holder posts no commitments, and
    /// would gain nothing from one its RPC can fake).
    async fn commitment(&self, holder: Address) -> Result<B256, ChainError> {
        self.chain.contract().commitments(holder).call().await.map_err(|e| ChainError::Rpc(format!("commitments: {e}")))
    }

    /// The request as the RPC's log showed it.
    async fn request(&self, claimed: &Request) -> Result<Option<Request>, ChainError> {
        Ok(Some(claimed.clone()))
    }
}
