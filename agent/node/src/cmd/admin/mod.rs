//! `replicatoor admin …`: the owner's controls of the trust root (references, policy, genesis approval,
//! key rotation) and read-only views of them (`list`, `policy`). A state change is sent with the owner's key through
//! [`crate::admin`], or with `--calldata-only` printed (`to`, `value`, calldata) for a multisig or
//! timelock owner to submit.

mod rotate;
mod view;

use crate::{
    admin::{self, call},
    args::{hex_n, load_event_log, offline_verifier, read_bytes, Contract, PolicyArgs, RpcUrl, SecretKey},
};
use alloy::{
    eips::BlockId,
    primitives::{Address, B256, U256},
    sol_types::SolCall,
};
use anyhow::Context as _;
use clap::{ArgGroup, Args, Subcommand};
use replicatoor_audit::describe::OsDescription;
use replicatoor_chain::{Chain, TxOutcome};
use replicatoor_core::{
    attest::quote::Measurements,
    protocol::{app_reference_id, os_reference_id},
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::{path::PathBuf, process::ExitCode};

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Propose an OS reference (MRTD, RTMR0-2), usable after the contract's widening delay; optionally
    /// publish the OS image hash and release it stands for.
    ProposeOs(ProposeOs),
    /// Propose an app reference (compose hash), usable after the contract's widening delay; with
    /// `--compose` the app-compose.json itself is published in the same call.
    ProposeApp(ProposeApp),
    /// Revoke a reference (immediate).
    Revoke(Revoke),
    /// End a reference at a future time (a grace period; narrowing, so immediate; can only be brought
    /// forward).
    ScheduleExpiry(ScheduleExpiry),
    /// Propose a new app version (its compose published) and end the old one after a grace period.
    Supersede(Supersede),
    /// Set the policy (narrowing is immediate, widening waits for the delay).
    SetPolicy(SetPolicy),
    /// Verify a genesis proposal's quote as a holder would, and approve it. The first genesis takes
    /// effect at once; a re-bootstrap (a cluster exists) is scheduled for the contract's widening delay.
    ApproveGenesis(ApproveGenesis),
    /// Run the scheduled re-bootstrap once its time has come (anyone may).
    ExecuteBootstrap(TxOnly),
    /// Cancel the scheduled re-bootstrap (owner; immediate).
    CancelBootstrap(TxOnly),
    /// Rotate the cluster key: start, cancel, or verify and approve a proposal (in force at once: the
    /// current cluster endorsed it).
    #[command(subcommand)]
    Rotate(rotate::RotateCommand),
    /// Active, pending and revoked references (from events), the current and the pending policy.
    List(view::List),
    /// The policy in force, the pending policy, the widening delay and the owner.
    Policy(view::ReadArgs),
}

/// Where and as whom to send. With `--calldata-only` nothing is sent and neither key nor RPC is needed
/// (the RPC only where the command reads the chain first).
#[derive(Debug, Args)]
#[command(
    mut_arg("rpc_url", |a| a.help("JSON-RPC endpoint to send through (with --calldata-only, needed only by a \
        command that reads the chain first)")),
    mut_arg("contract", |a| a.required(true)),
)]
pub struct TxArgs {
    #[command(flatten)]
    pub rpc: RpcUrl,
    #[command(flatten)]
    pub contract: Contract,
    /// The owner's private key (hex).
    #[arg(long, env = "REPLICATOOR_SENDER_KEY", hide_env_values = true)]
    pub sender_key: Option<SecretKey>,
    /// Human note recorded in the event.
    #[arg(long, default_value = "")]
    pub note: String,
    /// Print `to`, `value` and the hex calldata (for a multisig or timelock) instead of sending.
    #[arg(long)]
    pub calldata_only: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

impl TxArgs {
    /// The contract's address (clap requires it).
    fn address(&self) -> anyhow::Result<Address> {
        self.contract.require("to address the transaction")
    }
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("measurements").required(true).args(["simulated", "quote", "mrtd"])))]
pub struct ProposeOs {
    #[command(flatten)]
    pub tx: TxArgs,
    /// The simulated OS measurements (dev).
    #[arg(long)]
    pub simulated: bool,
    /// Take MRTD and RTMR0-2 from this quote (binary or hex; not verified: use verify-quote first).
    #[arg(long)]
    pub quote: Option<PathBuf>,
    #[arg(long, requires_all = ["rtmr0", "rtmr1", "rtmr2"])]
    pub mrtd: Option<String>,
    #[arg(long, requires = "mrtd")]
    pub rtmr0: Option<String>,
    #[arg(long, requires = "mrtd")]
    pub rtmr1: Option<String>,
    #[arg(long, requires = "mrtd")]
    pub rtmr2: Option<String>,
    /// Dstack's OS image hash (hex) this OS reference stands for, published with the proposal
    /// (`audit` compares it with the `os-image-hash` event of every accepted quote).
    #[arg(long)]
    pub os_image_hash: Option<String>,
    /// Take the OS image hash from this event log's `os-image-hash` event (Dstack JSON or compact).
    #[arg(long, conflicts_with = "os_image_hash")]
    pub event_log: Option<PathBuf>,
    /// Release note or URL of the OS image, published with the proposal.
    #[arg(long)]
    pub release: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("app").required(true).args(["compose", "compose_hash"])))]
