//! Everything that talks to the chain: typed bindings, a client with a transaction sender, a log
//! follower that resumes from a checkpoint and survives reorgs, and the proofs that turn an RPC's
//! answers into values checked against a trusted header ([`proof`], [`layout`]).

pub mod beacon;
pub mod bindings;
pub mod client;
pub mod follower;
pub mod layout;
pub mod proof;

pub use bindings::UpgradeOperator;
pub use client::{Chain, ChainError, TxOutcome};
