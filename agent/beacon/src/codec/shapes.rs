//! The light-client containers of Capella and Deneb (before Electra's deeper state branches), as they
//! come off the wire, and their upgrade to the newest shape the verifier works on (spec
//! `upgrade_lc_*_to_deneb` / `_to_electra`): execution headers gain zero blob fields, branches are
//! left-padded with zero hashes (`normalize_merkle_branch`).
//!
//! Transport like the rest of the decoder: the upgraded value is a newest-shape value a server could
//! have sent as is, and the verifier refuses it unless its own rules for the header's slot hold
//! (nonzero blob fields before Deneb, a nonzero padding entry, or a wrong field fail the execution,
//! committee or finality proof). `tests/mainnet_capella_helios.rs` and `mainnet_deneb_portal.rs`
//! verify real Capella and Deneb data through this path; `tests/negative.rs` tampers with it.
//!
//! The finality and optimistic updates of the newest shape are here too: the store never sees them,
//! only the [`LightClientUpdate`] each converts into (as spec `process_light_client_finality_update`
//! and `process_light_client_optimistic_update` do), which it checks like any update a server could
//! have served in `updates` (`tests/negative.rs::what_the_conversions_add_is_checked_by_the_store`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use ssz::Decode;
use ssz_derive::{Decode, Encode};
use ssz_types::typenum::{Unsigned, U5, U6};
use ssz_types::FixedVector;
use tree_hash_derive::TreeHash;

use crate::preset::Preset;
use crate::types::{
    BeaconBlockHeader, ExecutionBranch, ExecutionPayloadHeaderCapella, ExecutionPayloadHeaderDeneb,
    LightClientBootstrap, LightClientHeader, LightClientUpdate, Root, SyncAggregate, SyncCommittee,
};

/// The execution payload header of a pre-Electra fork (Capella or Deneb layout).
pub(super) trait Execution: Decode + DeserializeOwned + Into<ExecutionPayloadHeaderDeneb> {}
impl Execution for ExecutionPayloadHeaderCapella {}
impl Execution for ExecutionPayloadHeaderDeneb {}

impl From<ExecutionPayloadHeaderCapella> for ExecutionPayloadHeaderDeneb {
    /// Spec `upgrade_lc_header_to_deneb`: the blob fields start at zero.
    fn from(c: ExecutionPayloadHeaderCapella) -> Self {
        Self {
            parent_hash: c.parent_hash,
            fee_recipient: c.fee_recipient,
            state_root: c.state_root,
            receipts_root: c.receipts_root,
            logs_bloom: c.logs_bloom,
            prev_randao: c.prev_randao,
            block_number: c.block_number,
            gas_limit: c.gas_limit,
            gas_used: c.gas_used,
            timestamp: c.timestamp,
            extra_data: c.extra_data,
            base_fee_per_gas: c.base_fee_per_gas,
            block_hash: c.block_hash,
            transactions_root: c.transactions_root,
            withdrawals_root: c.withdrawals_root,
            blob_gas_used: 0,
            excess_blob_gas: 0,
        }
    }
}

/// Sync-committee branch before Electra.
type CommitteeBranch = FixedVector<Root, U5>;
/// Finality branch before Electra.
type FinalityBranch = FixedVector<Root, U6>;

#[derive(Deserialize, Decode)]
#[serde(bound = "")]
pub(super) struct Header<E: Execution> {
    beacon: BeaconBlockHeader,
    execution: E,
    execution_branch: ExecutionBranch,
}

#[derive(Deserialize, Decode)]
#[serde(bound = "")]
pub(super) struct Bootstrap<P: Preset, E: Execution> {
    header: Header<E>,
    current_sync_committee: SyncCommittee<P>,
    current_sync_committee_branch: CommitteeBranch,
}

#[derive(Deserialize, Decode)]
#[serde(bound = "")]
pub(super) struct Update<P: Preset, E: Execution> {
    attested_header: Header<E>,
    next_sync_committee: SyncCommittee<P>,
    next_sync_committee_branch: CommitteeBranch,
    finalized_header: Header<E>,
    finality_branch: FinalityBranch,
    sync_aggregate: SyncAggregate<P>,
    #[serde(with = "serde_utils::quoted_u64")]
    signature_slot: u64,
}

#[derive(Deserialize, Decode)]
#[serde(bound = "")]
pub(super) struct FinalityUpdate<P: Preset, E: Execution> {
    attested_header: Header<E>,
    finalized_header: Header<E>,
    finality_branch: FinalityBranch,
    sync_aggregate: SyncAggregate<P>,
    #[serde(with = "serde_utils::quoted_u64")]
    signature_slot: u64,
}

#[derive(Deserialize, Decode)]
#[serde(bound = "")]
pub(super) struct OptimisticUpdate<P: Preset, E: Execution> {
    attested_header: Header<E>,
    sync_aggregate: SyncAggregate<P>,
    #[serde(with = "serde_utils::quoted_u64")]
    signature_slot: u64,
}

