//! Replicatoor's trust kernel: everything that decides whether a secret is released, and nothing
//! else. Protocol encodings ([`protocol`], PROTOCOL.md §2-3), refusal codes ([`refusal`]), quote
//! verification with dcap-qvl and the request pipeline ([`attest`], §5), and sealing to a new node
//! ([`crypto`], §3). No I/O, no async runtime, no storage: the caller hands in bytes, the time and
//! the chain's answers. TRUST.md maps each file to its PROTOCOL.md section and its tests.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(unreachable_pub)]

pub mod attest;
pub mod crypto;
pub mod protocol;
pub mod refusal;
