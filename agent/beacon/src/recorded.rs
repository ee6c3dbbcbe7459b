//! Offline verification of recorded beacon-node responses (the library side of
//! `replicatoor light-client verify`): bootstrap from a checkpoint, walk the period updates, then
//! the optional finality and optimistic updates, and report what was proven.
//!
//! Stricter than a live light client on purpose: every update handed in must carry a 2/3
//! supermajority (a recorded sync should never need the weaker paths), and the spec's forced
//! update is never taken.

use serde::Serialize;

use crate::codec::{decode_bootstrap, decode_finality_update, decode_optimistic_update, decode_updates};
use crate::error::Error;
use crate::network::{Fork, Network};
use crate::preset::{Mainnet, Minimal, Preset, PresetKind};
use crate::store::LightClientStore;
use crate::types::{LightClientHeader, Root, SyncAggregate};

/// Where the trusted block root came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustSource {
    /// The caller's checkpoint root; the bootstrap was checked against it.
    Checkpoint,
    /// No checkpoint given: the bootstrap's own header root was trusted as is.
    BootstrapHeader,
}

/// Where the verifier's notion of "now" came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CurrentSlotSource {
    /// Given by the caller.
    Given,
    /// The largest signature slot in the data (never the wall clock).
    LatestSignatureSlot,
}

/// A verified header, as the execution side needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedHeader {
    /// Beacon slot.
    pub beacon_slot: u64,
    /// Beacon block root.
    pub beacon_block_root: Root,
    /// Fork at that slot.
    pub fork: Fork,
    /// Execution block number.
    pub execution_block_number: u64,
    /// Execution block hash.
    pub execution_block_hash: Root,
    /// Execution state root.
    pub execution_state_root: Root,
    /// Execution receipts root.
    pub execution_receipts_root: Root,
    /// Execution block timestamp (seconds).
    pub execution_timestamp: u64,
}

impl VerifiedHeader {
    fn new(network: &Network, header: &LightClientHeader) -> Self {
        VerifiedHeader {
            beacon_slot: header.beacon.slot,
            beacon_block_root: header.beacon.root(),
            fork: network.fork_at_slot(header.beacon.slot),
            execution_block_number: header.execution.block_number,
            execution_block_hash: header.execution.block_hash,
            execution_state_root: header.execution.state_root,
            execution_receipts_root: header.execution.receipts_root,
            execution_timestamp: header.execution.timestamp,
        }
    }
}

/// Result of [`verify_recorded`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Network name.
    pub network: String,
    /// The trusted block root the bootstrap was accepted against.
    pub trusted_block_root: Root,
    /// Whether that root was given or taken from the bootstrap itself.
    pub trust_source: TrustSource,
    /// Slot of the bootstrap header.
    pub bootstrap_slot: u64,
    /// The current slot used for the `current_slot >= signature_slot` checks.
    pub current_slot: u64,
    /// Where `current_slot` came from.
    pub current_slot_source: CurrentSlotSource,
    /// Sync-committee periods whose committee signatures were verified, ascending.
    pub sync_committee_periods: Vec<u64>,
    /// Period updates verified.
    pub updates_verified: usize,
    /// A finality update was given and verified.
    pub finality_update_verified: bool,
    /// An optimistic update was given and verified.
    pub optimistic_update_verified: bool,
    /// Newest finalized header.
    pub finalized: VerifiedHeader,
    /// Newest attested (optimistic) header.
    pub optimistic: VerifiedHeader,
}

impl core::fmt::Display for Report {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let trust = match self.trust_source {
            TrustSource::Checkpoint => "checkpoint given",
            TrustSource::BootstrapHeader => "NO checkpoint given: trusted the bootstrap header itself",
        };
        writeln!(f, "network           {}", self.network)?;
        writeln!(f, "trusted root      {} ({trust})", self.trusted_block_root)?;
        writeln!(f, "bootstrap slot    {}", self.bootstrap_slot)?;
        writeln!(f, "current slot      {} ({:?})", self.current_slot, self.current_slot_source)?;
        writeln!(f, "periods verified  {:?}", self.sync_committee_periods)?;
        for (label, h) in [("finalized", &self.finalized), ("optimistic", &self.optimistic)] {
            writeln!(
                f,
                "{label:<11} slot {} ({}) root {}\n            execution block {} hash {}\n            state root {} receipts root {}",
                h.beacon_slot,
                h.fork,
                h.beacon_block_root,
                h.execution_block_number,
                h.execution_block_hash,
                h.execution_state_root,
                h.execution_receipts_root
            )?;
        }
        Ok(())
    }
}

