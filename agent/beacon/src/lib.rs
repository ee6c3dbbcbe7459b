//! Ethereum beacon-chain light-client verifier (consensus-specs `sync-protocol.md`, Capella
//! through Electra/Fulu shapes) for Replicatoor.
//!
//! Pure verification over bytes handed in: no I/O, no clock, no network. A caller
//! 1. picks a [`Network`] (built-in or pinned explicitly),
//! 2. decodes beacon-node responses with [`codec`] (JSON or SSZ, auto-detected; transport: the
//!    verifier trusts nothing about how a value was decoded),
//! 3. drives a [`LightClientStore`] from a trusted checkpoint, or calls [`verify_recorded`] for
//!    the whole offline flow and gets a [`Report`].
//!
//! With the `simulated` feature, [`sim`] builds sync committees from a public seed and signs
//! headers for dev chains, producing data the same verifier accepts, and serves it in the beacon
//! API's forms. With the `force-update` feature (this crate's tests only), the store has the spec's
//! forced update, which adopts a header without finality; no node build has it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(unreachable_pub)]

mod blob;
mod bls;
pub mod codec;
pub mod error;
pub mod fork;
pub mod merkle;
pub mod network;
pub mod preset;
pub mod recorded;
#[cfg(feature = "simulated")]
pub mod sim;
pub mod store;
pub mod types;

pub use codec::{decode_bootstrap, decode_finality_update, decode_optimistic_update, decode_updates, DecodeError};
pub use error::Error;
pub use network::{Fork, ForkEntry, Network, Version};
pub use preset::{Mainnet, Minimal, Preset, PresetKind};
pub use recorded::{verify_recorded, CurrentSlotSource, Report, TrustSource, VerifiedHeader};
pub use store::LightClientStore;
pub use types::{ExecutionPayloadHeaderDeneb, LightClientBootstrap, LightClientHeader, LightClientUpdate, Root};
