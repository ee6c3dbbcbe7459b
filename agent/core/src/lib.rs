//! Replicatoor's trust kernel: everything that decides whether a secret is released, and nothing
//! else. Protocol encodings and terms ([`protocol`], PROTOCOL.md §2-4), refusal codes
//! ([`refusal`]), quote verification with dcap-qvl and the request pipeline ([`attest`], §5), the
//! cryptographic primitives ([`crypto`]: HPKE, the bundle encoding, EIP-712), and sealing to an
//! accepted request ([`delivery`], §3), the one module that joins `attest` and `crypto`. The release
//! gate ([`gate`]) is the one decision over them: what it reads from the chain, and its verdict.
//! No I/O, no async runtime, no storage: the caller hands in bytes, the time (through one port,
//! [`clock`]) and the chain's answers. TRUST.md maps each file to its PROTOCOL.md section and its tests.
#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]

pub mod attest;
pub mod clock;
pub mod crypto;
pub mod delivery;
pub mod gate;
pub mod protocol;
pub mod refusal;