/// Spec `normalize_merkle_branch`: left-pad a shorter branch with zero hashes. The shapes here
/// only ever grow, so `N <= M`; were it not, the tail is kept (the part nearest the leaf).
fn normalize<N: Unsigned, M: Unsigned>(branch: FixedVector<Root, N>) -> FixedVector<Root, M> {
    let (n, m) = (N::to_usize(), M::to_usize());
    let k = n.min(m);
    let mut out = FixedVector::<Root, M>::default();
    out[m - k..].copy_from_slice(&branch[n - k..]);
    out
}

impl<E: Execution> Header<E> {
    fn upgrade(self) -> LightClientHeader {
        LightClientHeader {
            beacon: self.beacon,
            execution: self.execution.into(),
            execution_branch: self.execution_branch,
        }
    }
}

impl<P: Preset, E: Execution> Bootstrap<P, E> {
    /// Spec `upgrade_lc_bootstrap_to_*`.
    pub(super) fn upgrade(self) -> LightClientBootstrap<P> {
        LightClientBootstrap {
            header: self.header.upgrade(),
            current_sync_committee: self.current_sync_committee,
            current_sync_committee_branch: normalize(self.current_sync_committee_branch),
        }
    }
}

impl<P: Preset, E: Execution> Update<P, E> {
    /// Spec `upgrade_lc_update_to_*`.
    pub(super) fn upgrade(self) -> LightClientUpdate<P> {
        LightClientUpdate {
            attested_header: self.attested_header.upgrade(),
            next_sync_committee: self.next_sync_committee,
            next_sync_committee_branch: normalize(self.next_sync_committee_branch),
            finalized_header: self.finalized_header.upgrade(),
            finality_branch: normalize(self.finality_branch),
            sync_aggregate: self.sync_aggregate,
            signature_slot: self.signature_slot,
        }
    }
}

impl<P: Preset, E: Execution> FinalityUpdate<P, E> {
    /// Spec `upgrade_lc_finality_update_to_*`.
    pub(super) fn upgrade(self) -> LightClientFinalityUpdate<P> {
        LightClientFinalityUpdate {
            attested_header: self.attested_header.upgrade(),
            finalized_header: self.finalized_header.upgrade(),
            finality_branch: normalize(self.finality_branch),
            sync_aggregate: self.sync_aggregate,
            signature_slot: self.signature_slot,
        }
    }
}

impl<P: Preset, E: Execution> OptimisticUpdate<P, E> {
    /// Spec `upgrade_lc_optimistic_update_to_*`.
    pub(super) fn upgrade(self) -> LightClientOptimisticUpdate<P> {
        LightClientOptimisticUpdate {
            attested_header: self.attested_header.upgrade(),
            sync_aggregate: self.sync_aggregate,
            signature_slot: self.signature_slot,
        }
    }
}

/// `LightClientFinalityUpdate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "")]
pub struct LightClientFinalityUpdate<P: Preset> {
    /// Header attested to by the sync committee.
    pub attested_header: LightClientHeader,
    /// Finalized header of the attested state.
    pub finalized_header: LightClientHeader,
    /// Branch proving its root.
    pub finality_branch: crate::types::FinalityBranch,
    /// Sync committee aggregate signature over the attested header.
    pub sync_aggregate: SyncAggregate<P>,
    /// Slot at which the aggregate was created (untrusted).
    #[serde(with = "serde_utils::quoted_u64")]
    pub signature_slot: u64,
}

/// `LightClientOptimisticUpdate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "")]
pub struct LightClientOptimisticUpdate<P: Preset> {
    /// Header attested to by the sync committee.
    pub attested_header: LightClientHeader,
    /// Sync committee aggregate signature over the attested header.
    pub sync_aggregate: SyncAggregate<P>,
    /// Slot at which the aggregate was created (untrusted).
    #[serde(with = "serde_utils::quoted_u64")]
    pub signature_slot: u64,
}

impl<P: Preset> From<LightClientFinalityUpdate<P>> for LightClientUpdate<P> {
    /// As spec `process_light_client_finality_update`: no next sync committee.
    fn from(u: LightClientFinalityUpdate<P>) -> Self {
        LightClientUpdate {
            attested_header: u.attested_header,
            next_sync_committee: SyncCommittee::default(),
            next_sync_committee_branch: FixedVector::default(),
            finalized_header: u.finalized_header,
            finality_branch: u.finality_branch,
            sync_aggregate: u.sync_aggregate,
            signature_slot: u.signature_slot,
        }
    }
}

impl<P: Preset> From<LightClientOptimisticUpdate<P>> for LightClientUpdate<P> {
    /// As spec `process_light_client_optimistic_update`: no finality, no next sync committee.
    fn from(u: LightClientOptimisticUpdate<P>) -> Self {
        LightClientFinalityUpdate {
            attested_header: u.attested_header,
            finalized_header: LightClientHeader::default(),
            finality_branch: FixedVector::default(),
            sync_aggregate: u.sync_aggregate,
            signature_slot: u.signature_slot,
        }
        .into()
    }
}
