//! `replicatoor light-client verify`: verify recorded beacon-API light-client responses offline, with
//! the same code the agent trusts chain state with (agent/beacon). The current slot comes from
//! `--at-slot` or the data, never the wall clock, so old recordings verify reproducibly.

use replicatoor_beacon::{verify_recorded, Network};
use std::{path::PathBuf, process::ExitCode};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Verify a bootstrap and updates (JSON or SSZ, as a beacon node serves them) and print the newest
    /// verified finalized and attested headers with their execution blocks.
    Verify(Args),
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Beacon network: mainnet, sepolia, holesky or hoodi.
    #[arg(long)]
    pub network: String,
    /// Trusted beacon block root to bootstrap from (default: trust the bootstrap's own header, and say so).
    #[arg(long)]
    pub checkpoint: Option<String>,
    /// `/eth/v1/beacon/light_client/bootstrap/{root}` response.
    #[arg(long)]
    pub bootstrap: PathBuf,
    /// `/eth/v1/beacon/light_client/updates` responses (each may hold many periods); repeatable.
    #[arg(long)]
    pub updates: Vec<PathBuf>,
    /// `/eth/v1/beacon/light_client/finality_update` response.
    #[arg(long)]
    pub finality_update: Option<PathBuf>,
    /// `/eth/v1/beacon/light_client/optimistic_update` response.
    #[arg(long)]
    pub optimistic_update: Option<PathBuf>,
    /// The current slot (default: the newest signature slot in the data).
    #[arg(long)]
    pub at_slot: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let Command::Verify(a) = cmd;
    let network = Network::by_name(&a.network)?;
    let checkpoint = a.checkpoint.as_deref().map(|h| crate::args::hex_n::<32>("checkpoint", h)).transpose()?;
    let raw = |p: &PathBuf| std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()));
    let bootstrap = raw(&a.bootstrap)?;
    let updates = a.updates.iter().map(raw).collect::<anyhow::Result<Vec<_>>>()?;
    let finality = a.finality_update.as_ref().map(raw).transpose()?;
    let optimistic = a.optimistic_update.as_ref().map(raw).transpose()?;
    let updates: Vec<&[u8]> = updates.iter().map(Vec::as_slice).collect();
    let verified = verify_recorded(
        &network,
        checkpoint.map(Into::into),
        &bootstrap,
        &updates,
        finality.as_deref(),
        optimistic.as_deref(),
        a.at_slot,
    );
    match verified {
        Ok(report) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("light-client data NOT verified: {e}");
            Ok(ExitCode::from(super::EXIT_NOT_VERIFIED))
        }
    }
}
