//! helios' recorded mainnet Capella sync (beacon-API JSON): bootstrap at period 862, six period
//! updates 862..867, a finality and an optimistic update.

mod common;

use common::{fixture, root};
use replicatoor_beacon::{
    decode_updates, verify_recorded, CurrentSlotSource, Fork, LightClientStore, Mainnet, Network, TrustSource,
};

const CHECKPOINT: &str = "0x5afc212a7924789b2bc86acad3ab3a6ffb1f6e97253ea50bee7f4f51422c9275";

fn files() -> [Vec<u8>; 4] {
    ["bootstrap", "updates", "finality", "optimistic"].map(|f| fixture(&format!("mainnet-capella-helios/{f}.json")))
}

#[test]
fn syncs_to_helios_expected_block() {
    let network = Network::mainnet();
    let [bootstrap, updates, finality, _] = files();
    // helios' own test: after bootstrap + updates + finality update the newest block is 17923112
    // (the finality update's attested header).
    let report =
        verify_recorded(&network, Some(root(CHECKPOINT)), &bootstrap, &[&updates], Some(&finality), None, None)
            .unwrap();
    assert_eq!(report.trust_source, TrustSource::Checkpoint);
    assert_eq!(report.bootstrap_slot, 7069376);
    assert_eq!(report.sync_committee_periods, vec![862, 863, 864, 865, 866, 867]);
    assert_eq!(report.updates_verified, 6);
    assert_eq!(report.current_slot, 7109431);
    assert_eq!(report.current_slot_source, CurrentSlotSource::LatestSignatureSlot);
    assert_eq!(report.optimistic.beacon_slot, 7109430);
    assert_eq!(report.optimistic.execution_block_number, 17923112);
    assert_eq!(report.finalized.beacon_slot, 7109344);
    assert_eq!(report.finalized.execution_block_number, 17923026);
    assert_eq!(report.finalized.fork, Fork::Capella);
}

#[test]
fn optimistic_update_advances_past_finality() {
    let network = Network::mainnet();
    let [bootstrap, updates, finality, optimistic] = files();
    let report = verify_recorded(
        &network,
        Some(root(CHECKPOINT)),
        &bootstrap,
        &[&updates],
        Some(&finality),
        Some(&optimistic),
        Some(7109440),
    )
    .unwrap();
    assert_eq!(report.current_slot, 7109440);
    assert_eq!(report.current_slot_source, CurrentSlotSource::Given);
    assert_eq!(report.optimistic.beacon_slot, 7109431);
    assert_eq!(report.optimistic.execution_block_number, 17923113);
    assert_eq!(
        report.optimistic.execution_block_hash,
        root("0x3c015340e234ff7f8e75ecebb11d45154a394cd896ddcfcfffc941a07b314960")
    );
    assert_eq!(report.finalized.execution_block_number, 17923026);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["finalized"]["execution_block_number"], 17923026);
    assert_eq!(json["trust_source"], "checkpoint");
}

#[test]
fn without_checkpoint_trusts_bootstrap_and_says_so() {
    let network = Network::mainnet();
    let [bootstrap, updates, _, _] = files();
    let report = verify_recorded(&network, None, &bootstrap, &[&updates], None, None, None).unwrap();
    assert_eq!(report.trust_source, TrustSource::BootstrapHeader);
    assert_eq!(report.trusted_block_root, root(CHECKPOINT));
    assert!(report.to_string().contains("NO checkpoint given"));
}

#[test]
fn store_survives_serde_round_trip_mid_sync() {
    let network = Network::mainnet();
    let [bootstrap, updates, finality, _] = files();
    let bootstrap = replicatoor_beacon::decode_bootstrap::<Mainnet>(&network, &bootstrap).unwrap();
    assert_eq!(bootstrap.fork, Fork::Capella);
    let updates = decode_updates::<Mainnet>(&network, &updates).unwrap();
    let mut store = LightClientStore::<Mainnet>::initialize(&network, root(CHECKPOINT), &bootstrap.data).unwrap();
    for u in &updates[..3] {
        assert!(store.process_update(&network, &u.data, u.data.signature_slot).unwrap().applied);
    }
    let persisted = serde_json::to_string(&store).unwrap();
    let mut restored: LightClientStore<Mainnet> = serde_json::from_str(&persisted).unwrap();
    assert_eq!(restored, store);
    for u in &updates[3..] {
        assert!(restored.process_update(&network, &u.data, u.data.signature_slot).unwrap().applied);
    }
    let finality = replicatoor_beacon::decode_finality_update::<Mainnet>(&network, &finality).unwrap();
    restored.process_update(&network, &finality.data.clone().into(), 7109431).unwrap();
    assert_eq!(restored.finalized_header.beacon.slot, 7109344);
    assert_eq!(network.period_at_slot(restored.finalized_header.beacon.slot), 867);
}
