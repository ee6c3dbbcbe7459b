//! The deployment identity a node pins: which chain, which contract, from which block, and the
//! chain's trust root (how the TD authenticates chain state without trusting an RPC). It must come
//! from measured configuration only: written literally in the app's compose (measured into the
//! compose hash the contract approves) or baked into the image. RPC and beacon URLs stay outside it:
//! they are untrusted transport. Format: TOML (docs/deploy.md, "Pinning the deployment").
//!
//! ```toml
//! chain_id = 1
//! contract = "0x…"
//! start_block = 21000000
//! [trust]
//! mode = "beacon"            # or "quorum", or "simulated-beacon" (dev chains only)
//! network = "mainnet"        # a built-in beacon network, or a [trust.custom_network] table
//! checkpoint = "0x…"         # a beacon block root (a recent finalized one) to bootstrap from
//! max_age_secs = 300         # the newest verified header may be at most this old by the TD's clock
//! ```
//!
//! Every trust parameter has a bound, checked when the description is read (and, for the node's
//! confirmation depth, by its settings): [`MAX_AGE_SECS`], [`QUORUM_RPCS`], [`MAX_CONFIRMATIONS`].
//! [`PinnedDeployment::trust_parameters`] lists them with their values for `measure` (`deployment/report.rs`:
//! how a deployment is shown to people, its TOML, mode name and parameters; nothing there is checked).

use crate::endpoint::Transport;
use alloy::primitives::{Address, B256};
use replicatoor_beacon::{Network, PresetKind};
use replicatoor_core::protocol::Deployment;
use serde::{Deserialize, Serialize};
use std::ops::RangeInclusive;

mod report;
pub use report::TrustParameter;

/// Bound of `max_age_secs`, the largest age (by the TD's clock) of the header a decision is based
/// on. It is the window in which the machine's operator, by withholding newer headers, can make a
/// holder decide on state from before a revocation or a narrowing, so it must stay short: a light
/// client's optimistic head is seconds old and an RPC quorum's head a block or two, so 15 minutes
/// (about two mainnet epochs) is ample slack for a lagging beacon or RPC, and anything longer only
/// widens the operator's window. Zero would refuse every header. (Issue #25 tightens freshness
/// further.)
pub const MAX_AGE_SECS: RangeInclusive<u64> = 1..=900;
/// Bound of `trust.reveal_within_secs`: from a holder's commitment to the trusted header showing it
/// (PROTOCOL.md §5.3). Above two minutes (ten mainnet slots), a header withheld that long may predate a
/// revocation by as much; below two seconds, not even a one-second dev chain includes the commitment.
pub const REVEAL_WITHIN_SECS: RangeInclusive<u64> = 2..=120;
/// Default `trust.reveal_within_secs`: five mainnet slots, time to include the commitment (a slot or
/// two) and for the light client's optimistic header to show it (about one more).
pub const DEFAULT_REVEAL_WITHIN_SECS: u64 = 60;

/// Bound of the number of pinned RPCs in quorum mode (and `quorum` must be a strict majority of
/// them): one RPC is no cross-check at all, and past 16 independent operators a larger list adds
/// no independence worth its cost (the node asks every member for every decision header) while
/// making the pin harder for an owner to review.
pub const QUORUM_RPCS: RangeInclusive<usize> = 2..=16;

/// Largest confirmation depth a node accepts (`confirmations`, a measured setting of `run`): 64
/// blocks is two mainnet epochs, by when a block is finalized, and the log follower rewinds at
/// most 64 blocks on a reorg (`FollowerConfig::reorg_rewind`), so a deeper wait protects against
/// nothing more; it only delays every answer, and a huge value would stall the holder for good.
/// 0 is accepted (dev chains; `config check` warns).
pub const MAX_CONFIRMATIONS: u64 = 64;

/// Check a confirmation depth against [`MAX_CONFIRMATIONS`].
pub fn check_confirmations(confirmations: u64) -> Result<(), DeploymentError> {
    if confirmations > MAX_CONFIRMATIONS {
        return Err(DeploymentError::Invalid(format!(
            "confirmations {confirmations} is more than {MAX_CONFIRMATIONS}: a deeper wait than two epochs \
             (finality) and the follower's reorg rewind adds no safety, only delay"
        )));
    }
    Ok(())
}

