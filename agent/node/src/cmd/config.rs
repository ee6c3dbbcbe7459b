//! `replicatoor config check`: print every finding of [`crate::config::check`] with what to do, the
//! resolved settings (never the sender key), and a summary.

use super::EXIT_BAD_CONFIG;
use crate::config::{Level, RunArgs};
use clap::{Args, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a `run` configuration exactly as `run` would, plus local checks (secret and state
    /// directories, app-compose file, guest-agent socket). Exit code 0 when valid, 2 otherwise.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Treat warnings as errors (exit code 2).
    #[arg(long)]
    pub deny_warnings: bool,
}

pub async fn run(cmd: ConfigCommand) -> ExitCode {
    let ConfigCommand::Check(a) = cmd;
    if check(a).await {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_BAD_CONFIG)
    }
}

/// Print every finding with what to do, then a summary. Returns whether the configuration is valid.
async fn check(a: CheckArgs) -> bool {
    let (cfg, problems) = crate::config::check(a.run).await;
    let errors = problems.iter().filter(|f| f.level == Level::Error).count();
    let warnings = problems.len() - errors;
    for f in &problems {
        let label = if f.level == Level::Error { "error:  " } else { "warning:" };
        println!("{label} {}: {}\n          fix: {}", f.key, f.problem, f.fix);
    }
    if let Some(c) = &cfg {
        // The RPC URL may carry an API key in its path: show scheme and host only. Never the sender key.
        let rpc = c.rpc_url.split('/').take(3).collect::<Vec<_>>().join("/");
        println!("rpc:           {rpc}");
        println!("contract:      {}", c.contract);
        println!("start block:   {}", c.start_block);
        match &c.deployment {
            Some(d) => println!("chain view:    pinned: {}", d.trust),
            None => println!("chain view:    UNVERIFIED: the RPC's (--dangerously-trust-rpc)"),
        }
        println!("sender:        {}", c.sender_key.address());
        println!("role:          {}", if c.genesis { "genesis (founds the cluster)" } else { "new node / holder" });
        println!("quote source:  {:?}", c.quote_provider);
        println!("configuration: {}", c.measurement.describe());
        println!("state dir:     {}", c.state_dir.display());
        println!("secret file:   {}", c.secret_file.display());
        println!("confirmations: {}", c.confirmations);
        println!("http:          {}", c.http_addr.map_or("off".into(), |a| a.to_string()));
    }
    let ok = errors == 0 && !(a.deny_warnings && warnings > 0);
    println!("configuration {}: {errors} error(s), {warnings} warning(s)", if ok { "OK" } else { "INVALID" });
    ok
}
