//! The JSON event log of a Dstack guest agent's `GetQuote` answer, read into a [`DstackLog`]: its
//! boot-time events as logged, and its runtime events as the kernel's [`EventLog`], whose digests are
//! computed from name and payload (never taken from the log).
//!
//! # Source format
//!
//! `event_log` is a JSON string holding an array of events:
//!
//! ```json
//! [{"imr":3,"event_type":134217729,"digest":"","event":"compose-hash","event_payload":"86b0…"}]
//! ```
//!
//! `digest` is hex (48 bytes) for boot-time events (IMR 0..=2) and is empty
//! for Dstack runtime events (IMR 3), whose payload is kept instead. Unknown
//! fields are ignored. Dstack ≥ the "event log V2" release adds two optional
//! fields to runtime events: `"version": 2` and `"preimage": "<hex>"`. The
//! runtime digest rules are the trust kernel's (`replicatoor_core::attest::eventlog`);
//! a boot-time event's logged `digest` is used as is.
//!
//! No decision reads the boot-time events: the kernel decides only on the
//! runtime events of a compact log. They are kept here for `replicatoor
//! measure`, which replays RTMR0..=2 from them.

use replicatoor_core::attest::eventlog::{
    DigestFormat, Event, EventLog, EventLogError, DSTACK_RUNTIME_EVENT_TYPE, RTMR_LEN,
};
use serde::Deserialize;
use sha2::{Digest as _, Sha384};

/// Largest accepted `event_log` JSON string, in bytes.
pub const MAX_JSON_INPUT_LEN: usize = 1 << 20;
/// Largest accepted number of events in a JSON event log.
pub const MAX_JSON_EVENTS: usize = 1024;
/// Largest accepted payload of one JSON event, in bytes (after hex decoding).
pub const MAX_JSON_PAYLOAD_LEN: usize = 64 * 1024;

