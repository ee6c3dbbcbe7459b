//! The human-readable report. Chain-supplied text (notes) is printed with `{:?}`, so control
//! characters and terminal escapes in a note cannot restyle or hide lines.

use super::model::{
    AppApproval, AttestedOs, Custody, DeliveryRecord, EpochEntry, EpochRecord, GovernanceEvent as G, OsApproval,
    PolicyView, ReferenceState, Report, Reverification, TdConfig,
};
use alloy::primitives::Address;
use std::{collections::HashSet, fmt::Write as _};

/// `YYYY-MM-DD HH:MM:SS UTC` for a unix time (no time-zone database needed).
pub fn fmt_time(t: u64) -> String {
    let (days, secs) = (t / 86_400, t % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", secs / 3600, secs / 60 % 60, secs % 60)
}

pub fn fmt_policy(p: &PolicyView) -> String {
    let names = crate::model::TcbNames(p.tcb_statuses).names();
    format!(
        "tcbStatuses {:#x} [{}], debug {}, simulated {}, {}",
        p.tcb_statuses,
        names.join(", "),
        if p.allow_debug { "ALLOWED" } else { "no" },
        if p.allow_simulated { "ALLOWED" } else { "no" },
        match p.min_tcb_evaluation_data_number {
            0 => "collateral of any TCB evaluation".to_string(),
            n => format!("TCB evaluation ≥ {n}"),
        }
    )
}

/// One line describing a governance event (without block and actor).
pub fn describe_event(e: &G) -> String {
    match e {
        G::Deployed { owner, widening_delay } => format!("deployed, owner {owner}, widening delay {widening_delay} s"),
        G::ReferenceProposed { id, ref_kind, activates_at, immediate, id_matches_measurement, .. } => format!(
            "{} reference {id} proposed, active from {}{}{}",
            ref_kind.as_str(),
            fmt_time(*activates_at),
            if *immediate { " (IMMEDIATELY)" } else { "" },
            if *id_matches_measurement { "" } else { " — ID DOES NOT MATCH ITS MEASUREMENT" }
        ),
        G::ReferenceRevoked { id, ref_kind } => format!("{} reference {id} revoked", ref_kind.as_str()),
        G::ReferenceDescribed { id, ref_kind, bytes } => {
            format!("{} reference {id} described ({bytes} bytes published)", ref_kind.as_str())
        }
        G::PolicySet { policy, effective_at, cancelled } => format!(
            "policy set: {}, effective {}{}",
            fmt_policy(policy),
            fmt_time(*effective_at),
            if *cancelled { " (cancelled before it took effect)" } else { "" }
        ),
        G::OwnershipTransferStarted { previous_owner, new_owner } => {
            format!("ownership transfer started: {previous_owner} → {new_owner}")
        }
        G::OwnershipTransferred { previous_owner, new_owner } => {
            format!("ownership transferred: {previous_owner} → {new_owner}")
        }
        G::ClusterBootstrapped { epoch, cluster, proposal_id, .. } => {
            format!("proposal {proposal_id} approved: epoch {epoch}, cluster {cluster}")
        }
        G::CustodyReset { epoch, previous_cluster, new_cluster } => {
            format!("CUSTODY RESET at epoch {epoch}: {previous_cluster} → {new_cluster}")
        }
        G::BootstrapScheduled { epoch, cluster, proposal_id, executable_at } => format!(
            "RE-BOOTSTRAP SCHEDULED: genesis proposal {proposal_id} (epoch {epoch}, cluster {cluster}) takes custody from {}",
            fmt_time(*executable_at)
        ),
        G::ReferenceExpiryScheduled { id, ref_kind, expires_at } => {
            format!("{} reference {id} ends at {}", ref_kind.as_str(), fmt_time(*expires_at))
        }
        G::BootstrapCancelled { proposal_id } => format!("scheduled re-bootstrap (proposal {proposal_id}) cancelled"),
        G::RotationStarted { epoch } => format!("rotation to epoch {epoch} started"),
        G::RotationCancelled { epoch } => format!("rotation to epoch {epoch} cancelled"),
        G::ClusterRotated { epoch, previous_cluster, new_cluster } => {
            format!("KEY ROTATED at epoch {epoch}: {previous_cluster} → {new_cluster} (endorsed by the previous cluster)")
        }
    }
}

/// The trust mode line of an approved app.
pub fn trust_mode_line(a: &AppApproval) -> String {
    match (a.trust_mode, &a.pinned_deployment) {
        (None, _) if !a.compose_published => "unknown: no compose published".into(),
        (None, _) => "unknown: the compose cannot be analysed".into(),
        (Some(mode), None) => format!("{mode} (NOT PINNED)"),
        (Some(mode), Some(p)) => format!(
            "{mode}: pins chain {} contract {}{}",
            p.chain_id,
            p.contract,
            match a.pin_matches_deployment {
                Some(true) => " (this deployment)",
                _ => " — NOT THIS DEPLOYMENT",
            }
        ),
    }
}

/// What an app reference's proposal published, as lines.
pub fn app_lines(r: &ReferenceState, a: &AppApproval) -> Vec<String> {
    if !a.compose_published {
        return vec!["compose: not published (proposed with its hash only)".into()];
    }
    let mut out = vec![format!(
        "compose: published, sha256 {} — {}",
        a.compose_sha256.as_deref().unwrap_or("?"),
        if a.compose_hash_matches == Some(true) {
            "matches the compose hash".to_string()
        } else {
            format!("DOES NOT MATCH the approved compose hash {}", r.measurement)
        }
    )];
    out.push(format!("trust mode: {}", trust_mode_line(a)));
    if let Some(p) = &a.pinned_deployment {
        out.push(format!("trust root: {} (start block {})", p.trust, p.start_block));
    }
    if let Some(e) = &a.analysis_error {
        out.push(format!("analysis: {e}"));
    }
    if a.self_measured == Some(false) {
        out.push("configuration: NOT self-measured (the agent runs on simulated quotes)".into());
    }
    for u in &a.unmeasured {
        out.push(format!("UNMEASURED {}: {} ({})", u.service, u.setting, u.source));
    }
    for i in &a.images_by_tag {
        out.push(format!("image by tag: {i}"));
    }
    out
}

/// What an OS reference's proposal published, as one line.
pub fn os_line(o: &OsApproval) -> String {
    match (o.description_published, &o.error) {
        (false, _) => "OS image: not published".into(),
        (true, Some(e)) => format!("OS description unreadable: {e}"),
        (true, None) => format!(
            "OS image hash {}, release {}",
            o.os_image_hash.as_deref().unwrap_or("not published"),
            o.release.as_deref().unwrap_or("not published")
        ),
    }
}

/// The OS image an accepted quote's log names, against the approved one.
pub fn attested_line(a: &Option<AttestedOs>) -> String {
    let Some(a) = a else { return String::new() };
    let td = a.td.as_ref().map(td_line).unwrap_or_default();
    if let Some(e) = &a.error {
        return format!("event log unreadable: {e}{td}");
    }
    let os = match (&a.os_image_hash, a.matches) {
        (None, _) => "os image not logged".into(),
        (Some(h), Some(true)) => format!("os image {h} (as approved)"),
        (Some(h), Some(false)) => {
            format!("os image {h} DIFFERS from the approved {}", a.approved_os_image_hash.as_deref().unwrap_or("?"))
        }
        (Some(h), None) => format!("os image {h} (none published for its OS reference)"),
    };
    format!("{os}{td}")
}

/// The TD's launch configuration, briefly: attributes by name, XFAM, and the launcher-chosen
/// MRCONFIGID / MROWNER / MROWNERCONFIG only where they are not zero.
fn td_line(t: &TdConfig) -> String {
    let mut out = format!("; td attributes {} [{}], xfam {}", t.td_attributes, t.td_attribute_names.join(" "), t.xfam);
    for (name, v) in [("mrconfigid", &t.mr_config_id), ("mrowner", &t.mr_owner), ("mrownerconfig", &t.mr_owner_config)]
    {
        if v.bytes().any(|b| b != b'0') {
            out.push_str(&format!(", {name} {v}"));
        }
    }
    out
}

fn verdict(r: &Option<Reverification>) -> String {
    match r {
        None => String::new(),
        Some(r) => match &r.reason {
            Some(why) => format!("  [reverify: {} — {why}]", r.verdict),
            None => format!("  [reverify: {}]", r.verdict),
        },
    }
}

/// The deliveries of an epoch as a tree: children of a holder are the deliveries it relayed.
pub fn children(ep: &EpochRecord, parent: Option<Address>) -> Vec<&DeliveryRecord> {
    ep.deliveries
        .iter()
        .filter(|d| match parent {
            // Under the genesis node: deliveries it relayed, and those relayed by strangers.
            None => d.served_by.is_none() || d.served_by == ep.proposer,
            Some(p) => d.served_by == Some(p) && Some(p) != ep.proposer,
        })
        .collect()
}

fn tree(out: &mut String, ep: &EpochRecord, parent: Option<Address>, depth: usize, seen: &mut HashSet<u64>) {
    for d in children(ep, parent) {
        if !seen.insert(d.request_id) {
            continue;
        }
        let _ = writeln!(
            out,
            "{}└─ request {} → {} (block {}, relayer {}){}; {}",
            "   ".repeat(depth + 1),
            d.request_id,
            d.requester,
            d.block,
            d.relayer,
            verdict(&d.reverify),
            attested_line(&d.attested_os)
        );
        if Some(d.requester) != ep.proposer {
            tree(out, ep, Some(d.requester), depth + 1, seen);
        }
    }
}

fn custody(out: &mut String, c: &Custody) {
    let _ = writeln!(out, "\nCUSTODY");
    if c.epochs.is_empty() {
        let _ = writeln!(out, "  no cluster was bootstrapped");
    }
    for ep in &c.epochs {
        let _ = writeln!(
            out,
            "  epoch {}: cluster {}, genesis proposal {} by {}, block {} ({}), note {:?}{}",
            ep.epoch,
            ep.cluster,
            ep.proposal_id,
            ep.proposer.map_or("?".into(), |p| p.to_string()),
            ep.block,
            fmt_time(ep.time),
            ep.note,
            verdict(&ep.reverify)
        );
        let _ = writeln!(out, "     os {} / app {}; {}", ep.os_ref, ep.app_ref, attested_line(&ep.attested_os));
        if let Some(prev) = ep.previous_cluster {
            let _ = writeln!(out, "     CUSTODY RESET: replaced cluster {prev}");
        }
        tree(out, ep, None, 0, &mut HashSet::new());
        for r in &ep.refusals {
            let _ = writeln!(
                out,
                "   ✗ request {} by {} refused: {} (code {}), block {}",
                r.request_id, r.requester, r.reason, r.code, r.block
            );
        }
    }
    for r in c.requests.iter().filter(|r| r.status == "pending") {
        let _ = writeln!(
            out,
            "  ? request {} by {} never answered (block {}; {} quote, {} B)",
            r.request_id, r.requester, r.block, r.quote_form, r.quote_bytes
        );
    }
}

/// Render the report as text.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    summary(&mut out, r);
    provenance(&mut out, r);
    findings(&mut out, r);
    timeline(&mut out, r);
    policies(&mut out, r);
    references(&mut out, r);
    approvals(&mut out, r);
    epochs(&mut out, &r.epochs);
    custody(&mut out, &r.custody);
    out
}

