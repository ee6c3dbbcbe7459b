//! The compact event log a node posts (PROTOCOL.md §3.5), from the JSON event log of Dstack's
//! `GetQuote` answer ([`from_dstack_json`]). The format and its decoder are
//! [`EventLog::from_compact`] in the trust kernel; [`to_compact`] writes what it reads, under the
//! same limits, so decoding then re-encoding gives the same bytes.

mod json;

pub use json::{
    from_dstack_json, BootEvent, DstackLog, Error, MAX_JSON_EVENTS, MAX_JSON_INPUT_LEN, MAX_JSON_PAYLOAD_LEN,
};

use replicatoor_core::attest::eventlog::{
    check_compact_name, CompactError, DigestFormat, Event, EventLog, EventLogError, COMPACT_MAGIC, COMPACT_MAX_EVENTS,
    COMPACT_MAX_LEN, COMPACT_MAX_PAYLOAD_LEN, COMPACT_VERSION,
};

/// Encodes the runtime (IMR 3) events `log` holds (a [`DstackLog`]'s `runtime`) in the compact
/// on-chain format ([`EventLog::from_compact`] describes it).
///
/// Fails if the events mix digest formats or break a limit of the format.
pub fn to_compact(log: &EventLog) -> Result<Vec<u8>, Error> {
    let runtime = log.events();
    if runtime.len() > COMPACT_MAX_EVENTS {
        return Err(
            EventLogError::from(CompactError::TooManyEvents { count: runtime.len(), max: COMPACT_MAX_EVENTS }).into()
        );
    }
    let first = runtime.first().map_or(DigestFormat::V1, Event::digest_format);
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&COMPACT_MAGIC);
    out.push(COMPACT_VERSION);
    out.push(first.to_byte());
    // Bounded by COMPACT_MAX_EVENTS above.
    out.extend_from_slice(&(runtime.len() as u16).to_be_bytes());
    for (n, e) in runtime.iter().enumerate() {
        let found = e.digest_format();
        if found != first {
            return Err(Error::MixedDigestFormats { index: n, first, found });
        }
        check_compact_name(n, e.name().as_bytes())?;
        if e.payload().len() > COMPACT_MAX_PAYLOAD_LEN {
            let len = e.payload().len();
            return Err(EventLogError::from(CompactError::PayloadTooLarge {
                index: n,
                len,
                max: COMPACT_MAX_PAYLOAD_LEN,
            })
            .into());
        }
        // Both bounded by the checks just above.
        out.push(e.name().len() as u8);
        out.extend_from_slice(e.name().as_bytes());
        out.extend_from_slice(&(e.payload().len() as u16).to_be_bytes());
        out.extend_from_slice(e.payload());
        if out.len() > COMPACT_MAX_LEN {
            return Err(EventLogError::from(CompactError::TooLarge { len: out.len(), max: COMPACT_MAX_LEN }).into());
        }
    }
    Ok(out)
}
