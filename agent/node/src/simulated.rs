//! The node's one door to SIMULATED attestation (the testkit's public Intel PKI and TDs), compiled
//! in only with the `simulated` cargo feature. Without it every simulated switch fails with
//! [`NotBuilt`], so a release binary can neither make nor trust a simulated quote, whatever its
//! flags, environment or configuration file say.

use crate::provider::QuoteProvider;
use replicatoor_core::attest::Verifier;

/// A simulated switch was used in a build without the `simulated` feature.
#[derive(Debug, thiserror::Error)]
#[error(
    "this replicatoor was built without the `simulated` feature: it neither makes nor trusts simulated quotes \
     (for development: cargo build --features simulated)"
)]
pub struct NotBuilt;

/// Whether this build has the simulated mode at all.
pub const BUILT: bool = cfg!(feature = "simulated");

/// `v`, also trusting quotes from the simulated PKI (the contract's policy must allow them too).
pub fn trust(v: Verifier) -> Result<Verifier, NotBuilt> {
    #[cfg(feature = "simulated")]
    return Ok(v.dangerously_trust_simulated_quotes(replicatoor_testkit::simulated::anchor()));
    #[cfg(not(feature = "simulated"))]
    {
        let _ = v;
        Err(NotBuilt)
    }
}

/// The simulated OS measurements every simulated node shares: `[MRTD, RTMR0, RTMR1, RTMR2]`.
pub fn os_measurements() -> Result<[[u8; 48]; 4], NotBuilt> {
    #[cfg(feature = "simulated")]
    {
        let td = replicatoor_testkit::simulated::SimulatedTd::new([0; 32]);
        Ok([td.mr_td, td.rtmr0, td.rtmr1, td.rtmr2])
    }
    #[cfg(not(feature = "simulated"))]
    Err(NotBuilt)
}

/// A quote provider that attests as a simulated TD running the app with `compose_hash`.
pub fn quote_provider(compose_hash: [u8; 32]) -> Result<QuoteProvider, NotBuilt> {
    #[cfg(feature = "simulated")]
    return Ok(QuoteProvider::Simulated(Box::new(replicatoor_testkit::simulated::SimulatedTd::new(compose_hash))));
    #[cfg(not(feature = "simulated"))]
    {
        let _ = compose_hash;
        Err(NotBuilt)
    }
}

/// The deployment pin (TOML) for `contract` on a dev chain served by a simulated beacon with this
/// network and checkpoint: what a compose would carry literally.
#[cfg(feature = "simulated")]
pub fn beacon_pin(
    beacon: &replicatoor_testkit::beacon::SimBeacon,
    chain_id: u64,
    contract: alloy::primitives::Address,
    start_block: u64,
) -> String {
    use replicatoor_chain::deployment::{PinnedDeployment, TrustRoot};
    let n = beacon.network();
    PinnedDeployment {
        chain_id,
        contract,
        start_block,
        trust: TrustRoot::SimulatedBeacon {
            genesis_validators_root: n.genesis_validators_root,
            genesis_time: n.genesis_time,
            seconds_per_slot: n.seconds_per_slot,
            checkpoint: beacon.checkpoint().block_root,
            max_age_secs: 60,
            reveal_within_secs: replicatoor_chain::deployment::DEFAULT_REVEAL_WITHIN_SECS,
        },
    }
    .to_toml()
}
