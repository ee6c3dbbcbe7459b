//! What several commands share: the chain target to read, the policy flags, private keys, and the hex
//! and file readers and verifiers their arguments go through. A leaf: the commands (`crate::cmd`) and
//! the run configuration (`crate::config`) import it, and it imports none of them.

use alloy::primitives::Address;
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

/// `--rpc-url`, declared once for every command but `run` (whose settings declare their own): the
/// JSON-RPC endpoint the command reads the chain through, and sends through. Optional as declared; a
/// command that always needs it makes clap require it (`#[command(mut_arg("rpc_url", |a|
/// a.required(true)))]`), and one that needs it only in some cases asks [`RpcUrl::require`] first.
#[derive(Debug, Args)]
pub struct RpcUrl {
    /// JSON-RPC endpoint of the chain the contract is on.
    #[arg(long, env = "REPLICATOOR_RPC_URL")]
    rpc_url: Option<String>,
}

impl RpcUrl {
    /// The endpoint, or an error that names the flag and says `why` the command needs it.
    pub fn require(&self, why: &str) -> anyhow::Result<&str> {
        self.rpc_url.as_deref().with_context(|| format!("--rpc-url is required {why}"))
    }
}

/// `--contract`, declared once for every command but `run`, as [`RpcUrl`] is.
#[derive(Debug, Args)]
pub struct Contract {
    /// The UpgradeOperator's address.
    #[arg(long, env = "REPLICATOOR_CONTRACT")]
    contract: Option<Address>,
}

impl Contract {
    /// The address, if given.
    pub fn get(&self) -> Option<Address> {
        self.contract
    }

    /// The address, or an error that names the flag and says `why` the command needs it.
    pub fn require(&self, why: &str) -> anyhow::Result<Address> {
        self.contract.with_context(|| format!("--contract is required {why}"))
    }
}

/// A deployment to read, and the RPC to read it through (`preflight`, `admin list`/`policy`, `dev
/// beacon`): both required.
#[derive(Debug, Args)]
#[command(mut_arg("rpc_url", |a| a.required(true)), mut_arg("contract", |a| a.required(true)))]
pub struct ReadTarget {
    #[command(flatten)]
    pub rpc: RpcUrl,
    #[command(flatten)]
    pub contract: Contract,
}

impl ReadTarget {
    /// The endpoint and the contract's address.
    pub fn get(&self) -> anyhow::Result<(&str, Address)> {
        Ok((self.rpc.require("to read the deployment")?, self.contract.require("to read the deployment")?))
    }

    /// A read-only chain client for the deployment (it checks the RPC's chain and contract).
    pub async fn connect(&self) -> anyhow::Result<replicatoor_chain::Chain> {
        let (url, contract) = self.get()?;
        Ok(replicatoor_chain::Chain::connect(url, contract, None).await?)
    }
}

/// An RPC endpoint (required) and the key that signs and pays.
#[derive(Debug, Args)]
#[command(mut_arg("rpc_url", |a| a.required(true)))]
pub struct ChainArgs {
    #[command(flatten)]
    pub rpc: RpcUrl,
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

#[cfg(test)]
mod tests {
    use crate::cli::Cli;
    use clap::{error::ErrorKind, CommandFactory as _, Parser as _};

    const CONTRACT: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    /// The error clap gives `args`, rendered as the user sees it.
    fn refused(args: &[&str]) -> (ErrorKind, String) {
        let e = Cli::try_parse_from([&["replicatoor"], args].concat()).expect_err("refused");
        (e.kind(), e.render().to_string())
    }

    /// Every command that always needs `--rpc-url` or `--contract` refuses to parse without it, naming
    /// the flag (the one declaration is optional; each such command makes clap require it).
    #[test]
    fn a_missing_target_flag_is_refused_by_name() {
        if std::env::var_os("REPLICATOOR_RPC_URL").is_some() || std::env::var_os("REPLICATOOR_CONTRACT").is_some() {
            return; // the environment supplies them
        }
        Cli::command().debug_assert();
        let without_rpc: [&[&str]; 6] = [
            &["audit", "--contract", CONTRACT],
            &["audit", "--deployment", "pin"],
            &["preflight", "--contract", CONTRACT, "--compose", "c.json", "--os-ref", "00"],
            &["admin", "policy", "--contract", CONTRACT],
            &["admin", "list", "--contract", CONTRACT],
            &["deploy", "--sender-key", KEY],
        ];
        for args in without_rpc {
            let (kind, text) = refused(args);
            assert_eq!(kind, ErrorKind::MissingRequiredArgument, "{args:?}: {text}");
            assert!(text.contains("--rpc-url <RPC_URL>"), "{args:?}: {text}");
        }
        let without_contract: [&[&str]; 3] = [
            &["audit", "--rpc-url", "http://127.0.0.1:1"],
            &["admin", "policy", "--rpc-url", "http://127.0.0.1:1"],
            &["admin", "revoke", "--id", "00", "--calldata-only"],
        ];
        for args in without_contract {
            let (kind, text) = refused(args);
            assert_eq!(kind, ErrorKind::MissingRequiredArgument, "{args:?}: {text}");
            assert!(text.contains("--contract <CONTRACT>"), "{args:?}: {text}");
        }
        // A transaction printed for a multisig needs no RPC.
        Cli::try_parse_from([
            "replicatoor",
            "admin",
            "revoke",
            "--contract",
            CONTRACT,
            "--id",
            "00",
            "--calldata-only",
        ])
        .expect("parses without --rpc-url");
    }

    /// `--help` says what the flag is for where the command gives it a meaning of its own.
    #[test]
    fn help_says_what_the_rpc_is_for() {
        let mut cli = Cli::command();
        let audit = cli.find_subcommand_mut("audit").expect("audit").render_help().to_string();
        assert!(
            audit.contains("untrusted with `--deployment`") && audit.contains("[env: REPLICATOOR_RPC_URL"),
            "{audit}"
        );
        let admin = cli.find_subcommand_mut("admin").expect("admin");
        let revoke = admin.find_subcommand_mut("revoke").expect("revoke").render_help().to_string();
        assert!(
            revoke.contains("needed only by a command that reads the chain first")
                && revoke.contains("[env: REPLICATOOR_CONTRACT")
        );
    }
}
