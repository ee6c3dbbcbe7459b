//! portal-spec-tests mainnet Deneb vectors: YAML content values that are `fork digest ‖ SSZ`
//! (updates: an SSZ list of such byte lists). Exercises the explicit-fork SSZ entry points and
//! the store API directly.

mod common;

use common::{portal_content_value, root, ssz_list_of_byte_lists};
use replicatoor_beacon::codec::{
    decode_bootstrap_ssz, decode_finality_update_ssz, decode_optimistic_update_ssz, decode_update_ssz,
};
use replicatoor_beacon::{Fork, LightClientStore, Mainnet, Network};

const TRUSTED: &str = "0x33d75f8506929d950a6d9e43508e92e50a072a39978821900e3a2e261f80ddbf";

fn split_digest(bytes: &[u8]) -> ([u8; 4], &[u8]) {
    (bytes[..4].try_into().unwrap(), &bytes[4..])
}

#[test]
fn portal_deneb_bootstrap_updates_finality_optimistic() {
    let network = Network::mainnet();

    let value = portal_content_value("mainnet-deneb-portal/bootstrap.yaml");
    let (digest, ssz) = split_digest(&value);
    assert_eq!(hex::encode(digest), "6a95a1a9");
    let fork = network.fork_for_digest(digest).unwrap();
    assert_eq!(fork, Fork::Deneb);
    let bootstrap = decode_bootstrap_ssz::<Mainnet>(&network, fork, ssz).unwrap().data;
    assert_eq!(bootstrap.header.beacon.slot, 10248000);
    let mut store = LightClientStore::<Mainnet>::initialize(&network, root(TRUSTED), &bootstrap).unwrap();

    let list = portal_content_value("mainnet-deneb-portal/updates.yaml");
    let items = ssz_list_of_byte_lists(&list);
    assert_eq!(items.len(), 2);
    for item in items {
        let (digest, ssz) = split_digest(item);
        let update =
            decode_update_ssz::<Mainnet>(&network, network.fork_for_digest(digest).unwrap(), ssz).unwrap().data;
        let outcome = store.process_update(&network, &update, update.signature_slot).unwrap();
        assert!(outcome.applied);
    }
    assert_eq!(store.finalized_period(&network), 1251);
    assert!(store.is_next_sync_committee_known());

    let value = portal_content_value("mainnet-deneb-portal/finality_update.yaml");
    let (digest, ssz) = split_digest(&value);
    let finality =
        decode_finality_update_ssz::<Mainnet>(&network, network.fork_for_digest(digest).unwrap(), ssz).unwrap().data;
    let outcome = store.process_update(&network, &finality.clone().into(), finality.signature_slot).unwrap();
    assert!(outcome.applied);
    assert_eq!(store.finalized_header, finality.finalized_header);

    let value = portal_content_value("mainnet-deneb-portal/optimistic_update.yaml");
    let (digest, ssz) = split_digest(&value);
    let optimistic =
        decode_optimistic_update_ssz::<Mainnet>(&network, network.fork_for_digest(digest).unwrap(), ssz).unwrap().data;
    let outcome = store.process_update(&network, &optimistic.clone().into(), optimistic.signature_slot).unwrap();
    assert!(outcome.optimistic_advanced);
    assert_eq!(store.optimistic_header, optimistic.attested_header);
    assert_eq!(
        (store.finalized_header.beacon.slot, store.finalized_header.execution.block_number),
        (10248384, 21038093)
    );
    assert_eq!(
        (store.optimistic_header.beacon.slot, store.optimistic_header.execution.block_number),
        (10248457, 21038166)
    );
}
