//! The command line's entry point: parses arguments, sets up logging, dispatches to the module of
//! each command. Shared by the `replicatoor` binary and the test suites' build of it.

use crate::{
    admin,
    cli::{self, AdminCommand, AdminTarget, Cli, Command},
    collateral::{DirCollateral, NoCollateral},
    config::LogFormat,
    roles::{self, Exit},
};
use anyhow::Context as _;
use clap::Parser;
use replicatoor_chain::Chain;
use replicatoor_core::attest::Verifier;
use sha2::{Digest, Sha256};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// Exit codes: 0 ok, 1 error, 2 bad configuration, 3 request refused, 4 quote not verified.
const EXIT_REFUSED: u8 = 3;
const EXIT_NOT_VERIFIED: u8 = 4;

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

async fn dispatch(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Run(args) => {
            let cfg = match args.resolve() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("configuration error: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let (tx, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!(target: "replicatoor", "shutdown requested; finishing the current step");
                let _ = tx.send(true);
            });
            match roles::run(cfg, rx).await? {
                Exit::Done => Ok(ExitCode::SUCCESS),
                Exit::Refused(r) => {
                    eprintln!("request refused by the cluster: {r}");
                    Ok(ExitCode::from(EXIT_REFUSED))
                }
            }
        }
        Command::Deploy(a) => {
            let key = a.chain.sender_key.trim().parse().context("sender key")?;
            let owner = match &a.owner {
                Some(o) => o.parse().context("owner address")?,
                None => alloy::signers::local::PrivateKeySigner::address(&key),
            };
            let (address, block) =
                admin::deploy(&a.chain.rpc_url, key, owner, a.widening_delay, a.policy.policy()).await?;
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({ "address": address.to_string(), "block": block, "owner": owner.to_string() })
                );
            } else {
                println!("contract: {address}\nblock:    {block}\nowner:    {owner}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin(a) => admin_cmd(a).await,
        Command::VerifyQuote(a) => {
            Ok(if cli::verify_quote(&a)? { ExitCode::SUCCESS } else { ExitCode::from(EXIT_NOT_VERIFIED) })
        }
        Command::Measure(a) => cli::measure(&a).map(|_| ExitCode::SUCCESS),
        Command::Audit(a) => crate::audit_cmd::audit(&a).await.map(|_| ExitCode::SUCCESS),
        Command::Reference(c) => crate::reference_cmd::run(c).await.map(|_| ExitCode::SUCCESS),
        Command::Config(cli::ConfigCommand::Check(a)) => {
            Ok(if cli::config_check(a) { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }
    }
}

async fn connect(t: &AdminTarget) -> anyhow::Result<Chain> {
    let key = t.chain.sender_key.trim().parse().context("sender key")?;
    let contract = t.contract.parse().context("contract address")?;
    Ok(Chain::connect(&t.chain.rpc_url, contract, Some(key)).await?)
}

async fn admin_cmd(cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::ProposeOs { target, simulated, quote, mrtd, rtmr0, rtmr1, rtmr2 } => {
            let m = if simulated {
                crate::simulated::os_measurements()?
            } else if let Some(q) = quote {
                let (_, _, m) = replicatoor_core::attest::quote::Measurements::parse_unverified(&cli::read_bytes(&q)?)
                    .map_err(|e| anyhow::anyhow!("quote: {e}"))?;
                let m = m.context("not a TD quote")?;
                [m.mr_td, m.rtmr[0], m.rtmr[1], m.rtmr[2]]
            } else {
                let get = |n: &str, v: &Option<String>| cli::hex_n::<48>(n, v.as_deref().unwrap_or_default());
                [get("mrtd", &mrtd)?, get("rtmr0", &rtmr0)?, get("rtmr1", &rtmr1)?, get("rtmr2", &rtmr2)?]
            };
            let chain = connect(&target).await?;
            let (id, o) = admin::propose_os(&chain, m, &target.note).await?;
            println!("os reference {id} proposed in block {} (tx {})", o.block, o.tx_hash);
        }
        AdminCommand::ProposeApp { target, compose, compose_hash } => {
            let h: [u8; 32] = match (compose, compose_hash) {
                (Some(p), _) => {
                    Sha256::digest(std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?).into()
                }
                (None, Some(h)) => cli::hex_n::<32>("compose hash", &h)?,
                (None, None) => anyhow::bail!("pass --compose FILE or --compose-hash HEX"),
            };
            let chain = connect(&target).await?;
            let (id, o) = admin::propose_app(&chain, h, &target.note).await?;
            println!(
                "app reference {id} (compose hash {}) proposed in block {} (tx {})",
                hex::encode(h),
                o.block,
                o.tx_hash
            );
        }
        AdminCommand::Revoke { target, id } => {
            let chain = connect(&target).await?;
            let o = admin::revoke(&chain, cli::hex_n::<32>("id", &id)?.into(), &target.note).await?;
            println!("reference {id} revoked in block {}", o.block);
        }
        AdminCommand::SetPolicy { target, policy } => {
            let chain = connect(&target).await?;
            let o = admin::set_policy(&chain, policy.policy(), &target.note).await?;
            println!("policy set in block {} (widening parts wait for the contract's delay)", o.block);
        }
        AdminCommand::ApproveGenesis { target, proposal, allow_simulated_quotes, collateral_dir } => {
            let chain = connect(&target).await?;
            let mut v = match collateral_dir {
                Some(d) => Verifier::new(Box::new(DirCollateral::new(d))),
                None => Verifier::new(Box::new(NoCollateral)),
            };
            if allow_simulated_quotes {
                v = crate::simulated::trust(v)?;
            }
            let o = admin::approve_genesis(&chain, &v, alloy::primitives::U256::from(proposal), &target.note).await?;
            println!("genesis proposal {proposal} verified and approved in block {}", o.block);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
