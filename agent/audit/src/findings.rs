//! The audit rules: each turns reconstructed history into findings with a severity and the blocks
//! they concern. docs/audit.md lists every `kind`.

use super::{
    collect::{History, Pos},
    model::{BlockRange, Custody, EpochRecord, Finding, PolicySegment, ReferenceState, Severity},
    state::State,
};
use alloy::primitives::Address;
use replicatoor_chain::bindings::UpgradeOperator::{self as Op, UpgradeOperatorEvents as Ev};
use replicatoor_core::{attest::TcbStatus, protocol::Policy};

/// TCB statuses that mean the platform misses security updates.
const OUT_OF_DATE: [TcbStatus; 4] = [
    TcbStatus::OutOfDate,
    TcbStatus::OutOfDateConfigurationNeeded,
    TcbStatus::TDRelaunchAdvised,
    TcbStatus::TDRelaunchAdvisedConfigurationNeeded,
];
/// Up to date, but with configuration or software hardening left to the platform owner.
const NEEDS_CONFIG: [TcbStatus; 3] =
    [TcbStatus::SWHardeningNeeded, TcbStatus::ConfigurationNeeded, TcbStatus::ConfigurationAndSWHardeningNeeded];

fn mask(statuses: &[TcbStatus]) -> u16 {
    statuses.iter().fold(0, |m, s| m | s.bit())
}

fn names(m: u16) -> String {
    crate::model::TcbNames(m).names().join(", ")
}

/// Merge the policy segments where `pred` holds into block ranges.
fn ranges(segments: &[PolicySegment], pred: impl Fn(&Policy) -> bool) -> Vec<BlockRange> {
    let mut out: Vec<BlockRange> = Vec::new();
    for s in segments.iter().filter(|s| pred(&s.policy.policy())) {
        match out.last_mut() {
            Some(r) if s.from_block <= r.to + 1 => {
                r.to = s.to_block;
                r.open = s.open;
            }
            _ => out.push(BlockRange { from: s.from_block, to: s.to_block, open: s.open }),
        }
    }
    out
}

fn describe(rs: &[BlockRange]) -> String {
    rs.iter()
        .map(
            |r| if r.open { format!("{}..{} (still in force)", r.from, r.to) } else { format!("{}..{}", r.from, r.to) },
        )
        .collect::<Vec<_>>()
        .join(", ")
}

/// True when `p` accepts something `prev` did not.
fn widens(prev: &Policy, p: &Policy) -> bool {
    p.tcb_statuses & !prev.tcb_statuses != 0
        || (p.allow_debug && !prev.allow_debug)
        || (p.allow_simulated && !prev.allow_simulated)
        || p.min_tcb_evaluation_data_number < prev.min_tcb_evaluation_data_number
}

/// Every finding, most severe first.
pub fn findings(
    h: &History,
    state: &State,
    segments: &[PolicySegment],
    refs: &[ReferenceState],
    custody: &Custody,
    calls: &super::epochs::Calls,
) -> Vec<Finding> {
    let mut out = Vec::new();
    super::epochs::endorsement_findings(h, &mut out);
    super::epochs::old_key_findings(h, calls, &mut out);
    policy_findings(segments, &mut out);
    governance_findings(h, state, &mut out);
    custody_findings(h, custody, &mut out);
    super::approvals::findings(refs, custody, &mut out);
    superseded_findings(refs, &mut out);
    if !h.entries.iter().any(|e| matches!(e.event, Ev::Deployed(_))) {
        let mut f = Finding::new(
            "history_incomplete",
            Severity::Medium,
            "The audited range does not start at the deployment",
            "No Deployed event in the range: the initial policy and anything earlier are unknown. Re-run with \
             --from-block at or before the deployment block.",
        );
        f.blocks.push(BlockRange { from: h.from_block, to: h.to_block, open: false });
        out.push(f);
    }
    if h.undecoded > 0 {
        out.push(Finding::new(
            "undecoded_logs",
            Severity::Info,
            format!("{} log(s) of the contract did not decode", h.undecoded),
            "Logs at this address that match none of UpgradeOperator's events (not this contract's ABI?).",
        ));
    }
    out.sort_by_key(|f| (f.severity, f.blocks.first().map_or(0, |b| b.from)));
    out
}

