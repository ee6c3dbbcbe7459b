//! Every way verification can refuse, one variant per cause, so callers (and tests) can match on
//! the reason instead of parsing messages.

use crate::codec::error::DecodeError;
use crate::preset::PresetKind;
use crate::types::Root;

/// Why light-client data was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A beacon-API body did not decode (transport, [`crate::codec`]).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The network configuration is inconsistent.
    #[error("invalid network configuration: {0}")]
    InvalidNetwork(String),
    /// No built-in network has this name.
    #[error("unknown network {0:?}")]
    UnknownNetwork(String),
    /// The network's preset is not the one the store/containers were instantiated with.
    #[error("network uses the {network} preset but the data is typed for {expected}")]
    PresetMismatch {
        /// The network's preset.
        network: PresetKind,
        /// The preset of the types in use.
        expected: PresetKind,
    },
    /// A persisted store is being used with a network of a different genesis validators root.
    #[error("store belongs to genesis validators root {store} but the network has {network}")]
    NetworkMismatch {
        /// The GVR recorded in the store.
        store: Root,
        /// The GVR of the network passed in.
        network: Root,
    },
    /// The bootstrap header's root is not the trusted checkpoint root.
    #[error("bootstrap header root {actual} is not the trusted checkpoint {expected}")]
    CheckpointMismatch {
        /// The trusted checkpoint block root.
        expected: Root,
        /// `hash_tree_root(bootstrap.header.beacon)`.
        actual: Root,
    },
    /// Fewer sync-committee participants than the spec's `MIN_SYNC_COMMITTEE_PARTICIPANTS`.
    #[error("{participants} sync-committee participants, at least {minimum} required")]
    TooFewParticipants {
        /// Bits set in the sync aggregate.
        participants: u64,
        /// `MIN_SYNC_COMMITTEE_PARTICIPANTS`.
        minimum: u64,
    },
    /// Participation below the 2/3 supermajority where one is required.
    #[error("{participants} of {committee_size} sync-committee members signed, below the 2/3 supermajority")]
    InsufficientParticipation {
        /// Bits set in the sync aggregate.
        participants: u64,
        /// Committee size.
        committee_size: u64,
    },
    /// `current_slot >= signature_slot > attested_slot >= finalized_slot` does not hold.
    #[error(
        "slot ordering violated: current {current_slot} >= signature {signature_slot} > attested {attested_slot} >= finalized {finalized_slot}"
    )]
    SlotOrdering {
        /// The verifier's current slot.
        current_slot: u64,
        /// The update's signature slot.
        signature_slot: u64,
        /// The attested header slot.
        attested_slot: u64,
        /// The finalized header slot (0 if none).
        finalized_slot: u64,
    },
    /// The update is signed in a sync-committee period that is neither the store's current one
    /// nor (when the next committee is known) the next one.
    #[error("update signed in period {update_period}; store is in period {store_period} (next committee known: {next_committee_known})")]
    PeriodNotCurrentOrNext {
        /// The store's finalized period.
        store_period: u64,
        /// The period of the update's signature slot.
        update_period: u64,
        /// Whether the store already knows the next sync committee.
        next_committee_known: bool,
    },
    /// The update's attested header is not newer than the store's finalized header and brings
    /// nothing new.
    #[error("stale update: attested slot {attested_slot} is not after the finalized slot {finalized_slot}")]
    StaleUpdate {
        /// The update's attested header slot.
        attested_slot: u64,
        /// The store's finalized header slot.
        finalized_slot: u64,
    },
    /// A header's execution payload header does not match its beacon body root (or, before
    /// Capella/Deneb, carries fields it must not).
    #[error("execution payload branch invalid for the header at slot {slot}")]
    BadExecutionBranch {
        /// The header's beacon slot.
        slot: u64,
    },
    /// The execution payload's timestamp is not its slot's time (`genesis_time + slot ×
    /// seconds_per_slot`, which the beacon state transition requires of every payload): a header
    /// whose freshness would be judged on a time its slot does not have.
    #[error("execution timestamp {timestamp} of the header at slot {slot} is not its slot's time {expected}")]
    TimestampNotSlotTime {
        /// The header's beacon slot.
        slot: u64,
        /// The execution payload's timestamp.
        timestamp: u64,
        /// `genesis_time + slot × seconds_per_slot`.
        expected: u64,
    },
    /// The finality branch does not prove the finalized header in the attested state.
    #[error("finality branch invalid (attested slot {attested_slot})")]
    BadFinalityBranch {
        /// The attested header slot.
        attested_slot: u64,
    },
    /// No finality branch, yet a finalized header was supplied (or the reverse at genesis).
    #[error("finalized header present without a finality proof")]
    UnexpectedFinalizedHeader,
    /// The next-sync-committee branch does not prove the committee in the attested state.
    #[error("next sync committee branch invalid (attested slot {attested_slot})")]
    BadNextSyncCommitteeBranch {
        /// The attested header slot.
        attested_slot: u64,
    },
    /// The bootstrap's current-sync-committee branch does not prove the committee.
    #[error("current sync committee branch invalid (bootstrap slot {slot})")]
    BadCurrentSyncCommitteeBranch {
        /// The bootstrap header slot.
        slot: u64,
    },
    /// A next sync committee was supplied without a branch proving it.
    #[error("next sync committee present without a proof")]
    UnexpectedNextSyncCommittee,
    /// The update's next sync committee differs from the one the store already trusts.
    #[error("next sync committee differs from the one already known for this period")]
    NextSyncCommitteeMismatch,
    /// A participating committee member's public key is not a valid G1 point (or is infinity).
    #[error("sync committee public key {index} is invalid")]
    InvalidPublicKey {
        /// Index in the committee.
        index: usize,
    },
    /// The aggregate signature bytes are not a valid G2 point in the subgroup.
    #[error("sync aggregate signature is not a valid G2 point")]
    InvalidSignatureEncoding,
    /// The aggregate signature does not verify for the participants over the signing root.
    #[error("sync aggregate signature does not verify")]
    BadSignature,
    /// Applying an update would skip a period (spec `apply_light_client_update` assertion).
    #[error("cannot apply an update finalized in period {update_period} to a store in period {store_period}")]
    ApplyOutOfPeriod {
        /// The store's period.
        store_period: u64,
        /// The update's finalized period.
        update_period: u64,
    },
}
