//! Everything that talks to the chain: typed bindings, a client with a transaction sender, a log
//! scanner that adapts to provider range limits, a log follower that resumes from a checkpoint and
//! survives reorgs, the agent's one retry back-off, and the verified view: the pinned deployment,
//! and the proofs that turn an RPC's answers into values checked against a trusted header
//! ([`deployment`], [`verified`], [`proof`], [`layout`]), the trusted headers a pinned deployment's
//! trust root gives ([`anchor`]), and the release gate's view of the contract state ([`state`]).

pub mod anchor;
pub mod backoff;
pub mod beacon;
pub mod bindings;
pub mod client;
pub mod deployment;
pub mod endpoint;
pub mod follower;
pub mod layout;
pub mod proof;
pub mod scan;
pub mod state;
pub mod verified;

pub use backoff::Backoff;
pub use bindings::UpgradeOperator;
pub use client::{Chain, ChainError, TxOutcome};
