//! Where UpgradeOperator keeps each value the agent decides on (its storage layout, as
//! `forge inspect UpgradeOperator storageLayout` prints it), and the contract's views recomputed
//! from proven storage. A test reads every value both ways on anvil (a view call and a proof at the
//! same block), so a layout change in the contract fails it.

use crate::proof::{ProofError, ProvenStorage};
use alloy::primitives::{keccak256, Address, B256, U256};
use replicatoor_core::protocol::{Policy, RefKind, RequestStatus};

/// `mapping(bytes32 id => Reference) _refs`.
const SLOT_REFS: u64 = 4;
/// `Policy _policy` (tcbStatuses u16 @0, allowDebug bool @2, allowSimulated bool @3,
/// minTcbEvaluationDataNumber u32 @4).
const SLOT_POLICY: u64 = 5;
/// `Policy _pendingPolicy`, same packing.
const SLOT_PENDING_POLICY: u64 = 6;
/// `address cluster` @0, `uint48 _epoch` @20, `uint48 _pendingPolicyAt` @26.
const SLOT_CLUSTER: u64 = 7;
/// `uint256 requestCount`.
const SLOT_REQUEST_COUNT: u64 = 8;
/// `mapping(bytes32 request => Request) _requests`, keyed by the request key
/// `keccak256(hpkePubKey ‖ requester)`; a `Request` packs status @0 (1 byte) and id @1 (31 bytes).
const SLOT_REQUESTS: u64 = 11;
/// `mapping(address holder => bytes32) commitments` (protocol v5, PROTOCOL.md §5.3).
const SLOT_COMMITMENTS: u64 = 16;
/// `uint64 rotationFor` @0, `uint192 rotationAfter` @8 (protocol v6, PROTOCOL.md §5.4).
const SLOT_ROTATION_FOR: u64 = 17;

/// The storage word of `holder`'s commitment.
fn commitment_slot(holder: Address) -> B256 {
    mapping_slot(holder.into_word(), SLOT_COMMITMENTS)
}

/// The storage word of the request named `request` (its key, `protocol::request_key`).
fn request_slot(request: B256) -> B256 {
    mapping_slot(request, SLOT_REQUESTS)
}

fn slot(n: u64) -> B256 {
    B256::from(U256::from(n))
}

/// Solidity's slot of `mapping[key]` declared at slot `base`: `keccak256(key ‖ base)`.
fn mapping_slot(key: B256, base: u64) -> B256 {
    keccak256([key.0, slot(base).0].concat())
}

/// `len` bytes at byte `offset` (from the low end, as Solidity packs) of a slot's value.
fn field(word: U256, offset: usize, len: usize) -> U256 {
    let mask = if len >= 32 { U256::MAX } else { (U256::from(1) << (8 * len)) - U256::from(1) };
    (word >> (8 * offset)) & mask
}

fn low_u64(v: U256) -> u64 {
    v.as_limbs()[0]
}

/// The slots to ask `eth_getProof` for, to answer every read a decision makes.
#[derive(Debug, Default, Clone)]
pub struct Reads {
    slots: Vec<B256>,
}

impl Reads {
    /// Policy (current and pending), cluster, epoch, the request counter and the rotation under way.
    pub fn state() -> Self {
        let slots = [SLOT_POLICY, SLOT_PENDING_POLICY, SLOT_CLUSTER, SLOT_REQUEST_COUNT, SLOT_ROTATION_FOR];
        Reads { slots: slots.into_iter().map(slot).collect() }
    }

    /// Also a reference's record.
    pub fn reference(mut self, id: B256) -> Self {
        self.slots.push(mapping_slot(id, SLOT_REFS));
        self
    }

    /// Also the id and status of the request named `request` (`protocol::request_key(pk, requester)`).
    pub fn request(mut self, request: B256) -> Self {
        self.slots.push(request_slot(request));
        self
    }

    /// Also the latest commitment `holder` posted (`commitments(holder)`).
    pub fn commitment(mut self, holder: Address) -> Self {
        self.slots.push(commitment_slot(holder));
        self
    }

    /// The storage keys, in order.
    pub fn slots(&self) -> &[B256] {
        &self.slots
    }
}

fn policy_at(word: U256) -> Policy {
    Policy {
        tcb_statuses: field(word, 0, 2).to::<u16>(),
        allow_debug: !field(word, 2, 1).is_zero(),
        allow_simulated: !field(word, 3, 1).is_zero(),
        min_tcb_evaluation_data_number: field(word, 4, 4).to::<u32>(),
    }
}

/// The contract's views, answered from proven storage at the proof's header (its timestamp is the
/// contract's `block.timestamp`).
pub struct Views<'a>(pub &'a ProvenStorage);

