//! `audit --deployment`: what the report read from the RPC, checked against the chain's consensus as
//! holders check it. At one trusted header (the beacon light client's newest optimistic header, or the
//! pinned RPC quorum's), the current policy, cluster, epoch, request count, every reference's
//! `isAllowed` and every request's status are proven by `eth_getProof` against its state root; every
//! block of the last 8,191 (from the scan's start) is authenticated by walking parent hashes down from
//! the header, and the contract's logs of each block whose logs bloom may hold them, or that the RPC's
//! history names, are rebuilt from the block's proven receipts: an altered, added or omitted event is
//! found.
//! Each value and event then says `proven` (equal), `mismatch` (the RPC's answer differs from what the
//! chain proves: a critical finding), `unproven` (the RPC would not give a proof: why) or, for events
//! older than the window, `rpc_read`.

use crate::{
    collect::{Entry, History},
    model::{BlockRange, EventProvenance, Finding, ProvenValue, Provenance, Report, Severity},
};
use alloy::primitives::{B256, U256};
use replicatoor_chain::{
    bindings::UpgradeOperator::UpgradeOperatorEvents as Ev,
    layout::{Reads, Views},
    proof::{ProofError, TrustedHeader},
    verified::{HeaderSource, VerifiedView, ViewError, HISTORY_WINDOW},
};
use replicatoor_core::protocol::{request_key, Policy, RefKind, RequestStatus};
use std::collections::BTreeMap;

/// The trusted header an audit proves against, and how it was authenticated.
#[derive(Debug, Clone)]
pub struct Anchor {
    pub header: TrustedHeader,
    /// The pin's trust mode (`beacon-light-client`, `beacon-custom`, `simulated-beacon`, `rpc-quorum`).
    pub trust_mode: String,
    /// Beacon: sync-committee members who signed the header, and the committee's size.
    pub signers: Option<(u64, u64)>,
}

/// A header source that is one fixed, already trusted header (the audit proves everything at it).
pub struct Fixed(pub TrustedHeader);

impl HeaderSource for Fixed {
    async fn head(&self, _now: u64, _since: std::time::Instant) -> Result<TrustedHeader, ViewError> {
        Ok(self.0)
    }
}

fn policy_text(p: &Policy) -> String {
    format!(
        "tcb_statuses {:#x}, allow_debug {}, allow_simulated {}, min_tcb_evaluation_data_number {}",
        p.tcb_statuses, p.allow_debug, p.allow_simulated, p.min_tcb_evaluation_data_number
    )
}

fn status_name(s: RequestStatus) -> &'static str {
    match s {
        RequestStatus::None => "none",
        RequestStatus::Pending => "pending",
        RequestStatus::Delivered => "delivered",
        RequestStatus::Refused => "refused",
    }
}

/// One value: the RPC's (the report's) and the proof's, compared.
fn value(name: String, rpc: String, proven: Result<String, ProofError>) -> ProvenValue {
    match proven {
        Ok(p) if p == rpc => ProvenValue { name, rpc, proven: Some(p), status: "proven", detail: None },
        Ok(p) => ProvenValue {
            detail: Some(format!("the RPC's history gives {rpc}; the chain proves {p}")),
            name,
            rpc,
            proven: Some(p),
            status: "mismatch",
        },
        Err(e) => ProvenValue { name, rpc, proven: None, status: "unproven", detail: Some(e.to_string()) },
    }
}

/// Prove `report`'s current values and recent events at `anchor`, through `view` (whose RPC is the
/// untrusted transport), and add the result and its findings to the report.
pub async fn prove<S: HeaderSource>(view: &VerifiedView<S>, anchor: &Anchor, h: &History, report: &mut Report) {
    let head = anchor.header;
    let values = prove_values(view, &head, h, report).await;
    let window_from = head.number.saturating_sub(HISTORY_WINDOW).max(h.from_block);
    let events = prove_events(view, &head, h, window_from).await;

    let mismatches = values.iter().filter(|v| v.status == "mismatch").count()
        + events.iter().filter(|e| e.status == "mismatch").count();
    if let Some(f) = mismatch_finding(&values, &events, head.number) {
        report.findings.insert(0, f);
        report.summary.critical += 1;
    }
    report.provenance = Some(Provenance {
        trust_mode: anchor.trust_mode.clone(),
        block: head.number,
        block_hash: head.hash,
        time: head.timestamp,
        signers: anchor.signers.map(|s| s.0),
        committee_size: anchor.signers.map(|s| s.1),
        events_window_from: window_from,
        mismatches,
        values,
        events,
    });
}

