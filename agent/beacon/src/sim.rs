//! Signing side for a simulated beacon chain (dev networks only; feature `simulated`).
//!
//! Sync-committee keys are derived deterministically from a **public** seed, so anyone can
//! reproduce (and forge) a simulated chain: it proves nothing beyond "the verifier code path
//! works". Its [`Network::simulated`] GVR and fork versions keep such signatures from ever
//! verifying on a real network.
//!
//! Beacon blocks and states are reduced to the leaves the light-client proofs touch; every other
//! leaf is a zero root. The proofs still verify through the unmodified verifier because only
//! those leaves and their branches enter the checks.

use blst::min_pk::{AggregatePublicKey, AggregateSignature, PublicKey, SecretKey, Signature};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use ssz::Encode;
use ssz_types::FixedVector;
use tree_hash::TreeHash;

use crate::bls::{signing_root, BLS_DST};
use crate::codec::{DecodeError, LightClientFinalityUpdate, LightClientOptimisticUpdate};
use crate::merkle::{
    gindex_depth, gindex_subtree_index, hash_pair, state_gindex_at_slot, CURRENT_SYNC_COMMITTEE_GINDEX,
    EXECUTION_PAYLOAD_GINDEX, FINALIZED_ROOT_GINDEX, NEXT_SYNC_COMMITTEE_GINDEX,
};
use crate::network::{Fork, Network};
use crate::preset::Preset;
use crate::store::execution_root;
use crate::types::{
    BeaconBlockHeader, BlsPublicKeyBytes, BlsSignatureBytes, ExecutionPayloadHeaderDeneb, FinalityBranch,
    LightClientBootstrap, LightClientHeader, LightClientUpdate, Root, SyncAggregate, SyncCommittee,
    SyncCommitteeBranch,
};

/// Domain-separates simulated key derivation from any other use of the seed.
const KEY_DERIVATION_TAG: &[u8] = b"replicatoor/beacon-sim/sync-committee-key/v1";

/// A sync committee whose secret keys we hold.
pub struct SimCommittee<P: Preset> {
    secret_keys: Vec<SecretKey>,
    committee: SyncCommittee<P>,
}

impl<P: Preset> SimCommittee<P> {
    /// Derive the committee from a public seed: member i's key is
    /// `KeyGen(sha256(tag ‖ seed ‖ i as u64 LE))` (blst `SecretKey::key_gen`, EIP-2333 style).
    pub fn from_seed(seed: &[u8]) -> Self {
        let size = P::KIND.sync_committee_size();
        let secret_keys: Vec<SecretKey> = (0..size as u64)
            .map(|i| {
                let ikm = Sha256::new()
                    .chain_update(KEY_DERIVATION_TAG)
                    .chain_update(seed)
                    .chain_update(i.to_le_bytes())
                    .finalize();
                SecretKey::key_gen(&ikm, &[]).expect("key_gen accepts any IKM of at least 32 bytes")
            })
            .collect();
        let public: Vec<PublicKey> = secret_keys.iter().map(SecretKey::sk_to_pk).collect();
        let refs: Vec<&PublicKey> = public.iter().collect();
        let aggregate = AggregatePublicKey::aggregate(&refs, false).expect("a committee is never empty");
        let pubkeys: Vec<BlsPublicKeyBytes> = public.iter().map(|pk| BlsPublicKeyBytes::from(pk.compress())).collect();
        let committee = SyncCommittee {
            pubkeys: FixedVector::new(pubkeys).expect("one key per member"),
            aggregate_pubkey: BlsPublicKeyBytes::from(aggregate.to_public_key().compress()),
        };
        SimCommittee { secret_keys, committee }
    }

    /// The public committee (what goes into states, bootstraps and updates).
    pub fn committee(&self) -> &SyncCommittee<P> {
        &self.committee
    }

    /// Sign `header` as the sync aggregate included at `signature_slot`, with members
    /// `0..participants` participating (no participant: an all-zero aggregate).
    pub fn sign(
        &self,
        network: &Network,
        header: &BeaconBlockHeader,
        signature_slot: u64,
        participants: usize,
    ) -> SyncAggregate<P> {
        let domain = network.sync_committee_domain_at_signature_slot(signature_slot);
        let message = signing_root(header.root(), domain);
        let signatures: Vec<Signature> =
            self.secret_keys.iter().take(participants).map(|sk| sk.sign(message.as_slice(), BLS_DST, &[])).collect();
        let mut sync_committee_bits = ssz_types::BitVector::<P::SyncCommitteeSize>::default();
        for i in 0..signatures.len() {
            // In range: at most one signature per member.
            let _ = sync_committee_bits.set(i, true);
        }
        let refs: Vec<&Signature> = signatures.iter().collect();
        let sync_committee_signature = AggregateSignature::aggregate(&refs, false)
            .map(|sig| BlsSignatureBytes::from(sig.to_signature().compress()))
            .unwrap_or(BlsSignatureBytes::ZERO);
        SyncAggregate { sync_committee_bits, sync_committee_signature }
    }
}