impl Views<'_> {
    fn now(&self) -> u64 {
        self.0.header().timestamp
    }

    /// `policy()`: a pending widening counts once its time has come.
    pub fn policy(&self) -> Result<Policy, ProofError> {
        let at = low_u64(field(self.0.get(slot(SLOT_CLUSTER))?, 26, 6));
        let s = if at != 0 && self.now() >= at { SLOT_PENDING_POLICY } else { SLOT_POLICY };
        Ok(policy_at(self.0.get(slot(s))?))
    }

    /// `cluster`.
    pub fn cluster(&self) -> Result<Address, ProofError> {
        let word = field(self.0.get(slot(SLOT_CLUSTER))?, 0, 20);
        Ok(Address::from_slice(&word.to_be_bytes::<32>()[12..]))
    }

    /// `epoch`.
    pub fn epoch(&self) -> Result<u64, ProofError> {
        Ok(low_u64(field(self.0.get(slot(SLOT_CLUSTER))?, 20, 6)))
    }

    /// `rotationFor`: the epoch a rotation the owner started would create (under way only while it
    /// is `epoch() + 1`).
    pub fn rotation_for(&self) -> Result<u64, ProofError> {
        Ok(low_u64(field(self.0.get(slot(SLOT_ROTATION_FOR))?, 0, 8)))
    }

    /// `rotationAfter`: proposals up to this id predate the rotation under way.
    pub fn rotation_after(&self) -> Result<U256, ProofError> {
        Ok(field(self.0.get(slot(SLOT_ROTATION_FOR))?, 8, 24))
    }

    /// `requestCount`.
    pub fn request_count(&self) -> Result<U256, ProofError> {
        self.0.get(slot(SLOT_REQUEST_COUNT))
    }

    /// `isAllowed(id, kind)`: proposed with this kind, not revoked, timelock elapsed, not expired.
    /// The record packs kind @0, activatesAt @1 (8 bytes), revoked @9, expiresAt @10 (8 bytes, 0 = never).
    pub fn is_allowed(&self, id: B256, kind: RefKind) -> Result<bool, ProofError> {
        let word = self.0.get(mapping_slot(id, SLOT_REFS))?;
        let stored_kind = low_u64(field(word, 0, 1));
        let activates_at = low_u64(field(word, 1, 8));
        let revoked = !field(word, 9, 1).is_zero();
        let expires_at = low_u64(field(word, 10, 8));
        let expired = expires_at != 0 && self.now() >= expires_at;
        Ok(stored_kind == kind as u64 && stored_kind != 0 && !revoked && self.now() >= activates_at && !expired)
    }

    /// When reference `id` stops being usable (`getReference(id).expiresAt`; None: never scheduled).
    pub fn expires_at(&self, id: B256) -> Result<Option<u64>, ProofError> {
        let at = low_u64(field(self.0.get(mapping_slot(id, SLOT_REFS))?, 10, 8));
        Ok((at != 0).then_some(at))
    }

    /// `requestIdOf(hpkePubKey, requester)` for the request named `request` (zero: no such request).
    pub fn request_id(&self, request: B256) -> Result<U256, ProofError> {
        Ok(field(self.0.get(request_slot(request))?, 1, 31))
    }

    /// `commitments(holder)`: the latest commitment `holder` posted (zero: none).
    pub fn commitment(&self, holder: Address) -> Result<B256, ProofError> {
        Ok(B256::from(self.0.get(commitment_slot(holder))?))
    }

    /// `requestStatus(request)`.
    pub fn request_status(&self, request: B256) -> Result<RequestStatus, ProofError> {
        let raw = field(self.0.get(request_slot(request))?, 0, 1).to::<u8>();
        // Proven, so the contract wrote it: a number outside the enum means the layout is not the
        // contract's (a version mismatch), never something to act on.
        RequestStatus::try_from(raw).map_err(|_| ProofError::Layout(format!("request status {raw} is not in the enum")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_fields_come_from_the_low_end() {
        // Policy { tcbStatuses: 0x1bf, allowDebug: false, allowSimulated: true,
        // minTcbEvaluationDataNumber: 17 } packs as 0x00000011_01_00_01bf.
        let p = policy_at(U256::from(0x0000_0011_0100_01bfu64));
        let want = Policy {
            tcb_statuses: 0x1bf,
            allow_debug: false,
            allow_simulated: true,
            min_tcb_evaluation_data_number: 17,
        };
        assert_eq!(p, want);
        // cluster at offset 0, _epoch = 3 at offset 20, _pendingPolicyAt = 7 at offset 26.
        let cluster = Address::repeat_byte(0xab);
        let word = (U256::from(7) << 208) | (U256::from(3) << 160) | U256::from_be_slice(cluster.as_slice());
        assert_eq!(low_u64(field(word, 26, 6)), 7);
        assert_eq!(low_u64(field(word, 20, 6)), 3);
        assert_eq!(Address::from_slice(&field(word, 0, 20).to_be_bytes::<32>()[12..]), cluster);
        // Request { status: Delivered (2) @0, id: 5 @1 }.
        let request = (U256::from(5) << 8) | U256::from(2);
        assert_eq!(field(request, 0, 1), U256::from(2));
        assert_eq!(field(request, 1, 31), U256::from(5));
    }

    #[test]
    fn mapping_slot_is_keccak_of_key_and_base() {
        // keccak256(abi.encode(key, uint256(11))): the slot of _requests[key].
        let key = B256::repeat_byte(0x5a);
        let mut pre = [0u8; 64];
        pre[..32].copy_from_slice(key.as_slice());
        pre[63] = 11;
        assert_eq!(request_slot(key), keccak256(pre));
        assert_ne!(request_slot(B256::repeat_byte(0x5b)), keccak256(pre));
    }
}
