//! The command line's surface: the top-level parser and the list of commands. Each command's own
//! arguments and code live in [`crate::cmd`]; what several commands share, in [`crate::args`].

use crate::args::LogFormat;
use crate::cmd;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "replicatoor",
    version,
    about = "Hands a secret from one confidential VM to the next, coordinated by a contract"
)]
pub struct Cli {
    /// Log format.
    #[arg(long, value_enum, global = true, env = "REPLICATOOR_LOG_FORMAT", default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (genesis, new node or holder, chosen from its state).
    Run(crate::config::RunArgs),
    /// Deploy an UpgradeOperator (prints its address and deployment block).
    Deploy(cmd::deploy::Args),
    /// Owner operations (references, policy, genesis approval, rotation; --calldata-only for a
    /// multisig) and read-only views of them (list, policy).
    #[command(subcommand)]
    Admin(cmd::admin::AdminCommand),
    /// Verify a quote offline against collateral at a fixed time, and print every measurement.
    VerifyQuote(cmd::verify_quote::Args),
    /// Compute measurements and reference ids from a compose file, a quote or an event log.
    Measure(cmd::measure::Args),
    /// Would this node be accepted now, and after each change already scheduled on chain?
    Preflight(cmd::preflight::Args),
    /// Print the exact calldata a node would post (`encode request`), to reproduce and price it.
    #[command(subcommand)]
    Encode(cmd::encode::Command),
    /// Development tools (builds with the `simulated` feature): a simulated beacon for a dev chain.
    #[command(subcommand)]
    Dev(cmd::dev::Command),
    /// Verify recorded beacon light-client data offline (the agent's own verifier).
    #[command(subcommand)]
    LightClient(cmd::light_client::Command),
    /// Audit a deployment from chain data alone: governance timeline, custody tree, findings.
    Audit(cmd::audit::Args),
    /// Check a configuration without touching the chain.
    #[command(subcommand)]
    Config(cmd::config::ConfigCommand),
}
