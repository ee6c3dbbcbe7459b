//! Everything that talks to the chain: typed bindings, a client with a transaction sender, and a
//! log follower that resumes from a checkpoint and survives reorgs.

pub mod bindings;
pub mod client;
pub mod follower;

pub use bindings::UpgradeOperator;
pub use client::{Chain, ChainError, TxOutcome};
