//! Attestation: DCAP quote verification, Dstack event logs, and the pipeline that turns an untrusted
//! request or genesis proposal into an [`AcceptedRequest`] / [`AcceptedGenesis`] or a
//! [`crate::refusal::Refusal`].

pub mod collateral;
pub mod compact;
pub mod eventlog;
pub mod pck;
pub mod pipeline;
pub mod quote;
pub mod sigmemo;
pub mod tcb;
pub mod verifier;

pub use pipeline::{AcceptedGenesis, AcceptedRequest, Decision, GenesisBinding, RequestBinding};
pub use quote::Measurements;
pub use tcb::TcbStatus;
pub use verifier::{QuoteError, VerifiedQuote, Verifier};
