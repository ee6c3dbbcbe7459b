//! The consensus forks, in order: a leaf the network configuration, the codecs and the error type all
//! name. Their beacon-API names (`Fork::name`, `Display`) are the decoder's, in `codec/digest.rs`:
//! labels and messages only, the store takes a header's fork from its slot.

use serde::{Deserialize, Serialize};

/// Consensus forks, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fork {
    /// Genesis fork.
    Phase0,
    /// Altair: sync committees.
    Altair,
    /// Bellatrix: the merge.
    Bellatrix,
    /// Capella: light-client headers gain the execution payload header.
    Capella,
    /// Deneb: execution header gains blob gas fields.
    Deneb,
    /// Electra: BeaconState grows, branch depths +1.
    Electra,
    /// Fulu: same light-client shapes as Electra; fork digests mix in blob parameters.
    Fulu,
}

impl Fork {
    /// All forks, oldest first.
    pub const ALL: [Fork; 7] =
        [Fork::Phase0, Fork::Altair, Fork::Bellatrix, Fork::Capella, Fork::Deneb, Fork::Electra, Fork::Fulu];
}