pub struct ProposeApp {
    #[command(flatten)]
    pub tx: TxArgs,
    /// app-compose.json: its sha256 is the compose hash, and the file itself is published on chain
    /// with the proposal, so auditors see exactly what was approved.
    #[arg(long)]
    pub compose: Option<PathBuf>,
    /// The compose hash alone (nothing published: auditors cannot see what it runs).
    #[arg(long)]
    pub compose_hash: Option<String>,
}

#[derive(Debug, Args)]
pub struct ScheduleExpiry {
    #[command(flatten)]
    pub tx: TxArgs,
    /// The reference id (hex, 32 bytes).
    #[arg(long)]
    pub id: String,
    /// When it ends, in unix seconds.
    #[arg(long, conflicts_with = "grace", required_unless_present = "grace")]
    pub at: Option<u64>,
    /// When it ends, in seconds from the chain's latest block (needs --rpc-url).
    #[arg(long)]
    pub grace: Option<u64>,
}

#[derive(Debug, Args)]
pub struct Supersede {
    #[command(flatten)]
    pub tx: TxArgs,
    /// The app reference id being superseded (hex, 32 bytes).
    #[arg(long)]
    pub old: String,
    /// The new version's app-compose.json (proposed and published).
    #[arg(long)]
    pub new_compose: PathBuf,
    /// Seconds, from the chain's latest block, during which the old version is still served. At least
    /// the contract's widening delay, or no version is usable for a while.
    #[arg(long)]
    pub grace: u64,
}

#[derive(Debug, Args)]
pub struct TxOnly {
    #[command(flatten)]
    pub tx: TxArgs,
}

