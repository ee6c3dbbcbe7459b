//! Why a beacon-API body did not decode (transport, like the rest of [`super`]). A leaf module, so that
//! the crate's [`crate::Error`] can carry it without depending on the decoder.

use crate::fork::Fork;
use crate::preset::PresetKind;

/// Why a beacon-API body did not decode into light-client data of this network. The verifier's
/// refusals are [`crate::Error`]'s other variants; this one is [`crate::Error::Decode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Bytes that should have been an SSZ container did not decode.
    #[error("malformed SSZ {what}: {detail}")]
    MalformedSsz {
        /// Which object was being decoded.
        what: &'static str,
        /// The decoder's complaint.
        detail: String,
    },
    /// Bytes that should have been beacon-API JSON did not parse.
    #[error("malformed JSON {what}: {detail}")]
    MalformedJson {
        /// Which object was being decoded.
        what: &'static str,
        /// The parser's complaint.
        detail: String,
    },
    /// A beacon-API `version` string names no fork this crate knows.
    #[error("unknown fork name {name:?}")]
    UnknownForkName {
        /// The `version` string found.
        name: String,
    },
    /// An SSZ item's 4-byte fork digest matches no fork of the network (wrong network or GVR).
    #[error("unknown fork digest 0x{} for this network", hex::encode(digest))]
    UnknownForkDigest {
        /// The digest found.
        digest: [u8; 4],
    },
    /// Light-client data of a fork before Capella (no execution header): not supported.
    #[error("light-client data of fork {fork} is not supported (Capella or later only)")]
    UnsupportedFork {
        /// The fork of the data.
        fork: Fork,
    },
    /// The declared fork (JSON `version` or SSZ digest) is not the fork at the object's slot.
    #[error("data declared as {declared} but slot {slot} is in fork {expected}")]
    ForkMismatch {
        /// The fork the data claimed.
        declared: Fork,
        /// The fork the network schedules at `slot`.
        expected: Fork,
        /// The attested (or bootstrap) header slot.
        slot: u64,
    },
    /// The network's preset is not the one the containers are typed for.
    #[error("network uses the {network} preset but the data is typed for {expected}")]
    PresetMismatch {
        /// The network's preset.
        network: PresetKind,
        /// The preset of the types in use.
        expected: PresetKind,
    },
}

/// How a preset is named in messages (this crate's and its callers'): display only, so it lives with
/// the decoder's errors rather than in the counted `preset.rs`.
impl core::fmt::Display for PresetKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Mainnet => "mainnet",
            Self::Minimal => "minimal",
        })
    }
}