/// The state leaves a light-client proof reaches into.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimState {
    /// `finalized_checkpoint.epoch`.
    pub finalized_epoch: u64,
    /// `finalized_checkpoint.root` (zero at genesis).
    pub finalized_root: Root,
    /// `hash_tree_root(current_sync_committee)`.
    pub current_sync_committee_root: Root,
    /// `hash_tree_root(next_sync_committee)`.
    pub next_sync_committee_root: Root,
}

/// A simulated block: its light-client header and the state proofs behind its state root, in
/// the newest (normalized) branch shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimBlock {
    /// Header with a verifiable execution branch.
    pub header: LightClientHeader,
    /// Branch for `current_sync_committee` against `header.beacon.state_root`.
    pub current_sync_committee_branch: SyncCommitteeBranch,
    /// Branch for `next_sync_committee`.
    pub next_sync_committee_branch: SyncCommitteeBranch,
    /// Branch for `finalized_checkpoint.root`.
    pub finality_branch: FinalityBranch,
}

/// Left-pad a branch with zero hashes to the newest fixed length.
fn padded<N: ssz_types::typenum::Unsigned>(branch: &[Root]) -> FixedVector<Root, N> {
    let mut out = FixedVector::<Root, N>::default();
    let n = N::to_usize();
    let k = branch.len().min(n);
    out[n - k..].copy_from_slice(&branch[branch.len() - k..]);
    out
}

impl SimBlock {
    /// Build block `slot` carrying `execution`, whose post-state holds `state`. The fork at `slot`
    /// decides the state's depth (Electra's is one level deeper) and the execution root flavour.
    pub fn new(network: &Network, slot: u64, execution: ExecutionPayloadHeaderDeneb, state: &SimState) -> SimBlock {
        // State tree: only the finalized checkpoint and the two committees are non-zero.
        let current_gindex = state_gindex_at_slot(network, slot, CURRENT_SYNC_COMMITTEE_GINDEX);
        let next_gindex = state_gindex_at_slot(network, slot, NEXT_SYNC_COMMITTEE_GINDEX);
        let finalized_gindex = state_gindex_at_slot(network, slot, FINALIZED_ROOT_GINDEX);
        let mut leaves = vec![Root::ZERO; 1 << gindex_depth(current_gindex)];
        let checkpoint_index = gindex_subtree_index(finalized_gindex >> 1) as usize;
        let epoch_leaf = state.finalized_epoch.tree_hash_root();
        leaves[checkpoint_index] = hash_pair(&epoch_leaf, &state.finalized_root);
        leaves[gindex_subtree_index(current_gindex) as usize] = state.current_sync_committee_root;
        leaves[gindex_subtree_index(next_gindex) as usize] = state.next_sync_committee_root;
        let (state_root, current_branch) = root_and_branch(&leaves, gindex_subtree_index(current_gindex) as usize);
        let (_, next_branch) = root_and_branch(&leaves, gindex_subtree_index(next_gindex) as usize);
        let (_, checkpoint_branch) = root_and_branch(&leaves, checkpoint_index);
        let mut finality_branch = vec![epoch_leaf];
        finality_branch.extend(checkpoint_branch);

        // Body tree: 16 leaves, the execution payload at index 9 (gindex 25).
        let mut header = LightClientHeader {
            beacon: BeaconBlockHeader { slot, proposer_index: slot % 64, state_root, ..BeaconBlockHeader::default() },
            execution,
            execution_branch: FixedVector::default(),
        };
        let mut body = vec![Root::ZERO; 1 << gindex_depth(EXECUTION_PAYLOAD_GINDEX)];
        let payload_index = gindex_subtree_index(EXECUTION_PAYLOAD_GINDEX) as usize;
        body[payload_index] = execution_root(network, &header);
        let (body_root, execution_branch) = root_and_branch(&body, payload_index);
        header.beacon.body_root = body_root;
        header.execution_branch = padded(&execution_branch);

        SimBlock {
            header,
            current_sync_committee_branch: padded(&current_branch),
            next_sync_committee_branch: padded(&next_branch),
            finality_branch: padded(&finality_branch),
        }
    }

