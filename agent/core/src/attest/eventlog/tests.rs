//! Tests of the event-log module, on the recorded Dstack fixture and constructed logs.

use super::*;

const FIXTURE: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/dstack/tdx-lite-getquote.json"));

const COMPOSE_HASH: &str = "86b0e55f2fa8e4fb69d890f14f54d5612707646e2573d54e0d2ddaaade77caa9";

/// The `event_log` string and the quote bytes of the fixture.
fn fixture() -> (String, Vec<u8>) {
    let v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    let log = v["event_log"].as_str().unwrap().to_owned();
    let quote = hex::decode(v["quote"].as_str().unwrap()).unwrap();
    (log, quote)
}

/// RTMR0..=3 of a TDX v4 quote. Layout: 48-byte header, then the
/// 584-byte TD report: tee_tcb_svn 16, mr_seam 48, mr_signer_seam 48,
/// seam_attributes 8, td_attributes 8, xfam 8, mr_td 48, mr_config_id 48,
/// mr_owner 48, mr_owner_config 48 (= 328 bytes), rtmr0..3 48 each
/// (body 328..520), report_data 64 (body 520..584). So RTMR3 is body
/// 472..520 = quote 520..568.
fn quote_rtmrs(quote: &[u8]) -> [[u8; 48]; 4] {
    assert_eq!(u16::from_le_bytes([quote[0], quote[1]]), 4, "quote version");
    assert_eq!(u32::from_le_bytes(quote[4..8].try_into().unwrap()), 0x81, "TEE type TDX");
    let body = &quote[48..48 + 584];
    let mut out = [[0u8; 48]; 4];
    for (i, r) in out.iter_mut().enumerate() {
        r.copy_from_slice(&body[328 + 48 * i..376 + 48 * i]);
    }
    out
}

#[test]
fn quote_layout_sanity() {
    let (_, quote) = fixture();
    let v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    // report_data sits right after RTMR3, at body 520..584.
    let report_data = hex::decode(v["report_data"].as_str().unwrap()).unwrap();
    assert_eq!(&quote[48 + 520..48 + 584], &report_data[..]);
    assert!(hex::encode(quote_rtmrs(&quote)[3]).starts_with("6f24c170d0fd63fc2b1b53202eea47b0"));
}

#[test]
fn fixture_parses() {
    let (log, _) = fixture();
    let log = EventLog::from_dstack_json(&log).unwrap();
    assert_eq!(log.events().len(), 29);
    let names: Vec<&str> = log.runtime_events().map(|(_, e)| e.name()).collect();
    assert_eq!(
        names,
        [
            "system-preparing",
            "app-id",
            "compose-hash",
            "instance-id",
            "boot-mr-done",
            "os-image-hash",
            "key-provider",
            "storage-fs",
            "system-ready"
        ]
    );
    assert!(log.runtime_events().all(|(_, e)| e.digest_format() == Some(DigestFormat::V1) && e.digest().len() == 48));
    assert!(log.events().iter().all(|e| e.digest().len() == 48));
}

#[test]
fn replay_matches_quote() {
    let (log, quote) = fixture();
    let log = EventLog::from_dstack_json(&log).unwrap();
    let rtmrs = quote_rtmrs(&quote);
    assert_eq!(log.replay_all(), rtmrs);
    for i in 0..4 {
        assert_eq!(log.replay_rtmr(i).unwrap(), rtmrs[i as usize], "rtmr{i}");
    }
    log.replay_rtmr3_and_check(&rtmrs[3]).unwrap();
    assert!(matches!(log.replay_rtmr(4), Err(EventLogError::NoSuchRtmr { imr: 4 })));
}

