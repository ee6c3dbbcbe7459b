//! The verified chain view: every value a release, an install or a genesis start depends on, read
//! from the (untrusted) RPC and checked against a header the TD trusts. The header comes from a
//! [`HeaderSource`] (the beacon light client, or a quorum of pinned RPCs); storage is proven by
//! `eth_getProof`, an older block is linked to the trusted header through parent hashes (a few
//! blocks) or the EIP-2935 history contract read by proof (up to its window), and events come from
//! the block's receipts, rebuilt to its receipts root.
//!
//! A missing or wrong proof is a [`ViewError`]: the caller does not act, logs why and retries later.
//! It is never a refusal on chain (a lying RPC must not be able to get a genuine node refused).

use crate::{
    client::Chain,
    layout::Reads,
    proof::{verify_header, verify_receipts, ProofError, ProvenStorage, TrustedHeader},
};
use alloy::{
    eips::{
        eip2935::{HISTORY_SERVE_WINDOW, HISTORY_STORAGE_ADDRESS, HISTORY_STORAGE_CODE},
        BlockNumberOrTag,
    },
    primitives::{keccak256, Address, B256, U256},
    providers::Provider,
    sol_types::SolEvent,
};
use std::{future::Future, time::Instant};

/// Up to this distance below the trusted header a block is linked by walking parent hashes (one
/// header per step; decisions usually happen a block or two after the event). Further down, one
/// proof of the history contract and one header are cheaper.
pub const WALK_DISTANCE: u64 = 8;

/// The most parent-hash steps a view walks when the history contract cannot link a block (a chain
/// without EIP-2935, or an RPC that will not prove it).
pub const MAX_WALK_DISTANCE: u64 = 256;

/// The EIP-2935 history contract keeps the hashes of this many blocks below the one whose state
/// holds them: an event older than that (about 27 h on mainnet) cannot be linked at all.
pub const HISTORY_WINDOW: u64 = HISTORY_SERVE_WINDOW as u64;

/// Why a read could not be verified (retry later; never act on it).
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The RPC did not answer (or answered nonsense that is not even a lie to check).
    #[error("RPC: {0}")]
    Rpc(String),
    /// The RPC's answer does not prove what it claims.
    #[error("proof: {0}")]
    Proof(#[from] ProofError),
    /// No trusted header yet, or the header source failed.
    #[error("no trusted header: {0}")]
    NoHeader(String),
    /// The newest trusted header is older than the freshness bound.
    #[error("trusted header {number} is {age} s old (at most {max_age} s allowed)")]
    Stale {
        /// Its block number.
        number: u64,
        /// Its age by the TD's clock.
        age: u64,
        /// The bound.
        max_age: u64,
    },
    /// The trusted header does not reach the block the decision must cover yet.
    #[error("trusted header {have} does not reach block {need} yet")]
    NotYet {
        /// The trusted header's number.
        have: u64,
        /// The block that must be covered.
        need: u64,
    },
    /// A block is too far below the trusted header to link to it.
    #[error("block {block} is {distance} blocks below the trusted header (at most {max} can be linked)")]
    TooFar {
        /// The block.
        block: u64,
        /// Its distance.
        distance: u64,
        /// The furthest link possible here.
        max: u64,
    },
    /// The history contract could not link a block (not on this chain, or no hash for the block).
    #[error("history contract: {0}")]
    NoHistory(String),
}

impl ViewError {
    /// The block cannot be linked to the trusted header at all (too far below it, or no history
    /// contract proof): callers that can prove what they need from storage at the header do so.
    pub fn is_unlinkable(&self) -> bool {
        matches!(self, ViewError::TooFar { .. } | ViewError::NoHistory(_))
    }
}

fn rpc(e: impl std::fmt::Display) -> ViewError {
    ViewError::Rpc(e.to_string())
}

/// Where trusted headers come from.
pub trait HeaderSource: Send + Sync {
    /// The newest header this source can vouch for (`now`: the TD's clock, unix seconds), from a
    /// sync begun at or after `since`: a source that shares its syncs among concurrent callers may
    /// answer with one already under way; the others sync on their own.
    fn head(&self, now: u64, since: Instant) -> impl Future<Output = Result<TrustedHeader, ViewError>> + Send;
}

/// Proven reads over an untrusted RPC, anchored in a [`HeaderSource`].
pub struct VerifiedView<S> {
    chain: Chain,
    source: S,
    max_age: u64,
}

impl<S: HeaderSource> VerifiedView<S> {
    /// A view over `chain`'s RPC (transport only) anchored in `source`, accepting decision headers
    /// at most `max_age` seconds old.
    pub fn new(chain: Chain, source: S, max_age: u64) -> Self {
        VerifiedView { chain, source, max_age }
    }

