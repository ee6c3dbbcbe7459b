//! `replicatoor audit`: audit a deployment from chain data alone (see docs/audit.md).

use crate::args::offline_verifier;
use anyhow::Context as _;
use replicatoor_audit::{collect::ScanOptions, render_html, render_text};
use std::{path::PathBuf, process::ExitCode};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: crate::args::ReadTarget,
    /// First block to scan (default: the deployment block, found with eth_getCode; 0 if the node has no history).
    #[arg(long)]
    pub from_block: Option<u64>,
    /// Last block to scan (default: the head).
    #[arg(long)]
    pub to_block: Option<u64>,
    /// Print the report as JSON (schema replicatoor-audit/v2, docs/audit.md).
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
    let chain = a.target.connect().await?;
    let verifier =
        a.reverify.then(|| offline_verifier(a.collateral_dir.clone(), a.allow_simulated_quotes)).transpose()?;
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
    Ok(ExitCode::SUCCESS)
}
