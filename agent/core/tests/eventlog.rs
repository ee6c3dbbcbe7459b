//! The event-log decoder, RTMR replay and claim rules, on the recorded Dstack fixture (read with the
//! posting node's JSON reader, `replicatoor-encode`) and on constructed logs.

use replicatoor_core::attest::eventlog::*;
use replicatoor_encode::eventlog::{from_dstack_json, to_compact};
use replicatoor_testkit::dstack::{self, quote_rtmrs};

const COMPOSE_HASH: &str = "86b0e55f2fa8e4fb69d890f14f54d5612707646e2573d54e0d2ddaaade77caa9";

/// The fixture's `event_log` string and raw quote.
fn fixture() -> (String, Vec<u8>) {
    (dstack::event_log(), dstack::quote())
}

#[test]
fn quote_layout_sanity() {
    let (_, quote) = fixture();
    // report_data sits right after RTMR3, at body 520..584.
    assert_eq!(quote[48 + 520..48 + 584], dstack::report_data());
    assert!(hex::encode(quote_rtmrs(&quote)[3]).starts_with("6f24c170d0fd63fc2b1b53202eea47b0"));
}

#[test]
fn replay_matches_quote() {
    let (log, quote) = fixture();
    let log = from_dstack_json(&log).unwrap().runtime;
    let rtmr3 = quote_rtmrs(&quote)[3];
    assert_eq!(log.replay_rtmr3(), rtmr3);
    log.replay_rtmr3_and_check(&rtmr3).unwrap();
}

