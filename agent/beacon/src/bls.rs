//! Sync-aggregate signature verification with blst (min_pk: G1 keys, G2 signatures), exactly the
//! Ethereum `FastAggregateVerify` with the proof-of-possession ciphersuite.

use blst::min_pk::{PublicKey, Signature};
use blst::BLST_ERROR;

use crate::error::Error;
use crate::merkle::hash_pair;
use crate::preset::Preset;
use crate::types::{Root, SyncAggregate, SyncCommittee};

/// The Ethereum consensus BLS ciphersuite domain separation tag.
pub(crate) const BLS_DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// Spec `compute_signing_root`: `hash_tree_root(SigningData{object_root, domain})`.
pub(crate) fn signing_root(object_root: Root, domain: Root) -> Root {
    hash_pair(&object_root, &domain)
}

/// Verify `aggregate` over `message` by the members of `committee` whose bits are set.
///
/// Each participating key is decompressed with `key_validate`, which rejects the point at infinity
/// and points outside the G1 subgroup; the signature is subgroup-checked too. Keys of members that
/// did not sign are never touched.
pub(crate) fn verify_sync_aggregate<P: Preset>(
    committee: &SyncCommittee<P>,
    aggregate: &SyncAggregate<P>,
    message: Root,
) -> Result<(), Error> {
    let bits = &aggregate.sync_committee_bits;
    let mut keys = Vec::with_capacity(bits.num_set_bits());
    for (index, pubkey) in committee.pubkeys.iter().enumerate() {
        if bits.get(index).unwrap_or(false) {
            keys.push(PublicKey::key_validate(pubkey.as_slice()).map_err(|_| Error::InvalidPublicKey { index })?);
        }
    }
    if keys.is_empty() {
        // FastAggregateVerify over no keys is false by definition; the caller's participation
        // check normally fires first.
        return Err(Error::BadSignature);
    }
    let signature = Signature::sig_validate(aggregate.sync_committee_signature.as_slice(), false)
        .map_err(|_| Error::InvalidSignatureEncoding)?;
    let refs: Vec<&PublicKey> = keys.iter().collect();
    match signature.fast_aggregate_verify(true, message.as_slice(), BLS_DST, &refs) {
        BLST_ERROR::BLST_SUCCESS => Ok(()),
        _ => Err(Error::BadSignature),
    }
}
