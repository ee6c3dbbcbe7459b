//! Execution headers authenticated by the beacon chain: a light-client follower that fetches from
//! an untrusted beacon API ([`api`], which also decodes the answers: transport, off the trust path;
//! which updates to ask for is [`schedule`]'s, off it too: it hands every one to `Follower::feed`),
//! verifies with [`replicatoor_beacon`] (the consensus-specs sync protocol, the same code for mainnet
//! and for the simulated dev beacon) and hands out the [`TrustedHeader`]s that [`crate::proof`]
//! checks storage, headers and receipts against.
//!
//! Trust comes from configuration only: the [`Network`] (genesis validators root, fork schedule)
//! and a pinned checkpoint block root. The beacon API, the persisted store's bytes excepted, is
//! transport: a lying server can stall the follower (typed errors; the verified view refuses a header
//! older than the pin allows, `VerifiedView::decision_header`) but cannot make it accept a header the
//! sync committee did not sign.
//!
//! Stricter than the spec in one place: updates below a 2/3 sync-committee supermajority are
//! skipped. The spec lets such an update move the optimistic header once it beats half the best
//! participation seen, which right after a bootstrap or a period change can be a single signer;
//! the TD decides on these headers, so it waits for a supermajority (mainnet runs well above it).

mod api;
mod schedule;

pub use api::{BeaconApi, FetchError, MAX_RESPONSE_BYTES, REQUEST_TIMEOUT, UPDATES_PER_REQUEST};
pub use replicatoor_beacon::{Network, Root};

use crate::proof::TrustedHeader;
use follower::Follower;
use replicatoor_beacon::{
    Error as VerifyError, LightClientHeader, LightClientStore, LightClientUpdate, Mainnet, Minimal, Preset, PresetKind,
};
use serde::{Deserialize, Serialize};

/// Version of the [`LightClient::to_persisted`] format.
const PERSISTED_FORMAT: u32 = 1;

/// Why a sync or a header request failed. Whatever the error, the client keeps its last verified state.
#[derive(Debug, thiserror::Error)]
pub enum BeaconError {
    /// The beacon API did not answer with light-client data (transport: [`api`]).
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Well-formed data that the light client refuses (bad signature, wrong checkpoint, bad proof...).
    #[error("light-client verification refused data from {url}: {source}")]
    Verification {
        /// The request URL.
        url: String,
        /// The verifier's reason.
        source: VerifyError,
    },
    /// The store's finalized header (the pinned checkpoint, or the newest finality a persisted store
    /// holds) is older than the weak-subjectivity bound by the TD's clock: the sync committees that
    /// would carry it forward may be ones whose keys have since been sold or leaked.
    #[error(
        "the light client's finalized header (slot {slot}) is {age_secs} s old, beyond the weak-subjectivity bound of \
         {max_secs} s: re-pin a recent checkpoint (docs/deploy.md)"
    )]
    BeyondWeakSubjectivity {
        /// The finalized header's beacon slot.
        slot: u64,
        /// Its age by the TD's wall clock.
        age_secs: u64,
        /// [`WEAK_SUBJECTIVITY_SECS`].
        max_secs: u64,
    },
    /// A persisted store that cannot be used with this configuration.
    #[error("persisted light-client store refused: {0}")]
    Persisted(String),
    /// Bad configuration (URL, network).
    #[error("light-client configuration: {0}")]
    Config(String),
}

/// How old (by the TD's wall clock) the finalized header a light client starts a sync from may be:
/// the pinned checkpoint when it bootstraps, the newest finality its persisted store holds after.
/// Beyond it the node refuses to sync, so to decide, until it is re-pinned. Fourteen days, as
/// Helios bounds a bootstrap: under the ~27-hour sync-committee periods and mainnet's exit churn, a
/// committee that old is still the one honest validators signed in. The wall clock is the host's:
/// this stops a forgotten or restored-from-backup store on an honest host; against the host it
/// assumes, as every light client does, that old committees' keys are not for sale (SECURITY.md).
pub const WEAK_SUBJECTIVITY_SECS: u64 = 14 * 24 * 3600;

/// What one successful [`LightClient::sync`] did (heads compared with the bootstrap when it bootstrapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SyncReport {
    /// The slot the TD's clock put "now" at (no signature may be from later).
    pub current_slot: u64,
    /// The store was bootstrapped from the pinned checkpoint in this sync.
    pub bootstrapped: bool,
    /// Updates (period, finality, optimistic) that passed verification.
    pub verified: usize,
    /// Updates skipped as below a supermajority or older than the store (nothing to learn).
    pub skipped: usize,
    /// The finalized header moved forward.
    pub finalized_advanced: bool,
    /// The optimistic header moved forward.
    pub optimistic_advanced: bool,
    /// HTTP requests made.
    pub requests: u32,
    /// Sync-committee members who signed the newest optimistic header verified in this sync, and
    /// the committee's size (what an auditor reports about the header it proves against).
    pub optimistic_signers: Option<(u64, u64)>,
}

