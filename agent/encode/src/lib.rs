//! What a Replicatoor node posts on chain: the compact quote ([`quote`], PROTOCOL.md §3.9) and the
//! compact event log ([`eventlog`], §3.5), made from what Dstack's guest agent returns (a raw TDX
//! quote and the JSON event log of its `GetQuote` answer).
//!
//! Holders never run this code: they decode what was posted with `replicatoor-core`
//! (`attest::compact::decode`, `attest::eventlog::EventLog::from_compact`), the trust kernel. The
//! encoders here are checked against those decoders: the quote encoder keeps a compact form only if
//! the decoder rebuilds the raw quote from it, and the round-trip tests in `tests/` pin encoder and
//! decoder together (the PROTOCOL.md test vectors, the recorded Dstack response). The JSON reader is
//! also how a node replays its own event log to check the compose it runs (TRUST.md, measured
//! configuration).
#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]

pub mod eventlog;
pub mod quote;
