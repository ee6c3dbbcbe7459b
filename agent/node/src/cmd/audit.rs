//! `replicatoor audit`: audit a deployment from chain data alone (see docs/audit.md).

use crate::args::{offline_verifier, Contract, RpcUrl};
use anyhow::Context as _;
use replicatoor_audit::{
    collect::ScanOptions,
    proven::{Anchor, Fixed},
    render_html, render_text,
};
use replicatoor_chain::{
    anchor::{Anchor as Pinned, LightClientStore},
    deployment::PinnedDeployment,
    verified::{HeaderSource, VerifiedView},
    Chain,
};
use std::{path::PathBuf, process::ExitCode};

#[derive(Debug, clap::Args)]
#[command(
    mut_arg("rpc_url", |a| a.required(true)
        .help("The RPC to read the deployment's history through (untrusted with `--deployment`)")),
    mut_arg("contract", |a| a.required_unless_present("deployment")
        .help("The UpgradeOperator's address (taken from `--deployment` when that is given)")),
)]
pub struct Args {
    #[command(flatten)]
    pub rpc: RpcUrl,
    #[command(flatten)]
    pub contract: Contract,
    /// The pinned deployment (TOML text, as `run` takes it): prove the current policy, references,
    /// cluster, request statuses and the events of the last 8,191 blocks against the headers its trust
    /// root authenticates, as holders prove them, and flag every RPC answer the proofs contradict.
    #[arg(long, env = "REPLICATOOR_DEPLOYMENT")]
    pub deployment: Option<String>,
    /// Beacon API for a beacon trust root (untrusted transport: everything it serves is verified).
    #[arg(long, env = "REPLICATOOR_BEACON_URL", requires = "deployment")]
    pub beacon_url: Option<String>,
    /// Confirmation depth under an `rpc-quorum` trust root (the quorum's head minus this).
    #[arg(long, default_value_t = replicatoor_compose::settings::DEFAULT_CONFIRMATIONS, requires = "deployment")]
    pub confirmations: u64,
    /// First block to scan (default: the deployment block, found with eth_getCode; 0 if the node has no history).
    #[arg(long)]
    pub from_block: Option<u64>,
    /// Last block to scan (default: the head).
    #[arg(long)]
    pub to_block: Option<u64>,
    /// Print the report as JSON (schema replicatoor-audit/v3, docs/audit.md).
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

pub async fn run(a: Args) -> anyhow::Result<ExitCode> {
    if let Some(u) = &a.explorer_url {
        anyhow::ensure!(render_html::valid_explorer(u), "--explorer-url must be a plain http(s) URL");
    }
    let verifier =
        a.reverify.then(|| offline_verifier(a.collateral_dir.clone(), a.allow_simulated_quotes)).transpose()?;
    let scan = ScanOptions { from_block: a.from_block, to_block: a.to_block, progress: true };
    let report = match &a.deployment {
        None => {
            let contract = a.contract.require("without --deployment")?;
            let chain = Chain::connect(a.rpc.require("to read the deployment")?, contract, None).await?;
            replicatoor_audit::audit(&chain, scan, verifier.as_ref()).await?
        }
        Some(text) => {
            anyhow::ensure!(
                a.to_block.is_none(),
                "--to-block cannot be used with --deployment (the trusted header is the end)"
            );
            let d = PinnedDeployment::from_toml(text).context("--deployment")?;
            d.check_build(crate::simulated::BUILT).context("--deployment")?;
            if let Some(c) = a.contract.get() {
                anyhow::ensure!(c == d.contract, "--contract {c} is not the pinned contract {}", d.contract);
            }
            let chain = Chain::connect(a.rpc.require("to read the deployment")?, d.contract, None).await?;
            anyhow::ensure!(
                chain.deployment() == d.deployment(),
                "the RPC serves chain {} but the pinned deployment is chain {}",
                chain.deployment().chain_id,
                d.chain_id
            );
            let anchor = trusted_header(&d, a.beacon_url.as_deref(), a.confirmations).await?;
            let view = VerifiedView::new(chain.clone(), Fixed(anchor.header), d.max_age_secs());
            replicatoor_audit::audit_proven(&chain, &view, &anchor, scan, verifier.as_ref()).await?
        }
    };
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
    Ok(ExitCode::SUCCESS)
}

/// The newest header the pin's trust root authenticates now, as a node's anchor gives it: the light
/// client's optimistic header, bootstrapped from the pinned checkpoint in this run, with how many of
/// the sync committee signed it; or the header the pinned RPC quorum agrees on.
async fn trusted_header(d: &PinnedDeployment, beacon_url: Option<&str>, confirmations: u64) -> anyhow::Result<Anchor> {
    let pinned = Pinned::new(d, beacon_url, Box::new(Stateless), confirmations).await?;
    let header = pinned.head(crate::roles::unix_now(), std::time::Instant::now()).await?;
    let signers = pinned.last_sync().await.and_then(|sync| sync.optimistic_signers);
    Ok(Anchor { header, trust_mode: d.trust.mode_name().into(), signers })
}

/// An auditor keeps no state: each audit bootstraps the light client from the pinned checkpoint.
struct Stateless;

impl LightClientStore for Stateless {
    fn load(&self) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }

    fn save(&self, _: &[u8]) -> Result<(), String> {
        Ok(())
    }
}
