//! Replicatoor: hands a secret from one confidential VM to the next, with the UpgradeOperator
//! contract as the only coordinator. See README.md and PROTOCOL.md.

pub mod admin;
pub mod attest;
pub mod audit;
pub mod chain;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod failpoint;
pub mod http;
pub mod install;
pub mod protocol;
pub mod refusal;
pub mod roles;
pub mod store;
pub mod telemetry;