/// What was audited, and the deployment's state at its end.
fn summary(out: &mut String, r: &Report) {
    let s = &r.summary;
    let _ = writeln!(
        out,
        "Replicatoor audit: chain {}, contract {}, blocks {}..{} (to {})",
        r.chain_id,
        r.contract,
        r.from_block,
        r.to_block,
        fmt_time(r.to_time)
    );
    let _ = writeln!(
        out,
        "owner {}, widening delay {}; {} epochs, {} requests ({} delivered, {} refused, {} pending)",
        s.owner.map_or("unknown".into(), |o| o.to_string()),
        s.widening_delay.map_or("unknown".into(), |d| format!("{d} s")),
        s.epochs,
        s.requests,
        s.delivered,
        s.refused,
        s.pending
    );
    if let Some(p) = &s.policy {
        let _ = writeln!(out, "policy now: {}", fmt_policy(p));
    }
    if let Some(p) = &s.pending_policy {
        let _ = writeln!(out, "pending policy: {}, from {}", fmt_policy(&p.policy), fmt_time(p.effective_at));
    }
}

fn findings(out: &mut String, r: &Report) {
    let s = &r.summary;
    let _ = writeln!(
        out,
        "\nFINDINGS ({} critical, {} high, {} medium, {} low, {} info)",
        s.critical, s.high, s.medium, s.low, s.info
    );
    for f in &r.findings {
        let blocks: Vec<_> = f
            .blocks
            .iter()
            .map(|b| match (b.from == b.to, b.open) {
                (true, false) => b.from.to_string(),
                (_, true) => format!("{}..{}+", b.from, b.to),
                _ => format!("{}..{}", b.from, b.to),
            })
            .collect();
        let _ = writeln!(out, "  [{}] {}: {}", f.severity.name().to_uppercase(), f.kind, f.title);
        let _ = writeln!(out, "      blocks {}", blocks.join(", "));
        let _ = writeln!(out, "      {}", f.detail.escape_debug());
    }
}

