//! `replicatoor audit`: everything an auditor can establish about a deployment from chain data
//! alone. The contract emits full payloads in its events, so logs are enough: the governance
//! timeline, the policy and reference values in force at any block (PROTOCOL.md §4.4), the custody
//! tree, every epoch and how it began (genesis, re-bootstrap, key rotation), findings with severities, and optionally an offline re-run of the holder pipeline on every
//! quote that was accepted; what each proposal published about its reference (the app's compose with
//! the trust mode it pins, the OS image) next to what every accepted quote's event log claims.
//! Output: text, stable JSON ([`model`]), or one self-contained HTML file.
//! Only standard JSON-RPC reads are used (`eth_getLogs`, blocks, transactions, `eth_getCode`); after a
//! key rotation, the blocks since it with their transactions (a call an old key signed reverts: no log).

pub mod approvals;
pub mod collect;
pub mod compose;
pub mod custody;
pub mod describe;
pub mod epochs;
pub mod findings;
pub mod model;
pub mod proven;
pub mod render_html;
pub mod render_text;
pub mod reverify;
pub mod state;
pub mod timeline;

use collect::{Blocks, History, ScanOptions};
use model::{PendingPolicy, PolicyView, Report, Severity, Summary};
use replicatoor_chain::{
    bindings::UpgradeOperator::UpgradeOperatorEvents as Ev,
    verified::{HeaderSource, VerifiedView},
    Chain, ChainError,
};
use replicatoor_core::attest::Verifier;
use state::State;

/// Why an audit could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A chain read failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The provider failed even on single-block `eth_getLogs` ranges, or returned malformed logs.
    #[error("RPC error: {0}")]
    Rpc(String),
    /// `--from-block` is after `--to-block` (or the head).
    #[error("empty block range {from}..{to}")]
    Range { from: u64, to: u64 },
}

/// Read the deployment's history and build the report. With `reverify`, re-run the holder
/// pipeline on every accepted quote with that verifier.
pub async fn audit(chain: &Chain, scan: ScanOptions, reverify: Option<&Verifier>) -> Result<Report, AuditError> {
    Ok(audit_history(chain, scan, reverify).await?.1)
}

/// [`audit`] up to the trusted header of `anchor`, then every current value and the events of the last
/// 8,191 blocks proven at that header through `view` ([`proven::prove`]).
pub async fn audit_proven<S: HeaderSource>(
    chain: &Chain,
    view: &VerifiedView<S>,
    anchor: &proven::Anchor,
    scan: ScanOptions,
    reverify: Option<&Verifier>,
) -> Result<Report, AuditError> {
    let scan = ScanOptions { to_block: Some(anchor.header.number), ..scan };
    let (h, mut report) = audit_history(chain, scan, reverify).await?;
    if report.to_block != anchor.header.number {
        return Err(AuditError::Rpc(format!(
            "the RPC's head {} is below the trusted header {}: it cannot serve the audit",
            report.to_block, anchor.header.number
        )));
    }
    proven::prove(view, anchor, &h, &mut report).await;
    Ok(report)
}

async fn audit_history(
    chain: &Chain,
    scan: ScanOptions,
    reverify: Option<&Verifier>,
) -> Result<(History, Report), AuditError> {
    let blocks = Blocks::new(chain);
    let h = collect::collect(chain, &blocks, scan).await?;
    let state = State::from_history(&h);
    let segments = state.policy_segments(&h, &blocks).await?;
    let mut references = state.references(h.to_time);
    approvals::annotate_references(&state, h.deployment, &mut references);
    let mut custody = custody::build(&h);
    approvals::annotate_custody(&h, &references, &mut custody);
    if let Some(v) = reverify {
        reverify::reverify(&h, &state, &mut custody, v).await;
    }
    let calls = epochs::scan_calls(chain, &h).await?;
    let findings = findings::findings(&h, &state, &segments, &references, &custody, &calls);
    let summary = summary(&h, &state, &custody, &findings);
    let report = Report {
        schema: model::SCHEMA,
        chain_id: h.deployment.chain_id,
        contract: h.deployment.contract,
        from_block: h.from_block,
        to_block: h.to_block,
        to_time: h.to_time,
        reverified: reverify.is_some(),
        timeline: timeline::build(&h, &state),
        references,
        policies: segments,
        epochs: epochs::build(&h, &custody),
        custody,
        findings,
        summary,
        provenance: None,
    };
    Ok((h, report))
}

fn summary(h: &History, state: &State, c: &model::Custody, f: &[model::Finding]) -> Summary {
    let count = |s: Severity| f.iter().filter(|x| x.severity == s).count();
    let (mut owner, mut pending_owner, mut widening_delay) = (None, None, None);
    for e in &h.entries {
        match &e.event {
            Ev::Deployed(d) => {
                owner.get_or_insert(d.owner);
                widening_delay = Some(d.wideningDelay);
            }
            Ev::OwnershipTransferred(t) => {
                owner = Some(t.newOwner);
                pending_owner = None;
            }
            Ev::OwnershipTransferStarted(t) => pending_owner = Some(t.newOwner),
            _ => {}
        }
    }
    let reverify = |verdict: &str| {
        c.epochs
            .iter()
            .flat_map(|e| e.reverify.iter().chain(e.deliveries.iter().filter_map(|d| d.reverify.as_ref())))
            .filter(|r| r.verdict == verdict)
            .count()
    };
    Summary {
        critical: count(Severity::Critical),
        high: count(Severity::High),
        medium: count(Severity::Medium),
        low: count(Severity::Low),
        info: count(Severity::Info),
        events: h.entries.len(),
        epochs: c.epochs.len(),
        requests: c.requests.len(),
        delivered: c.requests.iter().filter(|r| r.status == "delivered").count(),
        refused: c.requests.iter().filter(|r| r.status == "refused").count(),
        pending: c.unanswered.len(),
        owner,
        pending_owner,
        widening_delay,
        policy: state.policy_at((u64::MAX, u64::MAX), h.to_time).map(|(_, p)| PolicyView::from(p)),
        pending_policy: state
            .pending_policy(h.to_time)
            .map(|p| PendingPolicy { policy: PolicyView::from(p.policy), effective_at: p.effective_at }),
        reverify_rejected: reverify("rejected"),
        reverify_inconclusive: reverify("inconclusive"),
    }
}
