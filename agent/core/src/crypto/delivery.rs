//! Both ends of a delivery: the holder seals the bundle to an accepted request and signs it as the
//! cluster; the new node checks the signature and opens it.

use super::{
    bundle::{BundleError, SecretBundle},
    eip712::{self, Delivery, SignatureError},
    hpke::{self, HpkeError, HpkeKeypair},
};
use crate::{
    attest::{pipeline::Binding, AcceptedRequest},
    protocol::{hpke_aad, Deployment},
};
use alloy::primitives::{Address, B256, U256};

/// A sealed, cluster-signed delivery: what `deliverSecret` takes and `SecretDelivered` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDelivery {
    pub request_id: U256,
    pub os_ref: B256,
    pub app_ref: B256,
    pub encapsulated_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Why sealing or opening a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("an accepted genesis attestation cannot receive a delivery")]
    NotARequest,
    #[error(transparent)]
    Hpke(#[from] HpkeError),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("delivery is signed by {signer}, not by the cluster {cluster}")]
    WrongSigner { signer: Address, cluster: Address },
    #[error("decrypted bundle is invalid: {0}")]
    Bundle(#[from] BundleError),
    #[error("bundle's cluster key is {inside}, but the chain's cluster is {on_chain}")]
    ClusterMismatch { inside: Address, on_chain: Address },
}

/// Seal `bundle` to an accepted request and sign the delivery with the bundle's cluster key.
pub fn seal(
    dep: &Deployment,
    accepted: &AcceptedRequest,
    bundle: &SecretBundle,
) -> Result<SignedDelivery, DeliveryError> {
    let Binding::Request { request_id, hpke_pub_key, .. } = *accepted.binding() else {
        return Err(DeliveryError::NotARequest);
    };
    let (os_ref, app_ref) = (accepted.os_ref(), accepted.app_ref());
    let plaintext = bundle.encode();
    let sealed = hpke::seal(&hpke_pub_key, &dep.hpke_info(request_id), &hpke_aad(os_ref, app_ref), &plaintext)?;
    let record = Delivery::new(request_id, os_ref, app_ref, &sealed.encapsulated_key, &sealed.ciphertext);
    let signature = eip712::sign(dep, &record, bundle.cluster_signer())?;
    Ok(SignedDelivery {
        request_id,
        os_ref,
        app_ref,
        encapsulated_key: sealed.encapsulated_key.to_vec(),
        ciphertext: sealed.ciphertext,
        signature: signature.to_vec(),
    })
}

/// Check a delivery's signature against the chain's cluster, open it, and check the bundle's key.
pub fn open(
    dep: &Deployment,
    keys: &HpkeKeypair,
    cluster: Address,
    d: &SignedDelivery,
) -> Result<SecretBundle, DeliveryError> {
    let record = Delivery::new(d.request_id, d.os_ref, d.app_ref, &d.encapsulated_key, &d.ciphertext);
    let signer = eip712::recover(dep, &record, &d.signature)?;
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
