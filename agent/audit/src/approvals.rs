//! What was approved, as published on chain (PROTOCOL.md §4.5): each app reference's compose checked
//! against its compose hash and analysed (trust mode, pin, settings the operator still chooses), each
//! OS reference's description, and, for every accepted quote, the OS image its own event log names
//! next to the one published for its OS reference.

use super::{
    collect::History,
    compose,
    describe::OsDescription,
    model::{
        AppApproval, AttestedOs, BlockRange, Custody, Finding, OsApproval, PinView, ReferenceState, Severity, TdConfig,
    },
    state::State,
};
use alloy::primitives::{Bytes, B256, U256};
use replicatoor_chain::bindings::UpgradeOperator::UpgradeOperatorEvents as Ev;
use replicatoor_core::{
    attest::{eventlog::EventLog, quote::Measurements},
    protocol::Deployment,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

const OS: u8 = 1;
const APP: u8 = 2;

/// Fill `app` / `os` of every reference from its latest proposal's description.
pub fn annotate_references(state: &State, deployment: Deployment, refs: &mut [ReferenceState]) {
    for r in refs.iter_mut() {
        let Some(p) = state.refs.get(&r.id).and_then(|v| v.last()) else { continue };
        match p.kind {
            APP => r.app = Some(app(&p.measurement, p.description.as_ref(), deployment)),
            OS => r.os = Some(os(p.description.as_ref())),
            _ => {}
        }
    }
}

fn app(measurement: &[u8], compose: Option<&Bytes>, deployment: Deployment) -> AppApproval {
    let Some(compose) = compose else { return AppApproval::default() };
    let sha: [u8; 32] = Sha256::digest(compose).into();
    let mut a = AppApproval {
        compose_published: true,
        compose: Some(String::from_utf8_lossy(compose).into_owned()),
        compose_sha256: Some(hex::encode(sha)),
        compose_hash_matches: Some(measurement == sha),
        ..AppApproval::default()
    };
    match compose::check(compose) {
        Ok(c) => {
            a.trust_mode = Some(c.trust_mode());
            a.pin_matches_deployment = c.pinned_deployment.as_ref().map(|d| d.deployment() == deployment);
            a.pinned_deployment = c.pinned_deployment.map(|d| PinView {
                chain_id: d.chain_id,
                contract: d.contract,
                start_block: d.start_block,
                trust: d.trust.to_string(),
                simulated: d.is_simulated(),
            });
            a.unmeasured = c.unmeasured;
            a.images_by_tag = c.images_by_tag;
            a.self_measured = (!c.agent_services.is_empty()).then_some(c.self_measured);
            a.agent_services = c.agent_services;
        }
        Err(e) => a.analysis_error = Some(e.to_string()),
    }
    a
}

fn os(description: Option<&Bytes>) -> OsApproval {
    let Some(d) = description else { return OsApproval::default() };
    match OsDescription::parse(d) {
        Ok(d) => {
            OsApproval { description_published: true, os_image_hash: d.os_image_hash, release: d.release, error: None }
        }
        Err(e) => OsApproval { description_published: true, error: Some(e.to_string()), ..OsApproval::default() },
    }
}

/// Fill `attested_os` on every epoch (its genesis quote) and delivery (its request's quote).
pub fn annotate_custody(h: &History, refs: &[ReferenceState], custody: &mut Custody) {
    let mut logs: HashMap<U256, (&Bytes, &Bytes)> = HashMap::new();
    let mut genesis_logs: HashMap<U256, (&Bytes, &Bytes)> = HashMap::new();
    for e in &h.entries {
        match &e.event {
            Ev::SecretRequested(r) => {
                logs.insert(r.requestId, (&r.quote, &r.eventLog));
            }
            Ev::GenesisProposed(g) => {
                genesis_logs.insert(g.proposalId, (&g.quote, &g.eventLog));
            }
            Ev::RotationProposed(g) => {
                genesis_logs.insert(g.proposalId, (&g.quote, &g.eventLog));
            }
            _ => {}
        }
    }
    let approved = |os_ref: B256| {
        refs.iter().find(|r| r.id == os_ref).and_then(|r| r.os.as_ref()).and_then(|o| o.os_image_hash.clone())
    };
    for ep in &mut custody.epochs {
        let log = genesis_logs.get(&U256::from(ep.proposal_id)).copied();
        ep.attested_os = log.map(|(q, l)| attested(q, l, approved(ep.os_ref)));
        for d in &mut ep.deliveries {
            let log = logs.get(&U256::from(d.request_id)).copied();
            d.attested_os = log.map(|(q, l)| attested(q, l, approved(d.os_ref)));
        }
    }
}

/// The names of the TD attribute bits set in `td_attributes` (Intel TDX module ABI, `ATTRIBUTES`,
/// little-endian u64), for display; a set bit without a name shows as `bitN`.
pub fn td_attribute_names(td_attributes: [u8; 8]) -> Vec<String> {
    const NAMES: [(u32, &str); 13] = [
        (0, "DEBUG"),
        (4, "HGS_PLUS_PROF"),
        (5, "PERF_PROF"),
        (6, "PMT_PROF"),
        (16, "ICSSD"),
        (17, "SERVTD_EXT"),
        (27, "LASS"),
        (28, "SEPT_VE_DISABLE"),
        (29, "MIGRATABLE"),
        (30, "PKS"),
        (31, "KL"),
        (62, "TPA"),
        (63, "PERFMON"),
    ];
    let bits = u64::from_le_bytes(td_attributes);
    (0..64)
        .filter(|i| bits & (1u64 << i) != 0)
        .map(|i| NAMES.iter().find(|(b, _)| *b == i).map_or_else(|| format!("bit{i}"), |(_, n)| (*n).to_string()))
        .collect()
}

fn attested(quote: &[u8], compact: &[u8], approved: Option<String>) -> AttestedOs {
    let td = Measurements::parse_unverified(quote).ok().and_then(|(_, _, m)| m).map(|m| TdConfig {
        td_attributes: hex::encode(m.td_attributes),
        td_attribute_names: td_attribute_names(m.td_attributes),
        xfam: hex::encode(m.xfam),
        mr_config_id: hex::encode(m.mr_config_id),
        mr_owner: hex::encode(m.mr_owner),
        mr_owner_config: hex::encode(m.mr_owner_config),
    });
    let mut a = AttestedOs { approved_os_image_hash: approved, td, ..AttestedOs::default() };
    match EventLog::from_compact(compact).and_then(|l| l.app_info()) {
        Ok(info) => {
            a.os_image_hash = info.os_image_hash.map(hex::encode);
            a.key_provider = info.key_provider.map(|k| String::from_utf8_lossy(&k).into_owned());
        }
        Err(e) => a.error = Some(e.to_string()),
    }
    if let (Some(claimed), Some(approved)) = (&a.os_image_hash, &a.approved_os_image_hash) {
        a.matches = Some(claimed == approved);
    }
    a
}

/// Findings about what was approved and what accepted quotes claim.
pub fn findings(refs: &[ReferenceState], custody: &Custody, out: &mut Vec<Finding>) {
    for r in refs {
        let Some(a) = &r.app else { continue };
        let which = format!("app reference {} ({}, note {:?})", r.id, r.status, r.note);
        let mut found = Vec::new();
        if publication_findings(&which, r, a, &mut found) {
            trust_mode_findings(&which, a, &mut found);
            setting_findings(&which, a, &mut found);
        }
        for mut f in found {
            f.blocks = vec![BlockRange::at(r.proposed_block)];
            f.references.push(r.id);
            out.push(f);
        }
    }
    os_image_findings(custody, out);
}

/// Whether an app reference's compose was published as approved and can be analysed; false when
/// there is nothing more to say about it.
fn publication_findings(which: &str, r: &ReferenceState, a: &AppApproval, out: &mut Vec<Finding>) -> bool {
    if !a.compose_published {
        out.push(Finding::new(
            "compose_not_published",
            Severity::Info,
            "An app reference's compose was not published",
            format!(
                "{which} was proposed with its compose hash only: what its nodes run, and the trust mode \
                 they run in, cannot be checked from the chain. Publish it with `admin propose-app --compose`."
            ),
        ));
        return false;
    }
    if a.compose_hash_matches == Some(false) {
        out.push(Finding::new(
            "compose_hash_mismatch",
            Severity::High,
            "The published compose is not the approved one",
            format!(
                "{which}: the published app-compose.json hashes to {}, not to the approved compose hash {}. \
                 What the nodes run is unknown; the analysis below describes the published file only.",
                a.compose_sha256.as_deref().unwrap_or("?"),
                r.measurement
            ),
        ));
    }
    if let Some(e) = &a.analysis_error {
        out.push(Finding::new(
            "compose_unreadable",
            Severity::Medium,
            "The published compose cannot be analysed",
            format!("{which}: {e}"),
        ));
        return false;
    }
    true
}

/// What the trust root an approved app pins (or its pinning nothing) lets its nodes believe.
fn trust_mode_findings(which: &str, a: &AppApproval, out: &mut Vec<Finding>) {
    match a.trust_mode {
        Some("simulated-beacon") => out.push(Finding::new(
            "simulated_beacon_approved",
            Severity::Critical,
            "An approved app trusts a SIMULATED beacon",
            format!(
                "{which} pins a simulated-beacon trust root: its nodes accept chain state signed by a \
                 committee whose keys are public (dev and test chains only; never in production)."
            ),
        )),
        // The simulated network relabelled as a custom one: as bad as simulated-beacon (the
        // committee keys are public), and a release build refuses it; say what it really is.
        Some("beacon-custom") if a.pinned_deployment.as_ref().is_some_and(|p| p.simulated) => out.push(Finding::new(
            "simulated_beacon_approved",
            Severity::Critical,
            "An approved app trusts a SIMULATED beacon network under another name",
            format!(
                "{which} pins a beacon-custom trust root whose network has the simulated network's identity \
                 (its fork versions or genesis validators root): its nodes would accept chain state signed by \
                 a committee whose keys are public. A release build refuses to start on it; a dev build \
                 believes it."
            ),
        )),
        Some("beacon-custom") => out.push(Finding::new(
            "custom_beacon_network_approved",
            Severity::Medium,
            "An approved app trusts a custom beacon network",
            format!(
                "{which} pins a beacon light client on a network the pin spells out ([trust.custom_network]) \
                 instead of a built-in one: {}. This release vouches only for the built-in networks' \
                 parameters: check the genesis validators root and fork versions against the chain's \
                 published configuration, and that the checkpoint is on that chain.",
                a.pinned_deployment.as_ref().map_or("?", |p| p.trust.as_str())
            ),
        )),
        Some(compose::UNVERIFIED) => out.push(Finding::new(
            "app_not_pinned",
            Severity::High,
            "An approved app pins no deployment (NOT PINNED)",
            format!(
                "{which} carries no literal REPLICATOOR_DEPLOYMENT: its nodes run rpc-unverified and \
                 believe whatever their operator's RPC shows them about the chain.{}",
                if a.agent_services.is_empty() {
                    " No service in it runs the replicatoor agent: how its nodes get the secret is not \
                     measured by this compose at all."
                } else {
                    ""
                }
            ),
        )),
        _ => {}
    }
}

/// Another deployment's pin, and the settings an approved app leaves to the machine's operator.
fn setting_findings(which: &str, a: &AppApproval, out: &mut Vec<Finding>) {
    if a.pin_matches_deployment == Some(false) {
        let pin = a.pinned_deployment.as_ref();
        out.push(Finding::new(
            "pin_other_deployment",
            Severity::High,
            "An approved app pins another deployment",
            format!(
                "{which} pins chain {} contract {}, not this deployment: its nodes would refuse to run here.",
                pin.map_or(0, |p| p.chain_id),
                pin.map_or_else(String::new, |p| p.contract.to_string())
            ),
        ));
    }
    if !a.unmeasured.is_empty() {
        let list: Vec<String> =
            a.unmeasured.iter().map(|u| format!("{}: {} ({})", u.service, u.setting, u.source)).collect();
        out.push(Finding::new(
            "unmeasured_security_setting",
            Severity::High,
            "An approved app lets the operator choose security settings",
            format!(
                "{which}: these settings come from outside the measured compose, so the machine's operator \
                 chooses them without changing the compose hash: {}.",
                list.join("; ")
            ),
        ));
    }
    if a.self_measured == Some(false) {
        out.push(Finding::new(
            "configuration_not_self_measured",
            Severity::High,
            "An approved app's nodes do not check their configuration against it",
            format!(
                "{which} runs the agent on SIMULATED quotes: such a node has no measured compose to check its \
                 settings against, so the machine's operator chooses them (dev and test only)."
            ),
        ));
    }
    if !a.images_by_tag.is_empty() {
        out.push(Finding::new(
            "image_by_tag",
            Severity::Medium,
            "An approved app references images by tag",
            format!("{which}: a tag can be moved to another image; pin a digest: {}.", a.images_by_tag.join(", ")),
        ));
    }
}

fn os_image_findings(custody: &Custody, out: &mut Vec<Finding>) {
    for ep in &custody.epochs {
        let genesis =
            ep.attested_os.as_ref().map(|a| (a, format!("genesis of epoch {}", ep.epoch), ep.block, ep.os_ref, None));
        let deliveries = ep.deliveries.iter().filter_map(|d| {
            let what = format!("request {}", d.request_id);
            d.attested_os.as_ref().map(|a| (a, what, d.block, d.os_ref, Some(d.request_id)))
        });
        for (a, what, block, os_ref, rid) in genesis.into_iter().chain(deliveries) {
            if a.matches != Some(false) {
                continue;
            }
            let mut f = Finding::new(
                "os_image_mismatch",
                Severity::High,
                format!("{what}: the OS image differs from the approved one"),
                format!(
                    "{what} (epoch {}, block {block}) was accepted under OS reference {os_ref}, published as OS image \
                     {}, but its own event log names OS image {}.",
                    ep.epoch,
                    a.approved_os_image_hash.as_deref().unwrap_or("?"),
                    a.os_image_hash.as_deref().unwrap_or("?")
                ),
            );
            f.blocks.push(BlockRange::at(block));
            f.request_ids.extend(rid);
            f.epochs.push(ep.epoch);
            f.references.push(os_ref);
            out.push(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::Address;
    use replicatoor_core::attest::eventlog::{DigestFormat, Event};

    fn log(os_image: Option<&[u8]>) -> Vec<u8> {
        let ev = |n: &str, p: &[u8]| Event::runtime(n, p.to_vec(), DigestFormat::V1);
        let mut events = vec![ev("app-id", &[1; 20]), ev("compose-hash", &[2; 32]), ev("instance-id", &[])];
        events.push(ev("boot-mr-done", &[]));
        events.extend(os_image.map(|h| ev("os-image-hash", h)));
        events.push(ev("system-ready", &[]));
        replicatoor_encode::eventlog::to_compact(&EventLog::from_events(events)).unwrap()
    }

    #[test]
    fn the_logged_os_image_is_compared_with_the_published_one() {
        let same = attested(b"", &log(Some(&[0xab; 2])), Some("abab".into()));
        assert_eq!((same.os_image_hash.as_deref(), same.matches), (Some("abab"), Some(true)));
        assert_eq!(attested(b"", &log(Some(&[0xcd; 2])), Some("abab".into())).matches, Some(false));
        assert_eq!(attested(b"", &log(None), Some("abab".into())).matches, None, "not logged: nothing to compare");
        assert_eq!(attested(b"", &log(Some(&[1])), None).matches, None, "nothing published");
        assert!(attested(b"", b"junk", None).error.is_some());
    }

    #[test]
    fn a_published_compose_is_checked_against_the_hash_and_the_deployment() {
        let compose = br#"{"docker_compose_file":"services:\n  agent:\n    image: replicatoor@sha256:00\n"}"#;
        let hash: [u8; 32] = Sha256::digest(compose).into();
        let dep = Deployment { chain_id: 1, contract: Address::repeat_byte(1) };
        let a = app(&hash, Some(&Bytes::from_static(compose)), dep);
        assert_eq!((a.compose_hash_matches, a.trust_mode), (Some(true), Some(compose::UNVERIFIED)));
        assert_eq!(a.agent_services, ["agent"]);
        assert_eq!(app(&[0; 32], Some(&Bytes::from_static(compose)), dep).compose_hash_matches, Some(false));
        assert!(!app(&hash, None, dep).compose_published);
        let bad = app(&hash, Some(&Bytes::from_static(b"not json")), dep);
        assert!(bad.analysis_error.is_some() && bad.trust_mode.is_none());
        assert!(os(Some(&Bytes::from_static(b"{"))).error.is_some());
    }

    /// The findings of an app reference whose compose pins `pin` literally.
    fn findings_for_pin(pin: &replicatoor_chain::deployment::PinnedDeployment) -> Vec<Finding> {
        let body: Vec<String> = pin.to_toml().lines().map(|l| format!("        {l}")).collect();
        let yaml = format!(
            "services:\n  agent:\n    image: reg/replicatoor@sha256:{}\n    environment:\n      REPLICATOOR_DEPLOYMENT: |\n{}\n",
            "0".repeat(64),
            body.join("\n")
        );
        let compose = serde_json::to_vec(&serde_json::json!({ "docker_compose_file": yaml })).unwrap();
        let hash: [u8; 32] = Sha256::digest(&compose).into();
        let a = app(&hash, Some(&Bytes::from(compose)), pin.deployment());
        let r = ReferenceState {
            id: B256::repeat_byte(2),
            ref_kind: crate::model::RefKindName(APP),
            measurement: hex::encode(hash),
            status: "active",
            proposed_block: 7,
            activates_at: 0,
            note: String::new(),
            revoked_block: None,
            revoke_note: None,
            expires_at: None,
            proposals: 1,
            app: Some(a),
            os: None,
        };
        let mut out = Vec::new();
        findings(&[r], &Custody::default(), &mut out);
        out
    }

    /// A custom beacon network is a finding of its own, below a simulated one; the simulated network
    /// relabelled as a custom one is reported for what it is.
    #[test]
    fn a_custom_beacon_network_is_a_finding_and_a_relabelled_simulated_one_is_critical() {
        use replicatoor_chain::{
            beacon::Network,
            deployment::{PinnedDeployment, TrustRoot},
        };
        let pin = |network: Network| PinnedDeployment {
            chain_id: 1,
            contract: Address::repeat_byte(1),
            start_block: 1,
            trust: TrustRoot::Beacon {
                network: None,
                custom_network: Some(network),
                checkpoint: B256::repeat_byte(3),
                max_age_secs: 300,
                reveal_within_secs: replicatoor_chain::deployment::DEFAULT_REVEAL_WITHIN_SECS,
            },
        };
        let kinds = |f: &[Finding]| f.iter().map(|f| (f.kind, f.severity)).collect::<Vec<_>>();

        let mut custom = Network::mainnet();
        custom.name = "my-chain".into();
        custom.genesis_validators_root = B256::repeat_byte(9);
        let f = findings_for_pin(&pin(custom));
        assert_eq!(kinds(&f), [("custom_beacon_network_approved", Severity::Medium)], "{f:?}");
        assert!(f[0].detail.contains("CUSTOM network (\"my-chain\""), "{}", f[0].detail);

        // The simulated dev beacon's genesis validators root under mainnet's name and fork versions.
        let mut relabelled = Network::mainnet();
        relabelled.genesis_validators_root = Network::simulated_genesis_validators_root();
        let f = findings_for_pin(&pin(relabelled));
        assert_eq!(kinds(&f), [("simulated_beacon_approved", Severity::Critical)], "{f:?}");

        let mut builtin = pin(Network::mainnet());
        if let TrustRoot::Beacon { network, custom_network, .. } = &mut builtin.trust {
            (*network, *custom_network) = (Some("mainnet".into()), None);
        }
        assert_eq!(kinds(&findings_for_pin(&builtin)), []);
    }

    #[test]
    fn td_attribute_bits_are_named_in_the_little_endian_order_of_the_report() {
        // DEBUG (bit 0), SEPT_VE_DISABLE (bit 28 = byte 3, 0x10), PERFMON (bit 63).
        assert_eq!(td_attribute_names([0x01, 0, 0, 0x10, 0, 0, 0, 0x80]), ["DEBUG", "SEPT_VE_DISABLE", "PERFMON"]);
        // A reserved bit has no name but is not hidden.
        assert_eq!(td_attribute_names([0x04, 0, 0, 0, 0, 0, 0, 0]), ["bit2"]);
        assert!(td_attribute_names([0; 8]).is_empty());
    }
}
