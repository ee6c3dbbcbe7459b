//! consensus-spec-tests light-client `sync` vectors (minimal preset): replay every step through
//! the store and compare the finalized and optimistic headers after each, including the spec's
//! forced updates and the below-2/3 paths.

mod common;

use common::{fixture_str, root, snappy};
use replicatoor_beacon::codec::{decode_bootstrap_ssz, decode_update_ssz};
use replicatoor_beacon::store::execution_root;
use replicatoor_beacon::{Fork, ForkEntry, LightClientHeader, LightClientStore, Minimal, Network, PresetKind, Version};

/// `KEY: value` from a flat YAML file (config.yaml / meta.yaml, both styles).
fn yaml_field(text: &str, key: &str) -> Option<String> {
    let pattern = format!("{key}:");
    let at = text
        .match_indices(&pattern)
        .map(|(i, _)| i)
        .find(|&i| i == 0 || !matches!(text.as_bytes()[i - 1], b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_'))?
        + pattern.len();
    let rest = text[at..].trim_start();
    let end = rest.find([',', '\n', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim().trim_matches('\'').trim_matches('"').to_owned())
}

fn network(dir: &str) -> Network {
    let config = fixture_str(&format!("{dir}/config.yaml"));
    let meta = fixture_str(&format!("{dir}/meta.yaml"));
    let version =
        |key: &str| -> Version { Version::from_slice(&common::hex_bytes(&yaml_field(&config, key).unwrap())) };
    let mut forks = vec![ForkEntry { fork: Fork::Phase0, version: version("GENESIS_FORK_VERSION"), epoch: 0 }];
    for fork in [Fork::Altair, Fork::Bellatrix, Fork::Capella, Fork::Deneb, Fork::Electra] {
        let name = fork.name().to_uppercase();
        if let Some(epoch) = yaml_field(&config, &format!("{name}_FORK_EPOCH")) {
            let epoch: u64 = epoch.parse().unwrap();
            forks.push(ForkEntry { fork, version: version(&format!("{name}_FORK_VERSION")), epoch });
        }
    }
    let gvr = root(&yaml_field(&meta, "genesis_validators_root").unwrap());
    let network = Network {
        name: "spec-minimal".into(),
        genesis_validators_root: gvr,
        genesis_time: 0,
        seconds_per_slot: 6,
        preset: PresetKind::Minimal,
        forks,
        blob_schedule: vec![],
    };
    network.validate().unwrap();
    network
}

struct Check {
    slot: u64,
    beacon_root: String,
    execution_root: String,
}

enum Step {
    Update { digest: String, file: String, current_slot: u64, finalized: Check, optimistic: Check },
    Force { current_slot: u64, finalized: Check, optimistic: Check },
}

fn check_after(text: &str, label: &str) -> Check {
    let at = text.find(label).unwrap();
    let t = &text[at..];
    Check {
        slot: yaml_field(t, "slot").unwrap().parse().unwrap(),
        beacon_root: yaml_field(t, "beacon_root").unwrap(),
        execution_root: yaml_field(t, "execution_root").unwrap(),
    }
}

fn steps(dir: &str) -> Vec<Step> {
    let text = fixture_str(&format!("{dir}/steps.yaml"));
    let mut out = Vec::new();
    for chunk in text.split("\n- ").map(|c| c.trim_start_matches("- ")) {
        let current_slot = yaml_field(chunk, "current_slot").unwrap().parse().unwrap();
        let finalized = check_after(chunk, "finalized_header");
        let optimistic = check_after(chunk, "optimistic_header");
        if chunk.starts_with("process_update") {
            out.push(Step::Update {
                digest: yaml_field(chunk, "update_fork_digest").unwrap(),
                file: yaml_field(chunk, "update").unwrap(),
                current_slot,
                finalized,
                optimistic,
            });
        } else {
            assert!(chunk.starts_with("force_update"), "unknown step {chunk}");
            out.push(Step::Force { current_slot, finalized, optimistic });
        }
    }
    out
}

fn assert_header(network: &Network, header: &LightClientHeader, check: &Check, what: &str) {
    assert_eq!(header.beacon.slot, check.slot, "{what} slot");
    assert_eq!(header.beacon.root(), root(&check.beacon_root), "{what} root");
    assert_eq!(execution_root(network, header), root(&check.execution_root), "{what} execution root");
}

fn digest_fork(network: &Network, digest: &str) -> Fork {
    network.fork_for_digest(common::hex_bytes(digest).try_into().unwrap()).unwrap()
}

fn run(dir: &str) {
    let network = network(dir);
    let meta = fixture_str(&format!("{dir}/meta.yaml"));
    let fork = digest_fork(&network, &yaml_field(&meta, "bootstrap_fork_digest").unwrap());
    let bootstrap =
        decode_bootstrap_ssz::<Minimal>(&network, fork, &snappy(&format!("{dir}/bootstrap.ssz_snappy"))).unwrap().data;
    let trusted = root(&yaml_field(&meta, "trusted_block_root").unwrap());
    let mut store = LightClientStore::<Minimal>::initialize(&network, trusted, &bootstrap).unwrap();
    let steps = steps(dir);
    assert!(!steps.is_empty(), "{dir}: no steps parsed");
    for (i, step) in steps.into_iter().enumerate() {
        let (finalized, optimistic) = match step {
            Step::Update { digest, file, current_slot, finalized, optimistic } => {
                let bytes = snappy(&format!("{dir}/{file}.ssz_snappy"));
                let update =
                    decode_update_ssz::<Minimal>(&network, digest_fork(&network, &digest), &bytes).unwrap().data;
                store.process_update(&network, &update, current_slot).unwrap_or_else(|e| panic!("{dir} step {i}: {e}"));
                (finalized, optimistic)
            }
            Step::Force { current_slot, finalized, optimistic } => {
                store.force_update(&network, current_slot).unwrap();
                (finalized, optimistic)
            }
        };
        assert_header(&network, &store.finalized_header, &finalized, &format!("{dir} step {i} finalized"));
        assert_header(&network, &store.optimistic_header, &optimistic, &format!("{dir} step {i} optimistic"));
    }
}

#[test]
fn deneb_light_client_sync() {
    run("spec-minimal/deneb/light_client_sync");
}

#[test]
fn deneb_supply_sync_committee_from_past_update() {
    run("spec-minimal/deneb/supply_sync_committee_from_past_update");
}

#[test]
fn deneb_advance_finality_without_sync_committee() {
    run("spec-minimal/deneb/advance_finality_without_sync_committee");
}

#[test]
fn electra_light_client_sync() {
    run("spec-minimal/electra/light_client_sync");
}

#[test]
fn electra_supply_sync_committee_from_past_update() {
    run("spec-minimal/electra/supply_sync_committee_from_past_update");
}

#[test]
fn electra_advance_finality_without_sync_committee() {
    run("spec-minimal/electra/advance_finality_without_sync_committee");
}
