//! Decoding what a beacon node serves for the light-client endpoints, in either content type:
//!
//! * beacon-API JSON: `{"version": "<fork>", "data": {...}}`; `updates` is a JSON array of those;
//! * SSZ (`Accept: application/octet-stream`): bootstrap / finality / optimistic bodies are the bare
//!   container, whose fork follows from the slot of its first header and the network's schedule;
//!   an `updates` body is a sequence of `u64 LE length ‖ 4-byte fork digest ‖ SSZ` items (the
//!   length covers digest and SSZ), where the digest names the fork.
//!
//! Every object is upgraded to the newest shape, and the fork it was declared in (JSON `version`
//! or SSZ digest) must be the fork the network schedules at its attested/bootstrap slot.
//!
//! **Transport, not on the trust path** (the argument that took the compact quote decoder out of the
//! kernel count, TRUST.md section 1). What this module hands out is a newest-shape value of the
//! counted types, and a hostile beacon node could have served any such value itself, as Electra
//! SSZ. So the verifier ([`crate::store`]) must, and does, decide on the value alone: it derives each
//! header's fork from its slot and the network (not from the declared `version` or digest), proves
//! the execution header against the body root with that fork's root (`execution_root`, blob fields
//! zero before Deneb), proves committees and finality with the gindex of the slot's fork (extra
//! leading branch entries must be zero), checks the checkpoint root and the committee's signature.
//! A bug here can make good data fail, or hand the store a value a hostile server could have sent
//! anyway, nothing the store would not refuse from one: `tests/negative.rs` tampers with the
//! served bytes (signature, every branch, a committee member, the execution block number, the
//! checkpoint, the network) and each is refused by the store. The fork digests of the SSZ
//! `updates` body (`digest.rs`) are wire labels of the same kind.

mod digest;
pub mod error;
mod shapes;

pub use error::DecodeError;
pub use shapes::{LightClientFinalityUpdate, LightClientOptimisticUpdate};

use serde_json::Value;
use ssz::Decode;

use crate::network::{Fork, Network};
use crate::preset::Preset;
use crate::types::{
    ExecutionPayloadHeaderCapella as CapellaHeader, ExecutionPayloadHeaderDeneb as DenebHeader, LightClientBootstrap,
    LightClientUpdate,
};
use shapes::{Bootstrap, FinalityUpdate, OptimisticUpdate, Update};

/// The two content types of the beacon light-client endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Beacon-API JSON.
    Json,
    /// SSZ (`application/octet-stream`).
    Ssz,
}

/// Tell JSON from SSZ: JSON is UTF-8 text starting (after whitespace) with `{` or `[`. An SSZ body
/// full of hashes and BLS points is never valid UTF-8 in practice, and a JSON-looking body that
/// fails to parse is reported as malformed JSON rather than silently retried as SSZ.
pub fn detect_encoding(bytes: &[u8]) -> Encoding {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if matches!(first, Some(b'{') | Some(b'[')) && core::str::from_utf8(bytes).is_ok() {
        Encoding::Json
    } else {
        Encoding::Ssz
    }
}

/// A decoded object with the fork it was served under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forked<T> {
    /// The fork the data was declared in (and checked against its slot).
    pub fork: Fork,
    /// The object, upgraded to the newest shape.
    pub data: T,
}

/// One light-client object kind: how to decode each fork's shape and which slot decides its fork.
trait Kind<P: Preset> {
    type Out;
    const WHAT: &'static str;
    /// The field holding the header whose slot decides the fork.
    const HEADER_FIELD: &'static str;
    fn from_ssz(fork: Fork, bytes: &[u8]) -> Result<Self::Out, DecodeError>;
    fn from_json(fork: Fork, value: Value) -> Result<Self::Out, DecodeError>;
    fn fork_slot(out: &Self::Out) -> u64;
}