fn policy_findings(segments: &[PolicySegment], out: &mut Vec<Finding>) {
    let sim = ranges(segments, |p| p.allow_simulated);
    if !sim.is_empty() {
        let mut f = Finding::new(
            "simulated_quotes_allowed",
            Severity::Critical,
            "The policy allowed SIMULATED quotes",
            format!(
                "allowSimulated was in force in blocks {}. Anyone can make a simulated quote, so any \
                 delivery in these blocks may have gone to a machine that proves nothing.",
                describe(&sim)
            ),
        );
        f.blocks = sim;
        out.push(f);
    }
    // A 0 floor accepts collateral of any TCB evaluation: a stale or lying collateral source can then
    // rate a platform that Intel's TCB recovery downgraded as up to date (PROTOCOL.md §4.4). A contract
    // from before the floor existed reads as 0 and is reported alike: it has none.
    let no_floor = ranges(segments, |p| p.min_tcb_evaluation_data_number == 0);
    if !no_floor.is_empty() {
        let mut f = Finding::new(
            "no_tcb_evaluation_floor",
            Severity::Medium,
            "The policy accepted collateral of any TCB evaluation",
            format!(
                "minTcbEvaluationDataNumber was 0 in blocks {}: holders judged quotes with collateral of any age, \
                 so a stale or lying collateral source could pass a platform a TCB recovery had downgraded. Set the \
                 floor to Intel's newest evaluation (this release knows {}): admin set-policy \
                 --min-tcb-evaluation-data-number N (raising it is immediate).",
                describe(&no_floor),
                replicatoor_core::attest::NEWEST_TCB_EVALUATION_DATA_NUMBER
            ),
        );
        f.blocks = no_floor;
        out.push(f);
    }
    let debug = ranges(segments, |p| p.allow_debug);
    if !debug.is_empty() {
        let mut f = Finding::new(
            "debug_tds_allowed",
            Severity::High,
            "The policy allowed debug TDs",
            format!(
                "allowDebug was in force in blocks {}: a debug TD's host can read its memory, secret included.",
                describe(&debug)
            ),
        );
        f.blocks = debug;
        out.push(f);
    }
    for (kind, sev, set, what) in [
        (
            "out_of_date_tcb_accepted",
            Severity::High,
            mask(&OUT_OF_DATE),
            "out-of-date TCB statuses (platforms missing security updates)",
        ),
        (
            "tcb_configuration_needed_accepted",
            Severity::Low,
            mask(&NEEDS_CONFIG),
            "TCB statuses that need configuration or software hardening",
        ),
    ] {
        let rs = ranges(segments, |p| p.tcb_statuses & set != 0);
        if rs.is_empty() {
            continue;
        }
        let accepted: u16 = segments.iter().map(|s| s.policy.tcb_statuses & set).fold(0, |a, b| a | b);
        let mut f = Finding::new(
            kind,
            sev,
            format!("The TCB policy accepted {what}"),
            format!("{} accepted in blocks {}.", names(accepted), describe(&rs)),
        );
        f.blocks = rs;
        out.push(f);
    }
}

fn governance_findings(h: &History, state: &State, out: &mut Vec<Finding>) {
    let mut pending_transfer: Option<(u64, Address)> = None;
    for e in &h.entries {
        let b = e.pos.block;
        match &e.event {
            Ev::Deployed(d) if d.wideningDelay == 0 => out.push(zero_widening_delay(b)),
            Ev::ReferenceProposed(r) if r.activatesAt <= e.pos.time => out.push(immediate_reference(r, b, e.pos.time)),
            Ev::PolicySet(p) if p.effectiveAt <= e.pos.time => {
                let prev = state.policy_at(e.pos.key(), e.pos.time).map(|(_, p)| p);
                out.extend(immediate_policy(p, prev, b));
            }
            Ev::OwnershipTransferStarted(t) => pending_transfer = Some((b, t.newOwner)),
            Ev::OwnershipTransferred(t) => {
                pending_transfer = None;
                out.extend(owner_changed(t, b));
            }
            _ => {}
        }
    }
    if let Some((b, to)) = pending_transfer {
        let mut f = Finding::new(
            "ownership_transfer_pending",
            Severity::Low,
            "An ownership transfer is pending",
            format!("transferOwnership({to}) in block {b} has not been accepted; {to} can take ownership at any time."),
        );
        f.blocks.push(BlockRange { from: b, to: h.to_block, open: true });
        f.accounts.push(to);
        out.push(f);
    }
}

