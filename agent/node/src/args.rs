//! What several commands share: the chain target to read, the policy flags, private keys, and the hex
//! and file readers and verifiers their arguments go through. A leaf: the commands (`crate::cmd`) and
//! the run configuration (`crate::config`) import it, and it imports none of them.

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use replicatoor_core::attest::{collateral::CollateralSource, eventlog::EventLog, Verifier};
use replicatoor_encode::eventlog::DstackLog;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Compact lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for collectors.
    Json,
}

/// A private key as given (hex). Never shown: `Debug` is redacted, and the flags that take one hide
/// their environment value in `--help`. Wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretKey(String);

impl SecretKey {
    /// The signer, or an error that does not repeat the input.
    pub fn signer(&self) -> anyhow::Result<alloy::signers::local::PrivateKeySigner> {
        self.0.trim().parse().map_err(|_| anyhow::anyhow!("not a 32-byte hex private key"))
    }
}

impl std::str::FromStr for SecretKey {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretKey(s.to_string()))
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// A deployment to read, and the RPC to read it through (`audit`, `preflight`, `admin list`/`policy`):
/// one pair of flags for every command that only reads.
#[derive(Debug, Args)]
pub struct ReadTarget {
    #[arg(long, env = "REPLICATOOR_RPC_URL")]
    pub rpc_url: String,
    /// The UpgradeOperator's address.
    #[arg(long, env = "REPLICATOOR_CONTRACT")]
    pub contract: alloy::primitives::Address,
}

impl ReadTarget {
    /// A read-only chain client for the deployment (it checks the RPC's chain and contract).
    pub async fn connect(&self) -> anyhow::Result<replicatoor_chain::Chain> {
        Ok(replicatoor_chain::Chain::connect(&self.rpc_url, self.contract, None).await?)
    }
}

/// An RPC endpoint and the key that signs and pays.
#[derive(Debug, Args)]
pub struct ChainArgs {
    #[arg(long, env = "REPLICATOOR_RPC_URL")]
    pub rpc_url: String,
    /// Private key (hex) that signs and pays.
    #[arg(long, env = "REPLICATOOR_SENDER_KEY", hide_env_values = true)]
    pub sender_key: SecretKey,
}

/// The contract's policy, as flags (`deploy`, `admin set-policy`).
#[derive(Debug, Args, Clone)]
pub struct PolicyArgs {
    /// Accepted TCB statuses as a bitmask (bit 0 UpToDate; see PROTOCOL.md).
    #[arg(long, default_value = "0x1", value_parser = parse_u16)]
    pub tcb_statuses: u16,
    /// Accept debug TDs (gives up confidentiality: dev only).
    #[arg(long)]
    pub allow_debug: bool,
    /// Accept SIMULATED quotes (gives up all hardware guarantees: dev only).
    #[arg(long)]
    pub allow_simulated: bool,
    /// The oldest Intel TCB evaluation (collateral `tcbEvaluationDataNumber`) holders may judge a
    /// quote with; 0 = any (a stale collateral source can then undo a TCB recovery). Raise it after
    /// Intel's TCB recovery (raising is immediate, lowering waits the widening delay). Unset: `deploy`
    /// uses the newest evaluation this release knows, `admin set-policy` keeps the floor in force.
    #[arg(long)]
    pub min_tcb_evaluation_data_number: Option<u32>,
}

impl PolicyArgs {
    /// The policy these flags give; `floor_if_unset` where no TCB evaluation floor was given.
    pub fn policy(&self, floor_if_unset: u32) -> replicatoor_core::protocol::Policy {
        replicatoor_core::protocol::Policy {
            tcb_statuses: self.tcb_statuses,
            allow_debug: self.allow_debug,
            allow_simulated: self.allow_simulated,
            min_tcb_evaluation_data_number: self.min_tcb_evaluation_data_number.unwrap_or(floor_if_unset),
        }
    }
}

fn parse_u16(s: &str) -> Result<u16, String> {
    match s.strip_prefix("0x") {
        Some(h) => u16::from_str_radix(h, 16),
        None => s.parse(),
    }
    .map_err(|e| e.to_string())
}

/// Read a file that holds bytes either raw or as hex text.
pub fn read_bytes(path: &Path) -> anyhow::Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = std::str::from_utf8(&raw).map(str::trim).unwrap_or_default();
    let text = text.strip_prefix("0x").unwrap_or(text);
    if !text.is_empty() && text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(text).context("hex");
    }
    Ok(raw)
}

/// Parse a hex string of exactly N bytes.
pub fn hex_n<const N: usize>(what: &str, s: &str) -> anyhow::Result<[u8; N]> {
    let v = hex::decode(s.trim().trim_start_matches("0x")).with_context(|| format!("{what}: not hex"))?;
    v.try_into().map_err(|v: Vec<u8>| anyhow::anyhow!("{what}: {} bytes, expected {N}", v.len()))
}

/// sha256 of a file: Dstack's compose hash of an app-compose.json.
pub fn sha256_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    use sha2::{Digest, Sha256};
    Ok(Sha256::digest(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?).into())
}

/// Load an event log from Dstack JSON or the compact form (which holds no boot-time events).
pub fn load_event_log(path: &Path) -> anyhow::Result<DstackLog> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if raw.starts_with(b"RPEL") {
        let runtime = EventLog::from_compact(&raw).context("compact event log")?;
        return Ok(DstackLog { boot: Vec::new(), runtime });
    }
    let text = String::from_utf8(raw).context("event log is neither compact nor UTF-8 JSON")?;
    // Accept a whole GetQuote response too.
    let json: serde_json::Value = serde_json::from_str(&text).context("event log JSON")?;
    let inner = match json.get("event_log") {
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => text,
    };
    replicatoor_encode::eventlog::from_dstack_json(&inner).context("Dstack event log")
}

/// An offline verifier (`audit --reverify`, `admin approve-genesis`): collateral from a directory of
/// `<fmspc>.json` files (or none), and the simulated PKI when asked (dev only).
pub fn offline_verifier(collateral_dir: Option<PathBuf>, allow_simulated: bool) -> anyhow::Result<Verifier> {
    let source = crate::collateral::source(collateral_dir.as_deref(), None, Path::new(""))?;
    verifier(source, allow_simulated)
}

/// A verifier over `source`, also trusting the simulated PKI when asked (dev only).
pub fn verifier(source: Box<dyn CollateralSource>, allow_simulated: bool) -> anyhow::Result<Verifier> {
    let v = Verifier::new(source);
    if allow_simulated {
        Ok(crate::simulated::trust(v)?)
    } else {
        Ok(v)
    }
}
