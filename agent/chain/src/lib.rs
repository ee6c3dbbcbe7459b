//! Everything that talks to the chain: typed bindings, a client with a transaction sender, a log
//! scanner that adapts to provider range limits, a log follower that resumes from a checkpoint and
//! survives reorgs, and the agent's one retry back-off.

pub mod backoff;
pub mod bindings;
pub mod client;
pub mod follower;
pub mod scan;

pub use backoff::Backoff;
pub use bindings::UpgradeOperator;
pub use client::{Chain, ChainError, TxOutcome};
