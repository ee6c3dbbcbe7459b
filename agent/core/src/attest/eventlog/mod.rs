//! Dstack TDX event log: digest recomputation, RTMR3 replay, claim extraction
//! and the compact binary encoding's decoder (the log a node posts on chain).
//!
//! The kernel only ever decides on the runtime (IMR 3) events a compact log
//! holds. Reading Dstack's JSON event log (with its boot-time IMR 0..=2
//! events, which no decision reads) and making the compact form are what a
//! posting node does: `replicatoor_encode::eventlog::{from_dstack_json,
//! to_compact}`. A holder only decodes ([`EventLog::from_compact`]).
//!
//! # Digest rules
//!
//! * IMR 3 (Dstack runtime events, `event_type` = `0x08000001`): the digest is
//!   always computed from `event` (name) and `event_payload`, never stored nor
//!   taken from a log:
//!   * **V1** (the default; `version` absent, `0` or `1`):
//!     `sha384(le32(0x08000001) || ":" || name || ":" || payload)`.
//!   * **V2** (`version` = `2`):
//!     `sha384(JCS({"name": name, "payload": lowercase_hex(payload), "type": 134217729}))`,
//!     i.e. the RFC 8785 canonical JSON, keys sorted, no whitespace, e.g.
//!     `{"name":"compose-hash","payload":"abcd","type":134217729}`.
//!
//!   Both versions use the same `event_type`; the only thing in the log that
//!   distinguishes them is the per-event `version` field. Dstack fixes the
//!   version once per boot (app-compose `event_log_version`), so a genuine log
//!   never mixes them. Source: Dstack-TEE/dstack,
//!   `dstack/cc-eventlog/src/runtime_events.rs` (`RuntimeEvent::preimage`,
//!   `canonical_event_json_v2`) and `dstack/cc-eventlog/src/tdx.rs`
//!   (`TdxEvent`, `validate_v2_preimages`).
//!
//! RTMR3 replay: `acc = [0; 48]`, then for every runtime event in log order
//! `acc = sha384(acc || digest)`.

mod compact;

pub use compact::{
    decode as decode_compact, CompactError, RawEvent, COMPACT_MAGIC, COMPACT_MAX_EVENTS, COMPACT_MAX_LEN,
    COMPACT_MAX_NAME_LEN, COMPACT_MAX_PAYLOAD_LEN, COMPACT_VERSION,
};

use sha2::{Digest as _, Sha384};

/// Event type of a Dstack runtime event (not a TCG-defined type).
pub const DSTACK_RUNTIME_EVENT_TYPE: u32 = 0x0800_0001;

/// Length of an RTMR / of a SHA-384 digest.
pub const RTMR_LEN: usize = 48;

/// Name of the runtime event that closes the boot-time measurement.
pub const EVENT_BOOT_MR_DONE: &str = "boot-mr-done";
/// Name of the runtime event emitted when Dstack hands over to the app.
pub const EVENT_SYSTEM_READY: &str = "system-ready";
/// Name of the runtime event carrying the app-compose hash (32 bytes).
pub const EVENT_COMPOSE_HASH: &str = "compose-hash";
/// Name of the runtime event carrying the app id.
pub const EVENT_APP_ID: &str = "app-id";
/// Name of the runtime event carrying the instance id.
pub const EVENT_INSTANCE_ID: &str = "instance-id";
/// Name of the runtime event carrying the OS image hash.
pub const EVENT_OS_IMAGE_HASH: &str = "os-image-hash";
/// Name of the runtime event describing the key provider (JSON).
pub const EVENT_KEY_PROVIDER: &str = "key-provider";