/// The current values, each the RPC's (the report's) next to what the contract's storage proves at `head`.
async fn prove_values<S: HeaderSource>(
    view: &VerifiedView<S>,
    head: &TrustedHeader,
    h: &History,
    report: &Report,
) -> Vec<ProvenValue> {
    // The reads a holder makes, for every reference and request the report names.
    let mut reads = Reads::state();
    for r in &report.references {
        reads = reads.reference(r.id);
    }
    let keys: Vec<B256> = report.custody.requests.iter().map(|r| request_key(&r.hpke_pub_key.0, r.requester)).collect();
    for k in &keys {
        reads = reads.request(*k);
    }
    let storage = match view.storage(head, &reads).await {
        Err(e) => {
            return vec![ProvenValue {
                name: "contract storage".into(),
                rpc: "(read from logs)".into(),
                proven: None,
                status: "unproven",
                detail: Some(e.to_string()),
            }]
        }
        Ok(storage) => storage,
    };
    let v = Views(&storage);
    let rpc = rpc_values(view, head.number, h, report, &keys).await;
    let mut values = vec![
        value("policy()".into(), rpc.policy, v.policy().map(|p| policy_text(&p))),
        value("cluster".into(), rpc.cluster, v.cluster().map(|c| c.to_string())),
        value("epoch()".into(), rpc.epoch, v.epoch().map(|e| e.to_string())),
        value("requestCount".into(), rpc.request_count, v.request_count().map(|c| c.to_string())),
    ];
    for (r, rpc) in report.references.iter().zip(rpc.allowed) {
        let kind = if r.ref_kind.0 == RefKind::Os as u8 { RefKind::Os } else { RefKind::App };
        values.push(value(
            format!("isAllowed({}, {})", r.id, r.ref_kind.as_str()),
            rpc,
            v.is_allowed(r.id, kind).map(|a| a.to_string()),
        ));
    }
    for ((r, k), rpc) in report.custody.requests.iter().zip(&keys).zip(rpc.statuses) {
        let proven = match (v.request_id(*k), v.request_status(*k)) {
            (Ok(id), Ok(s)) if id == U256::from(r.request_id) => Ok(status_name(s).to_string()),
            (Ok(id), Ok(_)) => Ok(format!("another request ({id}) under its key")),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        values.push(value(format!("requestStatus of request {}", r.request_id), rpc, proven));
    }
    values
}

/// Every event of the history, in block and log order: `rpc_read` before `window_from`, else compared
/// with the logs rebuilt from its block's proven receipts, with the logs the RPC left out.
async fn prove_events<S: HeaderSource>(
    view: &VerifiedView<S>,
    head: &TrustedHeader,
    h: &History,
    window_from: u64,
) -> Vec<EventProvenance> {
    // Events: every block of the last 8,191 (not before the scan's start) is authenticated by walking
    // parent hashes down from the trusted header; those whose logs bloom may hold the contract's logs,
    // and those the RPC's history names, are rebuilt from their proven receipts. So an event the RPC
    // leaves out is found too, not only one it alters.
    let (walked, walk_error) = walk(view, head, window_from).await;
    let mut by_block: BTreeMap<u64, Vec<&Entry>> = BTreeMap::new();
    for (n, (_, may_hold)) in &walked {
        if *may_hold {
            by_block.entry(*n).or_default();
        }
    }
    let mut events = Vec::new();
    for e in &h.entries {
        if e.pos.block >= window_from && e.pos.block <= head.number {
            by_block.entry(e.pos.block).or_default().push(e);
        } else {
            events.push(EventProvenance {
                block: e.pos.block,
                log_index: e.pos.log_index,
                event: event_name(&e.event),
                status: "rpc_read",
                detail: Some(format!("older than the {HISTORY_WINDOW} blocks a header can be linked to")),
            });
        }
    }
    for (block, entries) in by_block {
        let proven = match walked.get(&block) {
            Some((b, _)) => logs_at(view, b).await,
            None => Err(ViewError::NoHistory(walk_error.clone().unwrap_or_else(|| "not linked".into()))),
        };
        match proven {
            Ok(logs) => {
                let proven = logs.into_iter().map(|(i, log)| (i, Ev::decode_any_version(&log).ok())).collect();
                compare_block(block, &entries, proven, &mut events);
            }
            Err(e) => events.extend(entries.iter().map(|x| EventProvenance {
                block,
                log_index: x.pos.log_index,
                event: event_name(&x.event),
                status: "unproven",
                detail: Some(e.to_string()),
            })),
        }
    }
    events.sort_by_key(|e| (e.block, e.log_index));
    events
}

/// The RPC's events of `block` (`entries`) against the contract's logs its proven receipts hold
/// (`proven`, by log index; `None`: not an event).
fn compare_block(block: u64, entries: &[&Entry], proven: Vec<(u64, Option<Ev>)>, events: &mut Vec<EventProvenance>) {
    for x in entries {
        let found = proven.iter().find(|(i, _)| *i == x.pos.log_index);
        let (status, detail) = match found {
            Some((_, Some(ev))) if *ev == x.event => ("proven", None),
            Some((_, Some(ev))) => {
                ("mismatch", Some(format!("the block's proven receipts hold {} here", event_name(ev))))
            }
            Some((_, None)) => ("mismatch", Some("the proven log here does not decode as an event".into())),
            None => ("mismatch", Some("no log of the contract at this index in the block's proven receipts".into())),
        };
        events.push(EventProvenance { block, log_index: x.pos.log_index, event: event_name(&x.event), status, detail });
    }
    // Logs the RPC left out of its answer for a block it did name.
    for (i, ev) in &proven {
        if !entries.iter().any(|x| x.pos.log_index == *i) {
            events.push(EventProvenance {
                block,
                log_index: *i,
                event: ev.as_ref().map_or("undecodable".to_string(), event_name),
                status: "mismatch",
                detail: Some("in the block's proven receipts, but missing from the RPC's logs".into()),
            });
        }
    }
}

/// The critical finding when any value or event the RPC gave contradicts its proof at block `head`.
fn mismatch_finding(values: &[ProvenValue], events: &[EventProvenance], head: u64) -> Option<Finding> {
    let bad_values: Vec<&ProvenValue> = values.iter().filter(|v| v.status == "mismatch").collect();
    let bad_events: Vec<&EventProvenance> = events.iter().filter(|e| e.status == "mismatch").collect();
    if bad_values.is_empty() && bad_events.is_empty() {
        return None;
    }
    let mut detail: Vec<String> =
        bad_values.iter().map(|v| format!("{}: {}", v.name, v.detail.as_deref().unwrap_or(""))).collect();
    detail.extend(bad_events.iter().map(|e| {
        format!("{} at block {} index {}: {}", e.event, e.block, e.log_index, e.detail.as_deref().unwrap_or(""))
    }));
    let mut f = Finding::new(
        "rpc_contradicts_proof",
        Severity::Critical,
        "The RPC's answers contradict what the chain proves",
        format!(
            "{} value(s) and {} event(s) read from the RPC differ from their proofs at block {}: {}. The report's \
             RPC-read history cannot be relied on; read it through another RPC.",
            bad_values.len(),
            bad_events.len(),
            head,
            detail.join("; ")
        ),
    );
    f.blocks = vec![BlockRange { from: head, to: head, open: true }];
    Some(f)
}

/// The event's name as the contract declares it.
fn event_name(ev: &Ev) -> String {
    let full = format!("{ev:?}");
    full.split('(').next().unwrap_or("event").to_string()
}

/// The headers from `head` down to `from`, each authenticated by its child's parent hash, with whether
/// its logs bloom may hold a log of the contract. Stops at the first header the RPC will not give or
/// that does not hash to its child's parent hash (the reason is returned: blocks below stay unproven).
async fn walk<S: HeaderSource>(
    view: &VerifiedView<S>,
    head: &TrustedHeader,
    from: u64,
) -> (BTreeMap<u64, (TrustedHeader, bool)>, Option<String>) {
    use alloy::{
        primitives::{BloomInput, B256},
        providers::Provider,
    };
    let contract = view.chain().deployment().contract;
    let mut out = BTreeMap::new();
    let mut expected: B256 = head.hash;
    let mut n = head.number;
    loop {
        let block = match view.chain().provider().get_block_by_number(n.into()).await {
            Ok(Some(b)) => b,
            Ok(None) => return (out, Some(format!("the RPC has no block {n}"))),
            Err(e) => return (out, Some(format!("block {n}: {e}"))),
        };
        let header = block.header.inner;
        match replicatoor_chain::proof::verify_header(&header, expected) {
            Ok(trusted) => {
                out.insert(n, (trusted, header.logs_bloom.contains_input(BloomInput::Raw(contract.as_slice()))));
            }
            Err(e) => return (out, Some(e.to_string())),
        }
        if n <= from || n == 0 {
            return (out, None);
        }
        expected = header.parent_hash;
        n -= 1;
    }
}

/// What the RPC says the current values are, in the form the proofs give them.
struct RpcValues {
    policy: String,
    cluster: String,
    epoch: String,
    request_count: String,
    /// Per reference of the report, in order.
    allowed: Vec<String>,
    /// Per request of the report, in order.
    statuses: Vec<String>,
}

/// The report's own values, derived from the RPC's logs, when the scan began at the deployment (its
/// `Deployed` event is in the history); otherwise (a late `--from-block` leaves the logs incomplete)
/// the contract's views called through the RPC at the header's block, so that an incomplete scan is
/// not taken for a lie.
async fn rpc_values<S: HeaderSource>(
    view: &VerifiedView<S>,
    block: u64,
    h: &History,
    report: &Report,
    keys: &[B256],
) -> RpcValues {
    if h.entries.iter().any(|e| matches!(e.event, Ev::Deployed(_))) {
        let last = report.custody.epochs.last();
        return RpcValues {
            policy: report.summary.policy.map_or("none".to_string(), |p| policy_text(&p.policy())),
            cluster: last.map_or(alloy::primitives::Address::ZERO, |e| e.cluster).to_string(),
            epoch: last.map_or(0, |e| e.epoch).to_string(),
            request_count: report.custody.requests.iter().map(|r| r.request_id).max().unwrap_or(0).to_string(),
            allowed: report.references.iter().map(|r| (r.status == "active").to_string()).collect(),
            statuses: report.custody.requests.iter().map(|r| r.status.to_string()).collect(),
        };
    }
    let c = view.chain().contract();
    let at = alloy::eips::BlockId::number(block);
    let shown = |r: Result<String, alloy::contract::Error>| r.unwrap_or_else(|e| format!("(no answer: {e})"));
    let mut allowed = Vec::new();
    for r in &report.references {
        allowed.push(shown(c.isAllowed(r.id, r.ref_kind.0).block(at).call().await.map(|a| a.to_string())));
    }
    let mut statuses = Vec::new();
    for k in keys {
        let s = c.requestStatus(*k).block(at).call().await;
        statuses.push(shown(
            s.map(|s| RequestStatus::try_from(s).map_or(format!("status {s}"), |s| status_name(s).into())),
        ));
    }
    RpcValues {
        policy: shown(c.policy().block(at).call().await.map(|p| policy_text(&Policy::from(p)))),
        cluster: shown(c.cluster().block(at).call().await.map(|a| a.to_string())),
        epoch: shown(c.epoch().block(at).call().await.map(|e| e.to_string())),
        request_count: shown(c.requestCount().block(at).call().await.map(|n| n.to_string())),
        allowed,
        statuses,
    }
}

/// Every log the contract emitted in `block` (a header already authenticated), with its index in the
/// block, from all of the block's receipts rebuilt to its receipts root (`proof::verify_receipts`, as
/// holders read events): complete and unaltered.
async fn logs_at<S: HeaderSource>(
    view: &VerifiedView<S>,
    block: &TrustedHeader,
) -> Result<Vec<(u64, alloy::primitives::Log)>, ViewError> {
    use alloy::{eips::BlockNumberOrTag, providers::Provider};
    let receipts = view
        .chain()
        .provider()
        .get_block_receipts(BlockNumberOrTag::Number(block.number).into())
        .await
        .map_err(|e| ViewError::Rpc(e.to_string()))?
        .ok_or_else(|| ViewError::Rpc(format!("no receipts for block {}", block.number)))?;
    replicatoor_chain::proof::verify_receipts(block, &receipts)?;
    let contract = view.chain().deployment().contract;
    let logs = receipts.iter().flat_map(|r| r.inner.logs()).enumerate();
    Ok(logs.filter(|(_, l)| l.address() == contract).map(|(i, l)| (i as u64, l.inner.clone())).collect())
}
