//! `replicatoor preflight`: would this node be accepted now, and after each change already scheduled
//! on chain (a pending policy, a reference's activation or end)? Each answer names the refusal that
//! would apply, or `accepted`, so an app's deployment pipeline can stop before it ships a version the
//! cluster will refuse, or one that is about to be cut off.
//!
//! With `--quote`/`--event-log` the quote runs through the holders' own pipeline at each time (with
//! `--collateral-dir` for genuine quotes); with `--compose`/`--os-ref` only the references are checked.
//! It reads the chain through the given RPC: an advisory tool for operators, not a TD's decision.

use crate::{
    cli::{hex_n, load_event_log, offline_verifier, read_bytes, sha256_file},
    provider::Attestation,
};
use alloy::primitives::{Address, B256};
use anyhow::Context as _;
use replicatoor_chain::Chain;
use replicatoor_core::{
    attest::{
        pipeline::{self, Context, Decision, References},
        RequestBinding,
    },
    protocol::{app_reference_id, Policy, RefKind},
    refusal::Refusal,
};
use serde_json::json;
use std::{path::PathBuf, process::ExitCode};

/// Exit code: accepted now, refused after a change already scheduled on chain.
pub const EXIT_REFUSED_LATER: u8 = 6;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, env = "REPLICATOOR_RPC_URL")]
    pub rpc_url: String,
    #[arg(long, env = "REPLICATOOR_CONTRACT")]
    pub contract: String,
    /// The node's quote (raw or hex), checked as a holder would check its request.
    #[arg(long, requires_all = ["event_log", "requester", "pubkey"], conflicts_with_all = ["compose", "os_ref"])]
    pub quote: Option<PathBuf>,
    /// The node's event log (Dstack JSON, a GetQuote response, or compact).
    #[arg(long)]
    pub event_log: Option<PathBuf>,
    /// The account the node posts its request from (the quote's report_data binds it).
    #[arg(long)]
    pub requester: Option<Address>,
    /// The node's HPKE public key (hex; the quote's report_data binds it).
    #[arg(long)]
    pub pubkey: Option<String>,
    /// The app-compose.json the node runs (references only, no quote).
    #[arg(long, requires = "os_ref")]
    pub compose: Option<PathBuf>,
    /// The OS reference id the node runs under (with --compose).
    #[arg(long)]
    pub os_ref: Option<String>,
    /// Collateral files (`<fmspc>….json`) for a genuine quote.
    #[arg(long)]
    pub collateral_dir: Option<PathBuf>,
    /// Trust the simulated PKI (dev only).
    #[arg(long)]
    pub allow_simulated_quotes: bool,
    #[arg(long)]
    pub json: bool,
}

/// A reference's record as `getReference` returns it.
#[derive(Debug, Clone, Copy)]
struct Record {
    kind: u8,
    activates_at: u64,
    revoked: bool,
    expires_at: u64,
}

impl Record {
    /// `isAllowed(id, kind)` at time `t`, as the contract computes it.
    fn allowed(&self, kind: RefKind, t: u64) -> bool {
        self.kind == kind as u8
            && self.kind != 0
            && !self.revoked
            && t >= self.activates_at
            && (self.expires_at == 0 || t < self.expires_at)
    }
}

/// The two references a node runs under, answered at one time.
struct RefsAt {
    os: (B256, Record),
    app: (B256, Record),
    t: u64,
}

impl References for RefsAt {
    type Error = std::convert::Infallible;
    async fn is_allowed(&self, id: B256, kind: RefKind) -> Result<bool, Self::Error> {
        Ok([self.os, self.app].iter().any(|(i, r)| *i == id && r.allowed(kind, self.t)))
    }
}

