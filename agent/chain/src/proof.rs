//! Proofs against an execution header the TD already trusts (one the light client verified, or the
//! quorum agreed on): contract storage via `eth_getProof` against the header's state root, another
//! block's header against a trusted block hash, and a block's receipts against its receipts root.
//!
//! Everything here is a pure function of the trusted header and the RPC's (untrusted) answer: an
//! RPC that lies about one storage value, drops or inserts a log, or forges a receipt produces a
//! [`ProofError`], never a wrong value.

use alloy::{
    consensus::{Header, ReceiptEnvelope},
    eips::eip2718::Encodable2718,
    primitives::{keccak256, Address, B256, U256},
    rpc::types::{EIP1186AccountProofResponse, Log as RpcLog, TransactionReceipt},
    trie::{proof::verify_proof, root::ordered_trie_root_with_encoder, Nibbles, TrieAccount},
};

/// An execution block header whose hash and roots are trusted (authenticated by consensus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrustedHeader {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// State root: anchors every storage read at this block.
    pub state_root: B256,
    /// Receipts root: anchors this block's logs.
    pub receipts_root: B256,
    /// Block timestamp (the contract's `block.timestamp` for reads at this block).
    pub timestamp: u64,
}

/// Why an RPC answer does not prove what it claims.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The proof is for another account than the one asked for.
    #[error("proof is for account {got}, expected {expected}")]
    WrongAccount {
        /// The account asked for.
        expected: Address,
        /// The account the answer names.
        got: Address,
    },
    /// The account proof does not lead from the state root to the claimed account.
    #[error("account proof for {address} does not verify against state root {state_root}: {reason}")]
    Account {
        /// The account.
        address: Address,
        /// The trusted state root.
        state_root: B256,
        /// What the trie verifier said.
        reason: String,
    },
    /// A storage proof does not lead from the account's storage root to the claimed value.
    #[error("storage proof for slot {slot} of {address} does not verify (claimed value {value}): {reason}")]
    Storage {
        /// The contract.
        address: Address,
        /// The slot.
        slot: B256,
        /// The value the RPC claimed.
        value: U256,
        /// What the trie verifier said.
        reason: String,
    },
    /// A proven value does not fit the contract's layout (the agent and contract versions differ).
    #[error("proven storage does not fit the contract's layout: {0}")]
    Layout(String),
    /// A slot that was asked for is missing from the answer.
    #[error("the answer has no proof for storage slot {0}")]
    MissingSlot(B256),
    /// A header does not hash to the trusted hash.
    #[error("header of block {number} hashes to {got}, trusted hash is {expected}")]
    HeaderHash {
        /// Block number the header claims.
        number: u64,
        /// Trusted hash.
        expected: B256,
        /// Hash of the header the RPC gave.
        got: B256,
    },
    /// The receipts do not rebuild the trusted receipts root.
    #[error("receipts of block {number} rebuild root {got}, trusted receipts root is {expected}")]
    ReceiptsRoot {
        /// Block number.
        number: u64,
        /// Trusted root.
        expected: B256,
        /// Root of the receipts the RPC gave.
        got: B256,
    },
    /// A receipt in the answer belongs to another block.
    #[error("receipt {index} claims block {got:?}, expected block {expected}")]
    ReceiptBlock {
        /// Position in the answer.
        index: usize,
        /// The block asked for.
        expected: B256,
        /// The block the receipt names.
        got: Option<B256>,
    },
}

/// One account, and the storage slots asked for, proven at a trusted header (`eth_getProof`): the
/// account against the header's state root, every slot against the account's storage root. The
/// holder's [`ProvenStorage`] and `replicatoor light-client prove` both go through here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenAccount {
    /// The header the values hold at.
    pub header: TrustedHeader,
    /// The account.
    pub address: Address,
    /// Whether the account is in the state trie (an absent one is proven by exclusion).
    pub exists: bool,
    /// Its proven nonce, balance, storage root and code hash (the empty account's when absent).
    pub account: TrieAccount,
    /// Every storage slot of the answer with its proven value, in the answer's order.
    pub storage: Vec<(B256, U256)>,
}