/// The store, typed by the network's preset (SSZ sizes are type-level); `None` until bootstrapped.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Store {
    Mainnet(Option<LightClientStore<Mainnet>>),
    Minimal(Option<LightClientStore<Minimal>>),
}

impl Store {
    fn empty(preset: PresetKind) -> Store {
        match preset {
            PresetKind::Mainnet => Store::Mainnet(None),
            PresetKind::Minimal => Store::Minimal(None),
        }
    }

    fn preset(&self) -> PresetKind {
        match self {
            Store::Mainnet(_) => PresetKind::Mainnet,
            Store::Minimal(_) => PresetKind::Minimal,
        }
    }

    /// The genesis validators root and the (finalized, optimistic) headers, once bootstrapped.
    fn heads(&self) -> Option<(Root, &LightClientHeader, &LightClientHeader)> {
        match self {
            Store::Mainnet(s) => {
                s.as_ref().map(|s| (s.genesis_validators_root, &s.finalized_header, &s.optimistic_header))
            }
            Store::Minimal(s) => {
                s.as_ref().map(|s| (s.genesis_validators_root, &s.finalized_header, &s.optimistic_header))
            }
        }
    }
}

/// What [`LightClient::to_persisted`] writes: the configuration it was made under, so a store is
/// never reused for another network or checkpoint.
#[derive(Serialize, Deserialize)]
struct Persisted {
    format: u32,
    network: Network,
    checkpoint: Root,
    store: Store,
}

/// A beacon light-client follower pinned to one network and checkpoint.
#[derive(Debug, Clone)]
pub struct LightClient {
    api: BeaconApi,
    network: Network,
    checkpoint: Root,
    store: Store,
}

impl LightClient {
    /// A client that will bootstrap from `checkpoint` (a trusted beacon block root) on its first sync.
    pub fn new(beacon_url: &str, network: Network, checkpoint: Root) -> Result<LightClient, BeaconError> {
        network.validate().map_err(|e| BeaconError::Config(e.to_string()))?;
        let store = Store::empty(network.preset);
        Ok(LightClient { api: BeaconApi::new(beacon_url)?, network, checkpoint, store })
    }

    /// Resume from [`LightClient::to_persisted`] bytes, without a new bootstrap. Refused unless they
    /// were written for exactly this network and checkpoint.
    pub fn from_persisted(
        beacon_url: &str,
        network: Network,
        checkpoint: Root,
        bytes: &[u8],
    ) -> Result<LightClient, BeaconError> {
        let mut client = LightClient::new(beacon_url, network, checkpoint)?;
        let p: Persisted = serde_json::from_slice(bytes).map_err(|e| BeaconError::Persisted(e.to_string()))?;
        if p.format != PERSISTED_FORMAT {
            return Err(BeaconError::Persisted(format!("format {} (expected {PERSISTED_FORMAT})", p.format)));
        }
        if p.network != client.network {
            return Err(BeaconError::Persisted(format!(
                "written for network {:?} (genesis validators root {}), configured {:?} ({})",
                p.network.name,
                p.network.genesis_validators_root,
                client.network.name,
                client.network.genesis_validators_root
            )));
        }
        if p.checkpoint != checkpoint {
            return Err(BeaconError::Persisted(format!(
                "written for checkpoint {}, configured {checkpoint}",
                p.checkpoint
            )));
        }
        // Both follow from the network check for stores this code wrote; checked anyway because the
        // verifier would otherwise only notice at the next update.
        if p.store.preset() != client.network.preset
            || p.store.heads().is_some_and(|(g, ..)| g != client.network.genesis_validators_root)
        {
            return Err(BeaconError::Persisted("store does not belong to the configured network".into()));
        }
        client.store = p.store;
        Ok(client)
    }

    /// The state to keep across restarts (JSON; a mainnet store is ~150 KB).
    pub fn to_persisted(&self) -> Vec<u8> {
        let p = Persisted {
            format: PERSISTED_FORMAT,
            network: self.network.clone(),
            checkpoint: self.checkpoint,
            store: self.store.clone(),
        };
        serde_json::to_vec(&p).expect("the store serializes: plain data with string keys")
    }

    /// The newest finalized execution header (finalized by the beacon chain, about two epochs
    /// behind on mainnet).
    pub fn finalized(&self) -> Option<TrustedHeader> {
        self.store.heads().map(|(_, finalized, _)| trusted(finalized))
    }

    /// The newest execution header signed by a sync-committee supermajority (not necessarily final).
    pub fn optimistic(&self) -> Option<TrustedHeader> {
        self.store.heads().map(|(.., optimistic)| trusted(optimistic))
    }