/// Everything that can go wrong decoding or checking an event log (and the compact
/// limits the encoder shares).
#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    /// The replayed RTMR3 differs from the one in the quote.
    #[error("RTMR3 mismatch: quote has {}, event log replays to {}", hex::encode(.expected), hex::encode(.replayed))]
    Rtmr3Mismatch {
        /// RTMR3 from the quote.
        expected: [u8; RTMR_LEN],
        /// RTMR3 replayed from the event log.
        replayed: [u8; RTMR_LEN],
    },
    /// A runtime event name that must be unique occurs more than once.
    #[error("runtime event `{name}` occurs more than once (events {first} and {second})")]
    DuplicateEvent {
        /// Event name.
        name: String,
        /// Position of the first occurrence in the log.
        first: usize,
        /// Position of the second occurrence in the log.
        second: usize,
    },
    /// A required runtime event is absent.
    #[error("runtime event `{name}` is missing")]
    MissingEvent {
        /// Event name.
        name: &'static str,
    },
    /// A trusted claim was emitted after the boundary event that closes the
    /// phase in which only Dstack's own boot code runs.
    #[error("runtime event `{name}` (event {index}) comes after `{boundary}` (event {boundary_index})")]
    EventAfterBoundary {
        /// Claim event name.
        name: &'static str,
        /// Position of the claim in the log.
        index: usize,
        /// Boundary event name.
        boundary: &'static str,
        /// Position of the boundary in the log.
        boundary_index: usize,
    },
    /// The compose-hash payload is not 32 bytes.
    #[error("compose-hash payload is {len} bytes, expected 32")]
    BadComposeHashLength {
        /// Payload length found.
        len: usize,
    },
    /// Compact log: an event name is empty or longer than [`COMPACT_MAX_NAME_LEN`].
    #[error("compact event {index}: name length {len} is outside 1..={COMPACT_MAX_NAME_LEN}")]
    CompactBadNameLength {
        /// Position of the event among the runtime events.
        index: usize,
        /// Name length in bytes.
        len: usize,
    },
    /// Compact log: an event name holds a byte outside printable ASCII
    /// (0x20..=0x7e) or a `:`.
    #[error("compact event {index}: name byte {byte:#04x} at position {position} is not allowed")]
    CompactBadNameByte {
        /// Position of the event among the runtime events.
        index: usize,
        /// Position of the byte within the name.
        position: usize,
        /// The byte found.
        byte: u8,
    },
    /// The compact form is not well formed (its framing: `compact.rs`, transport).
    #[error(transparent)]
    Compact(#[from] CompactError),
}

/// How a Dstack runtime event's digest is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigestFormat {
    /// `sha384(le32(0x08000001) || ":" || name || ":" || payload)`.
    V1,
    /// `sha384(JCS({"name":name,"payload":hex(payload),"type":134217729}))`.
    V2,
}

impl DigestFormat {
    /// The exact bytes hashed to give a runtime event's digest.
    pub fn preimage(self, name: &str, payload: &[u8]) -> Vec<u8> {
        match self {
            DigestFormat::V1 => {
                [&DSTACK_RUNTIME_EVENT_TYPE.to_le_bytes()[..], b":", name.as_bytes(), b":", payload].concat()
            }
            DigestFormat::V2 => canonical_json_v2(name, payload).into_bytes(),
        }
    }

    /// The SHA-384 digest of a runtime event in this format.
    pub fn digest(self, name: &str, payload: &[u8]) -> [u8; RTMR_LEN] {
        Sha384::digest(self.preimage(name, payload)).into()
    }
}

