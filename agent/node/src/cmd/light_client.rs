//! `replicatoor light-client verify`: verify recorded beacon-API light-client responses offline, with
//! the same code the agent trusts chain state with (agent/beacon). The current slot comes from
//! `--at-slot` or the data, never the wall clock, so old recordings verify reproducibly.
//!
//! `replicatoor light-client prove`: the same, then an `eth_getProof` answer checked against the
//! execution state root of the newest verified header with the holder's proof code
//! (`replicatoor_chain::proof::ProvenAccount`): what it prints is what the chain held, or nothing.

use alloy::{primitives::B256, rpc::types::EIP1186AccountProofResponse};
use replicatoor_beacon::{
    recorded::{Report, VerifiedHeader},
    verify_recorded, Network,
};
use replicatoor_chain::proof::{ProvenAccount, TrustedHeader};
use serde::Serialize;
use std::{path::PathBuf, process::ExitCode};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Verify a bootstrap and updates (JSON or SSZ, as a beacon node serves them) and print the newest
    /// verified finalized and attested headers with their execution blocks.
    Verify(Args),
    /// Verify a bootstrap, updates and a finality or optimistic update as `verify` does, then an
    /// `eth_getProof` answer (account and every storage slot) against the execution state root of
    /// the newest verified header (or of the finalized one, if the proof was taken there); print the
    /// proven account and slots, or refuse with the reason.
    Prove(ProveArgs),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("head").required(true).multiple(true).args(["finality_update", "optimistic_update"])))]
pub struct ProveArgs {
    /// Trusted beacon block root to bootstrap from: the values are proven relative to it.
    #[arg(long)]
    pub checkpoint: String,
    #[command(flatten)]
    pub data: Recorded,
    /// `eth_getProof` answer at the newest verified header's block (or the finalized one's): a JSON-RPC
    /// response or its bare `result`.
    #[arg(long)]
    pub proof: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The recorded beacon-API responses both commands verify (JSON or SSZ, as a beacon node serves them).
#[derive(Debug, clap::Args)]
pub struct Recorded {
    /// Beacon network: mainnet, sepolia, holesky or hoodi.
    #[arg(long)]
    pub network: String,
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
}

/// A [`Recorded`]'s files, read.
struct RecordedBytes {
    network: Network,
    bootstrap: Vec<u8>,
    updates: Vec<Vec<u8>>,
    finality: Option<Vec<u8>>,
    optimistic: Option<Vec<u8>>,
    at_slot: Option<u64>,
}

impl Recorded {
    fn read(&self) -> anyhow::Result<RecordedBytes> {
        Ok(RecordedBytes {
            network: Network::by_name(&self.network)?,
            bootstrap: read(&self.bootstrap)?,
            updates: self.updates.iter().map(read).collect::<anyhow::Result<_>>()?,
            finality: self.finality_update.as_ref().map(read).transpose()?,
            optimistic: self.optimistic_update.as_ref().map(read).transpose()?,
            at_slot: self.at_slot,
        })
    }
}

impl RecordedBytes {
    /// The light client run over these responses from `checkpoint` (or the bootstrap's own header).
    fn verify(&self, checkpoint: Option<B256>) -> Result<Report, replicatoor_beacon::Error> {
        let updates: Vec<&[u8]> = self.updates.iter().map(Vec::as_slice).collect();
        verify_recorded(
            &self.network,
            checkpoint,
            &self.bootstrap,
            &updates,
            self.finality.as_deref(),
            self.optimistic.as_deref(),
            self.at_slot,
        )
    }
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("anchor").required(true).args(["checkpoint", "trust_bootstrap"])))]
pub struct Args {
    /// Trusted beacon block root to bootstrap from (a finalized root within the weak-subjectivity
    /// period, from a source you trust). Required unless `--trust-bootstrap`.
    #[arg(long)]
    pub checkpoint: Option<String>,
    /// Trust the bootstrap's own header instead of a checkpoint: whoever served the file chose the
    /// sync committee, so nothing is verified against the real chain. Warns, and exits 5 (not 0)
    /// when the data is consistent.
    #[arg(long, conflicts_with = "checkpoint")]
    pub trust_bootstrap: bool,
    #[command(flatten)]
    pub data: Recorded,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let a = match cmd {
        Command::Verify(a) => a,
        Command::Prove(a) => return prove(a),
    };
    if a.trust_bootstrap {
        eprintln!(
            "WARNING: --trust-bootstrap: no checkpoint; the bootstrap's own header is trusted, so its sync committee \
             is whoever served the file. This shows the data is self-consistent, not that it is the chain's."
        );
    }
    let checkpoint = a.checkpoint.as_deref().map(|h| crate::args::hex_n::<32>("checkpoint", h)).transpose()?;
    let verified = a.data.read()?.verify(checkpoint.map(Into::into));
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

fn read(p: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))
}

