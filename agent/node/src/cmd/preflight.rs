//! `replicatoor preflight`: would this node be accepted now, and after each change already scheduled
//! on chain (a pending policy, a reference's activation or end)? Each answer names the refusal that
//! would apply, or `accepted`, so an app's deployment pipeline can stop before it ships a version the
//! cluster will refuse, or one that is about to be cut off.
//!
//! With `--quote`/`--event-log` the quote runs through the holders' own pipeline at each time (with
//! `--collateral-dir` or `--pccs-url` for genuine quotes, as holders get collateral), and the answer
//! says until when the collateral and the TCB status it gives hold; with `--compose`/`--os-ref` only
//! the references are checked. It reads the chain through the given RPC: an advisory tool for
//! operators, not a TD's decision.
//!
//! Exit codes, for deployment pipelines: 0 accepted now and after every scheduled change; 3 refused
//! now and after every scheduled change; 5 cannot be judged now (collateral unavailable, a simulated
//! quote without `--allow-simulated-quotes`); 6 accepted now, refused after a scheduled change
//! (`refused_from`); 7 refused now, accepted after a scheduled change (`accepted_from`: a pending
//! widening — a reference's activation or a wider policy — that the pipeline may wait for).

use crate::{
    args::{hex_n, load_event_log, read_bytes, sha256_file, verifier},
    horizon::{self, Horizon},
    provider::Attestation,
};
use alloy::primitives::{Address, B256};
use anyhow::Context as _;
use replicatoor_core::{
    attest::{
        collateral::format_rfc3339_utc,
        pipeline::{self, Context, Decision, References},
        RequestBinding,
    },
    protocol::{app_reference_id, Policy, RefKind},
    refusal::Refusal,
};
use serde_json::json;
use std::{path::PathBuf, process::ExitCode};

/// Exit code: the answer now is unknown (collateral unavailable, a simulated quote not trusted here).
pub const EXIT_UNKNOWN: u8 = 5;
/// Exit code: accepted now, refused after a change already scheduled on chain.
pub const EXIT_REFUSED_LATER: u8 = 6;
/// Exit code: refused now, accepted after a change already scheduled on chain (a pending widening).
pub const EXIT_ACCEPTED_LATER: u8 = 7;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: crate::args::ReadTarget,
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
    /// A PCCS to fetch a genuine quote's collateral from, as the holders do (their `pccs_url`).
    #[arg(long, conflicts_with = "collateral_dir")]
    pub pccs_url: Option<String>,
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
    let chain = a.target.connect().await?;
    let (os_ref, app_ref, quote) = references(&a)?;
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

    let points = change_points(now, pending_at, [("OS", &os.1), ("app", &app.1)]);

    // PCCS answers are cached for this run only.
    let cache = tempfile_dir();
    let source = crate::collateral::source(a.collateral_dir.as_deref(), a.pccs_url.as_deref(), &cache)?;
    let verifier = verifier(source, a.allow_simulated_quotes)?;
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

    // How long the verdict now holds as far as collateral goes (read after the pipeline has prepared
    // the collateral for now).
    let horizon = quote.as_ref().map(|(q, _)| horizon::of(&verifier, q, now));
    let _ = std::fs::remove_dir_all(&cache);

    let verdict = Verdict::of(&rows);
    let report = Report {
        os_ref,
        app_ref,
        references_only: quote.is_none(),
        now,
        rows: &rows,
        verdict: &verdict,
        horizon: horizon.as_ref(),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        report.print();
    }
    Ok(ExitCode::from(verdict.exit_code()))
}

/// A quote as posted (compact or raw) with its compact event log.
type Posted = (Vec<u8>, Vec<u8>);

