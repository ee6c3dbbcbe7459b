//! `replicatoor reference list|propose|revoke|policy`: the owner's view and controls of the trust
//! root. `list` reads events (as the audit does); state-changing commands send through
//! [`crate::admin`] or, with `--calldata-only`, print the transaction for a multisig to sign.

use crate::{
    admin,
    audit_cmd::{ReadTarget, ReferenceCommand, WriteTarget},
    cli::{hex_n, read_bytes},
};
use alloy::{
    primitives::{Address, Bytes, B256},
    sol_types::SolCall,
};
use anyhow::Context as _;
use replicatoor_audit::{
    collect::{collect, Blocks, ScanOptions},
    model::PolicyView,
    render_text::{fmt_policy, fmt_time},
    state::State,
};
use replicatoor_chain::{bindings::UpgradeOperator as Op, Chain};
use replicatoor_core::{
    attest::quote::Measurements,
    protocol::{app_reference_id, os_reference_id, Policy},
};
use sha2::{Digest, Sha256};

/// Run one `reference` subcommand.
pub async fn run(cmd: ReferenceCommand) -> anyhow::Result<()> {
    match cmd {
        ReferenceCommand::List { target, from_block } => list(&target, from_block).await,
        ReferenceCommand::Propose { target, quote, mrtd, rtmr0, rtmr1, rtmr2, simulated_os, compose, compose_hash } => {
            let what = if simulated_os {
                Proposal::Os(crate::simulated::os_measurements()?)
            } else if let Some(q) = quote {
                let (_, _, m) =
                    Measurements::parse_unverified(&read_bytes(&q)?).map_err(|e| anyhow::anyhow!("quote: {e}"))?;
                let m = m.context("not a TD quote")?;
                Proposal::Os([m.mr_td, m.rtmr[0], m.rtmr[1], m.rtmr[2]])
            } else if let Some(mrtd) = mrtd {
                let get = |n: &str, v: &Option<String>| hex_n::<48>(n, v.as_deref().unwrap_or_default());
                Proposal::Os([
                    hex_n::<48>("mrtd", &mrtd)?,
                    get("rtmr0", &rtmr0)?,
                    get("rtmr1", &rtmr1)?,
                    get("rtmr2", &rtmr2)?,
                ])
            } else if let Some(p) = compose {
                let raw = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
                Proposal::App(Sha256::digest(raw).into())
            } else if let Some(h) = compose_hash {
                Proposal::App(hex_n::<32>("compose hash", &h)?)
            } else {
                anyhow::bail!(
                    "pass --quote, --mrtd/--rtmr0..2 or --simulated-os (OS), or --compose/--compose-hash (app)"
                );
            };
            propose(&target, what).await
        }
        ReferenceCommand::Revoke { target, id } => {
            let id: B256 = hex_n::<32>("id", &id)?.into();
            if target.calldata_only {
                return print_calldata(
                    &target,
                    Op::revokeReferenceCall { id, note: target.note.clone() }.abi_encode(),
                    None,
                );
            }
            let o = admin::revoke(&connect(&target).await?, id, &target.note).await?;
            done(&target, serde_json::json!({ "id": id, "block": o.block, "tx": o.tx_hash }), || {
                format!("reference {id} revoked in block {} (tx {})", o.block, o.tx_hash)
            })
        }
        ReferenceCommand::Policy { target, set, policy } => {
            if !set {
                return show_policy(&target).await;
            }
            let p = policy.policy();
            if target.calldata_only {
                let call = Op::setPolicyCall { p: p.into(), note: target.note.clone() };
                return print_calldata(&target, call.abi_encode(), None);
            }
            let o = admin::set_policy(&connect(&target).await?, p, &target.note).await?;
            done(&target, serde_json::json!({ "block": o.block, "tx": o.tx_hash }), || {
                format!(
                    "policy set in block {} (tx {}): the narrowing part applies now, any widening after the contract's delay",
                    o.block, o.tx_hash
                )
            })
        }
    }
}

enum Proposal {
    Os([[u8; 48]; 4]),
    App([u8; 32]),
}

async fn propose(target: &WriteTarget, what: Proposal) -> anyhow::Result<()> {
    let note = target.note.clone();
    let (id, calldata, kind) = match &what {
        Proposal::Os(m) => {
            let [mrtd, rtmr0, rtmr1, rtmr2] = m.map(|x| Bytes::copy_from_slice(&x));
            let call = Op::proposeOsReferenceCall { mrtd, rtmr0, rtmr1, rtmr2, note };
            (os_reference_id(&m[0], &m[1], &m[2], &m[3]), call.abi_encode(), "os")
        }
        Proposal::App(h) => {
            let call = Op::proposeAppReferenceCall { composeHash: (*h).into(), note };
            (app_reference_id(h), call.abi_encode(), "app")
        }
    };
    if target.calldata_only {
        return print_calldata(target, calldata, Some(id));
    }
    let chain = connect(target).await?;
    let (_, o) = match what {
        Proposal::Os(m) => admin::propose_os(&chain, m, &target.note).await?,
        Proposal::App(h) => admin::propose_app(&chain, h, &target.note).await?,
    };
    done(target, serde_json::json!({ "id": id, "kind": kind, "block": o.block, "tx": o.tx_hash }), || {
        format!("{kind} reference {id} proposed in block {} (tx {})", o.block, o.tx_hash)
    })
}