#[derive(Debug, Args)]
pub struct Revoke {
    #[command(flatten)]
    pub tx: TxArgs,
    /// The reference id (hex, 32 bytes).
    #[arg(long)]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct SetPolicy {
    #[command(flatten)]
    pub tx: TxArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// The proposal is read from the chain and verified here even with `--calldata-only` (which then
/// needs `--rpc-url` but no key): an owner never approves a quote it has not checked.
#[derive(Debug, Args)]
pub struct ApproveGenesis {
    #[command(flatten)]
    pub tx: TxArgs,
    #[arg(long)]
    pub proposal: u64,
    #[command(flatten)]
    pub check: QuoteCheck,
}

/// How an owner verifies a proposal's quote before approving it (genesis and rotation alike).
#[derive(Debug, Args)]
pub struct QuoteCheck {
    /// Trust the simulated PKI when verifying (dev only).
    #[arg(long)]
    pub allow_simulated_quotes: bool,
    /// Collateral for a genuine quote: `<fmspc>.json` files (dcap-qvl QuoteCollateralV3).
    #[arg(long)]
    pub collateral_dir: Option<PathBuf>,
}

impl QuoteCheck {
    fn verifier(&self) -> anyhow::Result<replicatoor_core::attest::Verifier> {
        offline_verifier(self.collateral_dir.clone(), self.allow_simulated_quotes)
    }
}

pub async fn run(cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::ProposeOs(a) => propose_os(a).await?,
        AdminCommand::ProposeApp(a) => propose_app(a).await?,
        AdminCommand::Revoke(a) => revoke(a).await?,
        AdminCommand::ScheduleExpiry(a) => schedule_expiry(a).await?,
        AdminCommand::Supersede(a) => supersede(a).await?,
        AdminCommand::SetPolicy(a) => set_policy(a).await?,
        AdminCommand::ApproveGenesis(a) => approve_genesis(a).await?,
        AdminCommand::ExecuteBootstrap(a) => bootstrap(&a.tx, true).await?,
        AdminCommand::CancelBootstrap(a) => bootstrap(&a.tx, false).await?,
        AdminCommand::Rotate(a) => rotate::run(a).await?,
        AdminCommand::List(a) => view::list(a).await?,
        AdminCommand::Policy(a) => view::policy(a).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn propose_os(a: ProposeOs) -> anyhow::Result<()> {
    let m = if a.simulated {
        crate::simulated::os_measurements()?
    } else if let Some(q) = &a.quote {
        let (_, _, m) = Measurements::parse_unverified(&read_bytes(q)?).map_err(|e| anyhow::anyhow!("quote: {e}"))?;
        let m = m.context("not a TD quote")?;
        [m.mr_td, m.rtmr[0], m.rtmr[1], m.rtmr[2]]
    } else {
        let get = |n: &str, v: &Option<String>| hex_n::<48>(n, v.as_deref().unwrap_or_default());
        [get("mrtd", &a.mrtd)?, get("rtmr0", &a.rtmr0)?, get("rtmr1", &a.rtmr1)?, get("rtmr2", &a.rtmr2)?]
    };
    let tx = &a.tx;
    let id = os_reference_id(&m[0], &m[1], &m[2], &m[3]);
    let image = match &a.event_log {
        Some(p) => {
            let log = load_event_log(p)?.runtime;
            let info = log.app_info().map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            Some(hex::encode(
                info.os_image_hash.with_context(|| format!("{} has no os-image-hash event", p.display()))?,
            ))
        }
        None => a.os_image_hash.clone(),
    };
    let description = OsDescription::new(image.as_deref(), a.release.as_deref())?;
    let bytes = description.as_ref().map(OsDescription::to_bytes).unwrap_or_default();
    let mut info = json!({ "id": id, "kind": "os" });
    if let (Some(d), Some(obj)) = (&description, info.as_object_mut()) {
        obj.insert("os_image_hash".into(), d.os_image_hash.clone().into());
        obj.insert("release".into(), d.release.clone().into());
    }
    if tx.calldata_only {
        return print_calldata(tx, call::propose_os(&m, &tx.note, &bytes).abi_encode(), info);
    }
    let (_, o) = admin::propose_os(&connect(tx).await?, m, &tx.note, &bytes).await?;
    done(tx, info, &o, format!("os reference {id} proposed"))
}

async fn propose_app(a: ProposeApp) -> anyhow::Result<()> {
    let (h, compose) = match (&a.compose, &a.compose_hash) {
        (Some(p), _) => {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            warn_unmeasured(&bytes);
            (Sha256::digest(&bytes).into(), bytes)
        }
        (None, Some(h)) => {
            eprintln!("note: with --compose-hash the compose is not published; auditors see only its hash");
            (hex_n::<32>("compose hash", h)?, Vec::new())
        }
        (None, None) => anyhow::bail!("pass --compose FILE or --compose-hash HEX"),
    };
    let tx = &a.tx;
    let id = app_reference_id(&h);
    let info = json!({
        "id": id, "kind": "app", "compose_hash": hex::encode(h), "compose_published_bytes": compose.len()
    });
    if tx.calldata_only {
        return print_calldata(tx, call::propose_app(&h, &tx.note, &compose).abi_encode(), info);
    }
    let (_, o) = admin::propose_app(&connect(tx).await?, h, &tx.note, &compose).await?;
    done(tx, info, &o, format!("app reference {id} (compose hash {}) proposed", hex::encode(h)))
}

/// Tell the owner, before it signs, what `audit` will flag about this compose.
fn warn_unmeasured(compose: &[u8]) {
    match replicatoor_audit::compose::check(compose) {
        Ok(r) => {
            eprintln!("trust mode its nodes run in: {}", r.trust_mode());
            for u in &r.unmeasured {
                eprintln!("warning: {}: {} is unmeasured ({})", u.service, u.setting, u.source);
            }
        }
        Err(e) => eprintln!("warning: the compose cannot be analysed: {e}"),
    }
}

/// The chain's latest block time, the base of a grace period (its clock, not this machine's).
async fn chain_now(tx: &TxArgs) -> anyhow::Result<u64> {
    let chain = read_only(tx, "to read the chain's time").await?;
    let head = chain.head().await?;
    Ok(chain.block(head).await?.timestamp)
}

async fn schedule_expiry(a: ScheduleExpiry) -> anyhow::Result<()> {
    let id: B256 = hex_n::<32>("id", &a.id)?.into();
    let tx = &a.tx;
    let at = match (a.at, a.grace) {
        (Some(at), _) => at,
        (None, Some(g)) => chain_now(tx).await? + g,
        (None, None) => anyhow::bail!("pass --at UNIX_SECONDS or --grace SECONDS"),
    };
    let info = json!({ "id": id, "expires_at": at });
    if tx.calldata_only {
        return print_calldata(tx, call::schedule_expiry(id, at, &tx.note).abi_encode(), info);
    }
    let o = admin::schedule_expiry(&connect(tx).await?, id, at, &tx.note).await?;
    done(tx, info, &o, format!("reference {id} ends at {at} (unix seconds)"))
}

async fn supersede(a: Supersede) -> anyhow::Result<()> {
    let old: B256 = hex_n::<32>("old", &a.old)?.into();
    let bytes = std::fs::read(&a.new_compose).with_context(|| format!("reading {}", a.new_compose.display()))?;
    warn_unmeasured(&bytes);
    let h: [u8; 32] = Sha256::digest(&bytes).into();
    let new = app_reference_id(&h);
    let tx = &a.tx;
    let now = chain_now(tx).await?;
    let delay = read_only(tx, "to read the widening delay").await?.contract().wideningDelay().call().await?;
    if a.grace < delay {
        eprintln!(
            "warning: the grace period ({} s) is shorter than the widening delay ({delay} s): the old version ends              before the new one is usable",
            a.grace
        );
    }
    let at = now + a.grace;
    let info = json!({ "new_id": new, "old_id": old, "old_expires_at": at, "new_usable_from_about": now + delay });
    if tx.calldata_only {
        let propose = format!("0x{}", hex::encode(call::propose_app(&h, &tx.note, &bytes).abi_encode()));
        let expire = format!("0x{}", hex::encode(call::schedule_expiry(old, at, &tx.note).abi_encode()));
        let both = json!({ "to": tx.address()?, "value": "0", "calls": [propose, expire], "info": info });
        println!("{}", serde_json::to_string_pretty(&both)?);
        return Ok(());
    }
    let chain = connect(tx).await?;
    admin::propose_app(&chain, h, &tx.note, &bytes).await?;
    let o = admin::schedule_expiry(&chain, old, at, &tx.note).await?;
    done(tx, info, &o, format!("app reference {new} proposed; {old} ends at {at} (unix seconds)"))
}

async fn revoke(a: Revoke) -> anyhow::Result<()> {
    let id: B256 = hex_n::<32>("id", &a.id)?.into();
    let tx = &a.tx;
    if tx.calldata_only {
        return print_calldata(tx, call::revoke(id, &tx.note).abi_encode(), json!({ "id": id }));
    }
    let o = admin::revoke(&connect(tx).await?, id, &tx.note).await?;
    done(tx, json!({ "id": id }), &o, format!("reference {id} revoked"))
}

async fn set_policy(a: SetPolicy) -> anyhow::Result<()> {
    let tx = &a.tx;
    // Without the flag the floor in force is kept: lowering it is a widening, which nobody should
    // schedule by leaving out a flag.
    let floor = match a.policy.min_tcb_evaluation_data_number {
        Some(n) => n,
        None => {
            let why = "to read the floor in force, which is kept without --min-tcb-evaluation-data-number";
            read_only(tx, why).await?.policy_at(BlockId::latest()).await?.min_tcb_evaluation_data_number
        }
    };
    let p = a.policy.policy(floor);
    if floor == 0 {
        eprintln!(
            "WARNING: TCB evaluation floor 0: holders judge quotes with collateral of any age (the newest evaluation \
             this release knows is {}; the audit reports a 0 floor)",
            replicatoor_core::attest::NEWEST_TCB_EVALUATION_DATA_NUMBER
        );
    }
    if tx.calldata_only {
        return print_calldata(tx, call::set_policy(p, &tx.note).abi_encode(), json!({}));
    }
    let o = admin::set_policy(&connect(tx).await?, p, &tx.note).await?;
    let what = "policy set (the narrowing part applies now, any widening after the contract's delay)";
    done(tx, json!({}), &o, what.into())
}

async fn approve_genesis(a: ApproveGenesis) -> anyhow::Result<()> {
    let tx = &a.tx;
    let why = "to read and verify the proposal on chain";
    tx.rpc.require(why)?;
    let verifier = a.check.verifier()?;
    let proposal = U256::from(a.proposal);
    let chain = if tx.calldata_only { read_only(tx, why).await? } else { connect(tx).await? };
    let g = admin::verify_genesis(&chain, &verifier, proposal).await?;
    let info = json!({
        "proposal": a.proposal,
        "cluster": g.cluster,
        "epoch": g.epoch,
        "os_reference_id": g.os_ref,
        "app_reference_id": g.app_ref,
    });
    let call = call::approve_genesis(&g, &tx.note);
    if tx.calldata_only {
        return print_calldata(tx, call.abi_encode(), info);
    }
    let o = chain.send(chain.contract().call_builder(&call)).await?;
    done(tx, info, &o, format!("genesis proposal {} verified and approved", a.proposal))
}

/// Execute (anyone) or cancel (owner) the scheduled re-bootstrap.
async fn bootstrap(tx: &TxArgs, execute: bool) -> anyhow::Result<()> {
    let calldata =
        if execute { call::execute_bootstrap().abi_encode() } else { call::cancel_bootstrap(&tx.note).abi_encode() };
    if tx.calldata_only {
        return print_calldata(tx, calldata, json!({}));
    }
    let chain = connect(tx).await?;
    let o = if execute {
        admin::execute_bootstrap(&chain).await?
    } else {
        chain.send(chain.contract().call_builder(&call::cancel_bootstrap(&tx.note))).await?
    };
    let what = if execute { "scheduled re-bootstrap executed" } else { "scheduled re-bootstrap cancelled" };
    done(tx, json!({}), &o, what.into())
}

/// The transaction for a multisig: nothing is sent. `info` (an object) adds what the call concerns.
fn print_calldata(tx: &TxArgs, calldata: Vec<u8>, info: Value) -> anyhow::Result<()> {
    let to = tx.address()?;
    let data = format!("0x{}", hex::encode(calldata));
    if tx.json {
        let mut out = json!({ "to": to, "value": "0", "calldata": data });
        if let (Some(out), Value::Object(info)) = (out.as_object_mut(), info) {
            out.extend(info);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("to:       {to}\nvalue:    0\ncalldata: {data}");
    for (k, v) in info.as_object().into_iter().flatten() {
        println!("{:<10}{}", format!("{k}:"), v.as_str().map_or_else(|| v.to_string(), str::to_string));
    }
    Ok(())
}

/// What a sent transaction did: `info` (an object) plus block and transaction hash.
fn done(tx: &TxArgs, info: Value, o: &TxOutcome, what: String) -> anyhow::Result<()> {
    if tx.json {
        let mut out = json!({ "block": o.block, "tx": o.tx_hash });
        if let (Some(out), Value::Object(info)) = (out.as_object_mut(), info) {
            out.extend(info);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{what} in block {} (tx {})", o.block, o.tx_hash);
    }
    Ok(())
}

async fn connect(tx: &TxArgs) -> anyhow::Result<Chain> {
    let url = tx.rpc.require("(or pass --calldata-only)")?;
    let key = tx.sender_key.as_ref().context("--sender-key is required (or pass --calldata-only)")?;
    Ok(Chain::connect(url, tx.address()?, Some(key.signer().context("sender key")?)).await?)
}

/// A read-only client, for what a command reads from the chain (`why`, for the error without --rpc-url).
async fn read_only(tx: &TxArgs, why: &str) -> anyhow::Result<Chain> {
    Ok(Chain::connect(tx.rpc.require(why)?, tx.address()?, None).await?)
}