#[test]
fn app_info_from_fixture() {
    let (log, _) = fixture();
    let log = from_dstack_json(&log).unwrap().runtime;
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
fn changed_payload_is_rtmr3_mismatch() {
    let (json, quote) = fixture();
    let rtmr3 = quote_rtmrs(&quote)[3];
    let forged = COMPOSE_HASH.replacen("86b0", "86b1", 1);
    let tampered = json.replacen(COMPOSE_HASH, &forged, 1);
    assert_ne!(tampered, json);
    let log = from_dstack_json(&tampered).unwrap().runtime;
    let err = log.replay_rtmr3_and_check(&rtmr3).unwrap_err();
    assert!(
        matches!(err, EventLogError::Rtmr3Mismatch { expected, replayed } if expected == rtmr3 && replayed != rtmr3)
    );

    // Same through the compact path: flip one payload byte.
    let mut compact = to_compact(&from_dstack_json(&json).unwrap().runtime).unwrap();
    let last = compact.len() - 4; // inside key-provider / storage-fs area
    compact[last] ^= 1;
    let log = EventLog::from_compact(&compact).unwrap();
    assert!(matches!(log.replay_rtmr3_and_check(&rtmr3), Err(EventLogError::Rtmr3Mismatch { .. })));
}

/// `log` with its events changed by `f`.
fn edit(log: &EventLog, f: impl FnOnce(&mut Vec<Event>)) -> EventLog {
    let mut events = log.events().to_vec();
    f(&mut events);
    EventLog::from_events(events)
}

#[test]
fn duplicated_compose_hash_is_error() {
    let (json, _) = fixture();
    let log = from_dstack_json(&json).unwrap().runtime;
    let pos = log.events().iter().position(|e| e.name() == "compose-hash").unwrap();
    let dup = log.events()[pos].clone();
    // A second compose-hash right after the first (before boot-mr-done).
    let log = edit(&log, |events| events.insert(pos + 1, dup.clone()));
    assert!(matches!(
        log.app_info(),
        Err(EventLogError::DuplicateEvent { ref name, first, second }) if name == "compose-hash" && first == pos && second == pos + 1
    ));
    assert!(matches!(log.runtime_event("compose-hash"), Err(EventLogError::DuplicateEvent { .. })));

    // A late (app-emitted) one with a different value: still an error.
    let log = edit(&from_dstack_json(&json).unwrap().runtime, |events| {
        events.push(Event::runtime("compose-hash", vec![0xee; 32], DigestFormat::V1))
    });
    assert!(matches!(log.app_info(), Err(EventLogError::DuplicateEvent { .. })));
}

#[test]
fn app_info_policy() {
    let (json, _) = fixture();
    let base = from_dstack_json(&json).unwrap().runtime;
    let without = |name: &str| edit(&base, |events| events.retain(|e| e.name() != name));
    assert!(matches!(without("compose-hash").app_info(), Err(EventLogError::MissingEvent { name: "compose-hash" })));
    assert!(matches!(without("boot-mr-done").app_info(), Err(EventLogError::MissingEvent { name: "boot-mr-done" })));
    // Malformed compose-hash.
    let l = edit(&base, |events| {
        for e in events.iter_mut() {
            if e.name() == "compose-hash" {
                *e = Event::runtime("compose-hash", vec![1; 31], DigestFormat::V1);
            }
        }
    });
    assert!(matches!(l.app_info(), Err(EventLogError::BadComposeHashLength { len: 31 })));
    // compose-hash moved after boot-mr-done.
    let l = edit(&without("compose-hash"), |events| {
        events.push(Event::runtime("compose-hash", vec![7; 32], DigestFormat::V1))
    });
    assert!(matches!(
        l.app_info(),
        Err(EventLogError::EventAfterBoundary { name: "compose-hash", boundary: "boot-mr-done", .. })
    ));
    // key-provider after system-ready.
    let l = edit(&without("key-provider"), |events| {
        events.push(Event::runtime("key-provider", b"{}".to_vec(), DigestFormat::V1))
    });
    assert!(matches!(
        l.app_info(),
        Err(EventLogError::EventAfterBoundary { name: "key-provider", boundary: "system-ready", .. })
    ));
    // Optional claims may be absent.
    let info = without("os-image-hash").app_info().unwrap();
    assert_eq!(info.os_image_hash, None);
}

fn valid_compact() -> Vec<u8> {
    let (json, _) = fixture();
    to_compact(&from_dstack_json(&json).unwrap().runtime).unwrap()
}

#[test]
fn malformed_compact_inputs() {
    let good = valid_compact();
    // Every proper prefix is truncated.
    for n in 0..good.len() {
        let r = EventLog::from_compact(&good[..n]);
        assert!(matches!(r, Err(EventLogError::Compact(CompactError::Truncated { .. }))), "prefix {n}: {r:?}");
    }
    let mut t = good.clone();
    t.push(0);
    assert!(matches!(
        EventLog::from_compact(&t),
        Err(EventLogError::Compact(CompactError::TrailingBytes { extra: 1, offset })) if offset == good.len()
    ));
    let mut t = good.clone();
    t[0] = b'X';
    assert!(
        matches!(EventLog::from_compact(&t), Err(EventLogError::Compact(CompactError::BadMagic { found })) if &found == b"XPEL")
    );
    let mut t = good.clone();
    t[4] = 2;
    assert!(matches!(EventLog::from_compact(&t), Err(EventLogError::Compact(CompactError::BadVersion { found: 2 }))));
    let mut t = good.clone();
    t[5] = 3;
    assert!(matches!(
        EventLog::from_compact(&t),
        Err(EventLogError::Compact(CompactError::BadDigestFormat { found: 3 }))
    ));
    assert!(matches!(
        EventLog::from_compact(b"RPEL\x01\x01\x01\x01"),
        Err(EventLogError::Compact(CompactError::TooManyEvents { count: 257, .. }))
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
        Err(EventLogError::Compact(CompactError::PayloadTooLarge { index: 0, len: 16385, .. }))
    ));
    let mut big = b"RPEL\x01\x01\x00\x01".to_vec();
    big.resize(COMPACT_MAX_LEN + 1, 0);
    assert!(matches!(EventLog::from_compact(&big), Err(EventLogError::Compact(CompactError::TooLarge { .. }))));
    // Zero events is a valid (empty) log.
    let empty = EventLog::from_compact(b"RPEL\x01\x01\x00\x00").unwrap();
    assert_eq!(empty.replay_rtmr3(), [0u8; 48]);
    assert!(matches!(
        EventLog::from_compact(b"RPEL\x01\x02\x00\x00"),
        Err(EventLogError::Compact(CompactError::BadDigestFormat { found: 2 }))
    ));
    assert_eq!(to_compact(&empty).unwrap(), b"RPEL\x01\x01\x00\x00");
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
            assert_eq!(to_compact(&log).unwrap(), bytes);
        }
    }
    eprintln!("fuzz: {accepted} of 10000 inputs accepted");
    assert!(accepted > 0);
}

