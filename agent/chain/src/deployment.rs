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

use crate::endpoint::Transport;
use alloy::primitives::{Address, B256};
use replicatoor_beacon::{Network, PresetKind};
use replicatoor_core::protocol::Deployment;
use serde::{Deserialize, Serialize};
use std::fmt;

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
    },
}

fn default_max_age() -> u64 {
    300
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

    /// The canonical TOML text (what `measure` prints and docs show).
    pub fn to_toml(&self) -> String {
        // Serializing a struct of plain fields cannot fail.
        toml::to_string(self).unwrap_or_default()
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

    /// Whether this trust root is a simulated one (dev chains only).
    pub fn is_simulated(&self) -> bool {
        matches!(self.trust, TrustRoot::SimulatedBeacon { .. })
    }

    /// The largest age of a decision header, in seconds.
    pub fn max_age_secs(&self) -> u64 {
        match &self.trust {
            TrustRoot::Beacon { max_age_secs, .. }
            | TrustRoot::Quorum { max_age_secs, .. }
            | TrustRoot::SimulatedBeacon { max_age_secs, .. } => *max_age_secs,
        }
    }

    fn check(&self) -> Result<(), DeploymentError> {
        let invalid = |m: String| Err(DeploymentError::Invalid(m));
        if self.contract == Address::ZERO {
            return invalid("contract is the zero address".into());
        }
        if self.max_age_secs() == 0 {
            return invalid("trust.max_age_secs must be at least 1".into());
        }
        match &self.trust {
            TrustRoot::Quorum { rpcs, quorum, .. } => {
                if rpcs.len() < 2 || *quorum <= rpcs.len() / 2 || *quorum > rpcs.len() {
                    return invalid(format!(
                        "trust: quorum {quorum} of {} RPCs must be a strict majority of at least two",
                        rpcs.len()
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

impl TrustRoot {
    /// The trust mode's name, as `status`, `/metrics` and `audit` show it.
    pub fn mode_name(&self) -> &'static str {
        match self {
            TrustRoot::Beacon { .. } => "beacon-light-client",
            TrustRoot::Quorum { .. } => "rpc-quorum",
            TrustRoot::SimulatedBeacon { .. } => "simulated-beacon",
        }
    }
}

impl fmt::Display for TrustRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustRoot::Beacon { network, checkpoint, .. } => {
                write!(f, "beacon light client ({}, checkpoint {checkpoint})", network.as_deref().unwrap_or("custom"))
            }
            TrustRoot::Quorum { rpcs, quorum, .. } => write!(f, "RPC quorum ({quorum} of {})", rpcs.len()),
            TrustRoot::SimulatedBeacon { checkpoint, .. } => {
                write!(f, "SIMULATED beacon (dev only, checkpoint {checkpoint})")
            }
        }
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