#[test]
fn app_info_from_fixture() {
    let (log, _) = fixture();
    let log = EventLog::from_dstack_json(&log).unwrap();
    let info = log.app_info().unwrap();
    assert_eq!(hex::encode(info.compose_hash), COMPOSE_HASH);
    assert_eq!(hex::encode(&info.app_id), "86b0e55f2fa8e4fb69d890f14f54d5612707646e");
    assert_eq!(hex::encode(&info.instance_id), "050bf89570575fe8fab4cb8f0a62a9e64efe8ead");
    assert_eq!(
        info.os_image_hash.as_deref().map(hex::encode).as_deref(),
        Some("07a2388c7a6a1b6a646d443f1517990a4ec294471d63146cda9d56972765051d")
    );
    let kp = info.key_provider.unwrap();
    assert!(kp.starts_with(br#"{"name":"kms","id":""#));
    assert_eq!(log.runtime_event("storage-fs").unwrap(), Some(&b"zfs"[..]));
    assert_eq!(log.runtime_event("nope").unwrap(), None);
}

#[test]
fn compact_round_trip() {
    let (json, quote) = fixture();
    let log = EventLog::from_dstack_json(&json).unwrap();
    let compact = log.to_compact().unwrap();
    eprintln!("compact size for the fixture: {} bytes", compact.len());
    assert!(compact.len() < 600, "{} bytes", compact.len());
    assert_eq!(&compact[..8], b"RPEL\x01\x01\x00\x09");
    let back = EventLog::from_compact(&compact).unwrap();
    assert_eq!(back.events().len(), 9);
    assert_eq!(back.replay_rtmr(3).unwrap(), log.replay_rtmr(3).unwrap());
    back.replay_rtmr3_and_check(&quote_rtmrs(&quote)[3]).unwrap();
    assert_eq!(back.app_info().unwrap(), log.app_info().unwrap());
    let runtime: Vec<&Event> = log.runtime_events().map(|(_, e)| e).collect();
    assert_eq!(back.events().iter().collect::<Vec<_>>(), runtime);
    // Canonical: re-encoding gives the same bytes.
    assert_eq!(back.to_compact().unwrap(), compact);
    // RTMR0..=2 are not carried.
    assert_eq!(back.replay_rtmr(0).unwrap(), [0u8; 48]);
}

#[test]
fn changed_payload_is_rtmr3_mismatch() {
    let (json, quote) = fixture();
    let rtmr3 = quote_rtmrs(&quote)[3];
    let forged = COMPOSE_HASH.replacen("86b0", "86b1", 1);
    let tampered = json.replacen(COMPOSE_HASH, &forged, 1);
    assert_ne!(tampered, json);
    let log = EventLog::from_dstack_json(&tampered).unwrap();
    let err = log.replay_rtmr3_and_check(&rtmr3).unwrap_err();
    assert!(
        matches!(err, EventLogError::Rtmr3Mismatch { expected, replayed } if expected == rtmr3 && replayed != rtmr3)
    );

    // Same through the compact path: flip one payload byte.
    let mut compact = EventLog::from_dstack_json(&json).unwrap().to_compact().unwrap();
    let last = compact.len() - 4; // inside key-provider / storage-fs area
    compact[last] ^= 1;
    let log = EventLog::from_compact(&compact).unwrap();
    assert!(matches!(log.replay_rtmr3_and_check(&rtmr3), Err(EventLogError::Rtmr3Mismatch { .. })));
}

#[test]
fn logged_runtime_digest_must_match() {
    // Genuine V1 digest from Dstack's verifier/fixtures/quote-report.json.
    let ok = r#"[{"imr":3,"event_type":134217729,"digest":"837c2dd72f8a4c740159e5e042ed79b7eaaa5ab3a151a45e27bc366bb8b27e6c3faec87aab1e95197d3e6d23308d448c","event":"app-id","event_payload":"3763bc34552cf3a27ff71ad5f7a90471562a1a2d","extra":{"x":1}}]"#;
    let log = EventLog::from_dstack_json(ok).unwrap();
    assert_eq!(
        hex::encode(log.events()[0].digest()),
        "837c2dd72f8a4c740159e5e042ed79b7eaaa5ab3a151a45e27bc366bb8b27e6c3faec87aab1e95197d3e6d23308d448c"
    );
    let bad = ok.replacen("3763bc", "3763bd", 1);
    assert!(matches!(EventLog::from_dstack_json(&bad), Err(EventLogError::RuntimeDigestMismatch { index: 0, .. })));
}

#[test]
fn duplicated_compose_hash_is_error() {
    let (json, _) = fixture();
    let mut log = EventLog::from_dstack_json(&json).unwrap();
    let (pos, dup) =
        log.runtime_events().find(|(_, e)| e.name() == "compose-hash").map(|(i, e)| (i, e.clone())).unwrap();
    // A second compose-hash right after the first (before boot-mr-done).
    log.events.insert(pos + 1, dup.clone());
    assert!(matches!(
        log.app_info(),
        Err(EventLogError::DuplicateEvent { ref name, first, second }) if name == "compose-hash" && first == pos && second == pos + 1
    ));
    assert!(matches!(log.runtime_event("compose-hash"), Err(EventLogError::DuplicateEvent { .. })));

    // A late (app-emitted) one with a different value: still an error.
    let mut log = EventLog::from_dstack_json(&json).unwrap();
    log.events.push(Event::runtime("compose-hash", vec![0xee; 32], DigestFormat::V1));
    assert!(matches!(log.app_info(), Err(EventLogError::DuplicateEvent { .. })));
}

#[test]
fn app_info_policy() {
    let (json, _) = fixture();
    let base = EventLog::from_dstack_json(&json).unwrap();
    let without = |name: &str| {
        let mut l = base.clone();
        l.events.retain(|e| e.name() != name);
        l
    };
    assert!(matches!(without("compose-hash").app_info(), Err(EventLogError::MissingEvent { name: "compose-hash" })));
    assert!(matches!(without("boot-mr-done").app_info(), Err(EventLogError::MissingEvent { name: "boot-mr-done" })));
    // Malformed compose-hash.
    let mut l = base.clone();
    for e in &mut l.events {
        if e.name == "compose-hash" {
            *e = Event::runtime("compose-hash", vec![1; 31], DigestFormat::V1);
        }
    }
    assert!(matches!(l.app_info(), Err(EventLogError::BadComposeHashLength { len: 31 })));
    // compose-hash moved after boot-mr-done.
    let mut l = without("compose-hash");
    l.events.push(Event::runtime("compose-hash", vec![7; 32], DigestFormat::V1));
    assert!(matches!(
        l.app_info(),
        Err(EventLogError::EventAfterBoundary { name: "compose-hash", boundary: "boot-mr-done", .. })
    ));
    // key-provider after system-ready.
    let mut l = without("key-provider");
    l.events.push(Event::runtime("key-provider", b"{}".to_vec(), DigestFormat::V1));
    assert!(matches!(
        l.app_info(),
        Err(EventLogError::EventAfterBoundary { name: "key-provider", boundary: "system-ready", .. })
    ));
    // Optional claims may be absent.
    let info = without("os-image-hash").app_info().unwrap();
    assert_eq!(info.os_image_hash, None);
}

fn json_event(imr: u32, event_type: u32, digest: &str, name: &str, payload: &str) -> String {
    format!(
        r#"{{"imr":{imr},"event_type":{event_type},"digest":"{digest}","event":"{name}","event_payload":"{payload}"}}"#
    )
}

#[test]
fn malformed_json_inputs() {
    let d48 = "00".repeat(48);
    let parse = |events: &[String]| EventLog::from_dstack_json(&format!("[{}]", events.join(",")));

    assert!(matches!(parse(&[json_event(7, 1, &d48, "", "")]), Err(EventLogError::ImrOutOfRange { index: 0, imr: 7 })));
    assert!(matches!(
        parse(&[json_event(0, 1, &d48, "", ""), json_event(3, DSTACK_RUNTIME_EVENT_TYPE, "", "x", "zz")]),
        Err(EventLogError::BadHex { index: 1, field: "event_payload", .. })
    ));
    assert!(matches!(
        parse(&[json_event(1, 1, "abc", "", "")]),
        Err(EventLogError::BadHex { index: 0, field: "digest", .. })
    ));
    assert!(matches!(
        parse(&[json_event(2, 1, &"00".repeat(32), "", "")]),
        Err(EventLogError::BadDigestLength { index: 0, imr: 2, len: 32 })
    ));
    assert!(matches!(
        parse(&[json_event(0, 1, "", "", "")]),
        Err(EventLogError::BadDigestLength { index: 0, imr: 0, len: 0 })
    ));
    assert!(matches!(
        parse(&[json_event(3, 1, &d48, "", "")]),
        Err(EventLogError::UnexpectedEventType { index: 0, imr: 3, event_type: 1 })
    ));
    assert!(matches!(
        parse(&[json_event(0, DSTACK_RUNTIME_EVENT_TYPE, &d48, "x", "")]),
        Err(EventLogError::UnexpectedEventType { index: 0, imr: 0, .. })
    ));
    let big = "00".repeat(MAX_JSON_PAYLOAD_LEN + 1);
    assert!(matches!(
        parse(&[json_event(3, DSTACK_RUNTIME_EVENT_TYPE, "", "x", &big)]),
        Err(EventLogError::PayloadTooLarge { index: 0, len, .. }) if len == MAX_JSON_PAYLOAD_LEN + 1
    ));
    // Exactly at the limit is fine.
    let max = "00".repeat(MAX_JSON_PAYLOAD_LEN);
    assert!(parse(&[json_event(3, DSTACK_RUNTIME_EVENT_TYPE, "", "x", &max)]).is_ok());
    let many: Vec<String> =
        (0..=MAX_JSON_EVENTS).map(|_| json_event(3, DSTACK_RUNTIME_EVENT_TYPE, "", "x", "")).collect();
    assert!(matches!(
        parse(&many),
        Err(EventLogError::TooManyEvents { count, .. }) if count == MAX_JSON_EVENTS + 1
    ));
    let huge = format!("[{}]", " ".repeat(MAX_JSON_INPUT_LEN));
    assert!(matches!(EventLog::from_dstack_json(&huge), Err(EventLogError::InputTooLarge { .. })));
    assert!(matches!(EventLog::from_dstack_json("{}"), Err(EventLogError::Json(_))));
    assert!(matches!(EventLog::from_dstack_json(r#"[{"imr":3,"event":"x"}]"#), Err(EventLogError::Json(_))));
    let v9 = r#"[{"imr":3,"event_type":134217729,"event":"x","event_payload":"","version":9}]"#;
    assert!(matches!(
        EventLog::from_dstack_json(v9),
        Err(EventLogError::UnknownDigestVersion { index: 0, version: 9 })
    ));
    // Missing optional fields and unknown fields are tolerated.
    let log = EventLog::from_dstack_json(r#"[{"imr":3,"event_type":134217729,"event":"a","future":[1,2]}]"#).unwrap();
    assert_eq!(log.events()[0].payload(), b"");
}

fn valid_compact() -> Vec<u8> {
    let (json, _) = fixture();
    EventLog::from_dstack_json(&json).unwrap().to_compact().unwrap()
}

#[test]
fn malformed_compact_inputs() {
    let good = valid_compact();
    // Every proper prefix is truncated.
    for n in 0..good.len() {
        let r = EventLog::from_compact(&good[..n]);
        assert!(matches!(r, Err(EventLogError::CompactTruncated { .. })), "prefix {n}: {r:?}");
    }
    let mut t = good.clone();
    t.push(0);
    assert!(matches!(
        EventLog::from_compact(&t),
        Err(EventLogError::CompactTrailingBytes { extra: 1, offset }) if offset == good.len()
    ));
    let mut t = good.clone();
    t[0] = b'X';
    assert!(matches!(EventLog::from_compact(&t), Err(EventLogError::CompactBadMagic { found }) if &found == b"XPEL"));
    let mut t = good.clone();
    t[4] = 2;
    assert!(matches!(EventLog::from_compact(&t), Err(EventLogError::CompactBadVersion { found: 2 })));
    let mut t = good.clone();
    t[5] = 3;
    assert!(matches!(EventLog::from_compact(&t), Err(EventLogError::CompactBadDigestFormat { found: 3 })));
    assert!(matches!(
        EventLog::from_compact(b"RPEL\x01\x01\x01\x01"),
        Err(EventLogError::CompactTooManyEvents { count: 257, .. })
    ));
    assert!(matches!(
        EventLog::from_compact(b"RPEL\x01\x01\x00\x01\x00"),
        Err(EventLogError::CompactBadNameLength { index: 0, len: 0 })
    ));
    assert!(matches!(
        EventLog::from_compact(b"RPEL\x01\x01\x00\x01\x41"),
        Err(EventLogError::CompactBadNameLength { index: 0, len: 65 })
    ));
    assert!(matches!(
        EventLog::from_compact(b"RPEL\x01\x01\x00\x01\x02a\x07\x00\x00"),
        Err(EventLogError::CompactBadNameByte { index: 0, position: 1, byte: 7 })
    ));
    assert!(matches!(
        EventLog::from_compact(b"RPEL\x01\x01\x00\x01\x03a:b\x00\x00"),
        Err(EventLogError::CompactBadNameByte { index: 0, position: 1, byte: b':' })
    ));
    assert!(matches!(
        EventLog::from_compact(b"RPEL\x01\x01\x00\x01\x01a\x40\x01"),
        Err(EventLogError::CompactPayloadTooLarge { index: 0, len: 16385, .. })
    ));
    let mut big = b"RPEL\x01\x01\x00\x01".to_vec();
    big.resize(COMPACT_MAX_LEN + 1, 0);
    assert!(matches!(EventLog::from_compact(&big), Err(EventLogError::CompactTooLarge { .. })));
    // Zero events is a valid (empty) log.
    let empty = EventLog::from_compact(b"RPEL\x01\x01\x00\x00").unwrap();
    assert_eq!(empty.replay_rtmr(3).unwrap(), [0u8; 48]);
    assert!(matches!(
        EventLog::from_compact(b"RPEL\x01\x02\x00\x00"),
        Err(EventLogError::CompactBadDigestFormat { found: 2 })
    ));
    assert_eq!(empty.to_compact().unwrap(), b"RPEL\x01\x01\x00\x00");
}

#[test]
fn to_compact_limits() {
    let ev = |name: &str, len: usize| Event::runtime(name, vec![0; len], DigestFormat::V1);
    let enc = |events: Vec<Event>| EventLog::from_events(events).to_compact();
    assert!(matches!(enc(vec![ev("ok", 0), ev("", 0)]), Err(EventLogError::CompactBadNameLength { index: 1, len: 0 })));
    assert!(matches!(
        enc(vec![ev(&"n".repeat(65), 0)]),
        Err(EventLogError::CompactBadNameLength { index: 0, len: 65 })
    ));
    assert!(matches!(enc(vec![ev("é", 0)]), Err(EventLogError::CompactBadNameByte { .. })));
    assert!(matches!(
        enc(vec![ev("p", COMPACT_MAX_PAYLOAD_LEN + 1)]),
        Err(EventLogError::CompactPayloadTooLarge { .. })
    ));
    assert!(enc(vec![ev("p", COMPACT_MAX_PAYLOAD_LEN)]).is_ok());
    assert!(matches!(
        enc((0..=COMPACT_MAX_EVENTS).map(|_| ev("e", 0)).collect()),
        Err(EventLogError::CompactTooManyEvents { count: 257, .. })
    ));
    assert!(matches!(
        enc((0..5).map(|_| ev("e", COMPACT_MAX_PAYLOAD_LEN)).collect()),
        Err(EventLogError::CompactTooLarge { .. })
    ));
    assert!(matches!(
        enc(vec![ev("a", 0), Event::runtime("b", vec![], DigestFormat::V2)]),
        Err(EventLogError::MixedDigestFormats { index: 1, first: DigestFormat::V1, found: DigestFormat::V2 })
    ));
}

#[test]
fn v1_digest_vector() {
    // Genuine: Dstack verifier/fixtures/quote-report.json logs this digest
    // for app-id = 3763bc34552cf3a27ff71ad5f7a90471562a1a2d.
    let payload = hex::decode("3763bc34552cf3a27ff71ad5f7a90471562a1a2d").unwrap();
    assert_eq!(
        hex::encode(DigestFormat::V1.digest("app-id", &payload)),
        "837c2dd72f8a4c740159e5e042ed79b7eaaa5ab3a151a45e27bc366bb8b27e6c3faec87aab1e95197d3e6d23308d448c"
    );
}

#[test]
fn v2_digest_vector() {
    // Canonical strings from Dstack's own tests
    // (dstack/cc-eventlog/src/runtime_events.rs).
    assert_eq!(
        canonical_json_v2("compose-hash", &[0xab, 0xcd]),
        r#"{"name":"compose-hash","payload":"abcd","type":134217729}"#
    );
    assert_eq!(canonical_json_v2("", &[]), r#"{"name":"","payload":"","type":134217729}"#);
    assert_eq!(
        canonical_json_v2("event\"with\\special\nchars", &[0xff]),
        r#"{"name":"event\"with\\special\nchars","payload":"ff","type":134217729}"#
    );
    assert!(canonical_json_v2("\x08\x0c\n\r\t\x01", &[]).contains(r#""name":"\b\f\n\r\t\u0001""#));
    assert!(canonical_json_v2("测试-emoji-🦀", &[]).contains("测试-emoji-🦀"));
    // Digest computed independently with Python:
    // hashlib.sha384(json.dumps({"type":134217729,"name":"compose-hash","payload":"abcd"},
    //   sort_keys=True, separators=(",",":")).encode()).hexdigest()
    assert_eq!(
        hex::encode(DigestFormat::V2.digest("compose-hash", &[0xab, 0xcd])),
        "9dde1673f544faa94b921825209593ddde08d0baf9cd6990175dffaf3081f1bb10311d56de189491feb33842a050ad7b"
    );
    assert_ne!(
        DigestFormat::V1.digest("compose-hash", &[0xab, 0xcd]),
        DigestFormat::V2.digest("compose-hash", &[0xab, 0xcd])
    );
}

#[test]
fn v2_escaping_matches_serde_json() {
    // serde_json's escaping (what Dstack's serde_jcs builds on) for every
    // char 0..0x80 plus some non-ASCII, keys in sorted order.
    #[derive(serde::Serialize)]
    struct Canon<'a> {
        name: &'a str,
        payload: String,
        #[serde(rename = "type")]
        ty: u32,
    }
    let mut names: Vec<String> = (0u8..0x80).map(|b| format!("a{}z", char::from(b))).collect();
    names.push("\u{2028}ü\u{7f}".into());
    for name in names {
        let expected =
            serde_json::to_string(&Canon { name: &name, payload: "0aff".into(), ty: DSTACK_RUNTIME_EVENT_TYPE })
                .unwrap();
        assert_eq!(canonical_json_v2(&name, &[0x0a, 0xff]), expected, "{name:?}");
    }
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
    let log = EventLog::from_dstack_json(&ev("", &preimage)).unwrap();
    assert_eq!(log.events()[0].digest_format(), Some(DigestFormat::V2));
    assert_eq!(hex::encode(log.events()[0].digest()), digest);
    assert!(EventLog::from_dstack_json(&ev(&digest, &preimage)).is_ok());
    // A V1 digest on a V2 event is rejected.
    let v1 = hex::encode(DigestFormat::V1.digest("compose-hash", &payload));
    assert!(matches!(
        EventLog::from_dstack_json(&ev(&v1, &preimage)),
        Err(EventLogError::RuntimeDigestMismatch { .. })
    ));
    // A non-canonical preimage is rejected (Dstack rejects it too).
    let other = hex::encode(br#"{"type":134217729,"name":"compose-hash","payload":"abcd"}"#);
    assert!(matches!(EventLog::from_dstack_json(&ev("", &other)), Err(EventLogError::PreimageMismatch { .. })));
    // Compact round trip keeps V2.
    let compact = log.to_compact().unwrap();
    assert_eq!(compact[5], 0x02);
    let back = EventLog::from_compact(&compact).unwrap();
    assert_eq!(back.replay_rtmr(3).unwrap(), log.replay_rtmr(3).unwrap());
    // The same bytes read as V1 replay differently.
    let mut as_v1 = compact.clone();
    as_v1[5] = 0x01;
    assert_ne!(EventLog::from_compact(&as_v1).unwrap().replay_rtmr(3).unwrap(), log.replay_rtmr(3).unwrap());
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[test]
fn from_compact_never_panics() {
    let good = valid_compact();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for i in 0..10_000 {
        let bytes: Vec<u8> = match i % 3 {
            // Pure noise.
            0 => (0..rng.next() % 700).map(|_| rng.next() as u8).collect(),
            // Valid header, noisy body.
            1 => {
                let mut b = b"RPEL\x01".to_vec();
                b.push(1 + (rng.next() % 2) as u8);
                b.extend_from_slice(&[0, (rng.next() % 12) as u8]);
                b.extend((0..rng.next() % 300).map(|_| (rng.next() % 0x50) as u8));
                b
            }
            // Mutated valid encoding.
            _ => {
                let mut b = good.clone();
                for _ in 0..1 + rng.next() % 4 {
                    let p = (rng.next() as usize) % b.len();
                    b[p] ^= 1 << (rng.next() % 8);
                }
                let cut = (rng.next() as usize) % (b.len() + 8);
                b.truncate(cut);
                b
            }
        };
        if let Ok(log) = EventLog::from_compact(&bytes) {
            accepted += 1;
            // Whatever is accepted is canonical.
            assert_eq!(log.to_compact().unwrap(), bytes);
        }
    }
    eprintln!("fuzz: {accepted} of 10000 inputs accepted");
    assert!(accepted > 0);
}