/// How chain state is authenticated inside the TD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TrustRoot {
    /// An Ethereum beacon light client bootstrapped from a pinned checkpoint: every decision header
    /// is signed by a supermajority of the sync committee.
    Beacon {
        /// A built-in network name (`mainnet`, `sepolia`, `holesky`, `hoodi`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network: Option<String>,
        /// An explicit network (chains without a built-in entry); exclusive with `network`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        custom_network: Option<Network>,
        /// Beacon block root to bootstrap from.
        checkpoint: B256,
        /// Largest age (seconds, by the TD's clock) of the header a decision is based on.
        #[serde(default = "default_max_age")]
        max_age_secs: u64,
        /// Largest wait (seconds, by the TD's monotonic clock) from a holder's commitment to the
        /// trusted header that shows it, for its sealed deliveries to leave (PROTOCOL.md §5.3).
        #[serde(default = "default_reveal_within")]
        reveal_within_secs: u64,
    },
    /// Chains without a beacon light client (L2s today): `quorum` of the pinned `rpcs` must agree
    /// on the decision header; proofs are still checked against it. Weaker: the named hosts, not
    /// consensus, are trusted; status, metrics and the audit say so.
    Quorum {
        /// https URLs of independent RPC providers (measured: changing them changes the compose hash);
        /// `http://` only to a node on this machine (loopback).
        rpcs: Vec<String>,
        /// How many must agree on the header (a strict majority at least).
        quorum: usize,
        /// Largest age of the decision header (seconds, by the TD's clock).
        #[serde(default = "default_max_age")]
        max_age_secs: u64,
        /// Largest wait (seconds, by the TD's monotonic clock) from a holder's commitment to the
        /// trusted header that shows it, for its sealed deliveries to leave (PROTOCOL.md §5.3).
        #[serde(default = "default_reveal_within")]
        reveal_within_secs: u64,
    },
    /// SIMULATED beacon for dev chains (anvil): the same light-client code, under a sync committee
    /// that a test harness or a developer runs. Proves nothing about a real chain; accepted only
    /// when the deployment says so explicitly, and reported by `status` and `audit`.
    SimulatedBeacon {
        /// Genesis validators root of the simulated network (distinct from every real network's).
        genesis_validators_root: B256,
        /// Its genesis time and slot length.
        genesis_time: u64,
        /// Seconds per slot.
        seconds_per_slot: u64,
        /// Beacon block root to bootstrap from.
        checkpoint: B256,
        /// Largest age of the decision header (seconds, by the TD's clock).
        #[serde(default = "default_max_age")]
        max_age_secs: u64,
        /// Largest wait (seconds, by the TD's monotonic clock) from a holder's commitment to the
        /// trusted header that shows it, for its sealed deliveries to leave (PROTOCOL.md §5.3).
        #[serde(default = "default_reveal_within")]
        reveal_within_secs: u64,
    },
}

fn default_max_age() -> u64 {
    300
}

fn default_reveal_within() -> u64 {
    DEFAULT_REVEAL_WITHIN_SECS
}

/// A pinned deployment: where the contract lives and how its state is authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedDeployment {
    /// Chain id; the agent refuses to start when its RPC reports another.
    pub chain_id: u64,
    /// The UpgradeOperator's address.
    pub contract: Address,
    /// The contract's deployment block (where log scans start).
    pub start_block: u64,
    /// The chain's trust root.
    pub trust: TrustRoot,
}

/// Why a deployment description is not usable.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// Not valid TOML for this schema.
    #[error("deployment description: {0}")]
    Parse(String),
    /// Valid TOML, but not a usable identity.
    #[error("deployment description: {0}")]
    Invalid(String),
}

impl PinnedDeployment {
    /// Parse and check a TOML description.
    pub fn from_toml(text: &str) -> Result<Self, DeploymentError> {
        let d: PinnedDeployment = toml::from_str(text).map_err(|e| DeploymentError::Parse(e.to_string()))?;
        d.check()?;
        Ok(d)
    }