/// What `prove` establishes: the light client's trust path, the header, and the proven account.
#[derive(Debug, Serialize)]
struct ProveReport {
    network: String,
    trusted_block_root: B256,
    /// Which verified header the proof holds at: `optimistic` (the newest) or `finalized`.
    header: &'static str,
    beacon_slot: u64,
    beacon_block_root: B256,
    sync_committee_periods: Vec<u64>,
    execution_block_number: u64,
    execution_block_hash: B256,
    state_root: B256,
    address: alloy::primitives::Address,
    exists: bool,
    nonce: u64,
    /// Decimal wei (a JSON number would lose precision above 2^53).
    balance: String,
    storage_root: B256,
    code_hash: B256,
    storage: Vec<ProvenSlot>,
}

#[derive(Debug, Serialize)]
struct ProvenSlot {
    key: B256,
    value: B256,
}

impl std::fmt::Display for ProveReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "PROVEN at execution block {} (hash {})", self.execution_block_number, self.execution_block_hash)?;
        writeln!(f, "state root    {}", self.state_root)?;
        writeln!(
            f,
            "header        {} header, beacon slot {} root {}, light client from checkpoint {} (periods {:?})",
            self.header, self.beacon_slot, self.beacon_block_root, self.trusted_block_root, self.sync_committee_periods
        )?;
        writeln!(
            f,
            "address       {}{}",
            self.address,
            if self.exists { "" } else { " (absent: proven by exclusion)" }
        )?;
        writeln!(f, "nonce         {}", self.nonce)?;
        writeln!(f, "balance       {} wei", self.balance)?;
        writeln!(f, "storage root  {}", self.storage_root)?;
        writeln!(f, "code hash     {}", self.code_hash)?;
        for s in &self.storage {
            writeln!(f, "storage       {} = {}", s.key, s.value)?;
        }
        Ok(())
    }
}

/// An `eth_getProof` answer: a JSON-RPC response (`result`; an `error` is refused) or the bare result.
fn parse_proof(bytes: &[u8]) -> Result<EIP1186AccountProofResponse, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("proof file is not JSON: {e}"))?;
    let result = match v.as_object() {
        Some(o) if o.contains_key("error") => return Err(format!("the RPC answered with an error: {}", o["error"])),
        Some(o) if o.contains_key("result") => o["result"].clone(),
        Some(o) if o.contains_key("jsonrpc") => return Err("JSON-RPC response without a result".into()),
        _ => v,
    };
    serde_json::from_value(result).map_err(|e| format!("not an eth_getProof result: {e}"))
}

fn prove(a: ProveArgs) -> anyhow::Result<ExitCode> {
    let checkpoint: B256 = crate::args::hex_n::<32>("checkpoint", &a.checkpoint)?.into();
    let data = a.data.read()?;
    let proof = read(&a.proof)?;
    let refuse = |why: String| {
        eprintln!("NOT proven: {why}");
        Ok(ExitCode::from(super::EXIT_NOT_VERIFIED))
    };
    let report: Report = match data.verify(Some(checkpoint)) {
        Ok(r) => r,
        Err(e) => return refuse(format!("light-client data not verified: {e}")),
    };
    let answer = match parse_proof(&proof) {
        Ok(p) => p,
        Err(e) => return refuse(e),
    };
    // The newest verified header first (the optimistic one is never older than the finalized one);
    // a proof taken at the finalized header is proven there instead, and the report says which.
    let trusted = |h: &VerifiedHeader| TrustedHeader {
        number: h.execution_block_number,
        hash: h.execution_block_hash,
        state_root: h.execution_state_root,
        receipts_root: h.execution_receipts_root,
        timestamp: h.execution_timestamp,
    };
    let mut refusals = Vec::new();
    let mut proven = None;
    for (label, h) in [("optimistic", &report.optimistic), ("finalized", &report.finalized)] {
        if proven.is_some()
            || (label == "finalized" && h.execution_block_hash == report.optimistic.execution_block_hash)
        {
            continue;
        }
        match ProvenAccount::verify(&trusted(h), answer.address, &answer) {
            Ok(account) => proven = Some((label, h.clone(), account)),
            Err(e) => refusals.push(format!(
                "{e} (state root of execution block {}, the {label} header the light client verified)",
                h.execution_block_number
            )),
        }
    }
    let Some((label, h, account)) = proven else {
        return refuse(refusals.join("; "));
    };
    let h = &h;
    let out = ProveReport {
        network: report.network,
        trusted_block_root: report.trusted_block_root,
        header: label,
        beacon_slot: h.beacon_slot,
        beacon_block_root: h.beacon_block_root,
        sync_committee_periods: report.sync_committee_periods,
        execution_block_number: h.execution_block_number,
        execution_block_hash: h.execution_block_hash,
        state_root: h.execution_state_root,
        address: account.address,
        exists: account.exists,
        nonce: account.account.nonce,
        balance: account.account.balance.to_string(),
        storage_root: account.account.storage_root,
        code_hash: account.account.code_hash,
        storage: account.storage.iter().map(|(k, v)| ProvenSlot { key: *k, value: B256::from(*v) }).collect(),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{out}");
    }
    Ok(ExitCode::SUCCESS)
}
