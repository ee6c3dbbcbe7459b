//! SIMULATED attestation for laptops, CI and demos: a well-known simulated Intel PKI whose quotes go
//! through the very same dcap-qvl verification as genuine ones, under a different root.
//!
//! Anyone can make these quotes (the seed is public): they prove nothing. A holder accepts them
//! only when started with `--allow-simulated-quotes` AND the contract's policy allows simulated quotes.

use crate::sim_pki::{SimQuoteParams, SimTcb, SimulatedPki};
use dcap_qvl::QuoteCollateralV3;
use replicatoor_core::attest::{
    collateral::CollateralError,
    eventlog::{self, DigestFormat, Event, EventLog},
    verifier,
};
use sha2::{Digest, Sha256, Sha384};
use std::sync::{Arc, Mutex, OnceLock};

/// The public seed of the simulated PKI (everyone derives the same root).
const SEED_LABEL: &[u8] = b"replicatoor/simulated-intel-pki/v1";
const DAY: u64 = 86_400;

static PKI: OnceLock<Result<SimulatedPki, String>> = OnceLock::new();
static COLLATERAL: Mutex<Option<(u64, QuoteCollateralV3)>> = Mutex::new(None);

/// The simulated PKI (built once per process).
pub fn pki() -> Result<&'static SimulatedPki, String> {
    PKI.get_or_init(|| {
        let seed: [u8; 32] = Sha256::digest(SEED_LABEL).into();
        SimulatedPki::from_seed(seed).map_err(|e| format!("simulated PKI: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The simulated PKI as a verifier trust anchor:
/// `Verifier::new(..).dangerously_trust_simulated_quotes(simulated::anchor())`.
pub fn anchor() -> Arc<dyn verifier::SimulatedPki> {
    Arc::new(Anchor)
}

struct Anchor;

impl verifier::SimulatedPki for Anchor {
    fn root_ca_der(&self) -> Vec<u8> {
        pki().map(|p| p.root_ca_der()).unwrap_or_default()
    }
    fn collateral(&self, now: u64) -> Result<QuoteCollateralV3, CollateralError> {
        collateral(pki().map_err(CollateralError::Simulated)?, now).map_err(CollateralError::Simulated)
    }
}

/// Simulated collateral valid around `now` (one day back, thirty days ahead), cached per day.
pub fn collateral(pki: &SimulatedPki, now: u64) -> Result<QuoteCollateralV3, String> {
    let day = now / DAY;
    let mut cache = COLLATERAL.lock().map_err(|_| "simulated collateral cache poisoned".to_string())?;
    if let Some((d, c)) = cache.as_ref() {
        if *d == day {
            return Ok(c.clone());
        }
    }
    let c = pki
        .collateral((day.saturating_sub(1)) * DAY, (day + 30) * DAY)
        .map_err(|e| format!("simulated collateral: {e}"))?;
    *cache = Some((day, c.clone()));
    Ok(c)
}

/// A simulated TD: what its quote and event log will measure.
#[derive(Debug, Clone)]
pub struct SimulatedTd {
    pub mr_td: [u8; 48],
    pub rtmr0: [u8; 48],
    pub rtmr1: [u8; 48],
    pub rtmr2: [u8; 48],
    pub compose_hash: [u8; 32],
    pub app_id: [u8; 20],
    /// What the log's `os-image-hash` event names (Dstack's name of the OS image).
    pub os_image_hash: [u8; 32],
    pub tcb: SimTcb,
    pub debug: bool,
}

impl SimulatedTd {
    /// The simulated OS image every simulated node shares, running the app with this compose hash.
    pub fn new(compose_hash: [u8; 32]) -> Self {
        SimulatedTd {
            mr_td: label48(b"mrtd"),
            rtmr0: label48(b"rtmr0"),
            rtmr1: label48(b"rtmr1"),
            rtmr2: label48(b"rtmr2"),
            compose_hash,
            app_id: label20(b"app-id"),
            os_image_hash: Sha256::new().chain_update(b"replicatoor/simulated-os/v1/os-image").finalize().into(),
            tcb: SimTcb::UpToDate,
            debug: false,
        }
    }

    /// A Dstack-shaped runtime event log for this TD with a fresh instance id (the events a current
    /// Dstack OS logs, in its order).
    pub fn event_log(&self) -> EventLog {
        let mut instance = [0u8; 20];
        // Only uniqueness matters for a simulated instance id; fall back to a fixed value.
        let _ = getrandom::fill(&mut instance);
        let ev = |name: &str, payload: Vec<u8>| Event::runtime(name, payload, DigestFormat::V1);
        EventLog::from_events(vec![
            ev("system-preparing", vec![]),
            ev(eventlog::EVENT_APP_ID, self.app_id.to_vec()),
            ev(eventlog::EVENT_COMPOSE_HASH, self.compose_hash.to_vec()),
            ev(eventlog::EVENT_INSTANCE_ID, instance.to_vec()),
            ev(eventlog::EVENT_BOOT_MR_DONE, vec![]),
            ev(eventlog::EVENT_OS_IMAGE_HASH, self.os_image_hash.to_vec()),
            ev(eventlog::EVENT_KEY_PROVIDER, br#"{"name":"replicatoor-simulated"}"#.to_vec()),
            ev(eventlog::EVENT_SYSTEM_READY, vec![]),
        ])
    }

    /// A quote over `report_data` plus the compact event log that replays to its RTMR3.
    pub fn attest(&self, report_data: [u8; 64]) -> Result<(Vec<u8>, Vec<u8>), String> {
        let log = self.event_log();
        let rtmr3 = log.replay_rtmr3();
        let mut p = SimQuoteParams::new(report_data);
        p.mr_td = self.mr_td;
        p.rtmr = [self.rtmr0, self.rtmr1, self.rtmr2, rtmr3];
        p.mr_config_id = [0u8; 48];
        p.mr_config_id[0] = 0x01;
        p.mr_config_id[1..33].copy_from_slice(&self.compose_hash);
        p.tcb = self.tcb;
        if self.debug {
            p.set_debug();
        }
        let quote = pki()?.quote(&p).map_err(|e| e.to_string())?;
        let compact = replicatoor_encode::eventlog::to_compact(&log).map_err(|e| e.to_string())?;
        Ok((quote, compact))
    }
}

fn label48(what: &[u8]) -> [u8; 48] {
    Sha384::new().chain_update(b"replicatoor/simulated-os/v1/").chain_update(what).finalize().into()
}

fn label20(what: &[u8]) -> [u8; 20] {
    let h = Sha256::new().chain_update(b"replicatoor/simulated-app/v1/").chain_update(what).finalize();
    let mut out = [0u8; 20];
    out.copy_from_slice(&h[..20]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use replicatoor_core::attest::{collateral::NoCollateral, verifier::Verifier, QuoteError};

    const NOW: u64 = 1_780_000_000;

    #[test]
    fn core_recognises_this_root() {
        // The trust kernel recognises simulated quotes by this constant; it must be this PKI's root.
        // Regenerate with `REPLICATOOR_WRITE_SIM_ROOT=1 cargo test -p replicatoor-testkit core_recognises`.
        let root = pki().unwrap().root_ca_der();
        if std::env::var_os("REPLICATOOR_WRITE_SIM_ROOT").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/src/attest/simulated_root_ca.der");
            std::fs::write(path, &root).unwrap();
        }
        assert_eq!(root, verifier::SIMULATED_ROOT_CA_DER);
    }

    #[test]
    fn simulated_quotes_verify_only_when_trusted() {
        let td = SimulatedTd::new([9; 32]);
        let (quote, log) = td.attest([7; 64]).unwrap();
        let strict = Verifier::new(Box::new(NoCollateral));
        let err = strict.verify(&quote, NOW, 0).unwrap_err();
        assert_eq!(err, QuoteError::SimulatedNotTrusted);
        let dev = Verifier::new(Box::new(NoCollateral)).dangerously_trust_simulated_quotes(anchor());
        let v = dev.verify(&quote, NOW, 0).unwrap();
        assert!(v.is_simulated());
        assert_eq!(v.measurements().report_data, [7; 64]);
        assert_eq!(v.measurements().config_id_compose_hash(), Some([9; 32]));
        let log = EventLog::from_compact(&log).unwrap();
        log.replay_rtmr3_and_check(&v.measurements().rtmr[3]).unwrap();
        assert_eq!(log.app_info().unwrap().compose_hash, [9; 32]);
    }
}
