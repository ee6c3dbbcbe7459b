//! Compact quote v1 (PROTOCOL.md §3.9) on the genuine fixtures: the test vectors PROTOCOL.md
//! publishes, the round trip through dcap-qvl at the fixture's time (never the wall clock), and
//! strict decoding.

use replicatoor_core::attest::{
    collateral::FixedCollateral,
    compact::{self, CompactError, QuoteForm, WELL_KNOWN},
    Measurements, Verifier,
};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// 2025-07-01T00:00:00Z and 2026-03-01T00:00:00Z: inside the two TDX collateral windows (fixture README).
const TDX_NOW: u64 = 1_751_328_000;
const OUTDATED_NOW: u64 = 1_772_323_200;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn dstack_quote() -> Vec<u8> {
    let json: serde_json::Value = serde_json::from_slice(&read("dstack/tdx-lite-getquote.json")).unwrap();
    hex::decode(json["quote"].as_str().unwrap()).unwrap()
}

fn verifier(collateral: &str) -> Verifier {
    let c = serde_json::from_slice(&read(&format!("dcap-qvl-samples/{collateral}"))).unwrap();
    Verifier::new(Box::new(FixedCollateral(c)))
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// (fixture, raw quote, compact length, SHA-256 of the compact form, SHA-256 of the raw = rebuilt quote):
/// the vectors of PROTOCOL.md §3.9.
fn vectors() -> Vec<(&'static str, Vec<u8>, usize, &'static str, &'static str)> {
    vec![
        (
            "dstack/tdx-lite-getquote.json",
            dstack_quote(),
            2523,
            "1c2b527797f0cb019aba3a79e92a3a4512d8463ffe500f553e15bd63f542d6a1",
            "ce9491c22f10cefcc86ea2f20d443d7510a1ee12d7326419534fc096eace6452",
        ),
        (
            "dcap-qvl-samples/tdx_quote",
            read("dcap-qvl-samples/tdx_quote"),
            2524,
            "4f002fea589f34eb4fcb383ab2be605a2c5402d0c69c8130b937895c4c0a27e0",
            "c42f9164325024bca2757bc8819b11879a0a369132ea4e2b7c85df4805ea72db",
        ),
        (
            "dcap-qvl-samples/tdx_quote_outdated",
            read("dcap-qvl-samples/tdx_quote_outdated"),
            2594,
            "c8578d4d042841e271e58b6545dba965538f16527e9e0159d55a9133d0dd517d",
            "4c453ea417a7863ed67c215fe4735d91e26f359c760e5984a277866d8d5758e9",
        ),
    ]
}

#[test]
fn genuine_quotes_encode_to_the_published_vectors_and_rebuild_byte_for_byte() {
    for (name, raw, len, compact_sha, raw_sha) in vectors() {
        assert_eq!(raw.len(), 5006, "{name}");
        let c = compact::encode(&raw).unwrap_or_else(|| panic!("{name} has a compact form"));
        assert_eq!((c.len(), sha256(&c).as_str()), (len, compact_sha), "{name}: compact form");
        assert_eq!(&c[..5], b"RPQC\x01", "{name}");
        let rebuilt = compact::decode(&c).unwrap();
        assert_eq!(sha256(&rebuilt), raw_sha, "{name}: rebuilt");
        assert_eq!(rebuilt, raw, "{name}: rebuilt byte for byte");
        assert_eq!((QuoteForm::of(&c), QuoteForm::of(&raw)), (QuoteForm::Compact, QuoteForm::Raw));
        assert_eq!(compact::to_posted(&raw), c, "{name}: nodes post the compact form");
        assert_eq!(&*compact::to_raw(&raw).unwrap(), &raw[..], "{name}: raw passes unchanged");
        // Intel's intermediate and root go as ids: leaf DER, then ids 2 and 1, then the padding count.
        assert_eq!(&c[c.len() - 4..c.len() - 2], &[0x02, 0x01], "{name}: platform CA, root");
    }
}

#[test]
fn well_known_table_is_the_published_one() {
    let table: Vec<(u8, String)> = WELL_KNOWN.iter().map(|(id, der)| (*id, sha256(der))).collect();
    assert_eq!(
        table,
        vec![
            (0x01, "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3".to_string()),
            (0x02, "22eb770dca215b607b5ccfc21a672b1da5cc660b1ad0365020567979edcaa0e1".to_string()),
            (0x03, "13b2dccef8fc4ec977ee5249743b0f758ebd1e28d768b2e1e12bc348adaa09fb".to_string()),
        ]
    );
}

/// PROTOCOL.md Appendix A gives the exact DER of every well-known id, so an outside decoder needs
/// no copy of ours: it must be the decoder's table byte for byte, every id, nothing more.
#[test]
fn protocol_appendix_a_is_the_well_known_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../PROTOCOL.md");
    let doc = std::fs::read_to_string(&path).expect("read PROTOCOL.md");
    let appendix = doc.split("## Appendix A.").nth(1).expect("PROTOCOL.md has Appendix A");
    let mut published: Vec<(u8, Vec<u8>)> = Vec::new();
    for part in appendix.split("\n### A.").skip(1) {
        let id_hex = part.split("Id `0x").nth(1).and_then(|s| s.get(..2)).expect("a heading names its id");
        let id = u8::from_str_radix(id_hex, 16).expect("id is hex");
        let body = part.split("```").nth(1).expect("a fenced hex block follows the heading");
        let hex: String = body.split_whitespace().collect();
        published.push((id, hex::decode(&hex).expect("Appendix A is hex")));
    }
    let table: Vec<(u8, Vec<u8>)> = WELL_KNOWN.iter().map(|(id, der)| (*id, der.to_vec())).collect();
    assert_eq!(published.len(), table.len(), "one appendix entry per well-known id");
    for ((pid, pder), (tid, tder)) in published.iter().zip(&table) {
        assert_eq!(pid, tid, "appendix ids in table order");
        assert!(pder == tder, "appendix DER of id {pid:#04x} differs from the decoder's table");
    }
}

