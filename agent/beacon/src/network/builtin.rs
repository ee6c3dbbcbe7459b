//! Built-in networks. Fork schedules, genesis times and validators roots as published in each
//! network's config (consensus-specs `configs/mainnet.yaml`; the client teams' sepolia, holesky and
//! hoodi configs).

use alloy_primitives::{b256, FixedBytes};

use super::{Fork, ForkEntry, Network, FAR_FUTURE_EPOCH};
use crate::blob::blobs;
use crate::error::Error;
use crate::preset::PresetKind;
use crate::types::Root;

/// The last three bytes of every simulated fork version; no public network's versions end so.
const SIMULATED_VERSION_TAG: [u8; 3] = *b"SIM";

/// Labels the simulated dev beacon's genesis validators root.
const SIMULATED_GVR_LABEL: &[u8] = b"replicatoor/simulated-beacon/genesis-validators-root/v1";

/// The fork schedule from the versions and epochs of phase0 through fulu, as the configs write them
/// (`ALTAIR_FORK_VERSION: 0x01000000`: big-endian); forks at `FAR_FUTURE_EPOCH` are left out.
fn schedule(versions: [u32; 7], epochs: [u64; 7]) -> Vec<ForkEntry> {
    Fork::ALL
        .into_iter()
        .zip(versions)
        .zip(epochs)
        .filter(|(_, epoch)| *epoch != FAR_FUTURE_EPOCH)
        .map(|((fork, version), epoch)| ForkEntry { fork, version: FixedBytes(version.to_be_bytes()), epoch })
        .collect()
}

/// The public networks, as their configs publish them: name, genesis validators root, genesis time,
/// the fork versions and epochs of phase0 through fulu, the blob schedule (the Electra entry first).
/// All run the mainnet preset with 12-second slots.
type Published = (&'static str, Root, u64, [u32; 7], [u64; 7], &'static [(u64, u64)]);
const PUBLIC: [Published; 4] = [
    (
        "mainnet",
        b256!("4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"),
        1606824023,
        [0x00000000, 0x01000000, 0x02000000, 0x03000000, 0x04000000, 0x05000000, 0x06000000],
        [0, 74240, 144896, 194048, 269568, 364032, 411392],
        &[(364032, 9), (412672, 15), (419072, 21)],
    ),
    (
        "sepolia",
        b256!("d8ea171f3c94aea21ebc42a1ed61052acf3f9209c00e4efbaaddac09ed9b8078"),
        1655733600,
        [0x90000069, 0x90000070, 0x90000071, 0x90000072, 0x90000073, 0x90000074, 0x90000075],
        [0, 50, 100, 56832, 132608, 222464, 272640],
        &[(222464, 9), (274176, 15), (275712, 21)],
    ),
    (
        "holesky",
        b256!("9143aa7c615a7f7115e2b6aac319c03529df8242ae705fba9df39b79c59fa8b1"),
        1695902400,
        [0x01017000, 0x02017000, 0x03017000, 0x04017000, 0x05017000, 0x06017000, 0x07017000],
        [0, 0, 0, 256, 29696, 115968, 165120],
        &[(115968, 9), (166400, 15), (167936, 21)],
    ),
    (
        "hoodi",
        b256!("212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f"),
        1742213400,
        [0x10000910, 0x20000910, 0x30000910, 0x40000910, 0x50000910, 0x60000910, 0x70000910],
        [0, 0, 0, 0, 0, 2048, 50688],
        &[(2048, 9), (52480, 15), (54016, 21)],
    ),
];

impl Network {
    /// Ethereum mainnet.
    pub fn mainnet() -> Network {
        Network::by_name("mainnet").expect("mainnet is built in")
    }

    /// A simulated dev-chain network: every fork up to Electra active from genesis, with fork
    /// versions `[index, b'S', b'I', b'M']` that no public chain uses, and the caller's own
    /// genesis validators root (which keeps its signatures from ever verifying elsewhere).
    pub fn simulated(
        genesis_validators_root: Root,
        genesis_time: u64,
        seconds_per_slot: u64,
        preset: PresetKind,
    ) -> Network {
        let [s, i, m] = SIMULATED_VERSION_TAG;
        let versions = core::array::from_fn(|index| u32::from_be_bytes([index as u8, s, i, m]));
        Network {
            name: "simulated".into(),
            genesis_validators_root,
            genesis_time,
            seconds_per_slot,
            preset,
            forks: schedule(versions, [0, 0, 0, 0, 0, 0, FAR_FUTURE_EPOCH]),
            blob_schedule: Vec::new(),
        }
    }

    /// The genesis validators root of the simulated dev beacon the test harness and the demo run
    /// (`replicatoor_testkit::beacon::network`): `sha256` of a public label.
    pub fn simulated_genesis_validators_root() -> Root {
        use sha2::{Digest, Sha256};
        Root::from_slice(&Sha256::digest(SIMULATED_GVR_LABEL))
    }

    /// Whether this network has the simulated network's identity, whatever it is called. The
    /// identity of a beacon network is what its sync-committee signatures are bound to: the signing
    /// domains, derived from the fork versions and the genesis validators root (its name and times
    /// are labels). So a network is the simulated one when any fork version carries the simulated
    /// tag (`[_, b'S', b'I', b'M']`, which [`Network::simulated`] gives every fork, under any
    /// genesis validators root), or when its genesis validators root is the simulated dev beacon's.
    /// Such a network can be a simulated one relabelled: never trust it outside a dev build.
    pub fn is_simulated(&self) -> bool {
        self.forks.iter().any(|f| f.version.0[1..] == SIMULATED_VERSION_TAG)
            || self.genesis_validators_root == Network::simulated_genesis_validators_root()
    }

    /// A built-in network by name (`mainnet`, `sepolia`, `holesky`, `hoodi`).
    pub fn by_name(name: &str) -> Result<Network, Error> {
        let lower = name.to_ascii_lowercase();
        let Some(&(name, genesis_validators_root, genesis_time, versions, epochs, blob_schedule)) =
            PUBLIC.iter().find(|network| network.0 == lower)
        else {
            return Err(Error::UnknownNetwork(name.to_owned()));
        };
        Ok(Network {
            name: name.into(),
            genesis_validators_root,
            genesis_time,
            seconds_per_slot: 12,
            preset: PresetKind::Mainnet,
            forks: schedule(versions, epochs),
            blob_schedule: blobs(blob_schedule),
        })
    }
}