    /// Catch up with the beacon chain as of `now_unix` (the TD's clock): bootstrap if needed, the
    /// period updates from the store's period on, then the newest finality and optimistic updates.
    ///
    /// Each verified step is kept as soon as it verifies, so on an error the store holds everything
    /// verified before it (never less than before the call, never anything unverified).
    pub async fn sync(&mut self, now_unix: u64) -> Result<SyncReport, BeaconError> {
        // The slot the TD's clock is in (before genesis: slot 0, where no update can be signed yet).
        let current_slot = now_unix.saturating_sub(self.network.genesis_time) / self.network.seconds_per_slot.max(1);
        let mut report = SyncReport { current_slot, ..SyncReport::default() };
        let (api, network, checkpoint) = (&self.api, &self.network, self.checkpoint);
        match &mut self.store {
            Store::Mainnet(s) => sync_store(api, network, checkpoint, now_unix, s, &mut report).await?,
            Store::Minimal(s) => sync_store(api, network, checkpoint, now_unix, s, &mut report).await?,
        }
        Ok(report)
    }
}

/// When a verified header was made: its slot's time (which its execution timestamp must equal,
/// `replicatoor_beacon` checks), or on the simulated network, whose slots count blocks, the execution
/// timestamp.
fn header_time(network: &Network, h: &LightClientHeader) -> u64 {
    if network.is_simulated() {
        h.execution.timestamp
    } else {
        network.genesis_time.saturating_add(h.beacon.slot.saturating_mul(network.seconds_per_slot))
    }
}

fn trusted(h: &LightClientHeader) -> TrustedHeader {
    TrustedHeader {
        number: h.execution.block_number,
        hash: h.execution.block_hash,
        state_root: h.execution.state_root,
        receipts_root: h.execution.receipts_root,
        timestamp: h.execution.timestamp,
    }
}

async fn sync_store<P: Preset>(
    api: &BeaconApi,
    network: &Network,
    checkpoint: Root,
    now_unix: u64,
    slot: &mut Option<LightClientStore<P>>,
    report: &mut SyncReport,
) -> Result<(), BeaconError> {
    let bootstrapped = slot.is_none();
    let store = match slot {
        Some(store) => store,
        None => {
            report.requests += 1;
            let bootstrap = api.bootstrap::<P>(network, checkpoint).await?;
            // Checks the header root against the checkpoint and the committee proof against it.
            let store = LightClientStore::initialize(network, checkpoint, &bootstrap.data)
                .map_err(|source| BeaconError::Verification { url: bootstrap.url, source })?;
            slot.insert(store)
        }
    };
    // Nothing is learnt from a store whose finality is older than the weak-subjectivity bound.
    let age_secs = now_unix.saturating_sub(header_time(network, &store.finalized_header));
    if age_secs > WEAK_SUBJECTIVITY_SECS {
        return Err(BeaconError::BeyondWeakSubjectivity {
            slot: store.finalized_header.beacon.slot,
            age_secs,
            max_secs: WEAK_SUBJECTIVITY_SECS,
        });
    }
    // Advancement counts from the bootstrap when there was one.
    let before = (store.finalized_header.beacon.slot, store.optimistic_header.beacon.slot);
    // Which updates to ask for, and which to leave unverified as having nothing to teach, is
    // `schedule.rs`'s (not counted, TRUST.md section 3): it reads the store through a `Follower`, and
    // only `Follower::feed`, which verifies, changes it. What a sync did is set here, after it.
    schedule::fetch(api, network, &mut Follower::new(store, network, report.current_slot), report).await?;
    report.bootstrapped = bootstrapped;
    report.finalized_advanced = store.finalized_header.beacon.slot > before.0;
    report.optimistic_advanced = store.optimistic_header.beacon.slot > before.1;
    Ok(())
}

/// The store as `schedule.rs` (which updates to fetch; not counted) sees it: read-only, and changed
/// only by [`Follower::feed`], which verifies. The fields are private to this module, so the schedule
/// cannot reach them, nor move the clock's slot the verifier checks signatures against.
mod follower {
    use super::*;

    pub(super) struct Follower<'a, P: Preset> {
        store: &'a mut LightClientStore<P>,
        network: &'a Network,
        current_slot: u64,
    }

    impl<'a, P: Preset> Follower<'a, P> {
        pub(super) fn new(store: &'a mut LightClientStore<P>, network: &'a Network, current_slot: u64) -> Self {
            Follower { store, network, current_slot }
        }

        /// The store, to read.
        pub(super) fn store(&self) -> &LightClientStore<P> {
            self.store
        }

        /// Verify and apply one update. Below-supermajority updates are skipped, and so are updates
        /// the verifier finds stale; anything else the verifier refuses is an error.
        pub(super) fn feed(
            &mut self,
            update: &LightClientUpdate<P>,
            url: &str,
            report: &mut SyncReport,
        ) -> Result<(), BeaconError> {
            if !update.sync_aggregate.has_supermajority() {
                report.skipped += 1;
                return Ok(());
            }
            match self.store.process_update(self.network, update, self.current_slot) {
                Ok(outcome) => {
                    report.verified += 1;
                    if outcome.optimistic_advanced {
                        report.optimistic_signers = Some((outcome.participants, P::KIND.sync_committee_size() as u64));
                    }
                }
                Err(VerifyError::StaleUpdate { .. }) => report.skipped += 1,
                Err(source) => return Err(BeaconError::Verification { url: url.to_owned(), source }),
            }
            Ok(())
        }
    }
}
