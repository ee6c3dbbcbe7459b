//! Replicatoor: hands a secret from one confidential VM to the next, with the UpgradeOperator
//! contract as the only coordinator. See README.md and PROTOCOL.md.

pub mod attest;
pub mod chain;
pub mod crypto;
pub mod protocol;
pub mod refusal;
pub mod store;
