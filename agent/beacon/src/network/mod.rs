//! Network configuration: genesis, fork schedule and the derived fork digests and signing domains.
//!
//! A network is plain data so a deployment can pin it in a measured file; the built-ins are the
//! public chains whose parameters were checked against their published configs.

use alloy_primitives::{FixedBytes, B256};
use sha2::{Digest, Sha256};

mod builtin;
use serde::{Deserialize, Serialize};

pub use crate::fork::Fork;

pub use crate::blob::BlobScheduleEntry;
use crate::error::Error;
use crate::preset::PresetKind;
use crate::types::Root;

/// A 4-byte fork version.
pub type Version = FixedBytes<4>;

/// `DOMAIN_SYNC_COMMITTEE`.
pub const DOMAIN_SYNC_COMMITTEE: [u8; 4] = [7, 0, 0, 0];

/// Epoch value the configs use for "not scheduled".
pub const FAR_FUTURE_EPOCH: u64 = u64::MAX;

/// One scheduled fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkEntry {
    /// Which fork.
    pub fork: Fork,
    /// Its fork version.
    pub version: Version,
    /// First epoch of the fork.
    pub epoch: u64,
}

/// A beacon network as the light client needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Name, e.g. `mainnet`.
    pub name: String,
    /// `genesis_validators_root`: binds every signature to this chain.
    pub genesis_validators_root: Root,
    /// Genesis time (unix seconds); informative here, the verifier never reads a clock.
    pub genesis_time: u64,
    /// Seconds per slot; informative, for callers converting times to slots.
    pub seconds_per_slot: u64,
    /// Preset (committee size, slots per epoch, epochs per period).
    pub preset: PresetKind,
    /// Fork schedule, Phase0 first, epochs non-decreasing. Unscheduled forks are omitted.
    pub forks: Vec<ForkEntry>,
    /// Blob schedule for Fulu-and-later fork digests: an Electra entry first (the
    /// `MAX_BLOBS_PER_BLOCK_ELECTRA` default) then the `BLOB_SCHEDULE` entries. May be empty when
    /// Fulu is not scheduled.
    #[serde(default)]
    pub blob_schedule: Vec<BlobScheduleEntry>,
}

