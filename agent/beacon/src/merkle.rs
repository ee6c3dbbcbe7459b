//! SSZ Merkle-branch checks (spec `is_valid_merkle_branch` / `is_valid_normalized_merkle_branch`)
//! and the generalized indices the light-client proofs use.

use sha2::{Digest, Sha256};

use crate::network::{Fork, Network};
use crate::types::Root;

/// `get_generalized_index(BeaconBlockBody, 'execution_payload')` (Capella on).
pub const EXECUTION_PAYLOAD_GINDEX: u64 = 25;
/// A `BeaconState` field's generalized indices: in the Altair..Deneb state, and in the Electra one
/// (the state grew a level), for [`state_gindex_at_slot`].
pub type StateGindex = (u64, u64);
/// `finalized_checkpoint.root`.
pub const FINALIZED_ROOT_GINDEX: StateGindex = (105, 169);
/// `current_sync_committee`.
pub const CURRENT_SYNC_COMMITTEE_GINDEX: StateGindex = (54, 86);
/// `next_sync_committee`.
pub const NEXT_SYNC_COMMITTEE_GINDEX: StateGindex = (55, 87);

/// Hash of two 32-byte nodes.
pub fn hash_pair(left: &Root, right: &Root) -> Root {
    let mut h = Sha256::new();
    h.update(left);
    h.update(right);
    Root::from_slice(&h.finalize())
}

/// `floorlog2(gindex)`: the depth of a generalized index.
pub const fn gindex_depth(gindex: u64) -> usize {
    (63 - gindex.leading_zeros()) as usize
}

/// `get_subtree_index(gindex)`: the leaf index at that depth.
pub const fn gindex_subtree_index(gindex: u64) -> u64 {
    gindex % (1u64 << gindex_depth(gindex))
}

/// Spec `is_valid_normalized_merkle_branch`: a branch longer than the gindex depth (an older
/// fork's proof carried in a newer container) must have zero hashes in the extra leading slots; the
/// rest is spec `is_valid_merkle_branch` at `floorlog2(gindex)` and `get_subtree_index(gindex)`, which
/// is all there is to a branch of exactly that depth (the execution branch). `branch` is ordered from
/// the leaf's sibling upwards.
pub fn is_valid_normalized_merkle_branch(leaf: Root, branch: &[Root], gindex: u64, root: Root) -> bool {
    let Some(num_extra) = branch.len().checked_sub(gindex_depth(gindex)) else {
        return false;
    };
    if branch[..num_extra].iter().any(|b| !b.is_zero()) {
        return false;
    }
    let index = gindex_subtree_index(gindex);
    let mut value = leaf;
    for (i, sibling) in branch[num_extra..].iter().enumerate() {
        value = if (index >> i) & 1 == 1 { hash_pair(sibling, &value) } else { hash_pair(&value, sibling) };
    }
    value == root
}

/// The gindex of a `BeaconState` field at `slot`: the Electra one from Electra on, else the Altair one
/// (spec `finalized_root_gindex_at_slot`, `current_sync_committee_gindex_at_slot`,
/// `next_sync_committee_gindex_at_slot`).
pub fn state_gindex_at_slot(network: &Network, slot: u64, (altair, electra): StateGindex) -> u64 {
    if network.in_force_at(Fork::Electra, slot) {
        electra
    } else {
        altair
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gindex_arithmetic() {
        assert_eq!((gindex_depth(105), gindex_subtree_index(105)), (6, 41));
        assert_eq!((gindex_depth(169), gindex_subtree_index(169)), (7, 41));
        assert_eq!((gindex_depth(54), gindex_subtree_index(54)), (5, 22));
        assert_eq!((gindex_depth(87), gindex_subtree_index(87)), (6, 23));
        assert_eq!((gindex_depth(EXECUTION_PAYLOAD_GINDEX), gindex_subtree_index(EXECUTION_PAYLOAD_GINDEX)), (4, 9));
    }

    #[test]
    #[cfg(feature = "simulated")]
    fn built_branch_verifies_and_normalizes() {
        use crate::sim::root_and_branch;
        let leaves: Vec<Root> = (0..32u8).map(Root::repeat_byte).collect();
        let (root, branch) = root_and_branch(&leaves, 23);
        assert!(is_valid_normalized_merkle_branch(leaves[23], &branch, 55, root));
        let mut padded = vec![Root::ZERO];
        padded.extend(&branch);
        assert!(is_valid_normalized_merkle_branch(leaves[23], &padded, 55, root));
        padded[0] = Root::repeat_byte(1);
        assert!(!is_valid_normalized_merkle_branch(leaves[23], &padded, 55, root));
        assert!(!is_valid_normalized_merkle_branch(leaves[22], &branch, 55, root));
        assert!(!is_valid_normalized_merkle_branch(leaves[23], &branch[1..], 55, root), "shorter than the depth");
    }
}