/// A deployment (in block `b`) whose widening changes apply at once.
fn zero_widening_delay(b: u64) -> Finding {
    let mut f = Finding::new(
        "zero_widening_delay",
        Severity::Medium,
        "Widening changes take effect with no delay",
        "The contract was deployed with wideningDelay = 0: new reference values and wider policies \
         apply at once, so holders and users get no time to react (local development only).",
    );
    f.blocks.push(BlockRange::at(b));
    f
}

/// A reference proposed in block `b` (at `time`) that is usable at once.
fn immediate_reference(r: &Op::ReferenceProposed, b: u64, time: u64) -> Finding {
    let kind = super::model::RefKindName(r.kind).as_str();
    let mut f = Finding::new(
        "immediate_activation",
        Severity::Medium,
        format!("{kind} reference usable at once"),
        format!(
            "{kind} reference {} (note {:?}) was proposed in block {b} with activatesAt {} ≤ its block \
             time {}: no delay.",
            r.id, r.note, r.activatesAt, time
        ),
    );
    f.blocks.push(BlockRange::at(b));
    f.references.push(r.id);
    f
}

/// A policy set in block `b` with immediate effect: a finding if it widened `prev`, the policy before it.
fn immediate_policy(p: &Op::PolicySet, prev: Option<Policy>, b: u64) -> Option<Finding> {
    let new = p.policy();
    if !prev.is_some_and(|prev| widens(&prev, &new)) {
        return None;
    }
    let mut f = Finding::new(
        "immediate_activation",
        Severity::Medium,
        "Policy widened at once",
        format!(
            "PolicySet in block {b} (note {:?}) widened the policy to tcbStatuses {:#x} [{}], \
             allowDebug {}, allowSimulated {} with no delay.",
            p.note,
            p.tcbStatuses,
            names(p.tcbStatuses),
            p.allowDebug,
            p.allowSimulated
        ),
    );
    f.blocks.push(BlockRange::at(b));
    Some(f)
}

/// An ownership transfer completed in block `b`, from an owner (not at deployment).
fn owner_changed(t: &Op::OwnershipTransferred, b: u64) -> Option<Finding> {
    if t.previousOwner == Address::ZERO {
        return None;
    }
    let mut f = Finding::new(
        "owner_changed",
        Severity::Medium,
        "Ownership changed",
        format!(
            "Owner {} handed the contract to {} in block {b}; from then on that account decides \
             the reference values and the policy.",
            t.previousOwner, t.newOwner
        ),
    );
    f.blocks.push(BlockRange::at(b));
    f.accounts = vec![t.previousOwner, t.newOwner];
    Some(f)
}

/// App versions left approved after a newer one became active, with no end scheduled: every old
/// version stays a door into the cluster until someone remembers to close it (`admin supersede`
/// or `schedule-expiry` give it an end).
fn superseded_findings(refs: &[ReferenceState], out: &mut Vec<Finding>) {
    let apps: Vec<&ReferenceState> = refs.iter().filter(|r| r.ref_kind.0 == 2 && r.status == "active").collect();
    let Some(newest) = apps.iter().map(|r| r.proposed_block).max() else { return };
    for old in apps.iter().filter(|r| r.proposed_block < newest && r.expires_at.is_none()) {
        let mut f = Finding::new(
            "superseded_not_ended",
            Severity::Low,
            format!("App reference {} was superseded but never scheduled to end", old.id),
            format!(
                "A newer app reference is active (proposed in block {newest}), and {} (proposed in block {}) is still \
                 approved with no end: nodes of that version keep receiving the secret. Give it a grace period \
                 (`replicatoor admin schedule-expiry --id {} --grace SECONDS`) or revoke it.",
                old.id, old.proposed_block, old.id
            ),
        );
        f.blocks.push(BlockRange::at(old.proposed_block));
        out.push(f);
    }
}

fn custody_findings(h: &History, custody: &Custody, out: &mut Vec<Finding>) {
    // A delivery (or genesis) under a reference that was revoked later: that build saw the secret.
    for e in &h.entries {
        let Ev::ReferenceRevoked(r) = &e.event else { continue };
        out.extend(revoked_reference(r, e.pos, custody));
    }
    if !custody.unanswered.is_empty() {
        out.push(unanswered(h, custody));
    }
    for ep in custody.epochs.iter().filter(|ep| ep.previous_cluster.is_some()) {
        out.push(custody_reset(ep));
    }
    reverify_findings(custody, out);
}

