//! The JSON event-log reader and the compact encoder, on the recorded Dstack fixture and constructed
//! logs, round trip through the trust kernel's decoder and replay.

use replicatoor_core::attest::eventlog::*;
use replicatoor_encode::eventlog::{
    from_dstack_json, to_compact, BootEvent, Error, MAX_JSON_EVENTS, MAX_JSON_INPUT_LEN, MAX_JSON_PAYLOAD_LEN,
};
use replicatoor_testkit::dstack::{self, quote_rtmrs};

/// The fixture's `event_log` string and raw quote.
fn fixture() -> (String, Vec<u8>) {
    (dstack::event_log(), dstack::quote())
}

#[test]
fn fixture_parses() {
    let (log, _) = fixture();
    let log = from_dstack_json(&log).unwrap();
    assert_eq!((log.boot.len(), log.runtime.events().len()), (20, 9));
    let names: Vec<&str> = log.runtime.events().iter().map(Event::name).collect();
    assert_eq!(names, dstack::RUNTIME_EVENTS);
    assert!(log.runtime.events().iter().all(|e| e.digest_format() == DigestFormat::V1));
    assert!(log.boot.iter().all(|e| e.imr <= 2 && e.event_type != DSTACK_RUNTIME_EVENT_TYPE));
}

#[test]
fn replay_matches_quote() {
    let (log, quote) = fixture();
    let log = from_dstack_json(&log).unwrap();
    let rtmrs = quote_rtmrs(&quote);
    assert_eq!(log.replay_all(), rtmrs);
    log.runtime.replay_rtmr3_and_check(&rtmrs[3]).unwrap();
}

#[test]
fn compact_round_trip() {
    let (json, quote) = fixture();
    let log = from_dstack_json(&json).unwrap().runtime;
    let compact = to_compact(&log).unwrap();
    eprintln!("compact size for the fixture: {} bytes", compact.len());
    assert!(compact.len() < 600, "{} bytes", compact.len());
    assert_eq!(&compact[..8], b"RPEL\x01\x01\x00\x09");
    let back = EventLog::from_compact(&compact).unwrap();
    assert_eq!(back.events().len(), 9);
    assert_eq!(back.replay_rtmr3(), log.replay_rtmr3());
    back.replay_rtmr3_and_check(&quote_rtmrs(&quote)[3]).unwrap();
    assert_eq!(back.app_info().unwrap(), log.app_info().unwrap());
    assert_eq!(back, log);
    // Canonical: re-encoding gives the same bytes.
    assert_eq!(to_compact(&back).unwrap(), compact);
}

#[test]
fn logged_runtime_digest_must_match() {
    // Genuine V1 digest from Dstack's verifier/fixtures/quote-report.json.
    let ok = r#"[{"imr":3,"event_type":134217729,"digest":"837c2dd72f8a4c740159e5e042ed79b7eaaa5ab3a151a45e27bc366bb8b27e6c3faec87aab1e95197d3e6d23308d448c","event":"app-id","event_payload":"3763bc34552cf3a27ff71ad5f7a90471562a1a2d","extra":{"x":1}}]"#;
    let log = from_dstack_json(ok).unwrap().runtime;
    assert_eq!(
        hex::encode(log.events()[0].digest()),
        "837c2dd72f8a4c740159e5e042ed79b7eaaa5ab3a151a45e27bc366bb8b27e6c3faec87aab1e95197d3e6d23308d448c"
    );
    let bad = ok.replacen("3763bc", "3763bd", 1);
    assert!(matches!(from_dstack_json(&bad), Err(Error::RuntimeDigestMismatch { index: 0, .. })));
}

fn json_event(imr: u32, event_type: u32, digest: &str, name: &str, payload: &str) -> String {
    format!(
        r#"{{"imr":{imr},"event_type":{event_type},"digest":"{digest}","event":"{name}","event_payload":"{payload}"}}"#
    )
}