impl ProvenAccount {
    /// Check an `eth_getProof` answer for `address` at `header`: the account against the state
    /// root, then every storage slot against the account's storage root. Any node that does not
    /// hash into its parent, or a value that differs from the leaf, is a [`ProofError`].
    pub fn verify(
        header: &TrustedHeader,
        address: Address,
        answer: &EIP1186AccountProofResponse,
    ) -> Result<Self, ProofError> {
        if answer.address != address {
            return Err(ProofError::WrongAccount { expected: address, got: answer.address });
        }
        let account = TrieAccount {
            nonce: answer.nonce,
            balance: answer.balance,
            storage_root: answer.storage_hash,
            code_hash: answer.code_hash,
        };
        let (root, key) = (header.state_root, Nibbles::unpack(keccak256(address)));
        // Clients answer for an absent account with the empty account's fields; only then may the
        // proof be one of exclusion (a claimed non-empty account must be in the trie).
        let exists = verify_proof(root, key, Some(alloy::rlp::encode(account)), &answer.account_proof)
            .map(|()| true)
            .or_else(|e| match account == TrieAccount::default() {
                true => verify_proof(root, key, None, &answer.account_proof).map(|()| false).map_err(|_| e),
                false => Err(e),
            })
            .map_err(|e| ProofError::Account { address, state_root: root, reason: e.to_string() })?;
        let mut storage = Vec::with_capacity(answer.storage_proof.len());
        for p in &answer.storage_proof {
            let slot = p.key.as_b256();
            // The trie holds RLP(value) for non-zero values; a zero value is proven by absence on
            // mainnet clients. anvil keeps a slot written back to zero as a leaf holding RLP(0)
            // (0x80): that leaf proves zero just as well, so either form is accepted for zero.
            let (root, key) = (answer.storage_hash, Nibbles::unpack(keccak256(slot)));
            verify_proof(root, key, Some(alloy::rlp::encode(p.value)), &p.proof)
                .or_else(|e| match p.value.is_zero() {
                    true => verify_proof(root, key, None, &p.proof).map_err(|_| e),
                    false => Err(e),
                })
                .map_err(|e| ProofError::Storage { address, slot, value: p.value, reason: e.to_string() })?;
            storage.push((slot, p.value));
        }
        Ok(ProvenAccount { header: *header, address, exists, account, storage })
    }
}

/// Storage of one contract, proven at a trusted header: every value read from it was checked
/// against the header's state root.
#[derive(Debug, Clone)]
pub struct ProvenStorage(ProvenAccount);

impl ProvenStorage {
    /// Check an `eth_getProof` answer for `address` at `header` ([`ProvenAccount::verify`]); the
    /// contract must exist (an absent account has no code, so nothing of ours wrote its slots).
    pub fn verify(
        header: &TrustedHeader,
        address: Address,
        answer: &EIP1186AccountProofResponse,
    ) -> Result<Self, ProofError> {
        let a = ProvenAccount::verify(header, address, answer)?;
        if !a.exists {
            let reason = "the account does not exist at this block".into();
            return Err(ProofError::Account { address, state_root: header.state_root, reason });
        }
        Ok(ProvenStorage(a))
    }

    /// The proven value of `slot` (a slot the answer proves twice holds one value: both proofs lead
    /// from the same storage root).
    pub fn get(&self, slot: B256) -> Result<U256, ProofError> {
        self.0.storage.iter().find(|(s, _)| *s == slot).map(|(_, v)| *v).ok_or(ProofError::MissingSlot(slot))
    }

    /// The header these values hold at.
    pub fn header(&self) -> &TrustedHeader {
        &self.0.header
    }

    /// The proven hash of the account's code: what program wrote these slots.
    pub fn code_hash(&self) -> B256 {
        self.0.account.code_hash
    }
}

/// Check that `header` (from an untrusted RPC) hashes to `trusted_hash`, and return its trusted fields.
pub fn verify_header(header: &Header, trusted_hash: B256) -> Result<TrustedHeader, ProofError> {
    let hash = header.hash_slow();
    if hash != trusted_hash {
        return Err(ProofError::HeaderHash { number: header.number, expected: trusted_hash, got: hash });
    }
    let Header { number, state_root, receipts_root, timestamp, .. } = *header;
    Ok(TrustedHeader { number, hash, state_root, receipts_root, timestamp })
}

/// Check that `receipts` (all of a block's receipts, in order, from `eth_getBlockReceipts`) rebuild
/// the trusted header's receipts root; then their logs are the block's logs, complete and unaltered.
pub fn verify_receipts(header: &TrustedHeader, receipts: &[TransactionReceipt]) -> Result<(), ProofError> {
    if let Some((index, r)) = receipts.iter().enumerate().find(|(_, r)| r.block_hash != Some(header.hash)) {
        return Err(ProofError::ReceiptBlock { index, expected: header.hash, got: r.block_hash });
    }
    let consensus: Vec<ReceiptEnvelope> =
        receipts.iter().map(|r| r.inner.clone().map_logs(|l: RpcLog| l.inner)).collect();
    let got = ordered_trie_root_with_encoder(&consensus, |r, buf| r.encode_2718(buf));
    if got != header.receipts_root {
        return Err(ProofError::ReceiptsRoot { number: header.number, expected: header.receipts_root, got });
    }
    Ok(())
}
