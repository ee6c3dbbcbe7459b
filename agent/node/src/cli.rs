//! Command-line interface: argument types and the small commands (verify-quote, measure).

use crate::config::{LogFormat, RunArgs};
use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use replicatoor_core::{
    attest::{eventlog::EventLog, quote::Measurements, Verifier},
    protocol::app_reference_id,
};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

#[derive(Debug, Parser)]
#[command(
    name = "replicatoor",
    version,
    about = "Hands a secret from one confidential VM to the next, coordinated by a contract"
)]
pub struct Cli {
    /// Log format: human (default) or json.
    #[arg(long, value_enum, global = true, env = "REPLICATOOR_LOG_FORMAT", default_value = "human")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (genesis, new node or holder, chosen from its state).
    Run(RunArgs),
    /// Deploy an UpgradeOperator (prints its address and deployment block).
    Deploy(DeployArgs),
    /// Owner operations: references, policy, genesis approval.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Verify a quote offline against collateral at a fixed time, and print every measurement.
    VerifyQuote(VerifyQuoteArgs),
    /// Compute measurements and reference ids from a compose file, a quote or an event log.
    Measure(MeasureArgs),
    /// Audit a deployment from chain data alone: governance timeline, custody tree, findings.
    Audit(crate::audit_cmd::AuditArgs),
    /// Reference values and policy: list (read-only), propose, revoke, policy (owner; or --calldata-only).
    #[command(subcommand)]
    Reference(crate::audit_cmd::ReferenceCommand),
    /// Check a configuration without touching the chain.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Args)]
pub struct ChainArgs {
    #[arg(long, env = "REPLICATOOR_RPC_URL")]
    pub rpc_url: String,
    /// Private key (hex) that signs and pays (the owner for admin commands).
    #[arg(long, env = "REPLICATOOR_SENDER_KEY", hide_env_values = true)]
    pub sender_key: String,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub chain: ChainArgs,
    /// Owner (default: the deployer).
    #[arg(long)]
    pub owner: Option<String>,
    /// Seconds widening changes wait (default one day; 0 only for local development).
    #[arg(long, default_value_t = 86_400)]
    pub widening_delay: u64,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

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
}

impl PolicyArgs {
    pub fn policy(&self) -> replicatoor_core::protocol::Policy {
        replicatoor_core::protocol::Policy {
            tcb_statuses: self.tcb_statuses,
            allow_debug: self.allow_debug,
            allow_simulated: self.allow_simulated,
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

#[derive(Debug, Args)]
pub struct AdminTarget {
    #[command(flatten)]
    pub chain: ChainArgs,
    #[arg(long, env = "REPLICATOOR_CONTRACT")]
    pub contract: String,
    /// Human note recorded in the event.
    #[arg(long, default_value = "")]
    pub note: String,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Propose an OS reference (MRTD, RTMR0-2).
    ProposeOs {
        #[command(flatten)]
        target: AdminTarget,
        /// Use the simulated OS measurements (dev).
        #[arg(long, conflicts_with_all = ["quote", "mrtd"])]
        simulated: bool,
        /// Take the measurements from this quote file (binary or hex).
        #[arg(long)]
        quote: Option<PathBuf>,
        #[arg(long, requires_all = ["rtmr0", "rtmr1", "rtmr2"])]
        mrtd: Option<String>,
        #[arg(long)]
        rtmr0: Option<String>,
        #[arg(long)]
        rtmr1: Option<String>,
        #[arg(long)]
        rtmr2: Option<String>,
    },
    /// Propose an app reference (compose hash).
    ProposeApp {
        #[command(flatten)]
        target: AdminTarget,
        /// app-compose.json whose sha256 is the compose hash.
        #[arg(long, conflicts_with = "compose_hash")]
        compose: Option<PathBuf>,
        #[arg(long)]
        compose_hash: Option<String>,
    },
    /// Revoke a reference (immediate).
    Revoke {
        #[command(flatten)]
        target: AdminTarget,
        #[arg(long)]
        id: String,
    },
    /// Set the policy (narrowing is immediate, widening waits for the delay).
    SetPolicy {
        #[command(flatten)]
        target: AdminTarget,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Verify a genesis proposal's quote and approve it.
    ApproveGenesis {
        #[command(flatten)]
        target: AdminTarget,
        #[arg(long)]
        proposal: u64,
        /// Trust the simulated PKI when verifying (dev only).
        #[arg(long)]
        allow_simulated_quotes: bool,
        #[arg(long)]
        collateral_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct VerifyQuoteArgs {
    /// Quote file (binary, or hex text).
    #[arg(long)]
    pub quote: PathBuf,
    /// Collateral JSON (dcap-qvl QuoteCollateralV3 format).
    #[arg(long)]
    pub collateral: Option<PathBuf>,
    /// Verification time (unix seconds).
    #[arg(long)]
    pub at: u64,
    /// Dstack event log (JSON as returned by the guest agent, or our compact form) to replay.
    #[arg(long)]
    pub event_log: Option<PathBuf>,
    /// Trust the simulated PKI (dev only).
    #[arg(long)]
    pub allow_simulated_quotes: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// app-compose.json: print its compose hash and app reference id.
    #[arg(long)]
    pub compose: Option<PathBuf>,
    /// Quote: print its measurements and OS reference id (not verified; use verify-quote).
    #[arg(long)]
    pub quote: Option<PathBuf>,
    /// Event log: replay RTMR0-3 and list the runtime events.
    #[arg(long)]
    pub event_log: Option<PathBuf>,
    /// The simulated OS measurements.
    #[arg(long)]
    pub simulated_os: bool,
    #[arg(long)]
    pub json: bool,
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

/// Load an event log from Dstack JSON or the compact form.
pub fn load_event_log(path: &Path) -> anyhow::Result<EventLog> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if raw.starts_with(b"RPEL") {
        return EventLog::from_compact(&raw).context("compact event log");
    }
    let text = String::from_utf8(raw).context("event log is neither compact nor UTF-8 JSON")?;
    // Accept a whole GetQuote response too.
    let json: serde_json::Value = serde_json::from_str(&text).context("event log JSON")?;
    let inner = match json.get("event_log") {
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => text,
    };
    EventLog::from_dstack_json(&inner).context("Dstack event log")
}

/// `verify-quote`.
pub fn verify_quote(a: &VerifyQuoteArgs) -> anyhow::Result<bool> {
    let quote = read_bytes(&a.quote)?;
    let collateral: Box<dyn crate::collateral::CollateralSource> = match &a.collateral {
        Some(p) => Box::new(crate::collateral::fixed_from_file(p)?),
        None => Box::new(crate::collateral::NoCollateral),
    };
    let mut v = Verifier::new(collateral);
    if a.allow_simulated_quotes {
        v = crate::simulated::trust(v)?;
    }
    let result = v.verify(&quote, a.at);
    let log_check = match (&a.event_log, &result) {
        (Some(p), Ok(vq)) => {
            let log = load_event_log(p)?;
            let replay = log.replay_rtmr3_and_check(&vq.measurements().rtmr[3]).map_err(|e| e.to_string());
            let app = log.app_info().map_err(|e| e.to_string());
            Some((replay, app))
        }
        _ => None,
    };
    let ok = result.is_ok() && log_check.as_ref().is_none_or(|(r, a)| r.is_ok() && a.is_ok());
    if a.json {
        let mut out = serde_json::json!({ "verified": ok, "at": a.at });
        match &result {
            Ok(vq) => {
                out["quote"] = serde_json::to_value(vq)?;
                out["os_reference_id"] = vq.measurements().os_reference_id().to_string().into();
            }
            Err(e) => {
                out["error"] = e.to_string().into();
                out["refusal"] = e.refusal().map(|r| r.name()).into();
            }
        }
        if let Some((replay, app)) = &log_check {
            out["rtmr3_replay"] = match replay {
                Ok(()) => "match".into(),
                Err(e) => e.clone().into(),
            };
            if let Ok(app) = app {
                out["compose_hash"] = hex::encode(app.compose_hash).into();
                out["app_reference_id"] = app_reference_id(&app.compose_hash).to_string().into();
            }
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ok);
    }
    match &result {
        Ok(vq) => {
            println!("verdict:        {}", if ok { "VERIFIED" } else { "NOT VERIFIED (event log)" });
            println!("tcb status:     {}", vq.tcb_status());
            println!(
                "advisories:     {}",
                if vq.advisory_ids().is_empty() { "none".into() } else { vq.advisory_ids().join(", ") }
            );
            println!("simulated:      {}", vq.is_simulated());
            print_measurements(vq.measurements());
        }
        Err(e) => {
            println!("verdict:        REJECTED");
            println!("reason:         {e}");
            println!(
                "refusal code:   {}",
                e.refusal().map_or("none (local problem: retry)".to_string(), |r| r.to_string())
            );
        }
    }
    if let Some((replay, app)) = log_check {
        println!("rtmr3 replay:   {}", replay.map_or_else(|e| e, |_| "matches the quote".into()));
        match app {
            Ok(app) => {
                println!("compose hash:   {}", hex::encode(app.compose_hash));
                println!("app ref id:     {}", app_reference_id(&app.compose_hash));
            }
            Err(e) => println!("app info:       {e}"),
        }
    }
    Ok(ok)
}

fn print_measurements(m: &Measurements) {
    println!("mr_td:          {}", hex::encode(m.mr_td));
    for (i, r) in m.rtmr.iter().enumerate() {
        println!("rtmr{i}:          {}", hex::encode(r));
    }
    println!("mr_config_id:   {}", hex::encode(m.mr_config_id));
    println!("td_attributes:  {}", hex::encode(m.td_attributes));
    println!("xfam:           {}", hex::encode(m.xfam));
    println!("report_data:    {}", hex::encode(m.report_data));
    println!("os ref id:      {}", m.os_reference_id());
}

/// `measure`.
pub fn measure(a: &MeasureArgs) -> anyhow::Result<()> {
    let mut out = serde_json::Map::new();
    if let Some(p) = &a.compose {
        let h: [u8; 32] = Sha256::digest(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?).into();
        out.insert("compose_hash".into(), hex::encode(h).into());
        out.insert("app_reference_id".into(), app_reference_id(&h).to_string().into());
    }
    if a.simulated_os {
        let [mrtd, r0, r1, r2] = crate::simulated::os_measurements()?;
        let id = replicatoor_core::protocol::os_reference_id(&mrtd, &r0, &r1, &r2);
        out.insert("simulated_os_reference_id".into(), id.to_string().into());
    }
    if let Some(p) = &a.quote {
        let (version, tee, m) = Measurements::parse_unverified(&read_bytes(p)?).map_err(|e| anyhow::anyhow!(e))?;
        out.insert("quote_version".into(), version.into());
        out.insert("tee_type".into(), format!("{tee:#x}").into());
        if let Some(m) = m {
            out.insert("os_reference_id".into(), m.os_reference_id().to_string().into());
            out.insert("measurements".into(), serde_json::to_value(&m)?);
        }
    }
    if let Some(p) = &a.event_log {
        let log = load_event_log(p)?;
        let rtmrs = log.replay_all();
        out.insert("replayed_rtmrs".into(), rtmrs.iter().map(hex::encode).collect::<Vec<_>>().into());
        let events: Vec<_> = log
            .runtime_events()
            .map(|(_, e)| serde_json::json!({ "name": e.name(), "payload": hex::encode(e.payload()) }))
            .collect();
        out.insert("runtime_events".into(), events.into());
        if let Ok(app) = log.app_info() {
            out.insert("compose_hash".into(), hex::encode(app.compose_hash).into());
            out.insert("app_reference_id".into(), app_reference_id(&app.compose_hash).to_string().into());
        }
    }
    if out.is_empty() {
        anyhow::bail!("nothing to measure: pass --compose, --quote, --event-log or --simulated-os");
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (k, v) in &out {
            println!("{k}: {}", v.as_str().map_or_else(|| v.to_string(), str::to_string));
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a `run` configuration exactly as `run` would, plus local checks (secret and state
    /// directories, app-compose file, guest-agent socket). Exit code 0 when valid, 2 otherwise.
    Check(ConfigCheckArgs),
}

#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Treat warnings as errors (exit code 2).
    #[arg(long)]
    pub deny_warnings: bool,
}

/// `config check`: print every finding with what to do, then a summary. Returns whether the configuration is valid.
pub fn config_check(a: ConfigCheckArgs) -> bool {
    use crate::config::Severity;
    let (cfg, findings) = crate::config::check(a.run);
    let errors = findings.iter().filter(|f| f.severity == Severity::Error).count();
    let warnings = findings.len() - errors;
    for f in &findings {
        let label = if f.severity == Severity::Error { "error:  " } else { "warning:" };
        println!("{label} {}: {}\n          fix: {}", f.key, f.problem, f.fix);
    }
    if let Some(c) = &cfg {
        // The RPC URL may carry an API key in its path: show scheme and host only. Never the sender key.
        let rpc = c.rpc_url.split('/').take(3).collect::<Vec<_>>().join("/");
        println!("rpc:           {rpc}");
        println!("contract:      {}", c.contract);
        println!("start block:   {}", c.start_block);
        println!("sender:        {}", c.sender_key.address());
        println!("role:          {}", if c.genesis { "genesis (founds the cluster)" } else { "new node / holder" });
        println!("quote source:  {:?}", c.quote_provider);
        println!("state dir:     {}", c.state_dir.display());
        println!("secret file:   {}", c.secret_file.display());
        println!("confirmations: {}", c.confirmations);
        println!("http:          {}", c.http_addr.map_or("off".into(), |a| a.to_string()));
    }
    let ok = errors == 0 && !(a.deny_warnings && warnings > 0);
    println!("configuration {}: {errors} error(s), {warnings} warning(s)", if ok { "OK" } else { "INVALID" });
    ok
}
