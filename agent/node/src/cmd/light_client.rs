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
#[command(group(clap::ArgGroup::new("anchor").required(true).args(["checkpoint", "trust_bootstrap"])))]
pub struct Args {
    /// Beacon network: mainnet, sepolia, holesky or hoodi.
    #[arg(long)]
    pub network: String,
    /// Trusted beacon block root to bootstrap from (a finalized root within the weak-subjectivity
    /// period, from a source you trust). Required unless `--trust-bootstrap`.
    #[arg(long)]
    pub checkpoint: Option<String>,
    /// Trust the bootstrap's own header instead of a checkpoint: whoever served the file chose the
    /// sync committee, so nothing is verified against the real chain. Warns, and exits 5 (not 0)
    /// when the data is consistent.
    #[arg(long, conflicts_with = "checkpoint")]
    pub trust_bootstrap: bool,
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
    if a.trust_bootstrap {
        eprintln!(
            "WARNING: --trust-bootstrap: no checkpoint; the bootstrap's own header is trusted, so its sync committee \
             is whoever served the file. This shows the data is self-consistent, not that it is the chain's."
        );
    }
    let checkpoint = a.checkpoint.as_deref().map(|h| crate::cli::hex_n::<32>("checkpoint", h)).transpose()?;
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
            Ok(if a.trust_bootstrap { ExitCode::from(super::EXIT_UNANCHORED) } else { ExitCode::SUCCESS })
        }
        Err(e) => {
            eprintln!("light-client data NOT verified: {e}");
            Ok(ExitCode::from(super::EXIT_NOT_VERIFIED))
        }
    }
}
