//! Tampered and out-of-place data, each refused for its own reason (matched on the variant).

mod common;

use common::{fixture, root};
use replicatoor_beacon::{
    decode_bootstrap, decode_finality_update, decode_optimistic_update, decode_updates, verify_recorded, DecodeError,
    Error, Fork, LightClientStore, LightClientUpdate, Mainnet, Minimal, Network, Root, Version,
};
use serde_json::Value;

const HELIOS_CHECKPOINT: &str = "0x5afc212a7924789b2bc86acad3ab3a6ffb1f6e97253ea50bee7f4f51422c9275";
const BOOTSTRAP_1421: &str = "mainnet-deneb-electra-boundary/eth_call_electra/eth_v1_beacon_light_client_bootstrap_0xd9717ecc253684291f828688f311ba74d05af74c31654f6e14077669fca62.ssz";
const UPDATE_1401: &str =
    "mainnet-deneb-electra-boundary/eth_call_electra/eth_v1_beacon_light_client_updates_start_period_1401_count_1.ssz";
const UPDATE_1421: &str =
    "mainnet-deneb-electra-boundary/eth_call_electra/eth_v1_beacon_light_client_updates_start_period_1421_count_1.ssz";
const UPDATE_1422: &str = "mainnet-deneb-electra-boundary/eth_blockNumber_electra/eth_v1_beacon_light_client_updates_start_period_1422_count_1.ssz";
const ROOT_1421: &str = "0xd9717ecc253684291f828688f311ba74d05af74c31654f6e14077669fca62f6a";

fn helios(name: &str) -> Vec<u8> {
    fixture(&format!("mainnet-capella-helios/{name}.json"))
}

/// A store synced through the first `n` helios updates, plus all decoded updates.
fn helios_store(n: usize) -> (Network, LightClientStore<Mainnet>, Vec<LightClientUpdate<Mainnet>>) {
    let network = Network::mainnet();
    let bootstrap = decode_bootstrap::<Mainnet>(&network, &helios("bootstrap")).unwrap().data;
    let updates: Vec<_> =
        decode_updates::<Mainnet>(&network, &helios("updates")).unwrap().into_iter().map(|u| u.data).collect();
    let mut store = LightClientStore::initialize(&network, root(HELIOS_CHECKPOINT), &bootstrap).unwrap();
    for u in &updates[..n] {
        store.process_update(&network, u, u.signature_slot).unwrap();
    }
    (network, store, updates)
}

/// Apply `edit` to the `index`th update of helios' updates.json and re-serialize.
fn edit_helios_update(index: usize, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut updates: Value = serde_json::from_slice(&helios("updates")).unwrap();
    edit(&mut updates[index]);
    serde_json::to_vec(&updates).unwrap()
}

fn verify_helios(updates: &[u8]) -> Result<replicatoor_beacon::Report, Error> {
    verify_recorded(
        &Network::mainnet(),
        Some(root(HELIOS_CHECKPOINT)),
        &helios("bootstrap"),
        &[updates],
        None,
        None,
        None,
    )
}

fn flip_hex_char(s: &mut Value) {
    let text = s.as_str().unwrap().to_owned();
    let last = text.chars().last().unwrap();
    let flipped = if last == '0' { '1' } else { '0' };
    *s = Value::String(format!("{}{flipped}", &text[..text.len() - 1]));
}

#[test]
fn signature_from_another_update_is_refused() {
    let (network, store, updates) = helios_store(1);
    let mut update = updates[1].clone();
    update.sync_aggregate.sync_committee_signature = updates[2].sync_aggregate.sync_committee_signature;
    let err = store.validate_update(&network, &update, update.signature_slot).unwrap_err();
    assert!(matches!(err, Error::BadSignature), "{err:?}");
}

#[test]
fn corrupted_signature_bytes_are_refused() {
    let bytes = edit_helios_update(2, |u| flip_hex_char(&mut u["data"]["sync_aggregate"]["sync_committee_signature"]));
    let err = verify_helios(&bytes).unwrap_err();
    assert!(matches!(err, Error::InvalidSignatureEncoding), "{err:?}");
}

#[test]
fn tampered_finality_branch_is_refused() {
    let bytes = edit_helios_update(3, |u| flip_hex_char(&mut u["data"]["finality_branch"][2]));
    let err = verify_helios(&bytes).unwrap_err();
    assert!(matches!(err, Error::BadFinalityBranch { attested_slot: 7089368 }), "{err:?}");
}

