//! The event log a Replicatoor node posts on chain: the compact event log ([`eventlog`],
//! PROTOCOL.md §3.5), made from the JSON event log of Dstack's guest agent's `GetQuote` answer. (The
//! compact quote, §3.9, is `replicatoor-compact-quote`.)
//!
//! Holders never run this code: they decode what was posted with `replicatoor-core`
//! (`attest::eventlog::EventLog::from_compact`), the trust kernel. The encoder here is checked
//! against that decoder: the round-trip tests in `tests/` pin them together (the recorded Dstack
//! response). The JSON reader also gives a node its own event log, to check the compose it runs; that
//! check (`config::measured::check_own_compose` in the node) replays the log's compact form with the
//! kernel, every digest recomputed, so a misread log is refused there: the reader is transport (TRUST.md,
//! measured configuration).
#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]

pub mod eventlog;