pub async fn run(a: Args) -> anyhow::Result<ExitCode> {
    let chain = Chain::connect(&a.rpc_url, a.contract.parse().context("contract address")?, None).await?;
    let (os_ref, app_ref, quote) = match (&a.quote, &a.compose) {
        (Some(q), _) => {
            let log_path = a.event_log.as_ref().context("--event-log is required with --quote")?;
            let att = Attestation {
                quote: read_bytes(q)?,
                event_log: load_event_log(log_path)?.to_compact().context("compacting the event log")?,
            };
            let (os, app) = att.claimed_references();
            let os = os.context("the quote carries no readable TD report")?;
            let app = app.context("the event log names no compose hash")?;
            (os, app, Some((att.quote, att.event_log)))
        }
        (None, Some(c)) => {
            let os = hex_n::<32>("--os-ref", a.os_ref.as_deref().context("--os-ref is required with --compose")?)?;
            (B256::from(os), app_reference_id(&sha256_file(c)?), None)
        }
        (None, None) => {
            anyhow::bail!("pass --quote with --event-log, --requester and --pubkey, or --compose with --os-ref")
        }
    };
    let c = chain.contract();
    let record = |r: replicatoor_chain::UpgradeOperator::Reference| Record {
        kind: r.kind,
        activates_at: r.activatesAt,
        revoked: r.revoked,
        expires_at: r.expiresAt,
    };
    let os = (os_ref, record(c.getReference(os_ref).call().await.context("reading the OS reference")?));
    let app = (app_ref, record(c.getReference(app_ref).call().await.context("reading the app reference")?));
    let current: Policy = c.policy().call().await.context("reading the policy")?.into();
    let pending = c.pendingPolicy().call().await.context("reading the pending policy")?;
    let (pending_policy, pending_at): (Policy, u64) = (pending.p.into(), pending.activatesAt);
    let head = chain.head().await?;
    let now = chain.block(head).await?.timestamp;

    // Every time at which the answer can change: now, then each change already scheduled.
    let mut points = vec![(now, "now".to_string())];
    if pending_at > now {
        points.push((pending_at, "the pending policy takes effect".into()));
    }
    for (name, (_, r)) in [("OS", os), ("app", app)] {
        if r.activates_at > now {
            points.push((r.activates_at, format!("the {name} reference activates")));
        }
        if r.expires_at > now {
            points.push((r.expires_at, format!("the {name} reference ends")));
        }
    }
    points.sort_by_key(|(t, _)| *t);

    let verifier = offline_verifier(a.collateral_dir.clone(), a.allow_simulated_quotes)?;
    let pubkey = a.pubkey.as_deref().map(|k| hex_n::<32>("--pubkey", k)).transpose()?;
    let mut rows = Vec::new();
    for (t, what) in &points {
        let policy = if pending_at != 0 && *t >= pending_at { pending_policy } else { current };
        let refs = RefsAt { os, app, t: *t };
        let answer = match &quote {
            Some((q, log)) => {
                let ctx =
                    Context { deployment: chain.deployment(), verifier: &verifier, policy, references: &refs, now: *t };
                let binding = RequestBinding {
                    request_id: Default::default(),
                    requester: a.requester.context("--requester is required with --quote")?,
                    hpke_pub_key: pubkey.context("--pubkey is required with --quote")?,
                };
                match pipeline::evaluate(&ctx, binding, q, log).await {
                    Decision::Accept(_) => Answer::Accepted,
                    Decision::Refuse(r, detail) => Answer::Refused(r, detail),
                    Decision::Retry(why) | Decision::Abstain(why) => Answer::Unknown(why),
                }
            }
            None if !os.1.allowed(RefKind::Os, *t) => Answer::Refused(Refusal::OsReferenceNotAllowed, String::new()),
            None if !app.1.allowed(RefKind::App, *t) => Answer::Refused(Refusal::AppReferenceNotAllowed, String::new()),
            None => Answer::Accepted,
        };
        rows.push((*t, what.clone(), answer));
    }

    let refused_now = matches!(rows.first(), Some((_, _, Answer::Refused(..))));
    let refused_later = rows.iter().skip(1).any(|(_, _, a)| matches!(a, Answer::Refused(..)));
    if a.json {
        let out: Vec<_> = rows
            .iter()
            .map(|(t, what, ans)| json!({ "at": t, "when": what, "answer": ans.name(), "code": ans.code(), "detail": ans.detail() }))
            .collect();
        let doc = json!({ "os_reference_id": os_ref, "app_reference_id": app_ref, "references_only": quote.is_none(), "answers": out });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "OS reference {os_ref}, app reference {app_ref}{}",
            if quote.is_none() { " (references only)" } else { "" }
        );
        for (t, what, ans) in &rows {
            println!("  at {t} ({what}): {}{}", ans.name(), ans.detail().map_or(String::new(), |d| format!(": {d}")));
        }
    }
    Ok(if refused_now {
        ExitCode::from(super::EXIT_REFUSED)
    } else if refused_later {
        ExitCode::from(EXIT_REFUSED_LATER)
    } else {
        ExitCode::SUCCESS
    })
}

/// What the cluster would answer at one time.
enum Answer {
    Accepted,
    Refused(Refusal, String),
    /// A holder could not judge (collateral missing, a simulated quote it does not trust).
    Unknown(String),
}

impl Answer {
    fn name(&self) -> &'static str {
        match self {
            Answer::Accepted => "accepted",
            Answer::Refused(r, _) => r.name(),
            Answer::Unknown(_) => "unknown",
        }
    }
    fn code(&self) -> Option<u8> {
        match self {
            Answer::Refused(r, _) => Some(r.code()),
            _ => None,
        }
    }
    fn detail(&self) -> Option<&str> {
        match self {
            Answer::Refused(_, d) | Answer::Unknown(d) if !d.is_empty() => Some(d),
            _ => None,
        }
    }
}
