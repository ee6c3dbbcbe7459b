//! Compact quote v1 (PROTOCOL.md §3.9): a TDX quote whose PCK certificate chain is carried as DER or
//! as one-byte ids of Intel's well-known CA certificates instead of PEM text, which saves most of a
//! request's calldata.
//!
//! - [`decode`] (`decoder.rs`): what every reader of a posted quote runs first ([`to_raw`]): holders, owners,
//!   auditors, `measure` and `verify-quote`.
//! - [`encode`] (`encoder.rs`): what a posting node runs ([`to_posted`]); it keeps a compact form only if [`decode`]
//!   rebuilds exactly the raw quote, so it can make a post bigger, never different.
//!
//! Why this is not in the trust kernel (TRUST.md): no signature covers how the certification data is
//! encoded, and the raw quote this crate rebuilds is then verified in full by the kernel — the quote
//! and QE report signatures, and the PCK chain to the kernel's own pinned Intel root (not this
//! crate's table). A decoding bug can therefore make a genuine quote fail, or make two readers
//! disagree, but it cannot make a quote pass that a raw post of the same bytes would not.
#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]

mod decoder;
mod encoder;

pub use decoder::*;
pub use encoder::{encode, to_posted};