/// Why a JSON event log does not read, or a log has no compact form.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The JSON input is longer than [`MAX_JSON_INPUT_LEN`].
    #[error("event log JSON is {len} bytes, more than the {max} allowed")]
    InputTooLarge {
        /// Input length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input is not a JSON array of Dstack events.
    #[error("event log is not a valid Dstack JSON event array: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON log holds more than [`MAX_JSON_EVENTS`] events.
    #[error("event log has {count} events, more than the {max} allowed")]
    TooManyEvents {
        /// Number of events in the input.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An event payload exceeds [`MAX_JSON_PAYLOAD_LEN`].
    #[error("event {index}: payload of {len} bytes exceeds the {max} allowed")]
    PayloadTooLarge {
        /// Position of the event in the log.
        index: usize,
        /// Payload length in bytes (half the hex length, rounded down).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A hex field does not decode.
    #[error("event {index}: field `{field}` is not valid hex: {source}")]
    BadHex {
        /// Position of the event in the log.
        index: usize,
        /// Name of the JSON field.
        field: &'static str,
        /// What the hex decoder reported.
        source: hex::FromHexError,
    },
    /// An event names an IMR other than 0..=3.
    #[error("event {index}: imr {imr} is out of range 0..=3")]
    ImrOutOfRange {
        /// Position of the event in the log.
        index: usize,
        /// The IMR index found.
        imr: u32,
    },
    /// A boot-time (IMR 0..=2) event has a digest that is not 48 bytes.
    #[error("event {index} (imr {imr}): digest is {len} bytes, expected 48")]
    BadDigestLength {
        /// Position of the event in the log.
        index: usize,
        /// The event's IMR.
        imr: u32,
        /// Digest length found.
        len: usize,
    },
    /// An IMR-3 event is not a Dstack runtime event, or a runtime event is
    /// logged against IMR 0..=2; either way its digest could not be checked.
    #[error("event {index}: event_type {event_type:#010x} is not allowed on imr {imr}")]
    UnexpectedEventType {
        /// Position of the event in the log.
        index: usize,
        /// The event's IMR.
        imr: u32,
        /// The event type found.
        event_type: u32,
    },
    /// A runtime event has a `version` other than absent/0/1/2.
    #[error("event {index}: unknown runtime event digest version {version}")]
    UnknownDigestVersion {
        /// Position of the event in the log.
        index: usize,
        /// The version found.
        version: u32,
    },
    /// A runtime event carries a non-empty digest that differs from the one
    /// recomputed from its name and payload.
    #[error("event {index} ({name}): logged digest {} differs from recomputed {}", hex::encode(.logged), hex::encode(.computed))]
    RuntimeDigestMismatch {
        /// Position of the event in the log.
        index: usize,
        /// Event name.
        name: String,
        /// Digest found in the log.
        logged: Vec<u8>,
        /// Digest recomputed from name and payload (48 bytes).
        computed: Vec<u8>,
    },
    /// A V2 runtime event carries a `preimage` that is not the canonical JSON
    /// of its own name and payload.
    #[error("event {index} ({name}): preimage {} is not the canonical V2 preimage", hex::encode(.logged))]
    PreimageMismatch {
        /// Position of the event in the log.
        index: usize,
        /// Event name.
        name: String,
        /// Preimage bytes found in the log.
        logged: Vec<u8>,
    },
    /// The runtime events do not all use one digest format, so they cannot
    /// share one compact digest-format byte.
    #[error("runtime event {index} uses digest format {found:?}, but earlier ones use {first:?}")]
    MixedDigestFormats {
        /// Position of the offending event among the runtime events.
        index: usize,
        /// Format of the first runtime event.
        first: DigestFormat,
        /// Format of the offending event.
        found: DigestFormat,
    },
    /// The log breaks a limit of the compact format (the decoder's own
    /// limits, so the error is the decoder's).
    #[error(transparent)]
    Compact(#[from] EventLogError),
}

/// A boot-time (IMR 0..=2) event, with the digest its log gives (no decision reads it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootEvent {
    /// IMR index, 0..=2.
    pub imr: u32,
    /// TCG event type (never the Dstack runtime type).
    pub event_type: u32,
    /// The logged digest extended into the IMR.
    pub digest: [u8; RTMR_LEN],
    /// Event name (empty for most boot events).
    pub name: String,
    /// Event payload (often empty: Dstack strips them).
    pub payload: Vec<u8>,
}

/// A Dstack JSON event log: its boot-time events and its runtime events, each in log order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DstackLog {
    /// The IMR 0..=2 events.
    pub boot: Vec<BootEvent>,
    /// The IMR 3 events, what a node posts (`to_compact`) and the kernel reads.
    pub runtime: EventLog,
}

impl DstackLog {
    /// Replays RTMR0..=3: `acc = sha384(acc || digest)` over each IMR's events in log order, RTMR3 by
    /// the kernel.
    pub fn replay_all(&self) -> [[u8; RTMR_LEN]; 4] {
        let mut out = [[0u8; RTMR_LEN]; 4];
        for e in &self.boot {
            // IMR ≤ 2, checked when read.
            if let Some(acc) = out.get_mut(e.imr as usize) {
                *acc = Sha384::new().chain_update(*acc).chain_update(e.digest).finalize().into();
            }
        }
        out[3] = self.runtime.replay_rtmr3();
        out
    }
}

enum Read {
    Boot(BootEvent),
    Runtime(Event),
}

#[derive(Deserialize)]
struct RawEvent {
    imr: u32,
    event_type: u32,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    event_payload: String,
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    preimage: Option<String>,
}

fn decode_hex(index: usize, field: &'static str, s: &str) -> Result<Vec<u8>, Error> {
    hex::decode(s).map_err(|source| Error::BadHex { index, field, source })
}

/// Parses the `event_log` string of a Dstack `GetQuote` response.
///
/// Checks: input ≤ 1 MiB, ≤ 1024 events, payloads ≤ 64 KiB, valid hex,
/// IMR ≤ 3, 48-byte digests on IMR 0..=2, IMR 3 holds only runtime events
/// and runtime events only IMR 3, known digest version. Runtime-event
/// digests are recomputed; a logged one, if non-empty, must equal the
/// recomputation, and a logged V2 `preimage`, if present, must equal the
/// canonical one.
pub fn from_dstack_json(s: &str) -> Result<DstackLog, Error> {
    if s.len() > MAX_JSON_INPUT_LEN {
        return Err(Error::InputTooLarge { len: s.len(), max: MAX_JSON_INPUT_LEN });
    }
    let raw: Vec<RawEvent> = serde_json::from_str(s)?;
    if raw.len() > MAX_JSON_EVENTS {
        return Err(Error::TooManyEvents { count: raw.len(), max: MAX_JSON_EVENTS });
    }
    let (mut boot, mut runtime) = (Vec::new(), Vec::new());
    for (index, r) in raw.into_iter().enumerate() {
        match convert(index, r)? {
            Read::Boot(e) => boot.push(e),
            Read::Runtime(e) => runtime.push(e),
        }
    }
    Ok(DstackLog { boot, runtime: EventLog::from_events(runtime) })
}

fn convert(index: usize, r: RawEvent) -> Result<Read, Error> {
    if r.imr > 3 {
        return Err(Error::ImrOutOfRange { index, imr: r.imr });
    }
    if r.event_payload.len() / 2 > MAX_JSON_PAYLOAD_LEN {
        return Err(Error::PayloadTooLarge { index, len: r.event_payload.len() / 2, max: MAX_JSON_PAYLOAD_LEN });
    }
    let payload = decode_hex(index, "event_payload", &r.event_payload)?;
    let logged_digest = decode_hex(index, "digest", &r.digest)?;
    let is_runtime_type = r.event_type == DSTACK_RUNTIME_EVENT_TYPE;
    if (r.imr == 3) != is_runtime_type {
        return Err(Error::UnexpectedEventType { index, imr: r.imr, event_type: r.event_type });
    }
    let format = match r.version {
        None | Some(0) | Some(1) => DigestFormat::V1,
        Some(2) => DigestFormat::V2,
        Some(version) => return Err(Error::UnknownDigestVersion { index, version }),
    };
    if r.imr < 3 {
        // IMR ≤ 2 and not the runtime type were checked above.
        let len = logged_digest.len();
        let digest = logged_digest.try_into().map_err(|_| Error::BadDigestLength { index, imr: r.imr, len })?;
        let (imr, event_type, name) = (r.imr, r.event_type, r.event);
        return Ok(Read::Boot(BootEvent { imr, event_type, digest, name, payload }));
    }
    let event = Event::runtime(r.event, payload, format);
    if !logged_digest.is_empty() && logged_digest[..] != event.digest()[..] {
        let computed = event.digest().to_vec();
        return Err(Error::RuntimeDigestMismatch {
            index,
            name: event.name().to_owned(),
            logged: logged_digest,
            computed,
        });
    }
    if format == DigestFormat::V2 {
        if let Some(p) = &r.preimage {
            let logged = decode_hex(index, "preimage", p)?;
            if logged != format.preimage(event.name(), event.payload()) {
                return Err(Error::PreimageMismatch { index, name: event.name().to_owned(), logged });
            }
        }
    }
    Ok(Read::Runtime(event))
}
