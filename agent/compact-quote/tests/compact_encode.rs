//! The compact quote encoder (PROTOCOL.md §3.9) on the genuine fixtures: the test vectors PROTOCOL.md
//! publishes, the round trip through the decoder and the kernel's verifier (dcap-qvl) at the fixture's time
//! (never the wall clock), and the quotes that stay raw.

use replicatoor_compact_quote::{self as compact, QuoteForm};
use replicatoor_core::attest::{collateral::FixedCollateral, Measurements, Verifier};
use replicatoor_testkit::{dstack, read_fixture};
use sha2::{Digest, Sha256};

/// 2025-07-01T00:00:00Z and 2026-03-01T00:00:00Z: inside the two TDX collateral windows (fixture README).
const TDX_NOW: u64 = 1_751_328_000;
const OUTDATED_NOW: u64 = 1_772_323_200;

fn verifier(collateral: &str) -> Verifier {
    let c = serde_json::from_slice(&read_fixture(&format!("dcap-qvl-samples/{collateral}"))).unwrap();
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
            dstack::quote(),
            2523,
            "1c2b527797f0cb019aba3a79e92a3a4512d8463ffe500f553e15bd63f542d6a1",
            "ce9491c22f10cefcc86ea2f20d443d7510a1ee12d7326419534fc096eace6452",
        ),
        (
            "dcap-qvl-samples/tdx_quote",
            read_fixture("dcap-qvl-samples/tdx_quote"),
            2524,
            "4f002fea589f34eb4fcb383ab2be605a2c5402d0c69c8130b937895c4c0a27e0",
            "c42f9164325024bca2757bc8819b11879a0a369132ea4e2b7c85df4805ea72db",
        ),
        (
            "dcap-qvl-samples/tdx_quote_outdated",
            read_fixture("dcap-qvl-samples/tdx_quote_outdated"),
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
fn compact_and_raw_verify_alike_at_the_fixture_time() {
    for (quote, collateral, now) in [
        (read_fixture("dcap-qvl-samples/tdx_quote"), "tdx_quote_collateral.json", TDX_NOW),
        (read_fixture("dcap-qvl-samples/tdx_quote_outdated"), "tdx_quote_outdated_collateral.json", OUTDATED_NOW),
        // No collateral ships for the Dstack quote: it fails alike (another platform's collateral).
        (dstack::quote(), "tdx_quote_collateral.json", TDX_NOW),
    ] {
        let v = verifier(collateral);
        let c = compact::encode(&quote).unwrap();
        let (raw_result, compact_result) = (v.verify(&quote, now, 0), v.verify(&c, now, 0));
        let show = |r: &Result<_, _>| format!("{r:?}");
        assert_eq!(show(&compact_result), show(&raw_result), "{collateral}");
        assert_eq!(Measurements::parse_unverified(&c), Measurements::parse_unverified(&quote), "same TD report");
    }
    // The genuine TDX quote verifies in both forms.
    let q = read_fixture("dcap-qvl-samples/tdx_quote");
    let ok = verifier("tdx_quote_collateral.json").verify(&compact::encode(&q).unwrap(), TDX_NOW, 0).unwrap();
    assert_eq!(ok.tcb_status().to_string(), "UpToDate");
}

#[test]
fn quotes_without_an_exact_compact_form_stay_raw() {
    let raw = dstack::quote();
    let sgx = read_fixture("dcap-qvl-samples/sgx_quote");
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
