//! Consensus presets: the compile-time sizes (sync committee) and the slot arithmetic that the
//! light-client protocol depends on. Mainnet for real networks, minimal for the consensus-spec
//! test vectors and small simulated chains.

use core::fmt::Debug;
use serde::{Deserialize, Serialize};
use ssz_types::typenum::{Unsigned, U32, U512};

/// The spec's `MIN_SYNC_COMMITTEE_PARTICIPANTS` (1 in both presets).
pub const MIN_SYNC_COMMITTEE_PARTICIPANTS: u64 = 1;

/// Which preset a network uses; the runtime mirror of a [`Preset`] type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresetKind {
    /// The mainnet preset (512-member sync committee, 32 slots per epoch, 256 epochs per period).
    Mainnet,
    /// The minimal preset of consensus-spec-tests (32 members, 8 slots per epoch, 8 epochs per period).
    Minimal,
}

impl PresetKind {
    /// Slots per epoch.
    pub const fn slots_per_epoch(self) -> u64 {
        match self {
            Self::Mainnet => 32,
            Self::Minimal => 8,
        }
    }

    /// Epochs per sync-committee period.
    pub const fn epochs_per_sync_committee_period(self) -> u64 {
        match self {
            Self::Mainnet => 256,
            Self::Minimal => 8,
        }
    }
}

/// Type-level preset: SSZ containers need the committee size as a type (`typenum`), so the
/// containers and the store are generic over this trait; [`Preset::KIND`] links it to the runtime
/// [`PresetKind`] carried by a [`crate::Network`].
pub trait Preset: 'static + Clone + Debug + Default + PartialEq + Eq + Send + Sync {
    /// `SYNC_COMMITTEE_SIZE` as a type.
    type SyncCommitteeSize: Unsigned + Clone + Debug + PartialEq + Eq + Send + Sync;
    /// The runtime identity of this preset.
    const KIND: PresetKind;
}

/// The mainnet preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Mainnet;

impl Preset for Mainnet {
    type SyncCommitteeSize = U512;
    const KIND: PresetKind = PresetKind::Mainnet;
}

/// The minimal preset (consensus-spec-tests, small dev chains).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Minimal;

impl Preset for Minimal {
    type SyncCommitteeSize = U32;
    const KIND: PresetKind = PresetKind::Minimal;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_agree_with_type_level() {
        assert_eq!(<Mainnet as Preset>::SyncCommitteeSize::to_usize(), PresetKind::Mainnet.sync_committee_size());
        assert_eq!(<Minimal as Preset>::SyncCommitteeSize::to_usize(), PresetKind::Minimal.sync_committee_size());
        assert_eq!(PresetKind::Mainnet.slots_per_sync_committee_period(), 8192);
        assert_eq!(PresetKind::Minimal.slots_per_sync_committee_period(), 64);
    }
}
