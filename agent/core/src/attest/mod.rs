//! Attestation: DCAP quote verification, Dstack event logs, and the pipeline that turns an untrusted
//! request or genesis proposal into an [`AcceptedRequest`] / [`AcceptedGenesis`] or a
//! [`crate::refusal::Refusal`].

pub mod collateral;
pub mod consts;
pub mod dates;
pub mod eventlog;
pub mod pck;
pub mod pipeline;
pub mod quote;
pub mod sigmemo;
pub mod tcb;
pub mod verifier;

/// The newest Intel TCB evaluation (collateral `tcbEvaluationDataNumber`) this release knows of: the
/// floor `replicatoor deploy` and `script/Deploy.s.sol` give a new contract's policy unless told
/// otherwise, so a deployment never starts out accepting collateral of any age (a floor of 0 lets a
/// stale or lying collateral source pass a platform a TCB recovery downgraded). 18 is the evaluation
/// of the newest genuine collateral in `tests/fixtures/dcap-qvl-samples` (issued 2026-02-18). A
/// release bumps it after Intel publishes a newer evaluation (tests keep the deploy script's default
/// equal to it and no known genuine collateral newer than it).
pub const NEWEST_TCB_EVALUATION_DATA_NUMBER: u32 = 18;

pub use pipeline::{AcceptedGenesis, AcceptedRequest, Decision, GenesisBinding, RequestBinding};
pub use quote::Measurements;
pub use tcb::TcbStatus;
pub use verifier::{QuoteError, VerifiedQuote, Verifier};