    /// The RPC client (transport; nothing it says is taken without a proof here).
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// A trusted header to decide at: fresh by the TD's clock (`now`) and covering block `need`.
    pub async fn decision_header(&self, now: u64, need: u64) -> Result<TrustedHeader, ViewError> {
        self.decision_header_since(now, need, Instant::now()).await
    }

    /// [`VerifiedView::decision_header`] from a header source sync begun at or after `since`
    /// (a batch of checks made at once shares one sync).
    pub async fn decision_header_since(&self, now: u64, need: u64, since: Instant) -> Result<TrustedHeader, ViewError> {
        let h = self.source.head(now, since).await?;
        let age = now.saturating_sub(h.timestamp);
        if age > self.max_age {
            return Err(ViewError::Stale { number: h.number, age, max_age: self.max_age });
        }
        if h.number < need {
            return Err(ViewError::NotYet { have: h.number, need });
        }
        Ok(h)
    }

    /// The contract's storage slots `reads` at `at`, proven against its state root.
    pub async fn storage(&self, at: &TrustedHeader, reads: &Reads) -> Result<ProvenStorage, ViewError> {
        self.prove(at, self.chain.deployment().contract, reads.slots().to_vec()).await
    }

    /// `slots` of the contract at `address`, proven against `at`'s state root (it must exist).
    async fn prove(&self, at: &TrustedHeader, address: Address, slots: Vec<B256>) -> Result<ProvenStorage, ViewError> {
        let answer = self.chain.provider().get_proof(address, slots).block_id(at.hash.into()).await.map_err(rpc)?;
        Ok(ProvenStorage::verify(at, address, &answer)?)
    }

    /// [`VerifiedView::storage`] at `at`, or, when the RPC cannot prove the reads there, at `at`'s parent
    /// (linked by its hash) if that still reaches block `need`: some nodes (anvil) answer a proof at
    /// their newest block from another state for a moment. The storage's header is the one proven at.
    pub async fn storage_near(&self, at: &TrustedHeader, need: u64, reads: &Reads) -> Result<ProvenStorage, ViewError> {
        match self.storage(at, reads).await {
            Err(e) if at.number > need => {
                let parent = self.header_of(at, at.number - 1).await?;
                match self.storage(&parent, reads).await {
                    Ok(s) => {
                        tracing::debug!(target: "replicatoor::verified", block = at.number, error = %e, "proof not served at the newest header: proven at its parent");
                        Ok(s)
                    }
                    Err(_) => Err(e),
                }
            }
            proven_or_not => proven_or_not,
        }
    }

    /// Block `number` (at or below `at`), linked to `at`: by parent hashes up to [`WALK_DISTANCE`],
    /// beyond it by the EIP-2935 history contract proven in `at`'s state (falling back to parent
    /// hashes up to [`MAX_WALK_DISTANCE`] where the chain has no history contract).
    pub async fn header_of(&self, at: &TrustedHeader, number: u64) -> Result<TrustedHeader, ViewError> {
        if number > at.number {
            return Err(ViewError::NotYet { have: at.number, need: number });
        }
        let distance = at.number - number;
        if distance <= WALK_DISTANCE {
            return self.walk(at, number).await;
        }
        if distance > HISTORY_WINDOW {
            return Err(ViewError::TooFar { block: number, distance, max: HISTORY_WINDOW });
        }
        match self.history_link(at, number).await {
            Ok(h) => Ok(h),
            // Both paths are proofs: falling back changes how many RPC calls a link costs, never
            // what is trusted.
            Err(e) if distance <= MAX_WALK_DISTANCE => {
                tracing::debug!(target: "replicatoor::verified", block = number, error = %e, "history contract did not link the block; walking parent hashes");
                self.walk(at, number).await
            }
            // Whatever failed (no contract, a wrong proof, an RPC that will not answer), the block
            // cannot be linked: callers that can prove what they need another way do so.
            Err(e) => Err(ViewError::NoHistory(format!(
                "{e}; block {number} is {distance} blocks below the trusted header, beyond the {MAX_WALK_DISTANCE} parent-hash steps a view walks"
            ))),
        }
    }

    /// Walk parent hashes from `at` down to `number`: each header is checked against the hash its
    /// child names, then names its parent.
    async fn walk(&self, at: &TrustedHeader, number: u64) -> Result<TrustedHeader, ViewError> {
        if number == at.number {
            return Ok(*at);
        }
        let (mut header, mut current) = self.fetch_header(at.number, at.hash).await?;
        while current.number > number {
            (header, current) = self.fetch_header(current.number - 1, header.parent_hash).await?;
        }
        Ok(current)
    }