/// The holders that received the secret under reference `r` before its revocation (at `revoked`), if any.
fn revoked_reference(r: &Op::ReferenceRevoked, revoked: Pos, custody: &Custody) -> Option<Finding> {
    let at = revoked.key();
    let kind = super::model::RefKindName(r.kind).as_str();
    let mut f = Finding::new(
        "delivery_under_revoked_reference",
        Severity::High,
        format!("The secret went to an {kind} build that was later revoked"),
        String::new(),
    );
    let mut who = Vec::new();
    for ep in &custody.epochs {
        if (ep.block, 0) < at && (ep.os_ref == r.id || ep.app_ref == r.id) {
            f.epochs.push(ep.epoch);
            f.blocks.push(BlockRange::at(ep.block));
            f.accounts.extend(ep.proposer);
            who.push(format!("genesis of epoch {} (cluster {})", ep.epoch, ep.cluster));
        }
        for d in ep.deliveries.iter().filter(|d| (d.block, 0) < at && (d.os_ref == r.id || d.app_ref == r.id)) {
            f.request_ids.push(d.request_id);
            f.blocks.push(BlockRange::at(d.block));
            if !f.accounts.contains(&d.requester) {
                f.accounts.push(d.requester);
            }
            who.push(format!("request {} by {} (block {})", d.request_id, d.requester, d.block));
        }
    }
    if who.is_empty() {
        return None;
    }
    f.blocks.push(BlockRange::at(revoked.block));
    f.blocks.sort_by_key(|b| b.from);
    f.references.push(r.id);
    f.detail = format!(
        "{kind} reference {} was revoked in block {} (note {:?}). Before that, these holders received the \
         secret while running it and may still hold it: {}.",
        r.id,
        revoked.block,
        r.note,
        who.join("; ")
    );
    Some(f)
}