/// The RFC 8785 (JCS) canonical JSON Dstack hashes for a V2 runtime event:
/// `{"name":<name>,"payload":"<lowercase hex>","type":134217729}`.
///
/// Keys are in sorted order; strings use the ECMAScript escapes that JCS
/// mandates (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u00xx` with lowercase
/// hex for other control characters) and everything else verbatim as UTF-8.
pub fn canonical_json_v2(name: &str, payload: &[u8]) -> String {
    let (name, payload) = (jcs_string(name), hex::encode(payload));
    format!(r#"{{"name":{name},"payload":"{payload}","type":{DSTACK_RUNTIME_EVENT_TYPE}}}"#)
}

/// `s` as a JCS string, quotes included.
fn jcs_string(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One Dstack runtime (IMR 3, `event_type` [`DSTACK_RUNTIME_EVENT_TYPE`])
/// event.
///
/// It holds no digest: [`Event::digest`] computes it from `name` and
/// `payload` each time, so it is never a logged value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    name: String,
    payload: Vec<u8>,
    format: DigestFormat,
}

impl Event {
    /// A Dstack runtime (IMR 3) event whose digest is computed in `format`.
    pub fn runtime(name: impl Into<String>, payload: Vec<u8>, format: DigestFormat) -> Self {
        Event { name: name.into(), payload, format }
    }

    /// The 48-byte digest extended into RTMR3, computed from the name and payload.
    pub fn digest(&self) -> [u8; RTMR_LEN] {
        self.format.digest(&self.name, &self.payload)
    }

    /// Event name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Event payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The format the digest is computed in.
    pub fn digest_format(&self) -> DigestFormat {
        self.format
    }
}

/// Claims about the app, read from the runtime events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppInfo {
    /// Payload of `compose-hash`: sha256 of the app-compose file.
    pub compose_hash: [u8; 32],
    /// Payload of `app-id` (20 bytes in current Dstack).
    pub app_id: Vec<u8>,
    /// Payload of `instance-id` (20 bytes, or empty when the app-compose sets
    /// `no_instance_id`).
    pub instance_id: Vec<u8>,
    /// Payload of `os-image-hash`, if logged.
    pub os_image_hash: Option<Vec<u8>>,
    /// Payload of `key-provider` (JSON), if logged.
    pub key_provider: Option<Vec<u8>>,
}

/// The runtime (IMR 3) events of a TDX event log, in log order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventLog {
    events: Vec<Event>,
}

impl EventLog {
    /// Builds a log from events (e.g. made with [`Event::runtime`]).
    pub fn from_events(events: Vec<Event>) -> Self {
        EventLog { events }
    }

    /// All events, in log order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Replays RTMR3 from the events, each digest computed from its name and payload.
    pub fn replay_rtmr3(&self) -> [u8; RTMR_LEN] {
        self.events
            .iter()
            .fold([0u8; RTMR_LEN], |acc, e| Sha384::new().chain_update(acc).chain_update(e.digest()).finalize().into())
    }

    /// Replays RTMR3 and compares it with the quote's RTMR3.
    pub fn replay_rtmr3_and_check(&self, quote_rtmr3: &[u8; RTMR_LEN]) -> Result<(), EventLogError> {
        let replayed = self.replay_rtmr3();
        if &replayed != quote_rtmr3 {
            return Err(EventLogError::Rtmr3Mismatch { expected: *quote_rtmr3, replayed });
        }
        Ok(())
    }

    /// Positions (in [`EventLog::events`]) of the events called `name`.
    fn positions(&self, name: &str) -> Vec<usize> {
        self.events.iter().enumerate().filter(|(_, e)| e.name == name).map(|(i, _)| i).collect()
    }

    /// The position of the single runtime event called `name`, if any;
    /// an error if there are several.
    fn unique_position(&self, name: &str) -> Result<Option<usize>, EventLogError> {
        match self.positions(name)[..] {
            [] => Ok(None),
            [i] => Ok(Some(i)),
            [first, second, ..] => Err(EventLogError::DuplicateEvent { name: name.to_owned(), first, second }),
        }
    }

    /// The payload of the runtime event called `name`: `None` if absent,
    /// [`EventLogError::DuplicateEvent`] if the name occurs more than once
    /// (a lookup by name is then ambiguous; iterate [`EventLog::events`] for
    /// names that legitimately repeat, such as `init-script-hash`).
    pub fn runtime_event(&self, name: &str) -> Result<Option<&[u8]>, EventLogError> {
        Ok(self.unique_position(name)?.and_then(|i| self.events.get(i)).map(|e| e.payload.as_slice()))
    }

    /// A claim that must be present, unique and before `boundary`.
    fn claim_before(
        &self,
        name: &'static str,
        boundary: &'static str,
        boundary_index: usize,
    ) -> Result<Option<&[u8]>, EventLogError> {
        let Some(index) = self.unique_position(name)? else {
            return Ok(None);
        };
        if index > boundary_index {
            return Err(EventLogError::EventAfterBoundary { name, index, boundary, boundary_index });
        }
        Ok(self.events.get(index).map(|e| e.payload.as_slice()))
    }