#[test]
fn tampered_next_committee_branch_is_refused() {
    let bytes = edit_helios_update(1, |u| flip_hex_char(&mut u["data"]["next_sync_committee_branch"][0]));
    let err = verify_helios(&bytes).unwrap_err();
    assert!(matches!(err, Error::BadNextSyncCommitteeBranch { attested_slot: 7070142 }), "{err:?}");
}

#[test]
fn swapped_next_committee_member_is_refused() {
    // The committee itself altered (branch untouched): its root no longer matches the proof.
    let bytes = edit_helios_update(1, |u| {
        let keys = u["data"]["next_sync_committee"]["pubkeys"].as_array_mut().unwrap();
        keys.swap(0, 1);
    });
    let err = verify_helios(&bytes).unwrap_err();
    assert!(matches!(err, Error::BadNextSyncCommitteeBranch { .. }), "{err:?}");
}

#[test]
fn tampered_bootstrap_committee_branch_is_refused() {
    let mut bootstrap: Value = serde_json::from_slice(&helios("bootstrap")).unwrap();
    flip_hex_char(&mut bootstrap["data"]["current_sync_committee_branch"][4]);
    let err = verify_recorded(
        &Network::mainnet(),
        Some(root(HELIOS_CHECKPOINT)),
        &serde_json::to_vec(&bootstrap).unwrap(),
        &[],
        None,
        None,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, Error::BadCurrentSyncCommitteeBranch { slot: 7069376 }), "{err:?}");
}

#[test]
fn tampered_execution_branch_is_refused() {
    let bytes = edit_helios_update(2, |u| flip_hex_char(&mut u["data"]["attested_header"]["execution_branch"][1]));
    let err = verify_helios(&bytes).unwrap_err();
    assert!(matches!(err, Error::BadExecutionBranch { slot: 7078317 }), "{err:?}");
}

/// The decoder is transport (`codec/`): what its upgrade of Capella data adds (zero blob fields,
/// a zero entry in front of each state branch) the store checks again, with the rules of the
/// header's slot, so a value a server could send in the newest shape with them set is refused.
#[test]
fn what_the_upgrade_adds_is_checked_by_the_store() {
    let (network, store, updates) = helios_store(1);
    store.validate_update(&network, &updates[1], updates[1].signature_slot).unwrap();
    let mut blob = updates[1].clone();
    blob.attested_header.execution.excess_blob_gas = 1;
    let err = store.validate_update(&network, &blob, blob.signature_slot).unwrap_err();
    assert!(matches!(err, Error::BadExecutionBranch { slot: 7070142 }), "{err:?}");
    let mut padded = updates[1].clone();
    padded.next_sync_committee_branch[0] = Root::repeat_byte(1);
    let err = store.validate_update(&network, &padded, padded.signature_slot).unwrap_err();
    assert!(matches!(err, Error::BadNextSyncCommitteeBranch { attested_slot: 7070142 }), "{err:?}");

    let (network, store, updates) = helios_store(3);
    store.validate_update(&network, &updates[3], updates[3].signature_slot).unwrap();
    let mut padded = updates[3].clone();
    padded.finality_branch[0] = Root::repeat_byte(1);
    let err = store.validate_update(&network, &padded, padded.signature_slot).unwrap_err();
    assert!(matches!(err, Error::BadFinalityBranch { attested_slot: 7089368 }), "{err:?}");
}

