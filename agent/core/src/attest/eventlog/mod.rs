//! Dstack TDX event log: digest recomputation, RTMR replay, claim extraction
//! and the compact binary encoding's decoder (the log a node posts on chain).
//!
//! Reading Dstack's JSON event log and making the compact form are what a
//! posting node does: `replicatoor_encode::eventlog::{from_dstack_json,
//! to_compact}`. A holder only decodes ([`EventLog::from_compact`]).
//!
//! # Digest rules
//!
//! * IMR 0..=2 (TCG boot events): the logged `digest` is used as is.
//! * IMR 3 (Dstack runtime events, `event_type` = `0x08000001`): the digest is
//!   always recomputed from `event` (name) and `event_payload`, never trusted:
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
//! RTMR replay: `acc = [0; 48]`, then for every event of that IMR in log order
//! `acc = sha384(acc || digest)`.

use std::fmt;

use sha2::{Digest as _, Sha384};

/// Event type of a Dstack runtime event (not a TCG-defined type).
pub const DSTACK_RUNTIME_EVENT_TYPE: u32 = 0x0800_0001;

/// Magic bytes that open a compact event log.
pub const COMPACT_MAGIC: [u8; 4] = *b"RPEL";
/// The only compact format version defined.
pub const COMPACT_VERSION: u8 = 0x01;
/// Largest number of events in a compact event log.
pub const COMPACT_MAX_EVENTS: usize = 256;
/// Longest event name in a compact event log, in bytes.
pub const COMPACT_MAX_NAME_LEN: usize = 64;
/// Largest payload of one event in a compact event log, in bytes.
pub const COMPACT_MAX_PAYLOAD_LEN: usize = 16 * 1024;
/// Largest compact event log, in bytes (everything, header included).
pub const COMPACT_MAX_LEN: usize = 64 * 1024;

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

/// Hex rendering for error messages.
struct HexDisplay<'a>(&'a [u8]);

