//! The recorded Dstack `GetQuote` answer (`tests/fixtures/dstack/tdx-lite-getquote.json`: a genuine
//! TDX quote with the event log it was taken with), which the kernel's, the encoder's and the
//! node's suites replay, encode and verify.

use crate::read_fixture;

/// The whole answer, as JSON.
pub fn getquote() -> serde_json::Value {
    serde_json::from_slice(&read_fixture("dstack/tdx-lite-getquote.json")).expect("the Dstack fixture is JSON")
}

/// Its `event_log` member: the JSON string a guest agent answers with.
pub fn event_log() -> String {
    getquote()["event_log"].as_str().expect("an event_log string").to_owned()
}

/// Its raw quote.
pub fn quote() -> Vec<u8> {
    hex::decode(getquote()["quote"].as_str().expect("a quote string")).expect("the quote is hex")
}

/// Its `report_data`.
pub fn report_data() -> [u8; 64] {
    let hex = hex::decode(getquote()["report_data"].as_str().expect("a report_data string")).expect("hex");
    hex.try_into().expect("64 bytes")
}

/// The names of its runtime (IMR 3) events, in the order they were extended.
pub const RUNTIME_EVENTS: [&str; 9] = [
    "system-preparing",
    "app-id",
    "compose-hash",
    "instance-id",
    "boot-mr-done",
    "os-image-hash",
    "key-provider",
    "storage-fs",
    "system-ready",
];

/// RTMR0..=3 of a TDX v4 quote, read at the TD report's fixed offsets rather than with the kernel's
/// parser, so that the tests of that parser and of the replay do not assume what they check.
/// Layout: a 48-byte header, then the 584-byte TD report: tee_tcb_svn 16, mr_seam 48,
/// mr_signer_seam 48, seam_attributes 8, td_attributes 8, xfam 8, mr_td 48, mr_config_id 48,
/// mr_owner 48, mr_owner_config 48 (= 328 bytes), rtmr0..3 48 each (body 328..520), report_data
/// 64 (body 520..584).
pub fn quote_rtmrs(quote: &[u8]) -> [[u8; 48]; 4] {
    assert_eq!(u16::from_le_bytes([quote[0], quote[1]]), 4, "quote version");
    assert_eq!(u32::from_le_bytes([quote[4], quote[5], quote[6], quote[7]]), 0x81, "TEE type TDX");
    let body = &quote[48..48 + 584];
    let mut out = [[0u8; 48]; 4];
    for (i, r) in out.iter_mut().enumerate() {
        r.copy_from_slice(&body[328 + 48 * i..376 + 48 * i]);
    }
    out
}