/// The finality and optimistic updates reach the store only as the update each converts into
/// (`codec/shapes.rs`, transport): what the conversion fills in (an empty next committee and branch,
/// an empty finalized header and finality branch) the store checks like any served update's.
#[test]
fn what_the_conversions_add_is_checked_by_the_store() {
    let (network, store, updates) = helios_store(6);
    let finality: LightClientUpdate<Mainnet> =
        decode_finality_update::<Mainnet>(&network, &helios("finality")).unwrap().data.into();
    store.validate_update(&network, &finality, finality.signature_slot).unwrap();
    let mut committee = finality.clone();
    committee.next_sync_committee = updates[5].next_sync_committee.clone();
    let err = store.validate_update(&network, &committee, committee.signature_slot).unwrap_err();
    assert!(matches!(err, Error::UnexpectedNextSyncCommittee), "{err:?}");
    let mut branch = finality.clone();
    branch.next_sync_committee_branch[5] = Root::repeat_byte(1);
    let err = store.validate_update(&network, &branch, branch.signature_slot).unwrap_err();
    assert!(matches!(err, Error::NextSyncCommitteeMismatch), "{err:?}");
    branch.next_sync_committee = store.next_sync_committee.clone();
    let err = store.validate_update(&network, &branch, branch.signature_slot).unwrap_err();
    assert!(matches!(err, Error::BadNextSyncCommitteeBranch { .. }), "{err:?}");

    let optimistic: LightClientUpdate<Mainnet> =
        decode_optimistic_update::<Mainnet>(&network, &helios("optimistic")).unwrap().data.into();
    store.validate_update(&network, &optimistic, optimistic.signature_slot).unwrap();
    let mut finalized = optimistic.clone();
    finalized.finalized_header = finality.finalized_header.clone();
    let err = store.validate_update(&network, &finalized, finalized.signature_slot).unwrap_err();
    assert!(matches!(err, Error::UnexpectedFinalizedHeader), "{err:?}");
    let mut branch = optimistic.clone();
    branch.finality_branch[6] = Root::repeat_byte(1);
    let err = store.validate_update(&network, &branch, branch.signature_slot).unwrap_err();
    assert!(matches!(err, Error::BadFinalityBranch { .. }), "{err:?}");
}

#[test]
fn tampered_finalized_execution_block_number_is_refused() {
    // The finalized beacon header (hence the finality proof) is intact; only its execution header
    // lies about the block number, which the execution branch catches.
    let (network, mut store, updates) = helios_store(6);
    let mut finality = decode_finality_update::<Mainnet>(&network, &helios("finality")).unwrap().data;
    finality.finalized_header.execution.block_number += 1;
    let err = store.process_update(&network, &finality.clone().into(), finality.signature_slot).unwrap_err();
    assert!(matches!(err, Error::BadExecutionBranch { slot: 7109344 }), "{err:?}");
    assert_eq!(updates.len(), 6);
}

#[test]
fn participation_below_two_thirds_is_refused() {
    // Clear bits until 341 of 512 remain (341 * 3 < 512 * 2): refused before the signature check.
    let bytes = edit_helios_update(4, |u| {
        let bits = &mut u["data"]["sync_aggregate"]["sync_committee_bits"];
        let mut raw = hex::decode(bits.as_str().unwrap().trim_start_matches("0x")).unwrap();
        let mut set: u32 = raw.iter().map(|b| b.count_ones()).sum();
        for byte in raw.iter_mut() {
            while *byte != 0 && set > 341 {
                *byte &= *byte - 1;
                set -= 1;
            }
        }
        *bits = Value::String(format!("0x{}", hex::encode(raw)));
    });
    let err = verify_helios(&bytes).unwrap_err();
    assert!(matches!(err, Error::InsufficientParticipation { participants: 341, committee_size: 512 }), "{err:?}");
}

#[test]
fn no_participants_is_refused_by_the_spec_minimum() {
    let (network, store, updates) = helios_store(1);
    let mut update = updates[1].clone();
    update.sync_aggregate.sync_committee_bits = Default::default();
    let err = store.validate_update(&network, &update, update.signature_slot).unwrap_err();
    assert!(matches!(err, Error::TooFewParticipants { participants: 0, minimum: 1 }), "{err:?}");
}

#[test]
fn wrong_genesis_validators_root_is_refused() {
    // JSON carries no digest, so a foreign GVR surfaces as the signing domain mismatch.
    let mut network = Network::mainnet();
    network.genesis_validators_root = root(&format!("0x{}", "11".repeat(32)));
    let err = verify_recorded(
        &network,
        Some(root(HELIOS_CHECKPOINT)),
        &helios("bootstrap"),
        &[&helios("updates")],
        None,
        None,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, Error::BadSignature), "{err:?}");

    // SSZ updates carry a fork digest, which already names the wrong chain.
    let err = verify_recorded(
        &network,
        Some(root(ROOT_1421)),
        &fixture(BOOTSTRAP_1421),
        &[&fixture(UPDATE_1421)],
        None,
        None,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Decode(DecodeError::UnknownForkDigest { digest: [0x6a, 0x95, 0xa1, 0xa9] })),
        "{err:?}"
    );
}

