//! `LightClientStore` and the spec's state transitions (altair `sync-protocol.md`, as modified by
//! Capella, Deneb and Electra), over the newest container shape.
//!
//! The checks run in the spec's order except that the sync-committee signature is always checked
//! last (it is the expensive one) - any cheaper refusal therefore names its own cause.

use serde::{Deserialize, Serialize};
use tree_hash::TreeHash;

mod forced;

use crate::bls::{signing_root, verify_sync_aggregate};
use crate::error::Error;
use crate::merkle::{
    is_valid_normalized_merkle_branch, state_gindex_at_slot, CURRENT_SYNC_COMMITTEE_GINDEX, EXECUTION_PAYLOAD_GINDEX,
    FINALIZED_ROOT_GINDEX, NEXT_SYNC_COMMITTEE_GINDEX,
};
use crate::network::{Fork, Network};
use crate::preset::{Preset, MIN_SYNC_COMMITTEE_PARTICIPANTS};
use crate::types::{LightClientBootstrap, LightClientHeader, LightClientUpdate, Root, SyncCommittee};

/// What processing an update did to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct UpdateOutcome {
    /// Participating sync-committee members.
    pub participants: u64,
    /// The optimistic header moved forward.
    pub optimistic_advanced: bool,
    /// The update was applied (2/3 supermajority): finalized header and/or sync committees moved.
    pub applied: bool,
}

/// The light client's trusted state. Plain data (serde) so a caller can persist it between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct LightClientStore<P: Preset> {
    /// The network this store follows; every call checks the network passed in against it.
    pub genesis_validators_root: Root,
    /// Newest finalized header.
    pub finalized_header: LightClientHeader,
    /// Sync committee of the finalized header's period.
    pub current_sync_committee: SyncCommittee<P>,
    /// Sync committee of the following period, all zero while unknown.
    pub next_sync_committee: SyncCommittee<P>,
    /// Best valid update not yet applied (input to the opt-in forced update).
    pub best_valid_update: Option<LightClientUpdate<P>>,
    /// Newest header signed by enough of the committee (> safety threshold), not necessarily final.
    pub optimistic_header: LightClientHeader,
    /// Max participants seen in the previous period.
    pub previous_max_active_participants: u64,
    /// Max participants seen in the current period.
    pub current_max_active_participants: u64,
}

fn check_preset<P: Preset>(network: &Network) -> Result<(), Error> {
    if network.preset != P::KIND {
        return Err(Error::PresetMismatch { network: network.preset, expected: P::KIND });
    }
    Ok(())
}

/// Spec `get_lc_execution_root`: the root the beacon body commits to for this header's fork.
pub fn execution_root(network: &Network, header: &LightClientHeader) -> Root {
    if network.in_force_at(Fork::Deneb, header.beacon.slot) {
        header.execution.tree_hash_root()
    } else if network.in_force_at(Fork::Capella, header.beacon.slot) {
        header.execution.to_capella().tree_hash_root()
    } else {
        Root::ZERO
    }
}

/// Spec `is_valid_light_client_header` (Deneb version): blob fields zero before Deneb, empty
/// execution before Capella, else the execution header proven against the body root.
pub fn is_valid_light_client_header(network: &Network, header: &LightClientHeader) -> bool {
    if !network.in_force_at(Fork::Deneb, header.beacon.slot)
        && (header.execution.blob_gas_used != 0 || header.execution.excess_blob_gas != 0)
    {
        return false;
    }
    if !network.in_force_at(Fork::Capella, header.beacon.slot) {
        return header.execution == Default::default() && header.execution_branch.iter().all(|b| b.is_zero());
    }
    is_valid_normalized_merkle_branch(
        execution_root(network, header),
        &header.execution_branch,
        EXECUTION_PAYLOAD_GINDEX,
        header.beacon.body_root,
    )
}

/// A header is valid ([`is_valid_light_client_header`]), and, from Capella on (where a light-client
/// header carries its execution payload header), the payload's timestamp is its slot's time, as
/// `process_execution_payload` requires on chain: freshness is judged on that timestamp, so it must be
/// the one consensus gave the slot. Not on the simulated network, whose slots count blocks, not seconds
/// (`replicatoor_testkit::beacon`: a dev chain mines blocks faster than real time), and which proves
/// nothing anyway.
fn check_header(network: &Network, header: &LightClientHeader) -> Result<(), Error> {
    if !is_valid_light_client_header(network, header) {
        return Err(Error::BadExecutionBranch { slot: header.beacon.slot });
    }
    if !network.in_force_at(Fork::Capella, header.beacon.slot) || network.is_simulated() {
        return Ok(());
    }
    let expected = network.genesis_time.saturating_add(header.beacon.slot.saturating_mul(network.seconds_per_slot));
    if header.execution.timestamp != expected {
        return Err(Error::TimestampNotSlotTime {
            slot: header.beacon.slot,
            timestamp: header.execution.timestamp,
            expected,
        });
    }
    Ok(())
}

