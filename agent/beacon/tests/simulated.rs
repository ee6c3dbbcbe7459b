//! A simulated dev-chain committee signs through the same verifier as mainnet data; a different
//! committee's signature is refused.
#![cfg(feature = "simulated")]

use replicatoor_beacon::sim::{
    encode_updates_ssz, finality_update, optimistic_update, versioned_json, SimBlock, SimCommittee, SimState,
};
use replicatoor_beacon::{
    verify_recorded, Error, ExecutionPayloadHeaderDeneb, Fork, ForkEntry, LightClientStore, Mainnet, Minimal, Network,
    Preset, PresetKind, Root, TrustSource, Version,
};
use ssz::Encode;
use tree_hash::TreeHash;

fn execution(block_number: u64) -> ExecutionPayloadHeaderDeneb {
    ExecutionPayloadHeaderDeneb {
        block_number,
        block_hash: Root::with_last_byte(block_number as u8),
        state_root: Root::repeat_byte(0xaa),
        receipts_root: Root::repeat_byte(0xbb),
        timestamp: 1_700_000_000 + block_number * 6,
        ..Default::default()
    }
}

/// Two periods of a minimal-preset simulated chain: committees A (period 0), B (1), C (2).
struct Chain<P: Preset> {
    network: Network,
    a: SimCommittee<P>,
    b: SimCommittee<P>,
    c: SimCommittee<P>,
    bootstrap_block: SimBlock,
}

impl<P: Preset> Chain<P> {
    fn new(network: Network) -> Self {
        let (a, b, c) = (SimCommittee::from_seed(b"A"), SimCommittee::from_seed(b"B"), SimCommittee::from_seed(b"C"));
        let state = SimState {
            current_sync_committee_root: a.committee().tree_hash_root(),
            next_sync_committee_root: b.committee().tree_hash_root(),
            ..SimState::default()
        };
        let bootstrap_block = SimBlock::new(&network, 8, execution(8), &state);
        Chain { network, a, b, c, bootstrap_block }
    }

    fn period_slots(&self) -> u64 {
        self.network.preset.slots_per_sync_committee_period()
    }

    /// Update for `period`, signed by `signer`: finalized block at period start + 2 epochs,
    /// attested block 2 epochs later, next committee `next`.
    fn update(
        &self,
        period: u64,
        current: &SimCommittee<P>,
        next: &SimCommittee<P>,
        signer: &SimCommittee<P>,
        participants: usize,
    ) -> replicatoor_beacon::LightClientUpdate<P> {
        let spe = self.network.preset.slots_per_epoch();
        let finalized_slot = period * self.period_slots() + 2 * spe;
        let attested_slot = finalized_slot + 2 * spe;
        let committees = SimState {
            current_sync_committee_root: current.committee().tree_hash_root(),
            next_sync_committee_root: next.committee().tree_hash_root(),
            ..SimState::default()
        };
        let finalized = SimBlock::new(&self.network, finalized_slot, execution(finalized_slot), &committees);
        let attested_state = SimState {
            finalized_epoch: finalized_slot / spe,
            finalized_root: finalized.header.beacon.root(),
            ..committees
        };
        let attested = SimBlock::new(&self.network, attested_slot, execution(attested_slot), &attested_state);
        attested.update(
            &self.network,
            signer,
            attested_slot + 1,
            participants,
            Some(next.committee()),
            Some(&finalized.header),
        )
    }
}

fn sim_network() -> Network {
    Network::simulated(Root::repeat_byte(0x5e), 1_700_000_000, 6, PresetKind::Minimal)
}

