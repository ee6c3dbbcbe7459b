//! Consensus containers used by the light-client protocol, with SSZ, tree-hash and beacon-API JSON
//! forms.
//!
//! Light-client objects change shape across forks: Capella headers lack the blob-gas fields, and
//! from Electra the state branches are one level deeper. Only the newest shape (Electra, also used
//! by Fulu) is defined here: the decoder ([`crate::codec`]) upgrades older shapes to it as the
//! spec's `upgrade_lc_*` functions do (execution headers gain zero blob fields, branches are
//! left-padded with zero hashes). The verifier then picks the gindex and execution-root flavour
//! from each header's own slot, and refuses nonzero blob fields or padding where that fork has none.
//! The finality and optimistic updates, which the store only sees as the update each converts into,
//! are the decoder's (`codec/shapes.rs`).

use alloy_primitives::{Address, FixedBytes, B256, U256};
use serde::{Deserialize, Serialize};
use ssz_derive::{Decode, Encode};
use ssz_types::typenum::{Unsigned, U32, U4, U6, U7};
use ssz_types::{BitVector, FixedVector, VariableList};
use tree_hash::TreeHash;
use tree_hash_derive::TreeHash;

use crate::preset::Preset;

/// A 32-byte SSZ root / hash.
pub type Root = B256;
/// A compressed BLS12-381 G1 public key.
pub type BlsPublicKeyBytes = FixedBytes<48>;
/// A compressed BLS12-381 G2 signature.
pub type BlsSignatureBytes = FixedBytes<96>;
/// Execution-header branch against the beacon block body root (`floorlog2(EXECUTION_PAYLOAD_GINDEX)` = 4).
pub type ExecutionBranch = FixedVector<Root, U4>;

/// `BeaconBlockHeader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct BeaconBlockHeader {
    /// Slot.
    #[serde(with = "serde_utils::quoted_u64")]
    pub slot: u64,
    /// Proposer index.
    #[serde(with = "serde_utils::quoted_u64")]
    pub proposer_index: u64,
    /// Parent block root.
    pub parent_root: Root,
    /// Post-state root.
    pub state_root: Root,
    /// Block body root.
    pub body_root: Root,
}

impl BeaconBlockHeader {
    /// `hash_tree_root(header)`: the beacon block root.
    pub fn root(&self) -> Root {
        self.tree_hash_root()
    }
}

/// `SyncCommittee`. Its default is the all-zero committee, which the spec uses for "unknown".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "")]
pub struct SyncCommittee<P: Preset> {
    /// Member public keys, in committee order.
    pub pubkeys: FixedVector<BlsPublicKeyBytes, P::SyncCommitteeSize>,
    /// Aggregate of all member keys (not used for verification; part of the hashed container).
    pub aggregate_pubkey: BlsPublicKeyBytes,
}

/// `SyncAggregate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "")]
pub struct SyncAggregate<P: Preset> {
    /// Participation bits; bit i = `(bytes[i/8] >> (i%8)) & 1`.
    pub sync_committee_bits: BitVector<P::SyncCommitteeSize>,
    /// Aggregate signature of the participants.
    pub sync_committee_signature: BlsSignatureBytes,
}

impl<P: Preset> SyncAggregate<P> {
    /// Number of participating members.
    pub fn participants(&self) -> u64 {
        self.sync_committee_bits.num_set_bits() as u64
    }

    /// Whether participation reaches the 2/3 supermajority (`sum * 3 >= size * 2`).
    pub fn has_supermajority(&self) -> bool {
        self.participants() * 3 >= P::SyncCommitteeSize::to_u64() * 2
    }
}

/// Capella `ExecutionPayloadHeader`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct ExecutionPayloadHeaderCapella {
    /// Parent execution block hash.
    pub parent_hash: B256,
    /// Fee recipient.
    pub fee_recipient: Address,
    /// Execution state root.
    pub state_root: B256,
    /// Receipts root.
    pub receipts_root: B256,
    /// Logs bloom.
    pub logs_bloom: FixedBytes<256>,
    /// RANDAO mix.
    pub prev_randao: B256,
    /// Execution block number.
    #[serde(with = "serde_utils::quoted_u64")]
    pub block_number: u64,
    /// Gas limit.
    #[serde(with = "serde_utils::quoted_u64")]
    pub gas_limit: u64,
    /// Gas used.
    #[serde(with = "serde_utils::quoted_u64")]
    pub gas_used: u64,
    /// Timestamp.
    #[serde(with = "serde_utils::quoted_u64")]
    pub timestamp: u64,
    /// Extra data (`ByteList[32]`).
    #[serde(with = "ssz_types::serde_utils::hex_var_list")]
    pub extra_data: VariableList<u8, U32>,
    /// Base fee per gas (uint256, little-endian in SSZ, decimal in JSON).
    #[serde(with = "serde_utils::u256_dec")]
    pub base_fee_per_gas: U256,
    /// Execution block hash.
    pub block_hash: B256,
    /// Transactions root.
    pub transactions_root: B256,
    /// Withdrawals root.
    pub withdrawals_root: B256,
}

