//! The `replicatoor` agent: roles (genesis, new node, holder), state, installation, quote providers,
//! configuration, the command line, and health/metrics. What decides a release is the trust kernel
//! (`replicatoor-core`) and verified chain access (`replicatoor-chain`); this crate runs them.

pub mod admin;
pub mod args;
pub mod cli;
pub mod cmd;
pub mod collateral;
pub mod config;
pub mod dispatch;
pub mod failpoint;
pub mod horizon;
pub mod http;
pub mod install;
pub mod provider;
pub mod roles;
pub mod simulated;
pub mod store;
pub mod telemetry;