macro_rules! kind {
    ($marker:ident, $ty:ident, $wire:ident, $what:literal, $field:literal, |$o:ident| $slot:expr) => {
        struct $marker;
        impl<P: Preset> Kind<P> for $marker {
            type Out = $ty<P>;
            const WHAT: &'static str = $what;
            const HEADER_FIELD: &'static str = $field;
            fn from_ssz(fork: Fork, bytes: &[u8]) -> Result<Self::Out, DecodeError> {
                let ssz = |e: ssz::DecodeError| DecodeError::MalformedSsz { what: $what, detail: format!("{e:?}") };
                match fork {
                    Fork::Capella => $wire::<P, CapellaHeader>::from_ssz_bytes(bytes).map($wire::upgrade).map_err(ssz),
                    Fork::Deneb => $wire::<P, DenebHeader>::from_ssz_bytes(bytes).map($wire::upgrade).map_err(ssz),
                    Fork::Electra | Fork::Fulu => $ty::<P>::from_ssz_bytes(bytes).map_err(ssz),
                    fork => Err(DecodeError::UnsupportedFork { fork }),
                }
            }
            fn from_json(fork: Fork, value: Value) -> Result<Self::Out, DecodeError> {
                let json = |e: serde_json::Error| DecodeError::MalformedJson { what: $what, detail: e.to_string() };
                match fork {
                    Fork::Capella => {
                        serde_json::from_value::<$wire<P, CapellaHeader>>(value).map($wire::upgrade).map_err(json)
                    }
                    Fork::Deneb => {
                        serde_json::from_value::<$wire<P, DenebHeader>>(value).map($wire::upgrade).map_err(json)
                    }
                    Fork::Electra | Fork::Fulu => serde_json::from_value::<$ty<P>>(value).map_err(json),
                    fork => Err(DecodeError::UnsupportedFork { fork }),
                }
            }
            fn fork_slot($o: &Self::Out) -> u64 {
                $slot
            }
        }
    };
}

kind!(BootstrapKind, LightClientBootstrap, Bootstrap, "light-client bootstrap", "header", |o| o.header.beacon.slot);
kind!(UpdateKind, LightClientUpdate, Update, "light-client update", "attested_header", |o| o
    .attested_header
    .beacon
    .slot);
kind!(
    FinalityKind,
    LightClientFinalityUpdate,
    FinalityUpdate,
    "light-client finality update",
    "attested_header",
    |o| o.attested_header.beacon.slot
);
kind!(
    OptimisticKind,
    LightClientOptimisticUpdate,
    OptimisticUpdate,
    "light-client optimistic update",
    "attested_header",
    |o| o.attested_header.beacon.slot
);

fn check_fork<P: Preset, K: Kind<P>>(
    network: &Network,
    declared: Fork,
    out: K::Out,
) -> Result<Forked<K::Out>, DecodeError> {
    let slot = K::fork_slot(&out);
    let expected = network.fork_at_slot(slot);
    if expected != declared {
        return Err(DecodeError::ForkMismatch { declared, expected, slot });
    }
    Ok(Forked { fork: declared, data: out })
}

fn check_preset<P: Preset>(network: &Network) -> Result<(), DecodeError> {
    if network.preset != P::KIND {
        return Err(DecodeError::PresetMismatch { network: network.preset, expected: P::KIND });
    }
    Ok(())
}

/// The slot of the first field's header: every light-client container starts with a
/// variable-size `LightClientHeader` whose first 8 bytes are the beacon slot, so the first
/// 4-byte offset points at it.
fn peek_slot(what: &'static str, bytes: &[u8]) -> Result<u64, DecodeError> {
    let malformed = |detail: &str| DecodeError::MalformedSsz { what, detail: detail.to_owned() };
    let offset = bytes.get(..4).ok_or_else(|| malformed("shorter than one offset"))?;
    let offset = u32::from_le_bytes([offset[0], offset[1], offset[2], offset[3]]) as usize;
    let slot = bytes.get(offset..offset.saturating_add(8)).ok_or_else(|| malformed("header offset out of range"))?;
    let mut le = [0u8; 8];
    le.copy_from_slice(slot);
    Ok(u64::from_le_bytes(le))
}