    /// Extracts the app claims, following Dstack's policy for trusting named
    /// runtime events (docs/security/security-best-practices.md, "Runtime
    /// event-log V2 policies"): privileged code in the CVM can append events
    /// after boot, so
    ///
    /// * `compose-hash`, `app-id`, `instance-id` must each occur exactly once
    ///   and before the first `boot-mr-done`, which must be present;
    /// * `os-image-hash` and `key-provider` are optional, but each may occur
    ///   at most once and, if a `system-ready` event exists, before the first
    ///   one;
    /// * `compose-hash` must be 32 bytes.
    ///
    /// This does not check the log against a quote: call
    /// [`EventLog::replay_rtmr3_and_check`] as well.
    pub fn app_info(&self) -> Result<AppInfo, EventLogError> {
        let first = |name| self.events.iter().position(|e| e.name == name);
        let boot_done = first(EVENT_BOOT_MR_DONE).ok_or(EventLogError::MissingEvent { name: EVENT_BOOT_MR_DONE })?;
        let required = |name: &'static str| -> Result<&[u8], EventLogError> {
            self.claim_before(name, EVENT_BOOT_MR_DONE, boot_done)?.ok_or(EventLogError::MissingEvent { name })
        };
        let compose = required(EVENT_COMPOSE_HASH)?;
        let compose_hash: [u8; 32] =
            compose.try_into().map_err(|_| EventLogError::BadComposeHashLength { len: compose.len() })?;
        let app_id = required(EVENT_APP_ID)?.to_vec();
        let instance_id = required(EVENT_INSTANCE_ID)?.to_vec();

        let ready = first(EVENT_SYSTEM_READY);
        let optional = |name: &'static str| -> Result<Option<Vec<u8>>, EventLogError> {
            let found = match ready {
                Some(r) => self.claim_before(name, EVENT_SYSTEM_READY, r)?,
                None => self.runtime_event(name)?,
            };
            Ok(found.map(<[u8]>::to_vec))
        };
        Ok(AppInfo {
            compose_hash,
            app_id,
            instance_id,
            os_image_hash: optional(EVENT_OS_IMAGE_HASH)?,
            key_provider: optional(EVENT_KEY_PROVIDER)?,
        })
    }

    /// Decodes the compact form a node posts ([`decode_compact`] reads the framing and documents the
    /// format) and recomputes every digest. The result holds only IMR-3 events; the encoder is
    /// `replicatoor_encode::eventlog::to_compact`.
    ///
    /// The framing decides nothing: the events it returns count only if they replay to the quote's
    /// RTMR3, and each digest is computed here from the name and payload the claims are then read from.
    /// The name rule is applied here, not left to the framing: without a `:` in the name the V1
    /// preimage splits into name and payload one way only, so the replay binds both.
    pub fn from_compact(bytes: &[u8]) -> Result<EventLog, EventLogError> {
        let (format, raw) = decode_compact(bytes)?;
        EventLog::from_raw(format, raw)
    }

    /// The events the framing returned, each name checked and each digest computed in `format`.
    pub fn from_raw(format: DigestFormat, raw: Vec<RawEvent<'_>>) -> Result<EventLog, EventLogError> {
        let mut events = Vec::with_capacity(raw.len());
        for (index, (name, payload)) in raw.into_iter().enumerate() {
            check_compact_name(index, name)?;
            // All bytes are printable ASCII, checked just above.
            let name: String = name.iter().map(|&b| char::from(b)).collect();
            events.push(Event::runtime(name, payload.to_vec(), format));
        }
        Ok(EventLog { events })
    }
}

/// Checks event `index`'s name against the compact format's rule (1..=64
/// bytes of printable ASCII without `:`): the decoder's, which the encoder
/// applies too, so that it never writes what the decoder refuses.
pub fn check_compact_name(index: usize, name: &[u8]) -> Result<(), EventLogError> {
    if name.is_empty() || name.len() > COMPACT_MAX_NAME_LEN {
        return Err(EventLogError::CompactBadNameLength { index, len: name.len() });
    }
    if let Some((position, &byte)) = name.iter().enumerate().find(|(_, &b)| !(0x20..=0x7e).contains(&b) || b == b':') {
        return Err(EventLogError::CompactBadNameByte { index, position, byte });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
