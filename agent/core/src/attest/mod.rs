//! Attestation: DCAP quote verification, Dstack event logs, and the request pipeline that turns an
//! untrusted request into an [`AcceptedRequest`] or a [`crate::refusal::Refusal`].

pub mod collateral;
pub mod eventlog;
pub mod pipeline;
pub mod quote;
pub mod tcb;
pub mod verifier;

pub use pipeline::{AcceptedRequest, Decision};
pub use quote::Measurements;
pub use tcb::TcbStatus;
pub use verifier::{QuoteError, VerifiedQuote, Verifier};