    /// Block `number`'s hash as the EIP-2935 history contract holds it in `at`'s proven state, and
    /// the header that hashes to it. The contract's code hash is checked too: only the genuine
    /// system contract's storage is written by nobody but the protocol.
    async fn history_link(&self, at: &TrustedHeader, number: u64) -> Result<TrustedHeader, ViewError> {
        let slot = B256::from(U256::from(number % HISTORY_WINDOW));
        let storage = self.prove(at, HISTORY_STORAGE_ADDRESS, vec![slot]).await?;
        if storage.code_hash() != keccak256(&HISTORY_STORAGE_CODE) {
            return Err(ViewError::NoHistory(format!(
                "{HISTORY_STORAGE_ADDRESS} does not hold the EIP-2935 contract at block {}",
                at.number
            )));
        }
        let hash = B256::from(storage.get(slot)?);
        if hash.is_zero() {
            return Err(ViewError::NoHistory(format!("no hash for block {number} at block {}", at.number)));
        }
        let (_, header) = self.fetch_header(number, hash).await?;
        if header.number != number {
            // Inside the window the slot was written for exactly this block; anything else means the
            // contract is not what its code hash says.
            return Err(ViewError::NoHistory(format!("slot for block {number} holds block {}", header.number)));
        }
        Ok(header)
    }

    /// The header the RPC serves for `hash`, checked to hash to it.
    async fn fetch_header(
        &self,
        number: u64,
        hash: B256,
    ) -> Result<(alloy::consensus::Header, TrustedHeader), ViewError> {
        let block = self
            .chain
            .provider()
            .get_block_by_hash(hash)
            .await
            .map_err(rpc)?
            .ok_or_else(|| ViewError::Rpc(format!("block {number} ({hash}) not found")))?;
        let header = block.header.inner;
        let trusted = verify_header(&header, hash)?;
        Ok((header, trusted))
    }

    /// The contract's `E` events in block `number` (linked to `at`), from receipts rebuilt to the
    /// block's receipts root: complete, unaltered, and only the ones this contract emitted.
    pub async fn events_in_block<E: SolEvent>(&self, at: &TrustedHeader, number: u64) -> Result<Vec<E>, ViewError> {
        let block = self.header_of(at, number).await?;
        self.events_at(&block).await
    }

    /// The contract's `E` events in `block`, a header already linked to a trusted one.
    pub async fn events_at<E: SolEvent>(&self, block: &TrustedHeader) -> Result<Vec<E>, ViewError> {
        let number = block.number;
        let receipts = self
            .chain
            .provider()
            .get_block_receipts(BlockNumberOrTag::Number(number).into())
            .await
            .map_err(rpc)?
            .ok_or_else(|| ViewError::Rpc(format!("no receipts for block {number}")))?;
        verify_receipts(block, &receipts)?;
        let contract: Address = self.chain.deployment().contract;
        let logs = receipts.iter().flat_map(|r| r.inner.logs());
        let ours = logs.filter(|log| log.address() == contract && log.topic0() == Some(&E::SIGNATURE_HASH));
        // A log the contract emitted with this signature decodes; one that does not is the
        // contract's own bytes, so skipping it would hide nothing an attacker controls.
        Ok(ours.filter_map(|log| E::decode_log_data(log.data()).ok()).collect())
    }
}

/// Headers vouched for by `quorum` of the pinned RPCs agreeing on the same block hash, `depth`
/// blocks below the lowest head among them (chains without a light client; weaker than consensus).
pub struct QuorumSource {
    rpcs: Vec<Chain>,
    quorum: usize,
    depth: u64,
}

impl QuorumSource {
    /// Clients for the pinned RPCs (measured), the agreement needed, and the confirmation depth.
    pub fn new(rpcs: Vec<Chain>, quorum: usize, depth: u64) -> Self {
        QuorumSource { rpcs, quorum, depth }
    }
}

impl HeaderSource for QuorumSource {
    async fn head(&self, _now: u64, _since: Instant) -> Result<TrustedHeader, ViewError> {
        let mut heads = Vec::new();
        for c in &self.rpcs {
            if let Ok(h) = c.head().await {
                heads.push(h);
            }
        }
        heads.sort_unstable();
        // The quorum-th highest head is one that at least `quorum` RPCs have reached.
        let reached = *heads
            .iter()
            .rev()
            .nth(self.quorum.saturating_sub(1))
            .ok_or_else(|| ViewError::NoHeader(format!("only {} of the pinned RPCs answered", heads.len())))?;
        let number = reached.saturating_sub(self.depth);
        let mut headers = Vec::new();
        for c in &self.rpcs {
            let Ok(Some(b)) = c.provider().get_block_by_number(number.into()).await else { continue };
            headers.push(b.header.inner);
        }
        // Count the hash each header really has, not the one the RPC labels it with; the first
        // header whose hash `quorum` of them have.
        let hashes: Vec<B256> = headers.iter().map(|h| h.hash_slow()).collect();
        let agreed = hashes.iter().position(|h| hashes.iter().filter(|o| *o == h).count() >= self.quorum);
        let agreed = agreed.ok_or_else(|| {
            ViewError::NoHeader(format!("fewer than {} pinned RPCs agree on block {number}", self.quorum))
        })?;
        Ok(verify_header(&headers[agreed], hashes[agreed])?)
    }
}