/// Verify recorded light-client responses offline.
///
/// * `checkpoint`: the trusted block root; `None` trusts the bootstrap's own header (reported).
/// * `bootstrap`, `updates`, `finality`, `optimistic`: response bodies, JSON or SSZ each; every
///   `updates` body may hold any number of periods.
/// * `current_slot`: defaults to the largest signature slot in the data.
///
/// Updates are applied in attested-slot order; each must carry a 2/3 supermajority and pass
/// every spec check, or the whole verification fails with the reason.
pub fn verify_recorded(
    network: &Network,
    checkpoint: Option<Root>,
    bootstrap: &[u8],
    updates: &[&[u8]],
    finality: Option<&[u8]>,
    optimistic: Option<&[u8]>,
    current_slot: Option<u64>,
) -> Result<Report, Error> {
    network.validate()?;
    let input = Input { checkpoint, bootstrap, updates, finality, optimistic, current_slot };
    match network.preset {
        PresetKind::Mainnet => run::<Mainnet>(network, &input),
        PresetKind::Minimal => run::<Minimal>(network, &input),
    }
}

struct Input<'a> {
    checkpoint: Option<Root>,
    bootstrap: &'a [u8],
    updates: &'a [&'a [u8]],
    finality: Option<&'a [u8]>,
    optimistic: Option<&'a [u8]>,
    current_slot: Option<u64>,
}

impl PresetKind {
    /// Number of members in a sync committee, for reports (this one's refusals, the follower's count of
    /// signers, the simulated committees); the store's containers carry it as `Preset::SyncCommitteeSize`.
    pub const fn sync_committee_size(self) -> usize {
        match self {
            Self::Mainnet => 512,
            Self::Minimal => 32,
        }
    }
}

fn require_supermajority<P: Preset>(aggregate: &SyncAggregate<P>) -> Result<(), Error> {
    if aggregate.has_supermajority() {
        Ok(())
    } else {
        Err(Error::InsufficientParticipation {
            participants: aggregate.participants(),
            committee_size: P::KIND.sync_committee_size() as u64,
        })
    }
}

fn run<P: Preset>(network: &Network, input: &Input<'_>) -> Result<Report, Error> {
    let bootstrap = decode_bootstrap::<P>(network, input.bootstrap)?.data;
    let mut updates = Vec::new();
    for body in input.updates {
        updates.extend(decode_updates::<P>(network, body)?.into_iter().map(|u| u.data));
    }
    updates.sort_by_key(|u| u.attested_header.beacon.slot);
    let finality = input.finality.map(|b| decode_finality_update::<P>(network, b)).transpose()?.map(|f| f.data);
    let optimistic = input.optimistic.map(|b| decode_optimistic_update::<P>(network, b)).transpose()?.map(|o| o.data);

    let (current_slot, current_slot_source) = match input.current_slot {
        Some(slot) => (slot, CurrentSlotSource::Given),
        None => {
            let latest = updates
                .iter()
                .map(|u| u.signature_slot)
                .chain(finality.iter().map(|f| f.signature_slot))
                .chain(optimistic.iter().map(|o| o.signature_slot))
                .max()
                .unwrap_or(bootstrap.header.beacon.slot);
            (latest, CurrentSlotSource::LatestSignatureSlot)
        }
    };
    let (trusted_block_root, trust_source) = match input.checkpoint {
        Some(root) => (root, TrustSource::Checkpoint),
        None => (bootstrap.header.beacon.root(), TrustSource::BootstrapHeader),
    };

    let mut store = LightClientStore::<P>::initialize(network, trusted_block_root, &bootstrap)?;
    let mut periods = Vec::new();
    for update in &updates {
        require_supermajority(&update.sync_aggregate)?;
        store.process_update(network, update, current_slot)?;
        periods.push(network.period_at_slot(update.signature_slot));
    }
    if let Some(finality) = &finality {
        require_supermajority(&finality.sync_aggregate)?;
        store.process_update(network, &finality.clone().into(), current_slot)?;
        periods.push(network.period_at_slot(finality.signature_slot));
    }
    if let Some(optimistic) = &optimistic {
        require_supermajority(&optimistic.sync_aggregate)?;
        store.process_update(network, &optimistic.clone().into(), current_slot)?;
        periods.push(network.period_at_slot(optimistic.signature_slot));
    }
    periods.sort_unstable();
    periods.dedup();

    Ok(Report {
        network: network.name.clone(),
        trusted_block_root,
        trust_source,
        bootstrap_slot: bootstrap.header.beacon.slot,
        current_slot,
        current_slot_source,
        sync_committee_periods: periods,
        updates_verified: updates.len(),
        finality_update_verified: finality.is_some(),
        optimistic_update_verified: optimistic.is_some(),
        finalized: VerifiedHeader::new(network, &store.finalized_header),
        optimistic: VerifiedHeader::new(network, &store.optimistic_header),
    })
}