#[test]
fn wrong_fork_version_is_refused() {
    // P1422 verifies only under the Electra fork version.
    let network = Network::mainnet();
    let bootstrap = decode_bootstrap::<Mainnet>(&network, &fixture(BOOTSTRAP_1421)).unwrap().data;
    let u1421 = decode_updates::<Mainnet>(&network, &fixture(UPDATE_1421)).unwrap().remove(0).data;
    let u1422 = decode_updates::<Mainnet>(&network, &fixture(UPDATE_1422)).unwrap().remove(0).data;
    let mut wrong = network.clone();
    for f in &mut wrong.forks {
        if f.fork == Fork::Electra {
            f.version = Version::from([0x05, 0, 0, 0x01]);
        }
    }
    let mut store = LightClientStore::initialize(&wrong, root(ROOT_1421), &bootstrap).unwrap();
    store.process_update(&wrong, &u1421, u1421.signature_slot).unwrap();
    let err = store.process_update(&wrong, &u1422, u1422.signature_slot).unwrap_err();
    assert!(matches!(err, Error::BadSignature), "{err:?}");
    // The store is bound to the GVR only, so the same store accepts P1422 under the true schedule.
    store.process_update(&network, &u1422, u1422.signature_slot).unwrap();
}

#[test]
fn declared_version_not_matching_slot_is_refused() {
    let bytes = edit_helios_update(0, |u| u["version"] = Value::String("deneb".into()));
    let err = verify_helios(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Decode(DecodeError::ForkMismatch { declared: Fork::Deneb, expected: Fork::Capella, slot: 7061719 })
        ),
        "{err:?}"
    );
    let bytes = edit_helios_update(0, |u| u["version"] = Value::String("gloas".into()));
    assert!(matches!(verify_helios(&bytes).unwrap_err(), Error::Decode(DecodeError::UnknownForkName { .. })));
    let bytes = edit_helios_update(0, |u| u["version"] = Value::String("altair".into()));
    assert!(matches!(
        verify_helios(&bytes).unwrap_err(),
        Error::Decode(DecodeError::ForkMismatch { declared: Fork::Altair, .. })
    ));
    // Pre-Capella light-client data (no execution header) is out of scope.
    let bytes = edit_helios_update(0, |u| {
        u["version"] = Value::String("altair".into());
        u["data"]["attested_header"]["beacon"]["slot"] = Value::String((74240 * 32).to_string());
    });
    assert!(matches!(
        verify_helios(&bytes).unwrap_err(),
        Error::Decode(DecodeError::UnsupportedFork { fork: Fork::Altair })
    ));
}

#[test]
fn store_bound_to_its_network() {
    let (_, store, updates) = helios_store(1);
    let mut other = Network::mainnet();
    other.genesis_validators_root = root(&format!("0x{}", "22".repeat(32)));
    let err = store.validate_update(&other, &updates[1], updates[1].signature_slot).unwrap_err();
    assert!(matches!(err, Error::NetworkMismatch { .. }), "{err:?}");
}

#[test]
fn update_for_a_period_too_far_ahead_is_refused() {
    // P1422's update on a store in 1421 that has not learned the next committee yet.
    let err = verify_recorded(
        &Network::mainnet(),
        Some(root(ROOT_1421)),
        &fixture(BOOTSTRAP_1421),
        &[&fixture(UPDATE_1422)],
        None,
        None,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::PeriodNotCurrentOrNext { store_period: 1421, update_period: 1422, next_committee_known: false }
        ),
        "{err:?}"
    );
    // Helios: skipping period 864 (store in 863 knows 864, update signed in 865).
    let (network, store, updates) = helios_store(2);
    let err = store.validate_update(&network, &updates[3], updates[3].signature_slot).unwrap_err();
    assert!(
        matches!(
            err,
            Error::PeriodNotCurrentOrNext { store_period: 863, update_period: 865, next_committee_known: true }
        ),
        "{err:?}"
    );
}

#[test]
fn update_from_an_old_period_is_refused() {
    let err = verify_recorded(
        &Network::mainnet(),
        Some(root(ROOT_1421)),
        &fixture(BOOTSTRAP_1421),
        &[&fixture(UPDATE_1401)],
        None,
        None,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, Error::PeriodNotCurrentOrNext { store_period: 1421, update_period: 1401, .. }), "{err:?}");
}

#[test]
fn stale_header_is_refused() {
    // After the finality update (finalized 7109344), the period-867 update attests 7104190.
    let (network, mut store, updates) = helios_store(6);
    let finality = decode_finality_update::<Mainnet>(&network, &helios("finality")).unwrap().data;
    store.process_update(&network, &finality.clone().into(), finality.signature_slot).unwrap();
    let err = store.process_update(&network, &updates[5], 7109431).unwrap_err();
    assert!(matches!(err, Error::StaleUpdate { attested_slot: 7104190, finalized_slot: 7109344 }), "{err:?}");
}