/// Spec `is_sync_committee_update`.
pub fn is_sync_committee_update<P: Preset>(update: &LightClientUpdate<P>) -> bool {
    update.next_sync_committee_branch.iter().any(|b| !b.is_zero())
}

/// Spec `is_finality_update`.
pub fn is_finality_update<P: Preset>(update: &LightClientUpdate<P>) -> bool {
    update.finality_branch.iter().any(|b| !b.is_zero())
}

impl<P: Preset> LightClientStore<P> {
    /// Spec `initialize_light_client_store`: accept `bootstrap` only if its header is the trusted
    /// checkpoint block and its current sync committee is proven in that block's state.
    pub fn initialize(
        network: &Network,
        trusted_block_root: Root,
        bootstrap: &LightClientBootstrap<P>,
    ) -> Result<Self, Error> {
        check_preset::<P>(network)?;
        let header = &bootstrap.header;
        check_header(network, header)?;
        let actual = header.beacon.root();
        if actual != trusted_block_root {
            return Err(Error::CheckpointMismatch { expected: trusted_block_root, actual });
        }
        if !is_valid_normalized_merkle_branch(
            bootstrap.current_sync_committee.tree_hash_root(),
            &bootstrap.current_sync_committee_branch,
            state_gindex_at_slot(network, header.beacon.slot, CURRENT_SYNC_COMMITTEE_GINDEX),
            header.beacon.state_root,
        ) {
            return Err(Error::BadCurrentSyncCommitteeBranch { slot: header.beacon.slot });
        }
        Ok(LightClientStore {
            genesis_validators_root: network.genesis_validators_root,
            finalized_header: header.clone(),
            current_sync_committee: bootstrap.current_sync_committee.clone(),
            next_sync_committee: SyncCommittee::default(),
            best_valid_update: None,
            optimistic_header: header.clone(),
            previous_max_active_participants: 0,
            current_max_active_participants: 0,
        })
    }

    fn check_network(&self, network: &Network) -> Result<(), Error> {
        check_preset::<P>(network)?;
        if network.genesis_validators_root != self.genesis_validators_root {
            return Err(Error::NetworkMismatch {
                store: self.genesis_validators_root,
                network: network.genesis_validators_root,
            });
        }
        Ok(())
    }

    /// Spec `is_next_sync_committee_known`.
    pub fn is_next_sync_committee_known(&self) -> bool {
        self.next_sync_committee != SyncCommittee::default()
    }

    /// Sync-committee period of the finalized header.
    pub fn finalized_period(&self, network: &Network) -> u64 {
        network.period_at_slot(self.finalized_header.beacon.slot)
    }

    /// Spec `get_safety_threshold`.
    pub fn safety_threshold(&self) -> u64 {
        self.previous_max_active_participants.max(self.current_max_active_participants) / 2
    }

    /// Spec `validate_light_client_update`: every check, signature last. Does not change the store.
    pub fn validate_update(
        &self,
        network: &Network,
        update: &LightClientUpdate<P>,
        current_slot: u64,
    ) -> Result<(), Error> {
        self.check_network(network)?;
        let aggregate = &update.sync_aggregate;
        let participants = aggregate.participants();
        if participants < MIN_SYNC_COMMITTEE_PARTICIPANTS {
            return Err(Error::TooFewParticipants { participants, minimum: MIN_SYNC_COMMITTEE_PARTICIPANTS });
        }

        check_header(network, &update.attested_header)?;
        let attested_slot = update.attested_header.beacon.slot;
        let finalized_slot = update.finalized_header.beacon.slot;
        if !(current_slot >= update.signature_slot
            && update.signature_slot > attested_slot
            && attested_slot >= finalized_slot)
        {
            return Err(Error::SlotOrdering {
                current_slot,
                signature_slot: update.signature_slot,
                attested_slot,
                finalized_slot,
            });
        }
        let store_period = self.finalized_period(network);
        let signature_period = network.period_at_slot(update.signature_slot);
        let next_known = self.is_next_sync_committee_known();
        // The current period, or the next one once its committee is known.
        if !(signature_period == store_period || (next_known && signature_period == store_period + 1)) {
            return Err(Error::PeriodNotCurrentOrNext {
                store_period,
                update_period: signature_period,
                next_committee_known: next_known,
            });
        }

        // Relevance: newer than what is final, or it brings the still-unknown next committee.
        let attested_period = network.period_at_slot(attested_slot);
        let brings_next_committee = !next_known && is_sync_committee_update(update) && attested_period == store_period;
        if !(attested_slot > self.finalized_header.beacon.slot || brings_next_committee) {
            return Err(Error::StaleUpdate { attested_slot, finalized_slot: self.finalized_header.beacon.slot });
        }

        // The finalized header must be the finalized checkpoint of the attested state (zero root
        // stands for genesis); without finality, or at genesis, the finalized header must be empty.
        let finality = is_finality_update(update);
        if (!finality || finalized_slot == 0) && update.finalized_header != LightClientHeader::default() {
            return Err(Error::UnexpectedFinalizedHeader);
        }
        if finality {
            let finalized_root = if finalized_slot == 0 {
                Root::ZERO
            } else {
                check_header(network, &update.finalized_header)?;
                update.finalized_header.beacon.root()
            };
            if !is_valid_normalized_merkle_branch(
                finalized_root,
                &update.finality_branch,
                state_gindex_at_slot(network, attested_slot, FINALIZED_ROOT_GINDEX),
                update.attested_header.beacon.state_root,
            ) {
                return Err(Error::BadFinalityBranch { attested_slot });
            }
        }

        // The next sync committee must be the one in the attested state.
        if !is_sync_committee_update(update) {
            if update.next_sync_committee != SyncCommittee::default() {
                return Err(Error::UnexpectedNextSyncCommittee);
            }
        } else {
            if attested_period == store_period && next_known && update.next_sync_committee != self.next_sync_committee {
                return Err(Error::NextSyncCommitteeMismatch);
            }
            if !is_valid_normalized_merkle_branch(
                update.next_sync_committee.tree_hash_root(),
                &update.next_sync_committee_branch,
                state_gindex_at_slot(network, attested_slot, NEXT_SYNC_COMMITTEE_GINDEX),
                update.attested_header.beacon.state_root,
            ) {
                return Err(Error::BadNextSyncCommitteeBranch { attested_slot });
            }
        }

        let committee =
            if signature_period == store_period { &self.current_sync_committee } else { &self.next_sync_committee };
        let domain = network.sync_committee_domain_at_signature_slot(update.signature_slot);
        let message = signing_root(update.attested_header.beacon.root(), domain);
        verify_sync_aggregate(committee, aggregate, message)
    }

