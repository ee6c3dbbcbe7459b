//! The compact event log's framing (PROTOCOL.md §3.5): magic, version, digest format, the events'
//! names and payloads. Not counted on the trust path (TRUST.md section 1): what it returns decides
//! nothing until [`super::EventLog::from_compact`] has applied the name rule and recomputed every
//! digest, and the pipeline has replayed them to the quote's RTMR3. A framing bug can make a genuine
//! log fail (or two readers disagree), never make the kernel read a claim that was not measured.
//! Strict all the same, so that the form is canonical: decoding then re-encoding gives the same bytes.

use super::{DigestFormat, EventLogError};

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

/// The digest format's byte in the compact form (a wrong mapping gives digests the replay refuses).
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
}

/// The compact form is not well formed.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// The input ends before a field it announces.
    #[error("compact event log truncated at offset {offset}: need {needed} bytes, {available} left")]
    Truncated {
        /// Offset of the field that does not fit.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// The input does not open with [`COMPACT_MAGIC`].
    #[error("compact event log has magic {}, expected {}", hex::encode(.found), hex::encode(COMPACT_MAGIC))]
    BadMagic {
        /// The first bytes found (zero-padded if shorter than 4).
        found: [u8; 4],
    },
    /// Unsupported format version.
    #[error("compact event log version {found:#04x} is not supported (expected {COMPACT_VERSION:#04x})")]
    BadVersion {
        /// Version byte found.
        found: u8,
    },
    /// Digest format byte is neither 0x01 (V1) nor 0x02 (V2),
    /// or is not 0x01 in a log with no events.
    #[error("compact event log digest format {found:#04x} is unknown")]
    BadDigestFormat {
        /// Digest format byte found.
        found: u8,
    },
    /// More than [`COMPACT_MAX_EVENTS`] events.
    #[error("compact event log has {count} runtime events, more than the {max} allowed")]
    TooManyEvents {
        /// Number of events.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The log is longer than [`COMPACT_MAX_LEN`].
    #[error("compact event log is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An event payload is longer than [`COMPACT_MAX_PAYLOAD_LEN`].
    #[error("compact event {index}: payload of {len} bytes exceeds the {max} allowed")]
    PayloadTooLarge {
        /// Position of the event among the runtime events.
        index: usize,
        /// Payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes follow the last announced event.
    #[error("compact event log has {extra} trailing bytes after offset {offset}")]
    TrailingBytes {
        /// Offset where the log should have ended.
        offset: usize,
        /// Number of extra bytes.
        extra: usize,
    },
}

/// One event as the framing carries it: its name and its payload.
pub type RawEvent<'a> = (&'a [u8], &'a [u8]);

/// Splits a compact event log into its digest format and its events, strictly. The digests are
/// computed by the caller. The encoder (what a node posts) is
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
/// payload in only one way (Dstack's own event names never contain one); the
/// caller applies that rule ([`super::check_compact_name`]), on the counted side.
/// The encoding is canonical: decoding then re-encoding gives the same
/// bytes.
pub fn decode(bytes: &[u8]) -> Result<(DigestFormat, Vec<RawEvent<'_>>), EventLogError> {
    if bytes.len() > COMPACT_MAX_LEN {
        return Err(CompactError::TooLarge { len: bytes.len(), max: COMPACT_MAX_LEN }.into());
    }
    let mut r = Reader { bytes, pos: 0 };
    let magic = r.take(4)?;
    if magic != COMPACT_MAGIC {
        let mut found = [0u8; 4];
        found.copy_from_slice(magic);
        return Err(CompactError::BadMagic { found }.into());
    }
    let version = r.u8()?;
    if version != COMPACT_VERSION {
        return Err(CompactError::BadVersion { found: version }.into());
    }
    let fmt_byte = r.u8()?;
    let format = DigestFormat::from_byte(fmt_byte).ok_or(CompactError::BadDigestFormat { found: fmt_byte })?;
    let count = usize::from(r.u16()?);
    // An empty log has no digests; only 0x01 is canonical for it.
    if count == 0 && format != DigestFormat::V1 {
        return Err(CompactError::BadDigestFormat { found: fmt_byte }.into());
    }
    if count > COMPACT_MAX_EVENTS {
        return Err(CompactError::TooManyEvents { count, max: COMPACT_MAX_EVENTS }.into());
    }
    let mut events = Vec::with_capacity(count);
    for index in 0..count {
        let name_len = usize::from(r.u8()?);
        // Length is checked before reading so the error names it.
        if name_len == 0 || name_len > COMPACT_MAX_NAME_LEN {
            return Err(EventLogError::CompactBadNameLength { index, len: name_len });
        }
        let name = r.take(name_len)?;
        let payload_len = usize::from(r.u16()?);
        if payload_len > COMPACT_MAX_PAYLOAD_LEN {
            return Err(CompactError::PayloadTooLarge { index, len: payload_len, max: COMPACT_MAX_PAYLOAD_LEN }.into());
        }
        events.push((name, r.take(payload_len)?));
    }
    if r.pos != bytes.len() {
        return Err(CompactError::TrailingBytes { offset: r.pos, extra: bytes.len() - r.pos }.into());
    }
    Ok((format, events))
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CompactError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let Some(out) = rest.get(..n) else {
            return Err(CompactError::Truncated { offset: self.pos, needed: n, available: rest.len() });
        };
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, CompactError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, CompactError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}