#[test]
fn simulated_committee_verifies_through_recorded_path() {
    let chain = Chain::<Minimal>::new(sim_network());
    let u0 = chain.update(0, &chain.a, &chain.b, &chain.a, 32);
    let u1 = chain.update(1, &chain.b, &chain.c, &chain.b, 30);
    let bootstrap = chain.bootstrap_block.bootstrap(chain.a.committee());
    let checkpoint = bootstrap.header.beacon.root();

    // Serve it as a beacon node would: SSZ bootstrap, SSZ updates body, JSON finality/optimistic.
    let updates_body = encode_updates_ssz(&chain.network, &[u0.clone(), u1.clone()]).unwrap();
    let fin = serde_json::to_vec(&versioned_json(Fork::Electra, &finality_update(&u1)).unwrap()).unwrap();
    let opt = serde_json::to_vec(&versioned_json(Fork::Electra, &optimistic_update(&u1)).unwrap()).unwrap();
    let report = verify_recorded(
        &chain.network,
        Some(checkpoint),
        &bootstrap.as_ssz_bytes(),
        &[&updates_body],
        Some(&fin),
        Some(&opt),
        None,
    )
    .unwrap();
    assert_eq!(report.trust_source, TrustSource::Checkpoint);
    assert_eq!(report.sync_committee_periods, vec![0, 1]);
    assert_eq!(report.finalized.beacon_slot, 64 + 16);
    assert_eq!(report.finalized.execution_block_number, 80);
    assert_eq!(report.optimistic.beacon_slot, 96);
    assert_eq!(report.optimistic.execution_block_hash, Root::with_last_byte(96));
}

#[test]
fn different_committee_signature_is_refused() {
    let chain = Chain::<Minimal>::new(sim_network());
    let intruder = SimCommittee::<Minimal>::from_seed(b"intruder");
    let network = &chain.network;
    let bootstrap = chain.bootstrap_block.bootstrap(chain.a.committee());
    let mut store = LightClientStore::initialize(network, bootstrap.header.beacon.root(), &bootstrap).unwrap();
    let forged = chain.update(0, &chain.a, &chain.b, &intruder, 32);
    let err = store.process_update(network, &forged, forged.signature_slot).unwrap_err();
    assert!(matches!(err, Error::BadSignature), "{err:?}");
    // The honest committee's update for the same block goes through.
    let honest = chain.update(0, &chain.a, &chain.b, &chain.a, 32);
    assert!(store.process_update(network, &honest, honest.signature_slot).unwrap().applied);
    // Keys are a deterministic function of the public seed.
    assert_eq!(SimCommittee::<Minimal>::from_seed(b"A").committee(), chain.a.committee());
}

#[test]
fn simulated_signatures_do_not_verify_on_another_network() {
    let chain = Chain::<Minimal>::new(sim_network());
    let u0 = chain.update(0, &chain.a, &chain.b, &chain.a, 32);
    let bootstrap = chain.bootstrap_block.bootstrap(chain.a.committee());
    let other = Network::simulated(Root::repeat_byte(0x77), 1_700_000_000, 6, PresetKind::Minimal);
    let mut store = LightClientStore::initialize(&other, bootstrap.header.beacon.root(), &bootstrap).unwrap();
    let err = store.process_update(&other, &u0, u0.signature_slot).unwrap_err();
    assert!(matches!(err, Error::BadSignature), "{err:?}");
}

#[test]
fn low_participation_keeps_finality_but_moves_optimistic_header() {
    // 16 of 32 signers: valid, advances the optimistic header (above the safety threshold of an
    // empty store), but is not applied (below 2/3); verify_recorded refuses it outright.
    let chain = Chain::<Minimal>::new(sim_network());
    let network = &chain.network;
    let bootstrap = chain.bootstrap_block.bootstrap(chain.a.committee());
    let mut store = LightClientStore::initialize(network, bootstrap.header.beacon.root(), &bootstrap).unwrap();
    let weak = chain.update(0, &chain.a, &chain.b, &chain.a, 16);
    let outcome = store.process_update(network, &weak, weak.signature_slot).unwrap();
    assert!(!outcome.applied && outcome.optimistic_advanced && store.best_valid_update.as_ref() == Some(&weak));
    assert_eq!(store.finalized_header, bootstrap.header);
    let body = encode_updates_ssz(network, &[weak]).unwrap();
    let err = verify_recorded(network, None, &bootstrap.as_ssz_bytes(), &[&body], None, None, None).unwrap_err();
    assert!(matches!(err, Error::InsufficientParticipation { participants: 16, committee_size: 32 }), "{err:?}");
}