/// The requests still pending at the end of the range.
fn unanswered(h: &History, custody: &Custody) -> Finding {
    let pending: Vec<_> = custody.requests.iter().filter(|r| r.status == "pending").collect();
    let mut f = Finding::new(
        "unanswered_request",
        Severity::Low,
        format!("{} request(s) never answered", pending.len()),
        format!(
            "Still pending at block {}: {}. No holder delivered or refused them (no holder running, \
             collateral missing, or holders abstaining).",
            h.to_block,
            pending
                .iter()
                .map(|r| format!("request {} by {}", r.request_id, r.requester))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    for r in pending {
        f.request_ids.push(r.request_id);
        f.blocks.push(BlockRange::at(r.block));
        f.accounts.push(r.requester);
    }
    f
}

/// A custody reset: the epoch `ep` began from a new genesis, not from earlier holders.
fn custody_reset(ep: &EpochRecord) -> Finding {
    let prev = ep.previous_cluster.unwrap_or_default();
    let mut f = Finding::new(
        "custody_reset",
        Severity::Medium,
        format!("Custody reset at epoch {}", ep.epoch),
        format!(
            "Cluster {} replaced {prev} in block {} (note {:?}): secrets after this descend from the new \
             genesis, not from earlier holders.",
            ep.cluster, ep.block, ep.note
        ),
    );
    f.blocks.push(BlockRange::at(ep.block));
    f.epochs.push(ep.epoch);
    f.accounts = vec![prev, ep.cluster];
    f
}

fn reverify_findings(custody: &Custody, out: &mut Vec<Finding>) {
    let mut inconclusive = Finding::new(
        "reverify_inconclusive",
        Severity::Info,
        "Some accepted quotes could not be re-verified",
        String::new(),
    );
    let mut notes = Vec::new();
    for ep in &custody.epochs {
        let genesis = ep.reverify.as_ref().map(|r| (r, format!("genesis of epoch {}", ep.epoch), ep.block, None));
        let deliveries = ep.deliveries.iter().filter_map(|d| {
            d.reverify.as_ref().map(|r| (r, format!("request {}", d.request_id), d.block, Some(d.request_id)))
        });
        for (r, what, block, rid) in genesis.into_iter().chain(deliveries) {
            match r.verdict {
                "rejected" => {
                    let mut f = Finding::new(
                        "reverify_rejected",
                        Severity::High,
                        format!("{what}: the accepted quote does not re-verify"),
                        format!(
                            "{what} (epoch {}, block {block}) was accepted on chain, but the holder pipeline \
                             rejects it now: {} ({}).",
                            ep.epoch,
                            r.reason.as_deref().unwrap_or("?"),
                            r.detail
                        ),
                    );
                    f.blocks.push(BlockRange::at(block));
                    f.request_ids.extend(rid);
                    f.epochs.push(ep.epoch);
                    out.push(f);
                }
                "inconclusive" => {
                    inconclusive.blocks.push(BlockRange::at(block));
                    inconclusive.request_ids.extend(rid);
                    notes.push(format!("{what}: {}", r.detail));
                }
                _ => {}
            }
        }
    }
    if !notes.is_empty() {
        inconclusive.detail = notes.join("; ");
        out.push(inconclusive);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PolicyView;

    fn seg(from: u64, to: u64, mask: u16, sim: bool) -> PolicySegment {
        PolicySegment {
            from_block: from,
            to_block: to,
            open: false,
            policy: PolicyView::from(Policy {
                tcb_statuses: mask,
                allow_debug: false,
                allow_simulated: sim,
                min_tcb_evaluation_data_number: 0,
            }),
            set_in_block: from,
        }
    }

    #[test]
    fn ranges_merge_adjacent_segments_where_the_rule_holds() {
        let s = [seg(10, 20, 1, true), seg(20, 30, 0x11, true), seg(30, 40, 1, false), seg(41, 50, 0x10, false)];
        assert_eq!(ranges(&s, |p| p.allow_simulated), vec![BlockRange { from: 10, to: 30, open: false }]);
        assert_eq!(
            ranges(&s, |p| p.tcb_statuses & 0x10 != 0),
            vec![BlockRange { from: 20, to: 30, open: false }, BlockRange { from: 41, to: 50, open: false }]
        );
    }

    /// A 0 floor is reported for the blocks it was in force; a floor of any evaluation is not.
    #[test]
    fn a_zero_tcb_evaluation_floor_is_a_finding() {
        let floor = |from, to, n| PolicySegment {
            policy: PolicyView::from(Policy {
                min_tcb_evaluation_data_number: n,
                ..seg(0, 0, 1, false).policy.policy()
            }),
            ..seg(from, to, 1, false)
        };
        let mut out = Vec::new();
        policy_findings(&[floor(10, 20, 17), floor(20, 30, 0), floor(30, 40, 0), floor(41, 50, 18)], &mut out);
        let f: Vec<&Finding> = out.iter().filter(|f| f.kind == "no_tcb_evaluation_floor").collect();
        assert_eq!(f.len(), 1, "{out:?}");
        assert_eq!(
            (f[0].severity, f[0].blocks.clone()),
            (Severity::Medium, vec![BlockRange { from: 20, to: 40, open: false }])
        );
        let mut out = Vec::new();
        policy_findings(&[floor(10, 20, 17), floor(20, 30, 1)], &mut out);
        assert!(out.iter().all(|f| f.kind != "no_tcb_evaluation_floor"), "{out:?}");
    }

    #[test]
    fn widening_is_any_new_acceptance() {
        let p =
            |m, d, s| Policy { tcb_statuses: m, allow_debug: d, allow_simulated: s, min_tcb_evaluation_data_number: 0 };
        assert!(widens(&p(1, false, false), &p(3, false, false)));
        assert!(!widens(&p(3, true, true), &p(1, false, true)));
        assert!(widens(&p(1, false, false), &p(1, false, true)));
    }

    #[test]
    fn an_older_active_app_version_without_an_end_is_flagged() {
        use crate::model::{RefKindName, ReferenceState};
        use alloy::primitives::B256;
        let app = |id: u8, block: u64, status: &'static str, expires_at: Option<u64>| ReferenceState {
            id: B256::repeat_byte(id),
            ref_kind: RefKindName(2),
            measurement: String::new(),
            status,
            proposed_block: block,
            activates_at: 0,
            note: String::new(),
            revoked_block: None,
            revoke_note: None,
            expires_at,
            proposals: 1,
            app: None,
            os: None,
        };
        let mut out = Vec::new();
        super::superseded_findings(&[app(1, 10, "active", None), app(2, 20, "active", None)], &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].kind, out[0].blocks[0].from), ("superseded_not_ended", 10));
        let mut out = Vec::new();
        let ended = [app(1, 10, "active", Some(99)), app(2, 20, "active", None), app(3, 5, "revoked", None)];
        super::superseded_findings(&ended, &mut out);
        assert!(out.is_empty(), "an end is scheduled, or the old one is gone: {out:?}");
    }
}