impl Network {
    /// Check the schedule: Phase0 at epoch 0 first, forks in order, epochs non-decreasing, and a
    /// blob schedule whenever Fulu is scheduled (its digests depend on it), in order.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |msg: &str| Err(Error::InvalidNetwork(format!("{}: {msg}", self.name)));
        match self.forks.first() {
            Some(first) if first.fork == Fork::Phase0 && first.epoch == 0 => {}
            _ => return bad("fork schedule must start with phase0 at epoch 0"),
        }
        for pair in self.forks.windows(2) {
            if pair[1].fork <= pair[0].fork {
                return bad("forks must be listed once each, oldest first");
            }
            if pair[1].epoch < pair[0].epoch {
                return bad("fork epochs must not decrease");
            }
        }
        if self.seconds_per_slot == 0 {
            return bad("seconds_per_slot must be positive");
        }
        // Last, the blob schedule, which only the fork digests read (`codec/digest.rs`).
        self.blob_schedule_problem().map_or(Ok(()), bad)
    }

    /// Epoch of a slot under this network's preset.
    pub fn epoch_at_slot(&self, slot: u64) -> u64 {
        slot / self.preset.slots_per_epoch()
    }

    /// Sync-committee period of a slot.
    pub fn period_at_slot(&self, slot: u64) -> u64 {
        self.epoch_at_slot(slot) / self.preset.epochs_per_sync_committee_period()
    }

    pub(crate) fn entry_at_epoch(&self, epoch: u64) -> &ForkEntry {
        // validate() guarantees a phase0 entry at epoch 0, but a hand-built network may skip it;
        // fall back to the first entry rather than panic.
        self.forks.iter().rev().find(|f| f.epoch <= epoch).unwrap_or(&self.forks[0])
    }

    /// Whether `fork` is in force at `slot`: the slot's epoch is at or after the fork's first epoch
    /// (false if the fork is not scheduled).
    pub fn in_force_at(&self, fork: Fork, slot: u64) -> bool {
        self.forks.iter().find(|f| f.fork == fork).is_some_and(|f| self.epoch_at_slot(slot) >= f.epoch)
    }

    /// Spec `compute_fork_data_root`: `hash_tree_root(ForkData{version, genesis_validators_root})`.
    pub fn fork_data_root(&self, version: Version) -> Root {
        let mut leaf = Root::ZERO;
        leaf[..4].copy_from_slice(version.as_slice());
        // Not `merkle::hash_pair`: merkle.rs takes the network (its gindex rules), and the two files must not
        // import each other.
        Root::from_slice(&Sha256::new().chain_update(leaf).chain_update(self.genesis_validators_root).finalize())
    }

    /// The signing domain for a sync aggregate created at `signature_slot`, spec
    /// `compute_domain(DOMAIN_SYNC_COMMITTEE, version, genesis_validators_root)`, where the fork version
    /// is the one in force (spec `compute_fork_version`) at the epoch of `signature_slot - 1` (the block
    /// the committee signed over).
    pub fn sync_committee_domain_at_signature_slot(&self, signature_slot: u64) -> Root {
        let fork_version_slot = signature_slot.max(1) - 1;
        let version = self.entry_at_epoch(self.epoch_at_slot(fork_version_slot)).version;
        let mut domain = [0u8; 32];
        domain[..4].copy_from_slice(&DOMAIN_SYNC_COMMITTEE);
        domain[4..].copy_from_slice(&self.fork_data_root(version)[..28]);
        B256::from(domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::blobs;

    fn v(bytes: [u8; 4]) -> Version {
        FixedBytes(bytes)
    }

    #[test]
    fn mainnet_digests_match_published_values() {
        let n = Network::mainnet();
        n.validate().unwrap();
        let expect = [
            ("afcaaba0", Fork::Altair),
            ("4a26c58b", Fork::Bellatrix),
            ("bba4da96", Fork::Capella),
            ("6a95a1a9", Fork::Deneb),
            ("ad532ceb", Fork::Electra),
        ];
        for (hex_digest, fork) in expect {
            let d: [u8; 4] = hex::decode(hex_digest).unwrap().try_into().unwrap();
            assert_eq!(n.fork_for_digest(d).unwrap(), fork, "{hex_digest}");
        }
        assert_eq!(hex::encode(n.fork_digest_at_epoch(364032)), "ad532ceb");
    }

    #[test]
    fn fulu_digests_follow_blob_schedule() {
        // consensus-specs `fulu/validator/test_compute_fork_digest.py`.
        let forks = Fork::ALL
            .into_iter()
            .enumerate()
            .map(|(i, fork)| ForkEntry { fork, version: v([i as u8, 0, 0, 0]), epoch: 0 })
            .collect();
        let schedule = blobs(&[(0, 9), (9, 9), (100, 100), (150, 175), (200, 200), (250, 275), (300, 300)]);
        let mut n = Network {
            name: "bpo".into(),
            genesis_validators_root: B256::ZERO,
            genesis_time: 0,
            seconds_per_slot: 12,
            preset: PresetKind::Mainnet,
            forks,
            blob_schedule: schedule,
        };
        n.validate().unwrap();
        for (epoch, digest) in [
            (9, "ab3ae6c8"),
            (99, "ab3ae6c8"),
            (100, "df67557b"),
            (150, "8ab38b59"),
            (250, "4ef32a62"),
            (301, "ca100d64"),
        ] {
            assert_eq!(hex::encode(n.fork_digest_at_epoch(epoch)), digest, "epoch {epoch}");
            assert_eq!(n.fork_for_digest(n.fork_digest_at_epoch(epoch)).unwrap(), Fork::Fulu);
        }
        n.genesis_validators_root = B256::repeat_byte(1);
        assert_eq!(hex::encode(n.fork_digest_at_epoch(9)), "89671111");
    }

    #[test]
    fn slot_arithmetic() {
        let n = Network::mainnet();
        assert_eq!(n.period_at_slot(11649056), 1422);
        assert_eq!(n.fork_at_slot(11649056), Fork::Electra);
        assert_eq!(n.fork_at_slot(11649023), Fork::Deneb);
        assert_eq!(n.fork_at_slot(7069376), Fork::Capella);
    }

    #[test]
    fn pinned_network_round_trips_through_json() {
        let n = Network::by_name("hoodi").unwrap();
        let text = serde_json::to_string_pretty(&n).unwrap();
        assert!(text.contains("\"preset\": \"mainnet\"") && text.contains("\"fork\": \"electra\""));
        let back: Network = serde_json::from_str(&text).unwrap();
        assert_eq!(back, n);
    }

    #[test]
    fn builtins_validate() {
        for name in ["mainnet", "sepolia", "holesky", "hoodi"] {
            Network::by_name(name).unwrap().validate().unwrap();
        }
        Network::simulated(B256::repeat_byte(0x42), 0, 6, PresetKind::Minimal).validate().unwrap();
        assert!(matches!(Network::by_name("goerli"), Err(Error::UnknownNetwork(_))));
    }

    #[test]
    fn blob_schedule_is_checked_last() {
        let invalid = |n: &Network| match n.validate() {
            Err(Error::InvalidNetwork(msg)) => msg,
            other => panic!("{other:?}"),
        };
        let mut n = Network::mainnet();
        n.blob_schedule.swap(0, 1);
        assert_eq!(invalid(&n), "mainnet: blob schedule epochs must not decrease");
        n.blob_schedule.clear();
        assert!(invalid(&n).ends_with("the blob schedule (electra entry first) is required"));
        n.seconds_per_slot = 0;
        assert_eq!(invalid(&n), "mainnet: seconds_per_slot must be positive");
        n.forks.pop();
        n.seconds_per_slot = 12;
        n.validate().unwrap();
    }

    /// The simulated network is recognised by its signing domains, whatever its name, and no real
    /// network is mistaken for it.
    #[test]
    fn simulated_identity_survives_relabelling() {
        for name in ["mainnet", "sepolia", "holesky", "hoodi"] {
            assert!(!Network::by_name(name).unwrap().is_simulated(), "{name}");
        }
        let gvr = Network::simulated_genesis_validators_root();
        let mut sim = Network::simulated(B256::repeat_byte(0x42), 0, 1, PresetKind::Minimal);
        sim.name = "my-chain".into();
        assert!(sim.is_simulated(), "simulated fork versions under another GVR and name");
        // Only one simulated version left (say, an Electra-only schedule): still its domain.
        let mut one = Network::mainnet();
        one.forks.last_mut().unwrap().version = v([5, b'S', b'I', b'M']);
        assert!(one.is_simulated());
        // The dev beacon's GVR under real fork versions.
        let mut relabelled = Network::mainnet();
        relabelled.genesis_validators_root = gvr;
        assert!(relabelled.is_simulated());
        let mut other = Network::mainnet();
        other.genesis_validators_root = B256::repeat_byte(7);
        assert!(!other.is_simulated(), "a custom network is not simulated as such");
    }
}