    /// Spec `apply_light_client_update`.
    fn apply_update(&mut self, network: &Network, update: &LightClientUpdate<P>) -> Result<(), Error> {
        let store_period = self.finalized_period(network);
        let update_finalized_period = network.period_at_slot(update.finalized_header.beacon.slot);
        if !self.is_next_sync_committee_known() {
            if update_finalized_period != store_period {
                return Err(Error::ApplyOutOfPeriod { store_period, update_period: update_finalized_period });
            }
            self.next_sync_committee = update.next_sync_committee.clone();
        } else if update_finalized_period == store_period + 1 {
            self.current_sync_committee =
                core::mem::replace(&mut self.next_sync_committee, update.next_sync_committee.clone());
            self.previous_max_active_participants = self.current_max_active_participants;
            self.current_max_active_participants = 0;
        }
        if update.finalized_header.beacon.slot > self.finalized_header.beacon.slot {
            self.finalized_header = update.finalized_header.clone();
            if self.finalized_header.beacon.slot > self.optimistic_header.beacon.slot {
                self.optimistic_header = self.finalized_header.clone();
            }
        }
        Ok(())
    }

    /// Spec `process_light_client_update`: validate, then track the best update, advance the
    /// optimistic header above the safety threshold, and apply finality/committee changes only with
    /// a 2/3 supermajority. A finality or optimistic update is processed as the update it converts
    /// into (`From`, in `codec/shapes.rs`, as spec `process_light_client_{finality,optimistic}_update`
    /// do).
    pub fn process_update(
        &mut self,
        network: &Network,
        update: &LightClientUpdate<P>,
        current_slot: u64,
    ) -> Result<UpdateOutcome, Error> {
        self.validate_update(network, update, current_slot)?;
        let participants = update.sync_aggregate.participants();
        let mut outcome = UpdateOutcome { participants, ..UpdateOutcome::default() };

        // Kept for the forced update only (store/forced.rs), which no node build has: nothing that
        // decides on a header reads `best_valid_update`.
        self.keep_if_better(network, update);
        self.current_max_active_participants = self.current_max_active_participants.max(participants);

        if participants > self.safety_threshold()
            && update.attested_header.beacon.slot > self.optimistic_header.beacon.slot
        {
            self.optimistic_header = update.attested_header.clone();
            outcome.optimistic_advanced = true;
        }

        let has_finalized_next_committee = !self.is_next_sync_committee_known()
            && is_sync_committee_update(update)
            && is_finality_update(update)
            && network.period_at_slot(update.finalized_header.beacon.slot)
                == network.period_at_slot(update.attested_header.beacon.slot);
        if update.sync_aggregate.has_supermajority()
            && (update.finalized_header.beacon.slot > self.finalized_header.beacon.slot || has_finalized_next_committee)
        {
            self.apply_update(network, update)?;
            self.best_valid_update = None;
            outcome.applied = true;
        }
        Ok(outcome)
    }
}
