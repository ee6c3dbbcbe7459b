//! `admin list` and `admin policy`: read-only views of the trust root (no key needed). `list` reads
//! events as the audit does; both read the contract's policy views.

use alloy::primitives::Address;
use anyhow::Context as _;
use clap::Args;
use replicatoor_audit::{
    approvals,
    collect::{collect, Blocks, ScanOptions},
    model::PolicyView,
    render_text::{fmt_policy, fmt_time, os_line, trust_mode_line},
    state::State,
};
use replicatoor_chain::Chain;
use replicatoor_core::protocol::Policy;
use serde_json::json;

/// Where to read from.
#[derive(Debug, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    pub target: crate::args::ReadTarget,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct List {
    #[command(flatten)]
    pub target: ReadArgs,
    /// First block to scan (default: the deployment block).
    #[arg(long)]
    pub from_block: Option<u64>,
}

/// The contract's policy views.
struct Views {
    policy: Policy,
    /// The pending policy and when it takes effect.
    pending: Option<(Policy, u64)>,
    widening_delay: u64,
    owner: Address,
}

impl Views {
    async fn read(chain: &Chain) -> anyhow::Result<Self> {
        let c = chain.contract();
        let policy: Policy = c.policy().call().await.context("policy()")?.into();
        let pending = c.pendingPolicy().call().await.context("pendingPolicy()")?;
        let widening_delay = c.wideningDelay().call().await.context("wideningDelay()")?;
        let owner = c.owner().call().await.context("owner()")?;
        let pending = (pending.activatesAt != 0).then(|| (pending.p.into(), pending.activatesAt));
        Ok(Views { policy, pending, widening_delay, owner })
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "policy": PolicyView::from(self.policy),
            "pending_policy": self.pending.map(|(p, at)| json!({ "policy": PolicyView::from(p), "effective_at": at })),
            "widening_delay": self.widening_delay,
            "owner": self.owner,
        })
    }

    fn print_policy(&self) {
        println!("policy:         {}", fmt_policy(&self.policy.into()));
        match self.pending {
            Some((p, at)) => println!("pending policy: {} from {}", fmt_policy(&p.into()), fmt_time(at)),
            None => println!("pending policy: none"),
        }
    }
}

async fn connect(t: &ReadArgs) -> anyhow::Result<Chain> {
    t.target.connect().await
}

pub async fn policy(t: ReadArgs) -> anyhow::Result<()> {
    let v = Views::read(&connect(&t).await?).await?;
    if t.json {
        println!("{}", serde_json::to_string_pretty(&v.json())?);
    } else {
        v.print_policy();
        println!("widening delay: {} s", v.widening_delay);
        println!("owner:          {}", v.owner);
    }
    Ok(())
}

pub async fn list(a: List) -> anyhow::Result<()> {
    let chain = connect(&a.target).await?;
    let blocks = Blocks::new(&chain);
    let h = collect(&chain, &blocks, ScanOptions { from_block: a.from_block, to_block: None, progress: true }).await?;
    let state = State::from_history(&h);
    let mut refs = state.references(h.to_time);
    approvals::annotate_references(&state, h.deployment, &mut refs);
    let v = Views::read(&chain).await?;
    if a.target.json {
        let mut out = v.json();
        out["references"] = serde_json::to_value(&refs)?;
        out["at_block"] = h.to_block.into();
        println!("{}", serde_json::to_string_pretty(&out)?);
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
            // What the proposal published (`audit` shows the rest and its findings).
            match (&r.app, &r.os) {
                (Some(app), _) => println!("      trust mode: {}", trust_mode_line(app)),
                (_, Some(os)) => println!("      {}", os_line(os).escape_debug()),
                _ => {}
            }
        }
    }
    v.print_policy();
    println!("widening delay: {} s; owner {}; as of block {}", v.widening_delay, v.owner, h.to_block);
    Ok(())
}