#[test]
fn malformed_json_inputs() {
    let d48 = "00".repeat(48);
    let parse = |events: &[String]| from_dstack_json(&format!("[{}]", events.join(",")));

    assert!(matches!(parse(&[json_event(7, 1, &d48, "", "")]), Err(Error::ImrOutOfRange { index: 0, imr: 7 })));
    assert!(matches!(
        parse(&[json_event(0, 1, &d48, "", ""), json_event(3, DSTACK_RUNTIME_EVENT_TYPE, "", "x", "zz")]),
        Err(Error::BadHex { index: 1, field: "event_payload", .. })
    ));
    assert!(matches!(parse(&[json_event(1, 1, "abc", "", "")]), Err(Error::BadHex { index: 0, field: "digest", .. })));
    assert!(matches!(
        parse(&[json_event(2, 1, &"00".repeat(32), "", "")]),
        Err(Error::BadDigestLength { index: 0, imr: 2, len: 32 })
    ));
    assert!(matches!(parse(&[json_event(0, 1, "", "", "")]), Err(Error::BadDigestLength { index: 0, imr: 0, len: 0 })));
    assert!(matches!(
        parse(&[json_event(3, 1, &d48, "", "")]),
        Err(Error::UnexpectedEventType { index: 0, imr: 3, event_type: 1 })
    ));
    assert!(matches!(
        parse(&[json_event(0, DSTACK_RUNTIME_EVENT_TYPE, &d48, "x", "")]),
        Err(Error::UnexpectedEventType { index: 0, imr: 0, .. })
    ));
    let big = "00".repeat(MAX_JSON_PAYLOAD_LEN + 1);
    assert!(matches!(
        parse(&[json_event(3, DSTACK_RUNTIME_EVENT_TYPE, "", "x", &big)]),
        Err(Error::PayloadTooLarge { index: 0, len, .. }) if len == MAX_JSON_PAYLOAD_LEN + 1
    ));
    // Exactly at the limit is fine.
    let max = "00".repeat(MAX_JSON_PAYLOAD_LEN);
    assert!(parse(&[json_event(3, DSTACK_RUNTIME_EVENT_TYPE, "", "x", &max)]).is_ok());
    let many: Vec<String> =
        (0..=MAX_JSON_EVENTS).map(|_| json_event(3, DSTACK_RUNTIME_EVENT_TYPE, "", "x", "")).collect();
    assert!(matches!(
        parse(&many),
        Err(Error::TooManyEvents { count, .. }) if count == MAX_JSON_EVENTS + 1
    ));
    let huge = format!("[{}]", " ".repeat(MAX_JSON_INPUT_LEN));
    assert!(matches!(from_dstack_json(&huge), Err(Error::InputTooLarge { .. })));
    assert!(matches!(from_dstack_json("{}"), Err(Error::Json(_))));
    assert!(matches!(from_dstack_json(r#"[{"imr":3,"event":"x"}]"#), Err(Error::Json(_))));
    let v9 = r#"[{"imr":3,"event_type":134217729,"event":"x","event_payload":"","version":9}]"#;
    assert!(matches!(from_dstack_json(v9), Err(Error::UnknownDigestVersion { index: 0, version: 9 })));
    // Missing optional fields and unknown fields are tolerated.
    let log = from_dstack_json(r#"[{"imr":3,"event_type":134217729,"event":"a","future":[1,2]}]"#).unwrap();
    assert_eq!(log.runtime.events()[0].payload(), b"");
    // Boot events keep their logged digest.
    let log = parse(&[json_event(1, 7, &"ab".repeat(48), "n", "0102")]).unwrap();
    let boot = BootEvent { imr: 1, event_type: 7, digest: [0xab; 48], name: "n".into(), payload: vec![1, 2] };
    assert_eq!((log.boot, log.runtime), (vec![boot], EventLog::default()));
}

#[test]
fn to_compact_limits() {
    let ev = |name: &str, len: usize| Event::runtime(name, vec![0; len], DigestFormat::V1);
    let enc = |events: Vec<Event>| to_compact(&EventLog::from_events(events));
    assert!(matches!(
        enc(vec![ev("ok", 0), ev("", 0)]),
        Err(Error::Compact(EventLogError::CompactBadNameLength { index: 1, len: 0 }))
    ));
    assert!(matches!(
        enc(vec![ev(&"n".repeat(65), 0)]),
        Err(Error::Compact(EventLogError::CompactBadNameLength { index: 0, len: 65 }))
    ));
    assert!(matches!(enc(vec![ev("é", 0)]), Err(Error::Compact(EventLogError::CompactBadNameByte { .. }))));
    assert!(matches!(
        enc(vec![ev("p", COMPACT_MAX_PAYLOAD_LEN + 1)]),
        Err(Error::Compact(EventLogError::Compact(CompactError::PayloadTooLarge { .. })))
    ));
    assert!(enc(vec![ev("p", COMPACT_MAX_PAYLOAD_LEN)]).is_ok());
    assert!(matches!(
        enc((0..=COMPACT_MAX_EVENTS).map(|_| ev("e", 0)).collect()),
        Err(Error::Compact(EventLogError::Compact(CompactError::TooManyEvents { count: 257, .. })))
    ));
    assert!(matches!(
        enc((0..5).map(|_| ev("e", COMPACT_MAX_PAYLOAD_LEN)).collect()),
        Err(Error::Compact(EventLogError::Compact(CompactError::TooLarge { .. })))
    ));
    assert!(matches!(
        enc(vec![ev("a", 0), Event::runtime("b", vec![], DigestFormat::V2)]),
        Err(Error::MixedDigestFormats { index: 1, first: DigestFormat::V1, found: DigestFormat::V2 })
    ));
}

#[test]
fn v2_json_events() {
    let payload = [0xab, 0xcd];
    let digest = hex::encode(DigestFormat::V2.digest("compose-hash", &payload));
    let preimage = hex::encode(canonical_json_v2("compose-hash", &payload));
    let ev = |d: &str, p: &str| {
        format!(
            r#"[{{"imr":3,"event_type":134217729,"digest":"{d}","event":"compose-hash","event_payload":"abcd","version":2,"preimage":"{p}"}}]"#
        )
    };
    // As GetQuote returns it: digest stripped, preimage filled.
    let log = from_dstack_json(&ev("", &preimage)).unwrap().runtime;
    assert_eq!(log.events()[0].digest_format(), DigestFormat::V2);
    assert_eq!(hex::encode(log.events()[0].digest()), digest);
    assert!(from_dstack_json(&ev(&digest, &preimage)).is_ok());
    // A V1 digest on a V2 event is rejected.
    let v1 = hex::encode(DigestFormat::V1.digest("compose-hash", &payload));
    assert!(matches!(from_dstack_json(&ev(&v1, &preimage)), Err(Error::RuntimeDigestMismatch { .. })));
    // A non-canonical preimage is rejected (Dstack rejects it too).
    let other = hex::encode(br#"{"type":134217729,"name":"compose-hash","payload":"abcd"}"#);
    assert!(matches!(from_dstack_json(&ev("", &other)), Err(Error::PreimageMismatch { .. })));
    // Compact round trip keeps V2.
    let compact = to_compact(&log).unwrap();
    assert_eq!(compact[5], 0x02);
    let back = EventLog::from_compact(&compact).unwrap();
    assert_eq!(back.replay_rtmr3(), log.replay_rtmr3());
    // The same bytes read as V1 replay differently.
    let mut as_v1 = compact.clone();
    as_v1[5] = 0x01;
    assert_ne!(EventLog::from_compact(&as_v1).unwrap().replay_rtmr3(), log.replay_rtmr3());
}