#[test]
fn signature_slot_after_current_slot_is_refused() {
    let err = verify_recorded(
        &Network::mainnet(),
        Some(root(HELIOS_CHECKPOINT)),
        &helios("bootstrap"),
        &[&helios("updates")],
        None,
        None,
        Some(7061719),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::SlotOrdering { current_slot: 7061719, signature_slot: 7061720, attested_slot: 7061719, .. }
        ),
        "{err:?}"
    );
    // signature slot not after the attested slot
    let bytes = edit_helios_update(0, |u| u["data"]["signature_slot"] = Value::String("7061719".into()));
    assert!(matches!(verify_helios(&bytes).unwrap_err(), Error::SlotOrdering { .. }));
}

#[test]
fn wrong_checkpoint_root_is_refused() {
    let wrong = root(ROOT_1421);
    let err =
        verify_recorded(&Network::mainnet(), Some(wrong), &helios("bootstrap"), &[], None, None, None).unwrap_err();
    assert!(
        matches!(err, Error::CheckpointMismatch { expected, actual } if expected == wrong && actual == root(HELIOS_CHECKPOINT)),
        "{err:?}"
    );
}

#[test]
fn truncated_ssz_is_refused() {
    let network = Network::mainnet();
    let bootstrap = fixture(BOOTSTRAP_1421);
    let half = decode_bootstrap::<Mainnet>(&network, &bootstrap[..bootstrap.len() / 2]).map(|_| ()).unwrap_err();
    assert!(matches!(half, DecodeError::MalformedSsz { what: "light-client bootstrap", .. }), "{half:?}");
    let tiny = decode_bootstrap::<Mainnet>(&network, &bootstrap[..3]).map(|_| ()).unwrap_err();
    assert!(matches!(tiny, DecodeError::MalformedSsz { .. }), "{tiny:?}");
    // Cutting only into the trailing `extra_data` byte list is still valid SSZ (a shorter list);
    // the execution-branch check is what refuses it.
    let err =
        verify_recorded(&network, Some(root(ROOT_1421)), &bootstrap[..bootstrap.len() - 1], &[], None, None, None)
            .map(|_| ())
            .unwrap_err();
    assert!(matches!(err, Error::BadExecutionBranch { slot: 11640864 }), "{err:?}");

    let updates = fixture(UPDATE_1421);
    let err = decode_updates::<Mainnet>(&network, &updates[..updates.len() - 10]).map(|_| ()).unwrap_err();
    assert!(matches!(err, DecodeError::MalformedSsz { what: "light-client updates body", .. }), "{err:?}");
    let err = decode_updates::<Mainnet>(&network, &updates[..5]).map(|_| ()).unwrap_err();
    assert!(matches!(err, DecodeError::MalformedSsz { .. }), "{err:?}");
    // Item length rewritten to match, but the SSZ inside cut into its fixed part.
    let mut short = updates.clone();
    short.truncate(updates.len() - 1000);
    let len = (short.len() - 8) as u64;
    short[..8].copy_from_slice(&len.to_le_bytes());
    let err = decode_updates::<Mainnet>(&network, &short).map(|_| ()).unwrap_err();
    assert!(matches!(err, DecodeError::MalformedSsz { what: "light-client update", .. }), "{err:?}");
}

#[test]
fn malformed_json_is_refused() {
    let network = Network::mainnet();
    let text = helios("finality");
    let err = decode_finality_update::<Mainnet>(&network, &text[..text.len() / 2]).unwrap_err();
    assert!(matches!(err, DecodeError::MalformedJson { what: "light-client finality update", .. }), "{err:?}");
    let err = decode_finality_update::<Mainnet>(&network, br#"{"data": {}}"#).unwrap_err();
    assert!(matches!(err, DecodeError::MalformedJson { .. }), "{err:?}");
    let err =
        decode_finality_update::<Mainnet>(&network, br#"{"version": "capella", "data": {"slot": "1"}}"#).unwrap_err();
    assert!(matches!(err, DecodeError::MalformedJson { .. }), "{err:?}");
}

#[test]
fn preset_mismatch_is_refused() {
    let err = decode_bootstrap::<Minimal>(&Network::mainnet(), &helios("bootstrap")).unwrap_err();
    assert!(matches!(err, DecodeError::PresetMismatch { .. }), "{err:?}");
}
