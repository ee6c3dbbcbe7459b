//! How a pinned deployment is shown to people: its canonical TOML, its trust mode's name, its trust
//! parameters with their bounds (`measure`, `config check`, `/status`, the audit). Nothing here is
//! checked or decided: the bounds are [`super`]'s constants, enforced when a description is read.

use super::{PinnedDeployment, TrustRoot, MAX_AGE_SECS, MAX_CONFIRMATIONS, QUORUM_RPCS, REVEAL_WITHIN_SECS};
use serde::Serialize;
use std::fmt;

/// One trust parameter of a deployment, its value and its bound, as `measure` prints them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustParameter {
    /// The setting's name (`trust.max_age_secs`, `trust.quorum`, `confirmations`).
    pub name: &'static str,
    /// Its value, as text.
    pub value: String,
    /// The bound the node enforces at start, as text.
    pub bound: String,
}

impl TrustParameter {
    /// The node's confirmation depth (a `run` setting, not part of the pin) as a trust parameter.
    pub fn confirmations(confirmations: u64) -> TrustParameter {
        TrustParameter {
            name: "confirmations",
            value: confirmations.to_string(),
            bound: format!("0..={MAX_CONFIRMATIONS} blocks"),
        }
    }
}

impl PinnedDeployment {
    /// The canonical TOML text (what `measure` prints and docs show).
    pub fn to_toml(&self) -> String {
        // Serializing a struct of plain fields cannot fail.
        toml::to_string(self).unwrap_or_default()
    }

    /// Every trust parameter of this deployment with its value and bound (for `measure`). The
    /// node's confirmation depth is a `run` setting: [`TrustParameter::confirmations`].
    pub fn trust_parameters(&self) -> Vec<TrustParameter> {
        let mut out = vec![TrustParameter {
            name: "trust.max_age_secs",
            value: self.max_age_secs().to_string(),
            bound: format!("{}..={} seconds", MAX_AGE_SECS.start(), MAX_AGE_SECS.end()),
        }];
        out.push(TrustParameter {
            name: "trust.reveal_within_secs",
            value: self.reveal_within_secs().to_string(),
            bound: format!(
                "{}..={} seconds by the TD's monotonic clock",
                REVEAL_WITHIN_SECS.start(),
                REVEAL_WITHIN_SECS.end()
            ),
        });
        match &self.trust {
            TrustRoot::Quorum { rpcs, quorum, .. } => out.push(TrustParameter {
                name: "trust.quorum",
                value: format!("{quorum} of {}", rpcs.len()),
                bound: format!("a strict majority of {}..={} pinned RPCs", QUORUM_RPCS.start(), QUORUM_RPCS.end()),
            }),
            // Fixed by the sync protocol, not a setting: shown so the reader sees what is trusted.
            TrustRoot::Beacon { .. } | TrustRoot::SimulatedBeacon { .. } => out.push(TrustParameter {
                name: "trust.sync_committee_participation",
                value: "at least 2/3 of the sync committee signs each header".into(),
                bound: "fixed (consensus-specs light-client sync protocol)".into(),
            }),
        }
        out
    }
}

impl TrustRoot {
    /// The trust mode's name, as `status`, `/metrics`, `measure` and `audit` show it. A beacon
    /// light client on a network the pin spells out (`[trust.custom_network]`) is its own mode,
    /// `beacon-custom`: this release vouches only for the built-in networks' parameters, so whoever
    /// approves such a pin must check the network (and its checkpoint) themselves.
    pub fn mode_name(&self) -> &'static str {
        match self {
            TrustRoot::Beacon { custom_network: Some(_), .. } => "beacon-custom",
            TrustRoot::Beacon { .. } => "beacon-light-client",
            TrustRoot::Quorum { .. } => "rpc-quorum",
            TrustRoot::SimulatedBeacon { .. } => "simulated-beacon",
        }
    }
}

impl fmt::Display for TrustRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustRoot::Beacon { custom_network: Some(n), checkpoint, .. } => write!(
                f,
                "beacon light client on a CUSTOM network ({:?}, genesis validators root {}, checkpoint {checkpoint})",
                n.name, n.genesis_validators_root
            ),
            TrustRoot::Beacon { network, checkpoint, .. } => {
                write!(f, "beacon light client ({}, checkpoint {checkpoint})", network.as_deref().unwrap_or("?"))
            }
            TrustRoot::Quorum { rpcs, quorum, .. } => write!(f, "RPC quorum ({quorum} of {})", rpcs.len()),
            TrustRoot::SimulatedBeacon { checkpoint, .. } => {
                write!(f, "SIMULATED beacon (dev only, checkpoint {checkpoint})")
            }
        }
    }
}