fn timeline(out: &mut String, r: &Report) {
    let _ = writeln!(out, "\nGOVERNANCE TIMELINE");
    for t in &r.timeline {
        let _ = writeln!(
            out,
            "  block {:>8}  {}  by {}  {}{}",
            t.block,
            fmt_time(t.time),
            t.actor.map_or("?".into(), |a| a.to_string()),
            describe_event(&t.event),
            if t.note.is_empty() { String::new() } else { format!("  note {:?}", t.note) }
        );
        let _ = writeln!(out, "                  tx {}", t.tx);
    }
}

fn policies(out: &mut String, r: &Report) {
    let _ = writeln!(out, "\nPOLICY IN FORCE");
    for p in &r.policies {
        let _ = writeln!(
            out,
            "  blocks {}..{}{}: {} (set in block {})",
            p.from_block,
            p.to_block,
            if p.open { "+" } else { "" },
            fmt_policy(&p.policy),
            p.set_in_block
        );
    }
}

fn references(out: &mut String, r: &Report) {
    let _ = writeln!(out, "\nREFERENCES");
    for x in &r.references {
        let _ = writeln!(
            out,
            "  {:<8} {:<4} {}  proposed block {}, active from {}, note {:?}{}{}",
            x.status,
            x.ref_kind.as_str(),
            x.id,
            x.proposed_block,
            fmt_time(x.activates_at),
            x.note,
            x.expires_at.map_or(String::new(), |t| format!(", ends {}", fmt_time(t))),
            x.revoked_block.map_or(String::new(), |b| format!(", revoked block {b} ({:?})", x.revoke_note))
        );
    }
}