    /// The pair every protocol binding includes.
    pub fn deployment(&self) -> Deployment {
        Deployment { chain_id: self.chain_id, contract: self.contract }
    }

    /// The beacon network this deployment trusts (beacon and simulated-beacon modes).
    pub fn beacon_network(&self) -> Result<Option<Network>, DeploymentError> {
        let bad = |e: replicatoor_beacon::Error| DeploymentError::Invalid(e.to_string());
        match &self.trust {
            TrustRoot::Beacon { network: Some(name), custom_network: None, .. } => {
                Network::by_name(name).map(Some).map_err(bad)
            }
            TrustRoot::Beacon { network: None, custom_network: Some(n), .. } => {
                n.validate().map_err(bad)?;
                Ok(Some(n.clone()))
            }
            TrustRoot::Beacon { .. } => {
                Err(DeploymentError::Invalid("trust: give exactly one of `network` and `custom_network`".into()))
            }
            TrustRoot::SimulatedBeacon { genesis_validators_root, genesis_time, seconds_per_slot, .. } => Ok(Some(
                Network::simulated(*genesis_validators_root, *genesis_time, *seconds_per_slot, PresetKind::Minimal),
            )),
            TrustRoot::Quorum { .. } => Ok(None),
        }
    }

    /// Whether this trust root is a simulated one (dev chains only): `simulated-beacon`, or a
    /// custom beacon network with the simulated network's identity (its signing domains: see
    /// `Network::is_simulated`), i.e. the simulated network relabelled. Its sync-committee keys are
    /// public, so it proves nothing; only a `simulated` build accepts it ([`Self::check_build`]).
    pub fn is_simulated(&self) -> bool {
        match &self.trust {
            TrustRoot::SimulatedBeacon { .. } => true,
            TrustRoot::Beacon { custom_network: Some(n), .. } => n.is_simulated(),
            TrustRoot::Beacon { .. } | TrustRoot::Quorum { .. } => false,
        }
    }

    /// Refuse what this build must not trust: a simulated trust root ([`Self::is_simulated`]) in a
    /// build without the `simulated` feature (`simulated_build` false). The chain crate has no such
    /// feature; the node passes whether it was built with it.
    pub fn check_build(&self, simulated_build: bool) -> Result<(), DeploymentError> {
        if self.is_simulated() && !simulated_build {
            let what = match &self.trust {
                TrustRoot::SimulatedBeacon { .. } => "a simulated-beacon trust root",
                _ => {
                    "a custom beacon network with the simulated network's identity (its fork versions or \
                      genesis validators root)"
                }
            };
            return Err(DeploymentError::Invalid(format!(
                "trust: {what} proves nothing (its sync-committee keys are public), and this replicatoor was \
                 built without the `simulated` feature, which alone may trust one"
            )));
        }
        Ok(())
    }

    /// The largest age of a decision header, in seconds.
    pub fn max_age_secs(&self) -> u64 {
        match &self.trust {
            TrustRoot::Beacon { max_age_secs, .. }
            | TrustRoot::Quorum { max_age_secs, .. }
            | TrustRoot::SimulatedBeacon { max_age_secs, .. } => *max_age_secs,
        }
    }

    /// The largest wait from a holder's commitment to the header that shows it, in seconds.
    pub fn reveal_within_secs(&self) -> u64 {
        match &self.trust {
            TrustRoot::Beacon { reveal_within_secs, .. }
            | TrustRoot::Quorum { reveal_within_secs, .. }
            | TrustRoot::SimulatedBeacon { reveal_within_secs, .. } => *reveal_within_secs,
        }
    }