/// The compact form's framing (`eventlog/compact.rs`) is not counted on the trust path (TRUST.md section 1):
/// whatever events it returns, [`EventLog::from_raw`] checks each name and computes each digest, and the
/// replay must reach the quote's RTMR3. Every change a framing bug could make to the recorded Dstack log is
/// refused: by the replay, or, for an event re-split at a `:` of its payload (the same V1 preimage, so the
/// same digest), by the name rule.
#[test]
fn a_mistaken_framing_is_refused_by_the_name_rule_or_the_replay() {
    let (json, quote) = fixture();
    let rtmr3 = quote_rtmrs(&quote)[3];
    let compact = to_compact(&from_dstack_json(&json).unwrap().runtime).unwrap();
    let (format, genuine) = decode_compact(&compact).unwrap();
    let check = |raw: &[(Vec<u8>, Vec<u8>)], format| {
        let raw = raw.iter().map(|(n, p)| (&n[..], &p[..])).collect();
        EventLog::from_raw(format, raw).and_then(|log| log.replay_rtmr3_and_check(&rtmr3))
    };
    let genuine: Vec<(Vec<u8>, Vec<u8>)> = genuine.into_iter().map(|(n, p)| (n.to_vec(), p.to_vec())).collect();
    check(&genuine, format).expect("the genuine log replays");
    let at = |name: &str| genuine.iter().position(|(n, _)| n == name.as_bytes()).unwrap();
    let (c, k) = (at("compose-hash"), at("key-provider"));
    // Each changes the events, given the compose-hash event's position.
    type Tamper = fn(&mut Vec<(Vec<u8>, Vec<u8>)>, usize);
    let tamperings: [(&str, Tamper); 6] = [
        ("another compose hash", |ev, c| ev[c].1 = vec![0; 32]),
        ("the compose-hash event dropped", |ev, c| drop(ev.remove(c))),
        ("two events swapped", |ev, c| ev.swap(c, c + 1)),
        ("an event repeated", |ev, c| ev.insert(c, ev[c].clone())),
        ("an event renamed", |ev, c| ev[c].0 = b"compose-hash2".to_vec()),
        ("a payload cut short", |ev, c| ev[c].1.truncate(16)),
    ];
    for (what, tamper) in tamperings {
        let mut raw = genuine.clone();
        tamper(&mut raw, c);
        let e = check(&raw, format).expect_err(what);
        assert!(matches!(e, EventLogError::Rtmr3Mismatch { .. }), "{what}: {e}");
    }
    let other = if format == DigestFormat::V1 { DigestFormat::V2 } else { DigestFormat::V1 };
    let e = check(&genuine, other).unwrap_err();
    assert!(matches!(e, EventLogError::Rtmr3Mismatch { .. }), "the other digest format: {e}");

    // key-provider's payload is JSON, so it holds a ':' to re-split at: `key-provider:{"name"` with the rest as
    // payload has the same V1 preimage, so it replays, and would hide the event from the claim rules.
    assert_eq!(format, DigestFormat::V1, "the recorded log is V1");
    let (name, payload) = &genuine[k];
    let colon = payload.iter().position(|&b| b == b':').expect("a ':' in key-provider's payload");
    let mut raw = genuine.clone();
    raw[k] = ([&name[..], b":", &payload[..colon]].concat(), payload[colon + 1..].to_vec());
    assert_eq!(
        Event::runtime(String::from_utf8(raw[k].0.clone()).unwrap(), raw[k].1.clone(), format).digest(),
        Event::runtime("key-provider", payload.clone(), format).digest(),
        "the re-split event has the genuine digest"
    );
    let e = check(&raw, format).unwrap_err();
    assert!(matches!(e, EventLogError::CompactBadNameByte { byte: b':', .. }), "a re-split event: {e}");
}
