//! The spec's forced update (`process_light_client_store_force_update`) and the choice of the update
//! it would adopt (`is_better_update`, by which `process_update` keeps `best_valid_update`, through
//! `keep_if_better`).
//!
//! Off the trust path: `force_update` is compiled only with the `force-update` feature, which only
//! this crate's tests turn on (the consensus-spec vectors have `force_update` steps). Adopting an
//! update without a finalized supermajority is weaker than finality, so no build that decides on a
//! header has it (a caller would have to turn the feature on in its `Cargo.toml`), and without it
//! nothing reads `best_valid_update`: a wrong choice here changes no header the node trusts.

use super::{is_finality_update, is_sync_committee_update};
use crate::network::Network;
use crate::preset::{Preset, PresetKind};
use crate::types::LightClientUpdate;

/// Spec `is_better_update`: which of two valid updates to keep for a forced update.
fn is_better_update<P: Preset>(network: &Network, new: &LightClientUpdate<P>, old: &LightClientUpdate<P>) -> bool {
    let period = |slot| network.period_at_slot(slot);
    let (new_n, old_n) = (new.sync_aggregate.participants(), old.sync_aggregate.participants());
    let (new_super, old_super) = (new.sync_aggregate.has_supermajority(), old.sync_aggregate.has_supermajority());
    if new_super != old_super {
        return new_super;
    }
    if !new_super && new_n != old_n {
        return new_n > old_n;
    }
    let relevant = |u: &LightClientUpdate<P>| {
        is_sync_committee_update(u) && period(u.attested_header.beacon.slot) == period(u.signature_slot)
    };
    if relevant(new) != relevant(old) {
        return relevant(new);
    }
    let (new_fin, old_fin) = (is_finality_update(new), is_finality_update(old));
    if new_fin != old_fin {
        return new_fin;
    }
    if new_fin {
        let committee_finality =
            |u: &LightClientUpdate<P>| period(u.finalized_header.beacon.slot) == period(u.attested_header.beacon.slot);
        if committee_finality(new) != committee_finality(old) {
            return committee_finality(new);
        }
    }
    if new_n != old_n {
        return new_n > old_n;
    }
    if new.attested_header.beacon.slot != old.attested_header.beacon.slot {
        return new.attested_header.beacon.slot < old.attested_header.beacon.slot;
    }
    new.signature_slot < old.signature_slot
}

impl PresetKind {
    /// Slots per sync-committee period, the spec's `UPDATE_TIMEOUT` of the forced update (and the
    /// simulated beacon's period length); nothing the node decides on reads it.
    pub const fn slots_per_sync_committee_period(self) -> u64 {
        self.slots_per_epoch() * self.epochs_per_sync_committee_period()
    }
}

impl<P: Preset> super::LightClientStore<P> {
    /// The first step of spec `process_light_client_update`, after validation: keep `update` as
    /// `best_valid_update` if there is none yet or it is better.
    pub(super) fn keep_if_better(&mut self, network: &Network, update: &LightClientUpdate<P>) {
        if self.best_valid_update.as_ref().is_none_or(|best| is_better_update(network, update, best)) {
            self.best_valid_update = Some(update.clone());
        }
    }
}

#[cfg(feature = "force-update")]
impl<P: Preset> super::LightClientStore<P> {
    /// Spec `process_light_client_store_force_update`, **opt-in and weaker than finality**: once a
    /// whole period (`UPDATE_TIMEOUT`) has passed since the finalized slot without a supermajority
    /// finalized update, adopt the best valid update, treating its attested header as finalized if
    /// it carries no newer finality. Returns whether the store changed.
    pub fn force_update(&mut self, network: &Network, current_slot: u64) -> Result<bool, crate::error::Error> {
        self.check_network(network)?;
        let timeout = network.preset.slots_per_sync_committee_period();
        if current_slot <= self.finalized_header.beacon.slot.saturating_add(timeout) {
            return Ok(false);
        }
        let Some(mut best) = self.best_valid_update.take() else {
            return Ok(false);
        };
        if best.finalized_header.beacon.slot <= self.finalized_header.beacon.slot {
            best.finalized_header = best.attested_header.clone();
        }
        if let Err(e) = self.apply_update(network, &best) {
            // apply_update refuses before changing anything; keep the candidate as the spec would.
            self.best_valid_update = Some(best);
            return Err(e);
        }
        Ok(true)
    }
}
