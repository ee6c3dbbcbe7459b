//! The command line's entry point: parses arguments, sets up logging, and calls the chosen command's
//! `run` ([`crate::cmd`]). Shared by the `replicatoor` binary and the test suites' build of it.
//! Exit codes: 0 ok, 1 error, 2 bad configuration, 3 request refused, 4 quote not verified.

use crate::{
    args::LogFormat,
    cli::{Cli, Command},
    cmd,
};
use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// Parse the command line and run it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(target: "replicatoor", "{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("REPLICATOOR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
        LogFormat::Human => builder.compact().init(),
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(a) => cmd::run::run(a).await,
        Command::Deploy(a) => cmd::deploy::run(a).await,
        Command::Admin(a) => cmd::admin::run(a).await,
        Command::VerifyQuote(a) => cmd::verify_quote::run(a),
        Command::Measure(a) => cmd::measure::run(a),
        Command::Encode(c) => cmd::encode::run(c),
        Command::Preflight(a) => cmd::preflight::run(a).await,
        Command::LightClient(a) => cmd::light_client::run(a),
        Command::Dev(a) => cmd::dev::run(a).await,
        Command::Audit(a) => cmd::audit::run(a).await,
        Command::Config(a) => Ok(cmd::config::run(a).await),
    }
}