/// How an epoch began, in words.
pub fn epoch_line(e: &EpochEntry) -> String {
    let how = match (e.kind, e.previous_cluster) {
        ("rotation", Some(prev)) => format!("ROTATION from {prev} (endorsed by it)"),
        ("re_bootstrap", Some(prev)) => format!("RE-BOOTSTRAP replacing {prev}"),
        (kind, _) => kind.to_string(),
    };
    format!(
        "epoch {}: {how}; cluster {}, proposal {} by {}, block {} ({})",
        e.epoch,
        e.cluster,
        e.proposal_id,
        e.proposer.map_or("?".into(), |p| p.to_string()),
        e.block,
        fmt_time(e.time)
    )
}

fn epochs(out: &mut String, epochs: &[EpochEntry]) {
    let _ = writeln!(out, "\nEPOCHS");
    if epochs.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for e in epochs {
        let _ = writeln!(out, "  {}", epoch_line(e));
        let _ = match e.recipients.len() {
            0 => writeln!(out, "     received by nobody yet"),
            n => writeln!(
                out,
                "     received by {n}: {}",
                e.recipients
                    .iter()
                    .map(|r| format!("{} (request {}, block {})", r.requester, r.request_id, r.block))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
    }
}

fn approvals(out: &mut String, r: &Report) {
    let _ = writeln!(out, "\nWHAT WAS APPROVED (published with each proposal)");
    for x in &r.references {
        let lines = match (&x.app, &x.os) {
            (Some(a), _) => app_lines(x, a),
            (_, Some(o)) => vec![os_line(o)],
            _ => continue,
        };
        let _ = writeln!(out, "  {} {} ({})", x.ref_kind.as_str(), x.id, x.status);
        for l in lines {
            let _ = writeln!(out, "      {}", l.escape_debug());
        }
        if let Some(c) = x.app.as_ref().and_then(|a| a.compose.as_ref()) {
            let _ = writeln!(out, "      published compose:");
            for l in c.lines() {
                let _ = writeln!(out, "        | {}", l.escape_debug());
            }
        }
    }
}

/// What `audit --deployment` proved: each value and recent event, proven (at which header, signed by
/// how many), contradicted by its proof, unproven, or read from the RPC only.
fn provenance(out: &mut String, r: &Report) {
    let Some(p) = &r.provenance else {
        let _ = writeln!(out, "provenance: every value below is RPC-read (no --deployment: nothing proven)");
        return;
    };
    let signed = match (p.signers, p.committee_size) {
        (Some(n), Some(size)) => format!(", header signed by {n} of {size} sync-committee members"),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "\nPROVEN at block {} ({}, {}), trust root {}{signed}; {} contradiction(s)",
        p.block,
        p.block_hash,
        fmt_time(p.time),
        p.trust_mode,
        p.mismatches
    );
    for v in &p.values {
        let _ = match v.status {
            "proven" => writeln!(out, "  proven    {} = {}", v.name, v.rpc),
            s => writeln!(
                out,
                "  {:<9} {}: RPC says {}, proof {} ({})",
                s.to_uppercase(),
                v.name,
                v.rpc,
                v.proven.as_deref().unwrap_or("none"),
                v.detail.as_deref().unwrap_or("")
            ),
        };
    }
    let count = |s: &str| p.events.iter().filter(|e| e.status == s).count();
    let _ = writeln!(
        out,
        "  events from block {}: {} proven from receipts, {} contradicted, {} unproven; {} older events RPC-read",
        p.events_window_from,
        count("proven"),
        count("mismatch"),
        count("unproven"),
        count("rpc_read")
    );
    for e in p.events.iter().filter(|e| e.status == "mismatch" || e.status == "unproven") {
        let _ = writeln!(
            out,
            "  {:<9} {} at block {} index {}: {}",
            e.status.to_uppercase(),
            e.event,
            e.block,
            e.log_index,
            e.detail.as_deref().unwrap_or("")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(fmt_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(fmt_time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(fmt_time(1_767_225_599), "2025-12-31 23:59:59 UTC");
    }

    #[test]
    fn epochs_say_how_they_began_and_who_received_them() {
        use crate::model::EpochRecipient;
        let e = EpochEntry {
            epoch: 2,
            cluster: Address::repeat_byte(2),
            kind: "rotation",
            previous_cluster: Some(Address::repeat_byte(1)),
            proposal_id: 3,
            proposer: Some(Address::repeat_byte(9)),
            block: 40,
            time: 0,
            tx: alloy::primitives::B256::ZERO,
            recipients: vec![EpochRecipient { request_id: 7, requester: Address::repeat_byte(7), block: 44 }],
        };
        let mut out = String::new();
        epochs(&mut out, &[e]);
        assert!(out.contains(&format!("epoch 2: ROTATION from {} (endorsed by it)", Address::repeat_byte(1))), "{out}");
        assert!(out.contains(&format!("received by 1: {} (request 7, block 44)", Address::repeat_byte(7))), "{out}");
    }
}
