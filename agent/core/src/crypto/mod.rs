//! Cryptography, all from audited crates: HPKE (RFC 9180) sealing to a new node, the secret bundle's
//! encoding, and the cluster key's EIP-712 signatures.

pub mod bundle;
pub mod delivery;
pub mod eip712;
pub mod hpke;

pub use bundle::{BundleError, SecretBundle};
pub use hpke::{HpkeError, HpkeKeypair, Sealed};
