//! One module per command: its clap arguments and its `run`. [`crate::dispatch`] parses the command
//! line and calls the `run` of the chosen command; [`crate::cli`] lists the commands and holds what
//! several of them share.

pub mod admin;
pub mod audit;
pub mod config;
pub mod deploy;
pub mod dev;
pub mod encode;
pub mod light_client;
pub mod measure;
pub mod preflight;
pub mod run;
pub mod verify_quote;

/// Exit code of a configuration the command refuses (`run`, `config check`).
pub const EXIT_BAD_CONFIG: u8 = 2;
/// Exit code of `run` when the cluster refused this node's request.
pub const EXIT_REFUSED: u8 = 3;
/// Exit code of `verify-quote` and `light-client verify` when the data does not verify.
pub const EXIT_NOT_VERIFIED: u8 = 4;
/// Exit code of `light-client verify --trust-bootstrap` when the data verifies, but only from a
/// bootstrap nobody pinned: not a success a script may take for "verified".
pub const EXIT_UNANCHORED: u8 = 5;
