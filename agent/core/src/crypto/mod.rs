//! Cryptographic primitives, all from audited crates: HPKE (RFC 9180), the secret bundle's
//! encoding, and the cluster key's EIP-712 signatures. Nothing here knows about attestation;
//! [`crate::delivery`] combines the two.

pub mod bundle;
pub mod eip712;
pub mod hpke;

pub use bundle::{BundleError, SecretBundle};
pub use hpke::{HpkeError, HpkeKeypair, Sealed};