fn print_calldata(target: &WriteTarget, calldata: Vec<u8>, id: Option<B256>) -> anyhow::Result<()> {
    let to: Address = target.contract.parse().context("contract address")?;
    let data = format!("0x{}", hex::encode(calldata));
    if target.json {
        let mut v = serde_json::json!({ "to": to, "calldata": data, "value": "0" });
        if let Some(id) = id {
            v["id"] = id.to_string().into();
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("to:       {to}");
        println!("value:    0");
        println!("calldata: {data}");
        if let Some(id) = id {
            println!("id:       {id}");
        }
    }
    Ok(())
}

fn done(target: &WriteTarget, json: serde_json::Value, text: impl FnOnce() -> String) -> anyhow::Result<()> {
    if target.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("{}", text());
    }
    Ok(())
}

async fn connect(target: &WriteTarget) -> anyhow::Result<Chain> {
    let url = target.rpc_url.as_deref().context("--rpc-url is required (or pass --calldata-only)")?;
    let key = target.sender_key.as_deref().context("--sender-key is required (or pass --calldata-only)")?;
    let key = key.trim().parse().context("sender key")?;
    let contract = target.contract.parse().context("contract address")?;
    Ok(Chain::connect(url, contract, Some(key)).await?)
}

async fn read_only(url: &str, contract: &str) -> anyhow::Result<Chain> {
    Ok(Chain::connect(url, contract.parse().context("contract address")?, None).await?)
}

/// The contract's views: (policy, pending policy and its time, widening delay, owner).
async fn views(chain: &Chain) -> anyhow::Result<(Policy, Option<(Policy, u64)>, u64, Address)> {
    let c = chain.contract();
    let policy: Policy = c.policy().call().await.context("policy()")?.into();
    let pending = c.pendingPolicy().call().await.context("pendingPolicy()")?;
    let delay = c.wideningDelay().call().await.context("wideningDelay()")?;
    let owner = c.owner().call().await.context("owner()")?;
    let pending = (pending.activatesAt != 0).then(|| (pending.p.into(), pending.activatesAt));
    Ok((policy, pending, delay, owner))
}

async fn show_policy(target: &WriteTarget) -> anyhow::Result<()> {
    let url = target.rpc_url.as_deref().context("--rpc-url is required to show the policy")?;
    let chain = read_only(url, &target.contract).await?;
    let (policy, pending, delay, owner) = views(&chain).await?;
    if target.json {
        let v = serde_json::json!({
            "policy": PolicyView::from(policy),
            "pending_policy": pending.map(|(p, at)| serde_json::json!({ "policy": PolicyView::from(p), "effective_at": at })),
            "widening_delay": delay,
            "owner": owner,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("policy:         {}", fmt_policy(&policy.into()));
        match pending {
            Some((p, at)) => println!("pending policy: {} from {}", fmt_policy(&p.into()), fmt_time(at)),
            None => println!("pending policy: none"),
        }
        println!("widening delay: {delay} s");
        println!("owner:          {owner}");
    }
    Ok(())
}

async fn list(target: &ReadTarget, from_block: Option<u64>) -> anyhow::Result<()> {
    let chain = read_only(&target.rpc_url, &target.contract).await?;
    let blocks = Blocks::new(&chain);
    let h = collect(&chain, &blocks, ScanOptions { from_block, to_block: None, progress: true }).await?;
    let refs = State::from_history(&h).references(h.to_time);
    let (policy, pending, delay, owner) = views(&chain).await?;
    if target.json {
        let v = serde_json::json!({
            "references": refs,
            "policy": PolicyView::from(policy),
            "pending_policy": pending.map(|(p, at)| serde_json::json!({ "policy": PolicyView::from(p), "effective_at": at })),
            "widening_delay": delay,
            "owner": owner,
            "at_block": h.to_block,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for status in ["active", "pending", "revoked"] {
        let these: Vec<_> = refs.iter().filter(|r| r.status == status).collect();
        println!("{status} ({}):", these.len());
        for r in these {
            println!(
                "  {:<3} {}  active from {}  note {:?}{}",
                r.ref_kind.as_str(),
                r.id,
                fmt_time(r.activates_at),
                r.note,
                r.revoked_block.map_or(String::new(), |b| format!("  revoked in block {b} ({:?})", r.revoke_note))
            );
        }
    }
    println!("policy:         {}", fmt_policy(&policy.into()));
    match pending {
        Some((p, at)) => println!("pending policy: {} from {}", fmt_policy(&p.into()), fmt_time(at)),
        None => println!("pending policy: none"),
    }
    println!("widening delay: {delay} s; owner {owner}; as of block {}", h.to_block);
    Ok(())
}