/// The references a preflight answers for: the quote's own (with the quote and its compact event log),
/// or `--os-ref` with the compose's app reference.
fn references(a: &Args) -> anyhow::Result<(B256, B256, Option<Posted>)> {
    Ok(match (&a.quote, &a.compose) {
        (Some(q), _) => {
            let log_path = a.event_log.as_ref().context("--event-log is required with --quote")?;
            let att = Attestation {
                quote: read_bytes(q)?,
                event_log: replicatoor_encode::eventlog::to_compact(&load_event_log(log_path)?.runtime)
                    .context("compacting the event log")?,
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
    })
}

/// Every time at which the answer can change: now, then each change already scheduled (the pending
/// policy, a reference's activation or end), in order.
fn change_points(now: u64, pending_at: u64, refs: [(&str, &Record); 2]) -> Vec<(u64, String)> {
    let mut points = vec![(now, "now".to_string())];
    if pending_at > now {
        points.push((pending_at, "the pending policy takes effect".into()));
    }
    for (name, r) in refs {
        if r.activates_at > now {
            points.push((r.activates_at, format!("the {name} reference activates")));
        }
        if r.expires_at > now {
            points.push((r.expires_at, format!("the {name} reference ends")));
        }
    }
    points.sort_by_key(|(t, _)| *t);
    points
}

/// What a preflight found, for either form of its report.
struct Report<'a> {
    os_ref: B256,
    app_ref: B256,
    references_only: bool,
    now: u64,
    rows: &'a [(u64, String, Answer)],
    verdict: &'a Verdict,
    horizon: Option<&'a Result<Horizon, replicatoor_core::attest::verifier::QuoteError>>,
}

impl Report<'_> {
    /// The report as text.
    fn print(&self) {
        println!(
            "OS reference {}, app reference {}{}",
            self.os_ref,
            self.app_ref,
            if self.references_only { " (references only)" } else { "" }
        );
        for (t, what, ans) in self.rows {
            println!(
                "  at {t} = {} ({what}): {}{}",
                format_rfc3339_utc(*t),
                ans.name(),
                ans.detail().map_or(String::new(), |d| format!(": {d}"))
            );
        }
        match self.horizon {
            Some(Ok(h)) => print_horizon(h),
            Some(Err(e)) => println!("collateral: {e}"),
            None => {}
        }
        println!("verdict: {}", self.verdict.describe(self.rows));
    }

    /// The `--json` document.
    fn json(&self) -> serde_json::Value {
        let out: Vec<_> = self.rows
            .iter()
            .map(|(t, what, ans)| json!({ "at": t, "when": what, "answer": ans.name(), "code": ans.code(), "detail": ans.detail() }))
            .collect();
        let collateral = self.horizon.map(|h| match h {
            Ok(h) => json!({
                "valid_until": h.valid_until().map(|e| e.at),
                "earliest": h.valid_until().map(|e| &e.what),
                "expiries": h.expiries,
                "tcb": h.tcb,
            }),
            Err(e) => json!({ "error": e.to_string() }),
        });
        json!({
            "os_reference_id": self.os_ref,
            "app_reference_id": self.app_ref,
            "references_only": self.references_only,
            "now": self.now,
            "answers": out,
            "verdict": self.verdict.name(),
            "exit_code": self.verdict.exit_code(),
            "accepted_from": self.verdict.accepted_from(self.rows),
            "refused_from": self.verdict.refused_from(self.rows),
            "collateral": collateral,
        })
    }
}

fn print_horizon(h: &Horizon) {
    if let Some(first) = h.valid_until() {
        println!(
            "collateral holds until {} = {} ({}); after that holders wait for fresh collateral (a wait, not a refusal):",
            first.at,
            format_rfc3339_utc(first.at),
            first.what
        );
        for e in &h.expiries {
            println!("  {} {}", format_rfc3339_utc(e.at), e.what);
        }
    }
    match &h.tcb {
        Some(t) => println!(
            "TCB status {} (matched level of {}, TCB evaluation data number {}{}) holds until {} = {}, the TCB info's \
             nextUpdate: Intel may publish TCB info by then that judges this platform otherwise",
            t.status,
            format_rfc3339_utc(t.tcb_date),
            t.evaluation_data_number,
            if t.advisory_ids.is_empty() {
                String::new()
            } else {
                format!(", advisories {}", t.advisory_ids.join(" "))
            },
            t.next_update,
            format_rfc3339_utc(t.next_update),
        ),
        None => println!("TCB status: no TCB level of this collateral matches the quote"),
    }
}

/// A fresh directory name for this run's PCCS cache (created only if a PCCS is asked).
fn tempfile_dir() -> PathBuf {
    std::env::temp_dir().join(format!("replicatoor-preflight-{}-{}", std::process::id(), rand_suffix()))
}

fn rand_suffix() -> String {
    let mut b = [0u8; 6];
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

/// The answer over time, as the exit code and the JSON `verdict` give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Accepted now and after every scheduled change.
    Accepted,
    /// Refused now and after every scheduled change.
    Refused,
    /// The answer now is unknown.
    Unknown,
    /// Accepted now, refused after a scheduled change.
    RefusedLater,
    /// Refused now, accepted after a scheduled change.
    AcceptedLater,
}

type Row = (u64, String, Answer);