#[test]
fn sync_across_capella_deneb_electra_boundaries() {
    // Capella at genesis, Deneb from period 1, Electra from period 2 (minimal preset): branch
    // depths and execution-root flavours follow each header's own fork.
    let version = |i: u8| Version::from([i, 0xde, 0x7e, 0x57]);
    let forks = vec![
        ForkEntry { fork: Fork::Phase0, version: version(0), epoch: 0 },
        ForkEntry { fork: Fork::Altair, version: version(1), epoch: 0 },
        ForkEntry { fork: Fork::Bellatrix, version: version(2), epoch: 0 },
        ForkEntry { fork: Fork::Capella, version: version(3), epoch: 0 },
        ForkEntry { fork: Fork::Deneb, version: version(4), epoch: 8 },
        ForkEntry { fork: Fork::Electra, version: version(5), epoch: 16 },
    ];
    let boundaries = |genesis_time| {
        let network = Network {
            name: "boundaries".into(),
            genesis_validators_root: Root::repeat_byte(0x33),
            genesis_time,
            seconds_per_slot: 6,
            preset: PresetKind::Minimal,
            forks: forks.clone(),
            blob_schedule: vec![],
        };
        network.validate().unwrap();
        network
    };
    let network = boundaries(1_700_000_000);
    // A header is taken only at its slot's time (`execution` gives each slot that time on this network).
    let early = boundaries(1_700_000_001);
    let off = Chain::<Minimal>::new(early);
    let bootstrap = off.bootstrap_block.bootstrap(off.a.committee());
    let err = LightClientStore::initialize(&off.network, bootstrap.header.beacon.root(), &bootstrap).unwrap_err();
    assert!(
        matches!(err, Error::TimestampNotSlotTime { slot: 8, timestamp: 1_700_000_048, expected: 1_700_000_049 }),
        "{err:?}"
    );
    let chain = Chain::<Minimal>::new(network);
    let d = SimCommittee::<Minimal>::from_seed(b"D");
    let network = &chain.network;
    // Capella-era execution headers carry no blob gas.
    let bootstrap = chain.bootstrap_block.bootstrap(chain.a.committee());
    let mut store = LightClientStore::initialize(network, bootstrap.header.beacon.root(), &bootstrap).unwrap();
    for (period, (current, next)) in
        [(&chain.a, &chain.b), (&chain.b, &chain.c), (&chain.c, &d)].into_iter().enumerate()
    {
        let update = chain.update(period as u64, current, next, current, 32);
        assert!(store.process_update(network, &update, update.signature_slot).unwrap().applied, "period {period}");
    }
    assert_eq!(network.fork_at_slot(store.finalized_header.beacon.slot), Fork::Electra);
    assert_eq!(store.finalized_period(network), 2);
    // A Capella-era header claiming blob gas is not a valid light-client header.
    let mut bad = chain.bootstrap_block.header.clone();
    bad.execution.blob_gas_used = 1;
    assert!(!replicatoor_beacon::store::is_valid_light_client_header(network, &bad));
}

#[test]
fn mainnet_size_committee_signs_and_verifies() {
    let network = Network::simulated(Root::repeat_byte(0x5e), 0, 12, PresetKind::Mainnet);
    let chain = Chain::<Mainnet>::new(network);
    let bootstrap = chain.bootstrap_block.bootstrap(chain.a.committee());
    let mut store = LightClientStore::initialize(&chain.network, bootstrap.header.beacon.root(), &bootstrap).unwrap();
    let update = chain.update(0, &chain.a, &chain.b, &chain.a, 400);
    assert!(store.process_update(&chain.network, &update, update.signature_slot).unwrap().applied);
}