impl fmt::Display for HexDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong decoding or checking an event log (and the compact
/// limits the encoder shares).
#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    /// An RTMR index other than 0..=3 was asked for.
    #[error("there is no RTMR {imr}; valid indices are 0..=3")]
    NoSuchRtmr {
        /// The index asked for.
        imr: u32,
    },
    /// The replayed RTMR3 differs from the one in the quote.
    #[error("RTMR3 mismatch: quote has {}, event log replays to {}", HexDisplay(.expected), HexDisplay(.replayed))]
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
    /// Compact log: the input ends before a field it announces.
    #[error("compact event log truncated at offset {offset}: need {needed} bytes, {available} left")]
    CompactTruncated {
        /// Offset of the field that does not fit.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// Compact log: the input does not open with [`COMPACT_MAGIC`].
    #[error("compact event log has magic {}, expected {}", HexDisplay(.found), HexDisplay(&COMPACT_MAGIC))]
    CompactBadMagic {
        /// The first bytes found (zero-padded if shorter than 4).
        found: [u8; 4],
    },
    /// Compact log: unsupported format version.
    #[error("compact event log version {found:#04x} is not supported (expected {COMPACT_VERSION:#04x})")]
    CompactBadVersion {
        /// Version byte found.
        found: u8,
    },
    /// Compact log: digest format byte is neither 0x01 (V1) nor 0x02 (V2),
    /// or is not 0x01 in a log with no events.
    #[error("compact event log digest format {found:#04x} is unknown")]
    CompactBadDigestFormat {
        /// Digest format byte found.
        found: u8,
    },
    /// Compact log: more than [`COMPACT_MAX_EVENTS`] events.
    #[error("compact event log has {count} runtime events, more than the {max} allowed")]
    CompactTooManyEvents {
        /// Number of events.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Compact log: longer than [`COMPACT_MAX_LEN`].
    #[error("compact event log is {len} bytes, more than the {max} allowed")]
    CompactTooLarge {
        /// Encoded length.
        len: usize,
        /// The limit.
        max: usize,
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
    /// Compact log: an event payload is longer than [`COMPACT_MAX_PAYLOAD_LEN`].
    #[error("compact event {index}: payload of {len} bytes exceeds the {max} allowed")]
    CompactPayloadTooLarge {
        /// Position of the event among the runtime events.
        index: usize,
        /// Payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Compact log: bytes follow the last announced event.
    #[error("compact event log has {extra} trailing bytes after offset {offset}")]
    CompactTrailingBytes {
        /// Offset where the log should have ended.
        offset: usize,
        /// Number of extra bytes.
        extra: usize,
    },
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
    /// The byte that stands for this format in the compact encoding.
    pub fn to_byte(self) -> u8 {
        match self {
            DigestFormat::V1 => 0x01,
            DigestFormat::V2 => 0x02,
        }
    }

    /// The format a compact digest-format byte stands for.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0x01 => Some(DigestFormat::V1),
            0x02 => Some(DigestFormat::V2),
            _ => None,
        }
    }

    /// The exact bytes hashed to give a runtime event's digest.
    pub fn preimage(self, name: &str, payload: &[u8]) -> Vec<u8> {
        match self {
            DigestFormat::V1 => {
                let mut buf = Vec::with_capacity(4 + 1 + name.len() + 1 + payload.len());
                buf.extend_from_slice(&DSTACK_RUNTIME_EVENT_TYPE.to_le_bytes());
                buf.push(b':');
                buf.extend_from_slice(name.as_bytes());
                buf.push(b':');
                buf.extend_from_slice(payload);
                buf
            }
            DigestFormat::V2 => canonical_json_v2(name, payload).into_bytes(),
        }
    }

    /// The SHA-384 digest of a runtime event in this format.
    pub fn digest(self, name: &str, payload: &[u8]) -> [u8; RTMR_LEN] {
        sha384(&self.preimage(name, payload))
    }
}

/// The RFC 8785 (JCS) canonical JSON Dstack hashes for a V2 runtime event:
/// `{"name":<name>,"payload":"<lowercase hex>","type":134217729}`.
///
/// Keys are in sorted order; strings use the ECMAScript escapes that JCS
/// mandates (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u00xx` with lowercase
/// hex for other control characters) and everything else verbatim as UTF-8.
pub fn canonical_json_v2(name: &str, payload: &[u8]) -> String {
    let mut out = String::with_capacity(48 + name.len() + 2 * payload.len());
    out.push_str("{\"name\":");
    push_jcs_string(&mut out, name);
    out.push_str(",\"payload\":\"");
    out.push_str(&hex::encode(payload));
    out.push_str("\",\"type\":");
    out.push_str(&DSTACK_RUNTIME_EVENT_TYPE.to_string());
    out.push('}');
    out
}

fn push_jcs_string(out: &mut String, s: &str) {
    out.push('"');
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
}

fn sha384(data: &[u8]) -> [u8; RTMR_LEN] {
    Sha384::digest(data).into()
}

fn extend(acc: &[u8; RTMR_LEN], digest: &[u8]) -> [u8; RTMR_LEN] {
    let mut h = Sha384::new();
    h.update(acc);
    h.update(digest);
    h.finalize().into()
}

/// One event of a TDX event log.
///
/// Invariant: `digest` is 48 bytes; for IMR-3 events it is the digest
/// recomputed from `name` and `payload` (never a logged value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    imr: u32,
    event_type: u32,
    digest: Vec<u8>,
    name: String,
    payload: Vec<u8>,
    format: Option<DigestFormat>,
}

impl Event {
    /// A Dstack runtime (IMR 3) event with its digest computed in `format`.
    pub fn runtime(name: impl Into<String>, payload: Vec<u8>, format: DigestFormat) -> Self {
        let name = name.into();
        let digest = format.digest(&name, &payload).to_vec();
        Event { imr: 3, event_type: DSTACK_RUNTIME_EVENT_TYPE, digest, name, payload, format: Some(format) }
    }

    /// A boot-time (IMR 0..=2) event with its logged digest, as the JSON reader
    /// finds it. `None` unless `imr` ≤ 2, `event_type` is not the Dstack runtime
    /// type and `digest` is 48 bytes, so that no `Event` breaks the invariant.
    pub fn boot(imr: u32, event_type: u32, digest: Vec<u8>, name: String, payload: Vec<u8>) -> Option<Self> {
        (imr <= 2 && event_type != DSTACK_RUNTIME_EVENT_TYPE && digest.len() == RTMR_LEN).then_some(Event {
            imr,
            event_type,
            digest,
            name,
            payload,
            format: None,
        })
    }

    /// IMR index, 0..=3.
    pub fn imr(&self) -> u32 {
        self.imr
    }

    /// Event type (TCG type for boot events, `0x08000001` for runtime events).
    pub fn event_type(&self) -> u32 {
        self.event_type
    }

    /// The 48-byte digest extended into the IMR.
    pub fn digest(&self) -> &[u8] {
        &self.digest
    }

    /// Event name (empty for most boot events).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Event payload (often empty for boot events, which Dstack strips).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Digest format of a runtime event; `None` for boot events.
    pub fn digest_format(&self) -> Option<DigestFormat> {
        self.format
    }

    /// Whether this is a Dstack runtime (IMR 3) event.
    pub fn is_runtime(&self) -> bool {
        self.imr == 3
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

/// A parsed, digest-checked TDX event log.
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

    /// The IMR-3 (Dstack runtime) events, in log order, with their positions
    /// in [`EventLog::events`].
    pub fn runtime_events(&self) -> impl Iterator<Item = (usize, &Event)> {
        self.events.iter().enumerate().filter(|(_, e)| e.is_runtime())
    }

    /// Replays RTMR `imr` (0..=3) from the events logged against it.
    pub fn replay_rtmr(&self, imr: u32) -> Result<[u8; RTMR_LEN], EventLogError> {
        if imr > 3 {
            return Err(EventLogError::NoSuchRtmr { imr });
        }
        Ok(self.events.iter().filter(|e| e.imr == imr).fold([0u8; RTMR_LEN], |acc, e| extend(&acc, &e.digest)))
    }

    /// Replays RTMR0..=3.
    pub fn replay_all(&self) -> [[u8; RTMR_LEN]; 4] {
        let mut out = [[0u8; RTMR_LEN]; 4];
        for e in &self.events {
            // imr ≤ 3 is an invariant of every constructor.
            if let Some(acc) = out.get_mut(e.imr as usize) {
                *acc = extend(acc, &e.digest);
            }
        }
        out
    }

    /// Replays RTMR3 and compares it with the quote's RTMR3.
    pub fn replay_rtmr3_and_check(&self, quote_rtmr3: &[u8; RTMR_LEN]) -> Result<(), EventLogError> {
        let replayed = self.replay_rtmr(3)?;
        if &replayed != quote_rtmr3 {
            return Err(EventLogError::Rtmr3Mismatch { expected: *quote_rtmr3, replayed });
        }
        Ok(())
    }

    /// Positions (in [`EventLog::events`]) of the runtime events called `name`.
    fn positions(&self, name: &str) -> Vec<usize> {
        self.runtime_events().filter(|(_, e)| e.name == name).map(|(i, _)| i).collect()
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
    /// (a lookup by name is then ambiguous; iterate
    /// [`EventLog::runtime_events`] for names that legitimately repeat, such
    /// as `init-script-hash`).
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
        let boot_done = self
            .positions(EVENT_BOOT_MR_DONE)
            .first()
            .copied()
            .ok_or(EventLogError::MissingEvent { name: EVENT_BOOT_MR_DONE })?;
        let required = |name: &'static str| -> Result<&[u8], EventLogError> {
            self.claim_before(name, EVENT_BOOT_MR_DONE, boot_done)?.ok_or(EventLogError::MissingEvent { name })
        };
        let compose = required(EVENT_COMPOSE_HASH)?;
        let compose_hash: [u8; 32] =
            compose.try_into().map_err(|_| EventLogError::BadComposeHashLength { len: compose.len() })?;
        let app_id = required(EVENT_APP_ID)?.to_vec();
        let instance_id = required(EVENT_INSTANCE_ID)?.to_vec();

        let ready = self.positions(EVENT_SYSTEM_READY).first().copied();
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

    /// Decodes the compact format strictly, recomputing every digest. The
    /// result holds only IMR-3 events. The encoder (what a node posts) is
    /// `replicatoor_encode::eventlog::to_compact`.
    ///
    /// # Compact event log format, version 1
    ///
    /// Only RTMR3 is carried: RTMR0..=2 are checked as reference values read
    /// straight from the quote. All integers are big-endian.
    ///
    /// ```text
    /// offset  size  field
    /// 0       4     magic, the ASCII bytes "RPEL" (52 50 45 4c)
    /// 4       1     format version, 0x01
    /// 5       1     digest format: 0x01 = Dstack V1, 0x02 = Dstack V2
    /// 6       2     event count N, u16, 0..=256 (if N = 0, byte 5 must be 0x01)
    /// 8       …     N events, in RTMR3 extension order, each:
    ///                 1  name length L, u8, 1..=64
    ///                 L  name: bytes 0x20..=0x7e (printable ASCII) except ':' (0x3a)
    ///                 2  payload length P, u16, 0..=16384
    ///                 P  payload, raw bytes
    /// ```
    ///
    /// The whole encoding is at most 65536 bytes and ends exactly after the
    /// N-th event (no trailing bytes). Every event is implicitly IMR 3 with
    /// event type 0x08000001; its digest is not carried but recomputed by the
    /// reader with the digest format of byte 5:
    ///
    /// * V1: `sha384(01 00 00 08 || ":" || name || ":" || payload)`
    /// * V2: `sha384("{\"name\":\"" || name_json_escaped || "\",\"payload\":\"" || lowercase_hex(payload) || "\",\"type\":134217729}")`,
    ///   where, since names are printable ASCII, JSON escaping only turns
    ///   `"` into `\"` and `\` into `\\`.
    ///
    /// RTMR3 = fold of `acc = sha384(acc || digest)` from 48 zero bytes.
    /// Names may not contain ':' so that the V1 preimage splits into name and
    /// payload in only one way (Dstack's own event names never contain one).
    /// The encoding is canonical: decoding then re-encoding gives the same
    /// bytes.
    pub fn from_compact(bytes: &[u8]) -> Result<EventLog, EventLogError> {
        if bytes.len() > COMPACT_MAX_LEN {
            return Err(EventLogError::CompactTooLarge { len: bytes.len(), max: COMPACT_MAX_LEN });
        }
        let mut r = Reader { bytes, pos: 0 };
        let magic = r.take(4)?;
        if magic != COMPACT_MAGIC {
            let mut found = [0u8; 4];
            found.copy_from_slice(magic);
            return Err(EventLogError::CompactBadMagic { found });
        }
        let version = r.u8()?;
        if version != COMPACT_VERSION {
            return Err(EventLogError::CompactBadVersion { found: version });
        }
        let fmt_byte = r.u8()?;
        let format =
            DigestFormat::from_byte(fmt_byte).ok_or(EventLogError::CompactBadDigestFormat { found: fmt_byte })?;
        let count = usize::from(r.u16()?);
        // An empty log has no digests; only 0x01 is canonical for it.
        if count == 0 && format != DigestFormat::V1 {
            return Err(EventLogError::CompactBadDigestFormat { found: fmt_byte });
        }
        if count > COMPACT_MAX_EVENTS {
            return Err(EventLogError::CompactTooManyEvents { count, max: COMPACT_MAX_EVENTS });
        }
        let mut events = Vec::with_capacity(count);
        for index in 0..count {
            let name_len = usize::from(r.u8()?);
            // Length is checked before reading so the error names it.
            if name_len == 0 || name_len > COMPACT_MAX_NAME_LEN {
                return Err(EventLogError::CompactBadNameLength { index, len: name_len });
            }
            let name_bytes = r.take(name_len)?;
            check_compact_name(index, name_bytes)?;
            // All bytes are ASCII, checked just above.
            let name: String = name_bytes.iter().map(|&b| char::from(b)).collect();
            let payload_len = usize::from(r.u16()?);
            if payload_len > COMPACT_MAX_PAYLOAD_LEN {
                return Err(EventLogError::CompactPayloadTooLarge {
                    index,
                    len: payload_len,
                    max: COMPACT_MAX_PAYLOAD_LEN,
                });
            }
            let payload = r.take(payload_len)?.to_vec();
            events.push(Event::runtime(name, payload, format));
        }
        if r.pos != bytes.len() {
            return Err(EventLogError::CompactTrailingBytes { offset: r.pos, extra: bytes.len() - r.pos });
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

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EventLogError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let Some(out) = rest.get(..n) else {
            return Err(EventLogError::CompactTruncated { offset: self.pos, needed: n, available: rest.len() });
        };
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, EventLogError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, EventLogError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
mod tests;