fn versioned<P: Preset, K: Kind<P>>(network: &Network, value: Value) -> Result<Forked<K::Out>, DecodeError> {
    let malformed = |detail: &str| DecodeError::MalformedJson { what: K::WHAT, detail: detail.to_owned() };
    let Value::Object(mut object) = value else {
        return Err(malformed("expected an object {\"version\", \"data\"}"));
    };
    let version = match object.remove("version") {
        Some(Value::String(s)) => s,
        _ => return Err(malformed("missing string field \"version\"")),
    };
    let data = object.remove("data").ok_or_else(|| malformed("missing field \"data\""))?;
    let fork = Fork::from_name(&version)?;
    // Check the declared fork against the slot before decoding, so a wrong `version` is reported
    // as such rather than as a shape error (Capella and Deneb headers differ in fields).
    let slot = data[K::HEADER_FIELD]["beacon"]["slot"].as_str().and_then(|s| s.parse::<u64>().ok());
    if let Some(slot) = slot {
        let expected = network.fork_at_slot(slot);
        if expected != fork {
            return Err(DecodeError::ForkMismatch { declared: fork, expected, slot });
        }
    }
    let out = K::from_json(fork, data)?;
    check_fork::<P, K>(network, fork, out)
}

fn parse_json(what: &'static str, bytes: &[u8]) -> Result<Value, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| DecodeError::MalformedJson { what, detail: e.to_string() })
}

fn decode_single<P: Preset, K: Kind<P>>(network: &Network, bytes: &[u8]) -> Result<Forked<K::Out>, DecodeError> {
    check_preset::<P>(network)?;
    match detect_encoding(bytes) {
        Encoding::Json => versioned::<P, K>(network, parse_json(K::WHAT, bytes)?),
        Encoding::Ssz => {
            let fork = network.fork_at_slot(peek_slot(K::WHAT, bytes)?);
            let out = K::from_ssz(fork, bytes)?;
            check_fork::<P, K>(network, fork, out)
        }
    }
}

fn decode_ssz_as<P: Preset, K: Kind<P>>(
    network: &Network,
    fork: Fork,
    bytes: &[u8],
) -> Result<Forked<K::Out>, DecodeError> {
    check_preset::<P>(network)?;
    let out = K::from_ssz(fork, bytes)?;
    check_fork::<P, K>(network, fork, out)
}

/// Decode a bootstrap body (JSON or bare SSZ, auto-detected).
pub fn decode_bootstrap<P: Preset>(
    network: &Network,
    bytes: &[u8],
) -> Result<Forked<LightClientBootstrap<P>>, DecodeError> {
    decode_single::<P, BootstrapKind>(network, bytes)
}

/// Decode a finality-update body (JSON or bare SSZ, auto-detected).
pub fn decode_finality_update<P: Preset>(
    network: &Network,
    bytes: &[u8],
) -> Result<Forked<LightClientFinalityUpdate<P>>, DecodeError> {
    decode_single::<P, FinalityKind>(network, bytes)
}

/// Decode an optimistic-update body (JSON or bare SSZ, auto-detected).
pub fn decode_optimistic_update<P: Preset>(
    network: &Network,
    bytes: &[u8],
) -> Result<Forked<LightClientOptimisticUpdate<P>>, DecodeError> {
    decode_single::<P, OptimisticKind>(network, bytes)
}

