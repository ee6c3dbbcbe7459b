//! EIP-712 typed data the cluster key signs: `Delivery`, `Refusal` and `Rotation`, under the
//! contract's domain (name "Replicatoor UpgradeOperator", version "6", chainId, verifyingContract).
//! Since version 2 each answer binds the request itself (`request` = keccak256(hpkePubKey ‖ requester))
//! and a delivery the policy it was decided under; version 3's policy includes its TCB evaluation
//! floor; version 4 changed the contract's storage and version 5 added `commit`, neither these types;
//! version 6 added `Rotation`, the current cluster's endorsement of the next epoch's (PROTOCOL.md §3.6,
//! §5.4, §7).

use crate::protocol::Deployment;
use alloy::{
    primitives::{Address, Signature, B256},
    signers::{local::PrivateKeySigner, SignerSync},
    sol,
    sol_types::{eip712_domain, Eip712Domain, SolStruct},
};

sol! {
    /// What the cluster signs to deliver a sealed bundle.
    struct Delivery {
        uint256 requestId;
        bytes32 request;
        bytes32 policy;
        bytes32 osRef;
        bytes32 appRef;
        bytes encapsulatedKey;
        bytes ciphertext;
    }

    /// What the cluster signs to refuse a request.
    struct Refusal {
        uint256 requestId;
        bytes32 request;
        uint8 reason;
    }

    /// What the current cluster signs to endorse `cluster` as the cluster of epoch `epoch` (the next
    /// one): without it the owner cannot approve a rotation (`proposeRotation`).
    struct Rotation {
        uint64 epoch;
        address cluster;
    }
}

/// EIP-712 signature failures.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The local signer failed (should not happen with an in-memory key).
    #[error("signing failed: {0}")]
    Sign(#[from] alloy::signers::Error),
    /// The 65-byte signature does not parse or does not recover.
    #[error("signature does not recover: {0}")]
    Recover(#[from] alloy::primitives::SignatureError),
}

/// The EIP-712 domain version of the contracts this kernel signs for: the protocol version
/// (PROTOCOL.md §7). A contract of another version reverts every answer signed here.
pub const DOMAIN_VERSION: &str = "6";

/// The contract's EIP-712 domain.
pub fn domain(dep: &Deployment) -> Eip712Domain {
    eip712_domain! {
        name: "Replicatoor UpgradeOperator",
        version: DOMAIN_VERSION,
        chain_id: dep.chain_id,
        verifying_contract: dep.contract,
    }
}

/// The digest to sign for any of our typed structs.
pub fn digest<T: SolStruct>(dep: &Deployment, value: &T) -> B256 {
    value.eip712_signing_hash(&domain(dep))
}

/// Sign with the cluster key; returns the 65-byte `r ‖ s ‖ v` form the contract expects (v = 27/28).
pub fn sign<T: SolStruct>(dep: &Deployment, value: &T, key: &PrivateKeySigner) -> Result<[u8; 65], SignatureError> {
    Ok(key.sign_hash_sync(&digest(dep, value))?.as_bytes())
}

/// Recover the signer of a 65-byte signature over `value`.
pub fn recover<T: SolStruct>(dep: &Deployment, value: &T, signature: &[u8]) -> Result<Address, SignatureError> {
    Ok(Signature::try_from(signature)?.recover_address_from_prehash(&digest(dep, value))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{Bytes, U256};

    #[test]
    fn sign_recover_and_bind_every_field() {
        let dep = Deployment { chain_id: 31337, contract: Address::repeat_byte(9) };
        let key = PrivateKeySigner::random();
        let d = Delivery {
            requestId: U256::from(1),
            request: B256::repeat_byte(6),
            policy: B256::repeat_byte(7),
            osRef: B256::repeat_byte(1),
            appRef: B256::repeat_byte(2),
            encapsulatedKey: Bytes::from(vec![3; 32]),
            ciphertext: Bytes::from(vec![4; 40]),
        };
        let sig = sign(&dep, &d, &key).unwrap();
        assert!(sig[64] == 27 || sig[64] == 28);
        assert_eq!(recover(&dep, &d, &sig).unwrap(), key.address());
        let mut other = d.clone();
        other.ciphertext = Bytes::from(vec![5; 40]);
        assert_ne!(recover(&dep, &other, &sig).unwrap(), key.address());
        for changed in [Delivery { request: B256::ZERO, ..d.clone() }, Delivery { policy: B256::ZERO, ..d.clone() }] {
            assert_ne!(recover(&dep, &changed, &sig).unwrap(), key.address(), "request and policy are signed");
        }
        let dep2 = Deployment { chain_id: 1, ..dep };
        assert_ne!(recover(&dep2, &d, &sig).unwrap(), key.address());
    }

    #[test]
    fn type_strings_match_the_contract() {
        assert_eq!(
            Delivery::eip712_encode_type(),
            "Delivery(uint256 requestId,bytes32 request,bytes32 policy,bytes32 osRef,bytes32 appRef,bytes encapsulatedKey,bytes ciphertext)"
        );
        assert_eq!(Refusal::eip712_encode_type(), "Refusal(uint256 requestId,bytes32 request,uint8 reason)");
        assert_eq!(Rotation::eip712_encode_type(), "Rotation(uint64 epoch,address cluster)");
    }
}
