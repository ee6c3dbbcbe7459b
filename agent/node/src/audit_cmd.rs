//! Arguments and entry points of `replicatoor audit` and `replicatoor reference …` (the binary's
//! `main.rs` only dispatches here).

use crate::{
    cli::PolicyArgs,
    collateral::{DirCollateral, NoCollateral},
};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use replicatoor_audit::{collect::ScanOptions, render_html, render_text};
use replicatoor_chain::Chain;
use replicatoor_core::attest::Verifier;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[arg(long, env = "REPLICATOOR_RPC_URL")]
    pub rpc_url: String,
    #[arg(long, env = "REPLICATOOR_CONTRACT")]
    pub contract: String,
    /// First block to scan (default: the deployment block, found with eth_getCode; 0 if the node has no history).
    #[arg(long)]
    pub from_block: Option<u64>,
    /// Last block to scan (default: the head).
    #[arg(long)]
    pub to_block: Option<u64>,
    /// Print the report as JSON (schema replicatoor-audit/v1, docs/audit.md).
    #[arg(long)]
    pub json: bool,
    /// Also write the report as one self-contained HTML file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Block explorer base URL for links in the HTML (e.g. https://etherscan.io); no links without it.
    #[arg(long)]
    pub explorer_url: Option<String>,
    /// Re-run the holder pipeline offline on every quote that got a delivery or a genesis approval.
    #[arg(long)]
    pub reverify: bool,
    /// Collateral for genuine quotes: `<fmspc>.json` files (dcap-qvl QuoteCollateralV3).
    #[arg(long, requires = "reverify")]
    pub collateral_dir: Option<PathBuf>,
    /// Trust the simulated PKI when re-verifying (dev deployments only).
    #[arg(long, requires = "reverify")]
    pub allow_simulated_quotes: bool,
}

/// `replicatoor audit`.
pub async fn audit(a: &AuditArgs) -> anyhow::Result<()> {
    if let Some(u) = &a.explorer_url {
        anyhow::ensure!(render_html::valid_explorer(u), "--explorer-url must be a plain http(s) URL");
    }
    let contract = a.contract.parse().context("contract address")?;
    let chain = Chain::connect(&a.rpc_url, contract, None).await?;
    let verifier = a.reverify.then(|| {
        let v = match &a.collateral_dir {
            Some(d) => Verifier::new(Box::new(DirCollateral::new(d))),
            None => Verifier::new(Box::new(NoCollateral)),
        };
        if a.allow_simulated_quotes {
            crate::simulated::trust(v)
        } else {
            Ok(v)
        }
    });
    let verifier = verifier.transpose()?;
    let scan = ScanOptions { from_block: a.from_block, to_block: a.to_block, progress: true };
    let report = replicatoor_audit::audit(&chain, scan, verifier.as_ref()).await?;
    if let Some(path) = &a.html {
        let html = render_html::render(&report, a.explorer_url.as_deref());
        std::fs::write(path, html).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if a.html.is_none() {
        print!("{}", render_text::render(&report));
    }
    Ok(())
}

/// Where to read from (no key needed).
#[derive(Debug, Args)]
pub struct ReadTarget {
    #[arg(long, env = "REPLICATOOR_RPC_URL")]
    pub rpc_url: String,
    #[arg(long, env = "REPLICATOOR_CONTRACT")]
    pub contract: String,
    #[arg(long)]
    pub json: bool,
}

/// Where to send to; with `--calldata-only` nothing is sent and neither RPC nor key is needed.
#[derive(Debug, Args)]
pub struct WriteTarget {
    #[arg(long, env = "REPLICATOOR_RPC_URL")]
    pub rpc_url: Option<String>,
    #[arg(long, env = "REPLICATOOR_CONTRACT")]
    pub contract: String,
    /// The owner's private key (hex).
    #[arg(long, env = "REPLICATOOR_SENDER_KEY", hide_env_values = true)]
    pub sender_key: Option<String>,
    /// Human note recorded in the event.
    #[arg(long, default_value = "")]
    pub note: String,
    /// Print `to` and the hex calldata (for a multisig) instead of sending.
    #[arg(long)]
    pub calldata_only: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ReferenceCommand {
    /// Active, pending and revoked references (from events), the current and the pending policy.
    List {
        #[command(flatten)]
        target: ReadTarget,
        /// First block to scan (default: the deployment block).
        #[arg(long)]
        from_block: Option<u64>,
    },
    /// Propose an OS reference (--quote, or --mrtd with --rtmr0..2) or an app reference
    /// (--compose or --compose-hash). Usable after the contract's widening delay.
    Propose {
        #[command(flatten)]
        target: WriteTarget,
        /// Take MRTD and RTMR0-2 from this quote (binary or hex; not verified: use verify-quote first).
        #[arg(long, conflicts_with_all = ["mrtd", "compose", "compose_hash", "simulated_os"])]
        quote: Option<PathBuf>,
        #[arg(long, requires_all = ["rtmr0", "rtmr1", "rtmr2"], conflicts_with_all = ["compose", "compose_hash", "simulated_os"])]
        mrtd: Option<String>,
        #[arg(long, requires = "mrtd")]
        rtmr0: Option<String>,
        #[arg(long, requires = "mrtd")]
        rtmr1: Option<String>,
        #[arg(long, requires = "mrtd")]
        rtmr2: Option<String>,
        /// The simulated OS measurements (dev).
        #[arg(long, conflicts_with_all = ["compose", "compose_hash"])]
        simulated_os: bool,
        /// app-compose.json whose sha256 is the compose hash.
        #[arg(long, conflicts_with = "compose_hash")]
        compose: Option<PathBuf>,
        #[arg(long)]
        compose_hash: Option<String>,
    },
    /// Revoke a reference (immediate).
    Revoke {
        #[command(flatten)]
        target: WriteTarget,
        #[arg(long)]
        id: String,
    },
    /// Show the policy, or set it with --set (narrowing is immediate, widening waits for the delay).
    Policy {
        #[command(flatten)]
        target: WriteTarget,
        #[arg(long)]
        set: bool,
        #[command(flatten)]
        policy: PolicyArgs,
    },
}
