//! Raw beacon-API SSZ bodies around the mainnet Deneb -> Electra fork (period 1421 -> 1422).

mod common;

use common::{fixture, root};
use replicatoor_beacon::{decode_bootstrap, decode_updates, verify_recorded, Fork, Mainnet, Network};
use tree_hash::TreeHash;

pub const BOOTSTRAP_1421: &str = "mainnet-deneb-electra-boundary/eth_call_electra/eth_v1_beacon_light_client_bootstrap_0xd9717ecc253684291f828688f311ba74d05af74c31654f6e14077669fca62.ssz";
pub const UPDATE_1421: &str =
    "mainnet-deneb-electra-boundary/eth_call_electra/eth_v1_beacon_light_client_updates_start_period_1421_count_1.ssz";
pub const BOOTSTRAP_1422: &str = "mainnet-deneb-electra-boundary/eth_blockNumber_electra/eth_v1_beacon_light_client_bootstrap_0xb8758d4bd976e1b33e62937ed31a709dba0a855869641581bef3d2a48b527.ssz";
pub const UPDATE_1422: &str = "mainnet-deneb-electra-boundary/eth_blockNumber_electra/eth_v1_beacon_light_client_updates_start_period_1422_count_1.ssz";
pub const ROOT_1421: &str = "0xd9717ecc253684291f828688f311ba74d05af74c31654f6e14077669fca62f6a";
pub const ROOT_1422: &str = "0xb8758d4bd976e1b33e62937ed31a709dba0a855869641581bef3d2a48b527690";

#[test]
fn syncs_across_the_electra_fork() {
    let network = Network::mainnet();
    let bootstrap = fixture(BOOTSTRAP_1421);
    let u1421 = fixture(UPDATE_1421);
    let u1422 = fixture(UPDATE_1422);
    let report =
        verify_recorded(&network, Some(root(ROOT_1421)), &bootstrap, &[&u1421, &u1422], None, None, None).unwrap();
    assert_eq!(report.bootstrap_slot, 11640864);
    assert_eq!(report.sync_committee_periods, vec![1421, 1422]);
    assert_eq!(report.finalized.beacon_slot, 11651008);
    assert_eq!(report.finalized.fork, Fork::Electra);
    assert_eq!(report.finalized.execution_block_number, 22432991);
    assert_eq!(
        report.finalized.execution_block_hash,
        root("0xd4c1a04e15667a6a012075daee220cf04a052a3491632572bfb0e5d90736b4cb")
    );
    assert_eq!(report.optimistic.beacon_slot, 11651078);
}

#[test]
fn forks_are_detected_from_slot_and_digest() {
    let network = Network::mainnet();
    let b1421 = decode_bootstrap::<Mainnet>(&network, &fixture(BOOTSTRAP_1421)).unwrap();
    assert_eq!(b1421.fork, Fork::Deneb);
    let b1422 = decode_bootstrap::<Mainnet>(&network, &fixture(BOOTSTRAP_1422)).unwrap();
    assert_eq!(b1422.fork, Fork::Electra);
    assert_eq!(b1422.data.header.beacon.root(), root(ROOT_1422));
    let u1421 = decode_updates::<Mainnet>(&network, &fixture(UPDATE_1421)).unwrap();
    assert_eq!(u1421.len(), 1);
    // Deneb-shaped although its next committee serves the first Electra period.
    assert_eq!(u1421[0].fork, Fork::Deneb);
    // The P1421 update's next committee is the P1422 bootstrap's current committee.
    assert_eq!(u1421[0].data.next_sync_committee.tree_hash_root(), b1422.data.current_sync_committee.tree_hash_root());
    let u1422 = decode_updates::<Mainnet>(&network, &fixture(UPDATE_1422)).unwrap();
    assert_eq!(u1422[0].fork, Fork::Electra);
    assert_eq!(u1422[0].data.attested_header.beacon.slot, 11651078);
}

#[test]
fn electra_bootstrap_then_electra_update() {
    // Start directly from the first Electra period's checkpoint (depth-6 committee branch).
    let network = Network::mainnet();
    let report = verify_recorded(
        &network,
        Some(root(ROOT_1422)),
        &fixture(BOOTSTRAP_1422),
        &[&fixture(UPDATE_1422)],
        None,
        None,
        None,
    )
    .unwrap();
    assert_eq!(report.finalized.execution_block_number, 22432991);
    assert_eq!(report.sync_committee_periods, vec![1422]);
}

#[test]
fn one_body_with_two_periods() {
    // An updates body covering several periods is the concatenation of its items.
    let network = Network::mainnet();
    let mut body = fixture(UPDATE_1421);
    body.extend(fixture(UPDATE_1422));
    let report = verify_recorded(
        &network,
        Some(root(ROOT_1421)),
        &fixture(BOOTSTRAP_1421),
        &[&body],
        None,
        None,
        Some(11651100),
    )
    .unwrap();
    assert_eq!(report.finalized.execution_block_number, 22432991);
    assert_eq!(report.updates_verified, 2);
}