    /// A bootstrap for this block (its state must hold `current` as the current committee).
    pub fn bootstrap<P: Preset>(&self, current: &SyncCommittee<P>) -> LightClientBootstrap<P> {
        LightClientBootstrap {
            header: self.header.clone(),
            current_sync_committee: current.clone(),
            current_sync_committee_branch: self.current_sync_committee_branch.clone(),
        }
    }

    /// An update attesting this block, signed by `signer` at `signature_slot` with `participants`
    /// members. `next` (the committee in this block's state) and `finalized` (the block in this
    /// state's finalized checkpoint) are included with their proofs when given.
    pub fn update<P: Preset>(
        &self,
        network: &Network,
        signer: &SimCommittee<P>,
        signature_slot: u64,
        participants: usize,
        next: Option<&SyncCommittee<P>>,
        finalized: Option<&LightClientHeader>,
    ) -> LightClientUpdate<P> {
        LightClientUpdate {
            attested_header: self.header.clone(),
            next_sync_committee: next.cloned().unwrap_or_default(),
            next_sync_committee_branch: if next.is_some() {
                self.next_sync_committee_branch.clone()
            } else {
                FixedVector::default()
            },
            finalized_header: finalized.cloned().unwrap_or_default(),
            finality_branch: if finalized.is_some() { self.finality_branch.clone() } else { FixedVector::default() },
            sync_aggregate: signer.sign(network, &self.header.beacon, signature_slot, participants),
            signature_slot,
        }
    }
}

/// The finality update carried by an update.
pub fn finality_update<P: Preset>(update: &LightClientUpdate<P>) -> LightClientFinalityUpdate<P> {
    LightClientFinalityUpdate {
        attested_header: update.attested_header.clone(),
        finalized_header: update.finalized_header.clone(),
        finality_branch: update.finality_branch.clone(),
        sync_aggregate: update.sync_aggregate.clone(),
        signature_slot: update.signature_slot,
    }
}

/// The optimistic update carried by an update.
pub fn optimistic_update<P: Preset>(update: &LightClientUpdate<P>) -> LightClientOptimisticUpdate<P> {
    LightClientOptimisticUpdate {
        attested_header: update.attested_header.clone(),
        sync_aggregate: update.sync_aggregate.clone(),
        signature_slot: update.signature_slot,
    }
}

/// Root of a full binary tree over `leaves` (padded with zero leaves to a power of two) and the
/// branch for leaf `index`, sibling first. Used to build the simulated chain's proofs (and tests).
pub fn root_and_branch(leaves: &[Root], index: usize) -> (Root, Vec<Root>) {
    let width = leaves.len().max(1).next_power_of_two();
    let mut layer: Vec<Root> = leaves.to_vec();
    layer.resize(width, Root::ZERO);
    let mut branch = Vec::new();
    let mut idx = index;
    while layer.len() > 1 {
        branch.push(layer.get(idx ^ 1).copied().unwrap_or(Root::ZERO));
        layer = layer.chunks(2).map(|pair| hash_pair(&pair[0], &pair[1])).collect();
        idx /= 2;
    }
    (layer[0], branch)
}

// Serving side of the beacon API, for the simulated beacon (`replicatoor_testkit::beacon`) and tests:
// the inverse of [`crate::codec`]'s decoders for the newest shape.

/// The beacon-API JSON envelope `{"version", "data"}` for newest-shape data (Electra/Fulu).
pub fn versioned_json<T: Serialize>(fork: Fork, data: &T) -> Result<Value, DecodeError> {
    if fork < Fork::Electra {
        return Err(DecodeError::UnsupportedFork { fork });
    }
    let data = serde_json::to_value(data)
        .map_err(|e| DecodeError::MalformedJson { what: "light-client object", detail: e.to_string() })?;
    Ok(serde_json::json!({ "version": fork.name(), "data": data }))
}

/// Encode newest-shape updates as an SSZ `updates` body (each attested slot must be in Electra or
/// later, whose wire shape is the newest one): `u64 LE length ‖ fork digest ‖ SSZ` per item.
pub fn encode_updates_ssz<P: Preset>(
    network: &Network,
    updates: &[LightClientUpdate<P>],
) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    for update in updates {
        let slot = update.attested_header.beacon.slot;
        let fork = network.fork_at_slot(slot);
        if fork < Fork::Electra {
            return Err(DecodeError::UnsupportedFork { fork });
        }
        let ssz = update.as_ssz_bytes();
        out.extend_from_slice(&((ssz.len() + 4) as u64).to_le_bytes());
        out.extend_from_slice(&network.fork_digest_at_epoch(network.epoch_at_slot(slot)));
        out.extend_from_slice(&ssz);
    }
    Ok(out)
}