/// Decode an `updates` body: a JSON array of versioned updates (a single versioned object is
/// accepted too), or an SSZ sequence of length- and digest-prefixed updates.
pub fn decode_updates<P: Preset>(
    network: &Network,
    bytes: &[u8],
) -> Result<Vec<Forked<LightClientUpdate<P>>>, DecodeError> {
    check_preset::<P>(network)?;
    let what = <UpdateKind as Kind<P>>::WHAT;
    match detect_encoding(bytes) {
        Encoding::Json => match parse_json(what, bytes)? {
            Value::Array(items) => items.into_iter().map(|item| versioned::<P, UpdateKind>(network, item)).collect(),
            object => Ok(vec![versioned::<P, UpdateKind>(network, object)?]),
        },
        Encoding::Ssz => {
            let mut out = Vec::new();
            let mut rest = bytes;
            while !rest.is_empty() {
                let malformed =
                    |detail: String| DecodeError::MalformedSsz { what: "light-client updates body", detail };
                let header = rest.get(..8).ok_or_else(|| malformed(format!("{} trailing bytes", rest.len())))?;
                let len = u64::from_le_bytes(header.try_into().unwrap_or_default());
                let body = &rest[8..];
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&l| l >= 4 && l <= body.len())
                    .ok_or_else(|| malformed(format!("item length {len} with {} bytes left", body.len())))?;
                let digest = [body[0], body[1], body[2], body[3]];
                let fork = network.fork_for_digest(digest)?;
                out.push(decode_ssz_as::<P, UpdateKind>(network, fork, &body[4..len])?);
                rest = &body[len..];
            }
            Ok(out)
        }
    }
}

/// Decode one bare SSZ bootstrap of a known fork (e.g. after stripping a fork digest).
pub fn decode_bootstrap_ssz<P: Preset>(
    network: &Network,
    fork: Fork,
    bytes: &[u8],
) -> Result<Forked<LightClientBootstrap<P>>, DecodeError> {
    decode_ssz_as::<P, BootstrapKind>(network, fork, bytes)
}

/// Decode one bare SSZ update of a known fork.
pub fn decode_update_ssz<P: Preset>(
    network: &Network,
    fork: Fork,
    bytes: &[u8],
) -> Result<Forked<LightClientUpdate<P>>, DecodeError> {
    decode_ssz_as::<P, UpdateKind>(network, fork, bytes)
}

/// Decode one bare SSZ finality update of a known fork.
pub fn decode_finality_update_ssz<P: Preset>(
    network: &Network,
    fork: Fork,
    bytes: &[u8],
) -> Result<Forked<LightClientFinalityUpdate<P>>, DecodeError> {
    decode_ssz_as::<P, FinalityKind>(network, fork, bytes)
}

/// Decode one bare SSZ optimistic update of a known fork.
pub fn decode_optimistic_update_ssz<P: Preset>(
    network: &Network,
    fork: Fork,
    bytes: &[u8],
) -> Result<Forked<LightClientOptimisticUpdate<P>>, DecodeError> {
    decode_ssz_as::<P, OptimisticKind>(network, fork, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_json_and_ssz() {
        assert_eq!(detect_encoding(b"  {\"version\": \"deneb\"}"), Encoding::Json);
        assert_eq!(detect_encoding(b"\n[]"), Encoding::Json);
        assert_eq!(detect_encoding(&[0xd4, 0x60, 0, 0]), Encoding::Ssz);
        // A length prefix whose low byte happens to be '{' is still SSZ once the body is binary.
        assert_eq!(detect_encoding(&[b'{', 0x68, 0, 0, 0, 0, 0, 0, 0xff, 0xfe]), Encoding::Ssz);
        assert_eq!(detect_encoding(b""), Encoding::Ssz);
    }

    #[test]
    fn empty_updates_body_is_no_updates() {
        let updates = decode_updates::<crate::Mainnet>(&Network::mainnet(), b"").unwrap();
        assert!(updates.is_empty());
        let updates = decode_updates::<crate::Mainnet>(&Network::mainnet(), b"[]").unwrap();
        assert!(updates.is_empty());
    }
}