    fn check(&self) -> Result<(), DeploymentError> {
        let invalid = |m: String| Err(DeploymentError::Invalid(m));
        if self.contract == Address::ZERO {
            return invalid("contract is the zero address".into());
        }
        // A bound's `Debug` is how the messages write it: `1..=900`.
        let (max_age, reveal) = (self.max_age_secs(), self.reveal_within_secs());
        if !MAX_AGE_SECS.contains(&max_age) {
            return invalid(format!(
                "trust.max_age_secs {max_age} is outside {MAX_AGE_SECS:?}: a decision header older than that lets \
                 whoever withholds newer ones decide what state the node acts on"
            ));
        }
        if !REVEAL_WITHIN_SECS.contains(&reveal) {
            return invalid(format!(
                "trust.reveal_within_secs {reveal} is outside {REVEAL_WITHIN_SECS:?}: a longer wait lets whoever \
                 withholds the header that shows a holder's commitment release its deliveries on state that old"
            ));
        }
        match &self.trust {
            TrustRoot::Quorum { rpcs, quorum, .. } => {
                if !QUORUM_RPCS.contains(&rpcs.len()) || *quorum <= rpcs.len() / 2 || *quorum > rpcs.len() {
                    let n = rpcs.len();
                    return invalid(format!(
                        "trust: quorum {quorum} of {n} RPCs must be a strict majority of {QUORUM_RPCS:?} RPCs"
                    ));
                }
                if let Some(u) = rpcs
                    .iter()
                    .find(|u| !matches!(crate::endpoint::transport(u), Ok(Transport::Https | Transport::LoopbackHttp)))
                {
                    return invalid(format!("trust: quorum RPC {u:?} must be https (or a node on this machine)"));
                }
            }
            TrustRoot::Beacon { checkpoint, .. } | TrustRoot::SimulatedBeacon { checkpoint, .. } => {
                if *checkpoint == B256::ZERO {
                    return invalid("trust.checkpoint is zero".into());
                }
                if let TrustRoot::SimulatedBeacon { seconds_per_slot: 0, .. } = &self.trust {
                    return invalid("trust.seconds_per_slot must be at least 1".into());
                }
                self.beacon_network()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAINNET: &str = r#"
chain_id = 1
contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
start_block = 21000000
[trust]
mode = "beacon"
network = "mainnet"
checkpoint = "0x5afc212a7924789b2bc86acad3ab3a6ffb1f6e97253ea50bee7f4f51422c9275"
"#;

    #[test]
    fn parses_a_mainnet_deployment_and_round_trips() {
        let d = PinnedDeployment::from_toml(MAINNET).unwrap();
        assert_eq!(d.chain_id, 1);
        assert_eq!(d.max_age_secs(), 300);
        assert!(!d.is_simulated());
        assert_eq!(d.beacon_network().unwrap().unwrap().name, "mainnet");
        assert_eq!(PinnedDeployment::from_toml(&d.to_toml()).unwrap(), d);
    }

    /// `http://` only to this machine's loopback: a node inside the same TD (measured with it), or a dev chain.
    fn is_loopback_http(url: &str) -> bool {
        crate::endpoint::transport(url) == Ok(Transport::LoopbackHttp)
    }

    #[test]
    fn quorum_members_are_https_or_loopback() {
        assert!(is_loopback_http("http://127.0.0.1:8545"));
        assert!(is_loopback_http("http://localhost/rpc"));
        for u in ["http://127.0.0.1@evil.example", "http://127.evil.example", "http://10.0.0.1", "https://127.0.0.1"] {
            assert!(!is_loopback_http(u), "{u}");
        }
    }

    /// Quorum pins with a plain-http member that only looks local; and loopback forms that are.
    #[test]
    fn quorum_pins_compare_the_parsed_host_exactly() {
        let pin = |member: &str| {
            format!(
                "chain_id = 10\ncontract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\nstart_block = 1\n[trust]\n\
                 mode = \"quorum\"\nrpcs = [\"https://a.example\", \"{member}\", \"https://c.example\"]\nquorum = 2\n"
            )
        };
        for u in [
            "http://127.0.0.1@evil",
            "http://127.0.0.1:8545@evil.example",
            "http://localhost:8545@evil.example",
            "http://localhost.evil.example",
            "http://localhost./",
            "http://[::ffff:7f00:1]",
            "http://[2001:db8::1]",
            "ftp://127.0.0.1",
            "not a url",
        ] {
            assert!(PinnedDeployment::from_toml(&pin(u)).is_err(), "{u} must be refused");
        }
        for u in ["http://[::1]:8545", "HTTP://LOCALHOST:8545", "http://127.0.0.1.:8545", "HTTPS://rpc.example.com"] {
            PinnedDeployment::from_toml(&pin(u)).unwrap_or_else(|e| panic!("{u}: {e}"));
        }
    }

    fn mainnet() -> PinnedDeployment {
        PinnedDeployment::from_toml(MAINNET).unwrap()
    }

    /// `d` with its beacon root on `network` spelled out as a `[trust.custom_network]` table.
    fn on_custom(network: Network) -> PinnedDeployment {
        let mut d = mainnet();
        if let TrustRoot::Beacon { network: n, custom_network, .. } = &mut d.trust {
            *n = None;
            *custom_network = Some(network);
        }
        d
    }

    /// Through its TOML text, as a node reads it (so `check` runs).
    fn reread(d: &PinnedDeployment) -> Result<PinnedDeployment, DeploymentError> {
        PinnedDeployment::from_toml(&d.to_toml())
    }

    /// The attack: the testkit's simulated network (public committee) renamed and pinned as a
    /// custom network under `mode = "beacon"`. It reads as a pin, is named what it is
    /// (`beacon-custom`), counts as simulated, and a build without `simulated` refuses it.
    #[test]
    fn a_relabelled_simulated_network_is_refused_by_a_non_simulated_build() {
        let non_simulated_build = false;
        let mut sim = Network::simulated(Network::simulated_genesis_validators_root(), 0, 1, PresetKind::Minimal);
        sim.name = "mainnet-ish".into();
        let d = reread(&on_custom(sim.clone())).unwrap();
        assert_eq!(d.trust.mode_name(), "beacon-custom");
        assert!(d.is_simulated());
        let e = d.check_build(non_simulated_build).unwrap_err().to_string();
        assert!(e.contains("simulated network's identity") && e.contains("without the `simulated` feature"), "{e}");
        d.check_build(true).unwrap();
        // Simulated fork versions under a GVR of one's own: still the simulated network (its mode takes any GVR).
        let mut own_gvr = sim;
        own_gvr.genesis_validators_root = B256::repeat_byte(0x42);
        assert!(reread(&on_custom(own_gvr)).unwrap().check_build(non_simulated_build).is_err());
        // The simulated mode itself, as before.
        let simulated_mode = PinnedDeployment {
            trust: TrustRoot::SimulatedBeacon {
                genesis_validators_root: Network::simulated_genesis_validators_root(),
                genesis_time: 0,
                seconds_per_slot: 1,
                checkpoint: B256::repeat_byte(1),
                max_age_secs: 60,
                reveal_within_secs: DEFAULT_REVEAL_WITHIN_SECS,
            },
            ..mainnet()
        };
        assert_eq!(simulated_mode.trust.mode_name(), "simulated-beacon");
        assert!(simulated_mode.check_build(non_simulated_build).is_err());
        simulated_mode.check_build(true).unwrap();
    }

    /// A custom network that is not the simulated one: its own mode name, accepted by every build.
    #[test]
    fn a_custom_network_is_beacon_custom() {
        let mut n = Network::mainnet();
        n.name = "my-devnet".into();
        n.genesis_validators_root = B256::repeat_byte(9);
        let d = reread(&on_custom(n)).unwrap();
        assert_eq!(d.trust.mode_name(), "beacon-custom");
        assert!(!d.is_simulated());
        d.check_build(false).unwrap();
        assert!(d.trust.to_string().contains("CUSTOM network (\"my-devnet\""), "{}", d.trust);
        assert_eq!(mainnet().trust.mode_name(), "beacon-light-client");
        mainnet().check_build(false).unwrap();
    }

    #[test]
    fn trust_parameters_are_bounded() {
        let with_age = |age: u64| format!("{MAINNET}max_age_secs = {age}\n");
        for age in [1, 60, 300, 900] {
            assert_eq!(PinnedDeployment::from_toml(&with_age(age)).unwrap().max_age_secs(), age);
        }
        // 0, just over the bound, and the ten years an attacker's pin asked for.
        for age in [0, 901, 315_360_000] {
            let e = PinnedDeployment::from_toml(&with_age(age)).unwrap_err().to_string();
            assert!(e.contains("max_age_secs"), "{age}: {e}");
        }
        let quorum = |n: usize, k: usize| {
            let rpcs: Vec<String> = (0..n).map(|i| format!("\"https://rpc{i}.example\"")).collect();
            PinnedDeployment::from_toml(&format!(
                "chain_id = 10\ncontract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\nstart_block = 1\n[trust]\n\
                 mode = \"quorum\"\nrpcs = [{}]\nquorum = {k}\n",
                rpcs.join(", ")
            ))
        };
        quorum(2, 2).unwrap();
        quorum(16, 9).unwrap();
        for (n, k) in [(1, 1), (17, 9), (17, 17), (4, 2), (3, 4)] {
            assert!(quorum(n, k).is_err(), "{k} of {n} must be refused");
        }
        let with_reveal = |secs: u64| format!("{MAINNET}reveal_within_secs = {secs}\n");
        for secs in [2, 60, 120] {
            assert_eq!(PinnedDeployment::from_toml(&with_reveal(secs)).unwrap().reveal_within_secs(), secs);
        }
        // Too short to include anything, just over the bound, and a day (a header withheld that long).
        for secs in [0, 1, 121, 86_400] {
            let e = PinnedDeployment::from_toml(&with_reveal(secs)).unwrap_err().to_string();
            assert!(e.contains("reveal_within_secs"), "{secs}: {e}");
        }
        for c in [0, 1, 2, 64] {
            check_confirmations(c).unwrap();
        }
        for c in [65, u64::MAX] {
            assert!(check_confirmations(c).is_err(), "{c}");
        }
    }

    #[test]
    fn trust_parameters_list_values_and_bounds() {
        let p = mainnet().trust_parameters();
        assert_eq!(
            p[0],
            TrustParameter { name: "trust.max_age_secs", value: "300".into(), bound: "1..=900 seconds".into() }
        );
        assert_eq!(
            p[1],
            TrustParameter {
                name: "trust.reveal_within_secs",
                value: "60".into(),
                bound: "2..=120 seconds by the TD's monotonic clock".into()
            }
        );
        assert_eq!(p[2].name, "trust.sync_committee_participation");
        let q = PinnedDeployment::from_toml(
            "chain_id = 10\ncontract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\nstart_block = 1\n[trust]\n\
             mode = \"quorum\"\nrpcs = [\"https://a.example\", \"https://b.example\", \"https://c.example\"]\n\
             quorum = 2\nmax_age_secs = 60\n",
        )
        .unwrap();
        let p = q.trust_parameters();
        assert_eq!((p[0].value.as_str(), p[2].name, p[2].value.as_str()), ("60", "trust.quorum", "2 of 3"));
        assert_eq!(p[2].bound, "a strict majority of 2..=16 pinned RPCs");
        assert_eq!(TrustParameter::confirmations(2).bound, "0..=64 blocks");
    }

    #[test]
    fn refuses_unusable_identities() {
        let cases = [
            (MAINNET.replace("mainnet\"", "nonet\""), "unknown network"),
            (MAINNET.replace("0x5afc", "0x0000").replace("212a7924789b2bc86acad3ab3a6ffb1f6e97253ea50bee7f4f51422c9275", "0000000000000000000000000000000000000000000000000000000000"), "zero checkpoint"),
            (MAINNET.replace("0x5FbDB2315678afecb367f032d93F642f64180aa3", "0x0000000000000000000000000000000000000000"), "zero contract"),
            (MAINNET.replace("start_block", "start_blok"), "unknown field"),
            (
                "chain_id = 10\ncontract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\nstart_block = 1\n[trust]\nmode = \"quorum\"\nrpcs = [\"https://a\", \"http://b\", \"https://c\"]\nquorum = 2\n".to_string(),
                "plain http quorum member",
            ),
            (
                "chain_id = 10\ncontract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\nstart_block = 1\n[trust]\nmode = \"quorum\"\nrpcs = [\"https://a\", \"https://b\"]\nquorum = 1\n".to_string(),
                "no majority",
            ),
        ];
        for (text, why) in cases {
            assert!(PinnedDeployment::from_toml(&text).is_err(), "{why} must be refused");
        }
    }
}
