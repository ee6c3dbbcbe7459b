//! Both ends of a delivery (PROTOCOL.md §2, §3.3, §3.6): the holder seals the bundle to an accepted request
//! and signs it as the cluster; the new node checks the signature and opens it.
//!
//! This is the seam between [`crate::attest`] (what may receive the secret) and [`crate::crypto`]
//! (how it is sealed): sealing takes an [`AcceptedRequest`], so nothing is sealed to a key whose
//! quote was not verified, and a genesis acceptance cannot be passed at all.

use crate::{
    attest::AcceptedRequest,
    crypto::{
        bundle::{BundleError, SecretBundle},
        eip712::{self, Delivery, SignatureError},
        hpke::{self, HpkeError, HpkeKeypair},
    },
    protocol::{hpke_aad, Deployment},
};
use alloy::primitives::{Address, Bytes, B256, U256};

/// A sealed, cluster-signed delivery: what `deliverSecret` takes and `SecretDelivered` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDelivery {
    /// The request this answers.
    pub request_id: U256,
    /// keccak256(hpkePubKey ‖ requester) of that request ([`crate::protocol::request_key`]): signed, and
    /// checked on chain against `requestIdOf`. Not in `SecretDelivered`; an opener recomputes it.
    pub request: B256,
    /// The hash of the policy the holder applied ([`crate::protocol::Policy::hash`]): signed, and the
    /// contract refuses the delivery once another policy is in force.
    pub policy: B256,
    /// The OS reference the recipient was accepted under (in the HPKE aad and re-checked on chain).
    pub os_ref: B256,
    /// The app reference the recipient was accepted under (in the HPKE aad and re-checked on chain).
    pub app_ref: B256,
    /// HPKE encapsulated key (32 bytes when well formed).
    pub encapsulated_key: Vec<u8>,
    /// HPKE ciphertext of the encoded bundle.
    pub ciphertext: Vec<u8>,
    /// The cluster key's 65-byte EIP-712 signature over all of the above.
    pub signature: Vec<u8>,
}

/// Why sealing or opening a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Sealing failed, or the ciphertext does not open with this node's key and context.
    #[error(transparent)]
    Hpke(#[from] HpkeError),
    /// Signing failed, or the signature does not recover.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Signed by someone other than the chain's cluster: not from the cluster, whatever it holds.
    #[error("delivery is signed by {signer}, not by the cluster {cluster}")]
    WrongSigner {
        /// The recovered signer.
        signer: Address,
        /// The chain's cluster.
        cluster: Address,
    },
    /// The plaintext is not a valid bundle.
    #[error("decrypted bundle is invalid: {0}")]
    Bundle(#[from] BundleError),
    /// The bundle carries another cluster key than the one that signed it on chain.
    #[error("bundle's cluster key is {inside}, but the chain's cluster is {on_chain}")]
    ClusterMismatch {
        /// The address of the key inside the bundle.
        inside: Address,
        /// The chain's cluster.
        on_chain: Address,
    },
}

/// Seal `bundle` to an accepted request and sign the delivery with the bundle's cluster key.
///
/// Only a request acceptance fits; a genesis acceptance is a type error, not a runtime refusal:
///
/// ```
/// # use replicatoor_core::{attest::AcceptedRequest, crypto::SecretBundle, delivery, protocol::Deployment};
/// fn to_request(dep: &Deployment, request: &AcceptedRequest, bundle: &SecretBundle) {
///     let _ = delivery::seal(dep, request, bundle);
/// }
/// ```
///
/// ```compile_fail,E0308
/// # use replicatoor_core::{attest::AcceptedGenesis, crypto::SecretBundle, delivery, protocol::Deployment};
/// fn to_genesis(dep: &Deployment, genesis: &AcceptedGenesis, bundle: &SecretBundle) {
///     let _ = delivery::seal(dep, genesis, bundle);
/// }
/// ```
pub fn seal(
    dep: &Deployment,
    accepted: &AcceptedRequest,
    bundle: &SecretBundle,
) -> Result<SignedDelivery, DeliveryError> {
    let (request_id, hpke_pub_key) = (accepted.binding().request_id, accepted.binding().hpke_pub_key);
    let (os_ref, app_ref) = (accepted.os_ref(), accepted.app_ref());
    let sealed = hpke::seal(&hpke_pub_key, &dep.hpke_info(request_id), &hpke_aad(os_ref, app_ref), &bundle.encode())?;
    let mut d = SignedDelivery {
        request_id,
        request: accepted.binding().request_key(),
        policy: accepted.policy().hash(),
        os_ref,
        app_ref,
        encapsulated_key: sealed.encapsulated_key.to_vec(),
        ciphertext: sealed.ciphertext,
        signature: Vec::new(),
    };
    d.signature = eip712::sign(dep, &record(&d, d.request), bundle.cluster_signer())?.to_vec();
    Ok(d)
}

/// Check a delivery's signature against the chain's cluster, open it, and check the bundle's key.
/// `requester` is the account that posted the request with `keys`: the signature must name that very
/// request (whatever `d.request` says), so a delivery signed for another request never opens here.
pub fn open(
    dep: &Deployment,
    keys: &HpkeKeypair,
    requester: Address,
    cluster: Address,
    d: &SignedDelivery,
) -> Result<SecretBundle, DeliveryError> {
    let request = crate::protocol::request_key(&keys.public(), requester);
    let signer = eip712::recover(dep, &record(d, request), &d.signature)?;
    if signer != cluster {
        return Err(DeliveryError::WrongSigner { signer, cluster });
    }
    let info = dep.hpke_info(d.request_id);
    let plaintext = keys.open(&d.encapsulated_key, &info, &hpke_aad(d.os_ref, d.app_ref), &d.ciphertext)?;
    let bundle = SecretBundle::decode(&plaintext)?;
    if bundle.cluster_address() != cluster {
        return Err(DeliveryError::ClusterMismatch { inside: bundle.cluster_address(), on_chain: cluster });
    }
    Ok(bundle)
}

/// What the cluster signs for `d` (PROTOCOL.md §3.6), naming `request`.
fn record(d: &SignedDelivery, request: B256) -> Delivery {
    Delivery {
        requestId: d.request_id,
        request,
        policy: d.policy,
        osRef: d.os_ref,
        appRef: d.app_ref,
        encapsulatedKey: Bytes::copy_from_slice(&d.encapsulated_key),
        ciphertext: Bytes::copy_from_slice(&d.ciphertext),
    }
}