impl Verdict {
    /// Rows after the first that cannot be judged (e.g. past the collateral's horizon) change nothing:
    /// holders then will have fresher collateral, and the horizon says when.
    fn of(rows: &[Row]) -> Verdict {
        let later = |f: fn(&Answer) -> bool| rows.iter().skip(1).any(|(_, _, a)| f(a));
        match rows.first().map(|(_, _, a)| a) {
            Some(Answer::Accepted) if later(|a| matches!(a, Answer::Refused(..))) => Verdict::RefusedLater,
            Some(Answer::Accepted) => Verdict::Accepted,
            Some(Answer::Refused(..)) if later(|a| matches!(a, Answer::Accepted)) => Verdict::AcceptedLater,
            Some(Answer::Refused(..)) => Verdict::Refused,
            Some(Answer::Unknown(_)) | None => Verdict::Unknown,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Refused => "refused",
            Verdict::Unknown => "unknown",
            Verdict::RefusedLater => "refused_later",
            Verdict::AcceptedLater => "accepted_later",
        }
    }

    fn exit_code(self) -> u8 {
        match self {
            Verdict::Accepted => 0,
            Verdict::Refused => super::EXIT_REFUSED,
            Verdict::Unknown => EXIT_UNKNOWN,
            Verdict::RefusedLater => EXIT_REFUSED_LATER,
            Verdict::AcceptedLater => EXIT_ACCEPTED_LATER,
        }
    }

    /// When refused now: the first scheduled time from which it is accepted.
    fn accepted_from(self, rows: &[Row]) -> Option<u64> {
        (self == Verdict::AcceptedLater)
            .then(|| rows.iter().find(|(_, _, a)| matches!(a, Answer::Accepted)).map(|(t, _, _)| *t))
            .flatten()
    }

    /// When accepted now: the first scheduled time from which it is refused.
    fn refused_from(self, rows: &[Row]) -> Option<u64> {
        (self == Verdict::RefusedLater)
            .then(|| rows.iter().find(|(_, _, a)| matches!(a, Answer::Refused(..))).map(|(t, _, _)| *t))
            .flatten()
    }

    fn describe(self, rows: &[Row]) -> String {
        let code = |r: &Option<&Row>| {
            r.map_or(String::new(), |(_, _, a)| a.code().map_or(String::new(), |c| format!(" (code {c})")))
        };
        let first = rows.first();
        let at = |t: Option<u64>| t.map_or(String::new(), |t| format!("{t} = {}", format_rfc3339_utc(t)));
        match self {
            Verdict::Accepted => "accepted now and after every scheduled change".into(),
            Verdict::Refused => format!("refused now{} and after every scheduled change", code(&first)),
            Verdict::Unknown => "cannot be judged now (see the detail above)".into(),
            Verdict::RefusedLater => {
                let t = self.refused_from(rows);
                let row = rows.iter().find(|r| Some(r.0) == t);
                format!("accepted now, refused{} from {}", code(&row), at(t))
            }
            Verdict::AcceptedLater => {
                format!("refused now{}, accepted from {}", code(&first), at(self.accepted_from(rows)))
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(answers: Vec<Answer>) -> Vec<Row> {
        answers.into_iter().enumerate().map(|(i, a)| (100 * (i as u64 + 1), String::new(), a)).collect()
    }

    fn refused() -> Answer {
        Answer::Refused(Refusal::AppReferenceNotAllowed, String::new())
    }

    fn unknown() -> Answer {
        Answer::Unknown("collateral".into())
    }

    #[test]
    fn the_exit_code_is_the_answer_now_then_the_first_scheduled_change_that_turns_it() {
        let cases = [
            (vec![Answer::Accepted], Verdict::Accepted, 0, None, None),
            (vec![Answer::Accepted, Answer::Accepted], Verdict::Accepted, 0, None, None),
            (vec![refused(), refused()], Verdict::Refused, 3, None, None),
            (vec![unknown(), Answer::Accepted], Verdict::Unknown, 5, None, None),
            (vec![Answer::Accepted, refused()], Verdict::RefusedLater, 6, None, Some(200)),
            // A reference that activates and is already scheduled to end: accepted from its activation.
            (vec![refused(), Answer::Accepted, refused()], Verdict::AcceptedLater, 7, Some(200), None),
            (vec![refused(), unknown(), Answer::Accepted], Verdict::AcceptedLater, 7, Some(300), None),
            // Past the collateral's horizon a later time cannot be judged: it changes nothing.
            (vec![Answer::Accepted, unknown()], Verdict::Accepted, 0, None, None),
            (vec![refused(), unknown()], Verdict::Refused, 3, None, None),
        ];
        for (answers, verdict, code, accepted_from, refused_from) in cases {
            let r = rows(answers);
            let v = Verdict::of(&r);
            assert_eq!(
                (v, v.exit_code(), v.accepted_from(&r), v.refused_from(&r)),
                (verdict, code, accepted_from, refused_from),
                "{}",
                v.describe(&r)
            );
        }
    }
}