#[test]
fn compact_and_raw_verify_alike_at_the_fixture_time() {
    for (quote, collateral, now) in [
        (read("dcap-qvl-samples/tdx_quote"), "tdx_quote_collateral.json", TDX_NOW),
        (read("dcap-qvl-samples/tdx_quote_outdated"), "tdx_quote_outdated_collateral.json", OUTDATED_NOW),
        // No collateral ships for the Dstack quote: it fails alike (another platform's collateral).
        (dstack_quote(), "tdx_quote_collateral.json", TDX_NOW),
    ] {
        let v = verifier(collateral);
        let c = compact::encode(&quote).unwrap();
        let (raw_result, compact_result) = (v.verify(&quote, now, 0), v.verify(&c, now, 0));
        let show = |r: &Result<_, _>| match r {
            Ok(q) => serde_json::to_string(q).unwrap(),
            Err(e) => format!("{e:?}"),
        };
        assert_eq!(show(&compact_result), show(&raw_result), "{collateral}");
        assert_eq!(Measurements::parse_unverified(&c), Measurements::parse_unverified(&quote), "same TD report");
    }
    // The genuine TDX quote verifies in both forms.
    let q = read("dcap-qvl-samples/tdx_quote");
    let ok = verifier("tdx_quote_collateral.json").verify(&compact::encode(&q).unwrap(), TDX_NOW, 0).unwrap();
    assert_eq!(ok.tcb_status().to_string(), "UpToDate");
}

#[test]
fn quotes_without_an_exact_compact_form_stay_raw() {
    let raw = dstack_quote();
    let sgx = read("dcap-qvl-samples/sgx_quote");
    let mut nonzero_tail = raw.clone();
    *nonzero_tail.last_mut().unwrap() = 1;
    let mut crlf = raw.clone();
    let at = crlf.windows(28).position(|w| w == b"-----BEGIN CERTIFICATE-----\n").unwrap() + 27;
    crlf[at] = b'\r'; // same length, but not the canonical rendering
    for (what, q) in [("SGX", sgx), ("non-zero padding", nonzero_tail), ("non-canonical PEM", crlf), ("empty", vec![])]
    {
        assert_eq!(compact::encode(&q), None, "{what}");
        assert_eq!(compact::to_posted(&q), q, "{what} is posted raw");
    }
}

#[test]
fn decoding_is_strict() {
    let c = compact::encode(&dstack_quote()).unwrap();
    let leaf_at = c.len() - 2 - 2 - 1268 - 3; // id 0, be16 length, DER, ids 2 and 1, padding
    assert_eq!(&c[leaf_at..leaf_at + 3], &[0x00, 0x04, 0xf4], "leaf carried as DER, 1268 bytes");
    let with = |at: usize, b: &[u8]| {
        let mut m = c.clone();
        m.splice(at..at + b.len(), b.iter().copied());
        compact::decode(&m)
    };
    let mut trailing = c.clone();
    trailing.push(0);
    assert_eq!(compact::decode(&trailing), Err(CompactError::TrailingBytes(1)));
    assert!(matches!(compact::decode(&c[..c.len() - 1]), Err(CompactError::Truncated { .. })));
    assert_eq!(with(4, &[2]), Err(CompactError::UnknownVersion(2)));
    assert!(matches!(with(5, &[3, 0]), Err(CompactError::Header(_))), "SGX version");
    assert!(matches!(with(5 + 4, &[0]), Err(CompactError::Header(_))), "TEE type");
    let count_at = leaf_at - 1;
    assert!(matches!(with(count_at, &[0]), Err(CompactError::OutOfRange { field: "certificate count", .. })));
    assert!(matches!(with(count_at, &[9]), Err(CompactError::OutOfRange { field: "certificate count", .. })));
    assert_eq!(with(c.len() - 4, &[0x04]), Err(CompactError::UnknownId { index: 1, id: 4 }));
    assert!(matches!(with(leaf_at + 1, &[0, 0]), Err(CompactError::OutOfRange { field: "DER length", .. })));
    assert!(matches!(with(c.len() - 2, &[0xff, 0xff]), Err(CompactError::TooLarge(_))));
    // A well-known certificate inline is not the canonical form.
    let mut inline_root = c[..c.len() - 3].to_vec();
    inline_root.extend_from_slice(&[0x00, 0x02, 0x93]);
    inline_root.extend_from_slice(WELL_KNOWN[0].1);
    inline_root.extend_from_slice(&[0x00, 0x46]);
    assert_eq!(WELL_KNOWN[0].1.len(), 0x293);
    assert_eq!(compact::decode(&inline_root), Err(CompactError::NotCanonical { index: 2, id: 1 }));
    // Magic but garbage: malformed, never a panic.
    assert!(compact::decode(b"RPQC").is_err());
}
