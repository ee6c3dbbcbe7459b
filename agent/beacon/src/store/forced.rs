//! Spec `process_light_client_store_force_update`, compiled only with the `force-update` feature,
//! which only this crate's tests turn on (the consensus-spec vectors have `force_update` steps).
//! Adopting an update without a finalized supermajority is weaker than finality, so no build that
//! decides on a header has it: a caller would have to turn the feature on in its `Cargo.toml`.

use super::LightClientStore;
use crate::error::Error;
use crate::network::Network;
use crate::preset::Preset;

impl<P: Preset> LightClientStore<P> {
    /// Spec `process_light_client_store_force_update`, **opt-in and weaker than finality**: once a
    /// whole period (`UPDATE_TIMEOUT`) has passed since the finalized slot without a supermajority
    /// finalized update, adopt the best valid update, treating its attested header as finalized if
    /// it carries no newer finality. Returns whether the store changed.
    pub fn force_update(&mut self, network: &Network, current_slot: u64) -> Result<bool, Error> {
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