/// Deneb `ExecutionPayloadHeader` (unchanged in Electra and Fulu).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct ExecutionPayloadHeaderDeneb {
    /// Parent execution block hash.
    pub parent_hash: B256,
    /// Fee recipient.
    pub fee_recipient: Address,
    /// Execution state root.
    pub state_root: B256,
    /// Receipts root.
    pub receipts_root: B256,
    /// Logs bloom.
    pub logs_bloom: FixedBytes<256>,
    /// RANDAO mix.
    pub prev_randao: B256,
    /// Execution block number.
    #[serde(with = "serde_utils::quoted_u64")]
    pub block_number: u64,
    /// Gas limit.
    #[serde(with = "serde_utils::quoted_u64")]
    pub gas_limit: u64,
    /// Gas used.
    #[serde(with = "serde_utils::quoted_u64")]
    pub gas_used: u64,
    /// Timestamp.
    #[serde(with = "serde_utils::quoted_u64")]
    pub timestamp: u64,
    /// Extra data (`ByteList[32]`).
    #[serde(with = "ssz_types::serde_utils::hex_var_list")]
    pub extra_data: VariableList<u8, U32>,
    /// Base fee per gas (uint256, little-endian in SSZ, decimal in JSON).
    #[serde(with = "serde_utils::u256_dec")]
    pub base_fee_per_gas: U256,
    /// Execution block hash.
    pub block_hash: B256,
    /// Transactions root.
    pub transactions_root: B256,
    /// Withdrawals root.
    pub withdrawals_root: B256,
    /// Blob gas used.
    #[serde(with = "serde_utils::quoted_u64")]
    pub blob_gas_used: u64,
    /// Excess blob gas.
    #[serde(with = "serde_utils::quoted_u64")]
    pub excess_blob_gas: u64,
}

impl ExecutionPayloadHeaderDeneb {
    /// The Capella view of this header (drops the blob fields), whose root is what a pre-Deneb
    /// beacon body commits to.
    pub fn to_capella(&self) -> ExecutionPayloadHeaderCapella {
        ExecutionPayloadHeaderCapella {
            parent_hash: self.parent_hash,
            fee_recipient: self.fee_recipient,
            state_root: self.state_root,
            receipts_root: self.receipts_root,
            logs_bloom: self.logs_bloom,
            prev_randao: self.prev_randao,
            block_number: self.block_number,
            gas_limit: self.gas_limit,
            gas_used: self.gas_used,
            timestamp: self.timestamp,
            extra_data: self.extra_data.clone(),
            base_fee_per_gas: self.base_fee_per_gas,
            block_hash: self.block_hash,
            transactions_root: self.transactions_root,
            withdrawals_root: self.withdrawals_root,
        }
    }
}

/// `LightClientHeader` (Capella and later, newest shape): the beacon header plus the execution
/// payload header proven against its body root.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct LightClientHeader {
    /// Beacon block header.
    pub beacon: BeaconBlockHeader,
    /// Execution payload header of that block (before Deneb, with zero blob fields: checked).
    pub execution: ExecutionPayloadHeaderDeneb,
    /// Branch proving `execution` at gindex 25 of the beacon block body.
    pub execution_branch: ExecutionBranch,
}

/// Sync-committee branch of the newest shape.
pub type SyncCommitteeBranch = FixedVector<Root, U6>;
/// Finality branch of the newest shape.
pub type FinalityBranch = FixedVector<Root, U7>;

/// `LightClientBootstrap`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "")]
pub struct LightClientBootstrap<P: Preset> {
    /// Header of the requested (trusted) block.
    pub header: LightClientHeader,
    /// The current sync committee in `header.beacon.state_root`.
    pub current_sync_committee: SyncCommittee<P>,
    /// Branch proving it.
    pub current_sync_committee_branch: SyncCommitteeBranch,
}

/// `LightClientUpdate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "")]
pub struct LightClientUpdate<P: Preset> {
    /// Header attested to by the sync committee.
    pub attested_header: LightClientHeader,
    /// Next sync committee in the attested state (all zero if absent).
    pub next_sync_committee: SyncCommittee<P>,
    /// Branch proving it (all zero if absent).
    pub next_sync_committee_branch: SyncCommitteeBranch,
    /// Finalized header of the attested state (all zero if absent).
    pub finalized_header: LightClientHeader,
    /// Branch proving its root (all zero if absent).
    pub finality_branch: FinalityBranch,
    /// Sync committee aggregate signature over the attested header.
    pub sync_aggregate: SyncAggregate<P>,
    /// Slot at which the aggregate was created (untrusted).
    #[serde(with = "serde_utils::quoted_u64")]
    pub signature_slot: u64,
}
