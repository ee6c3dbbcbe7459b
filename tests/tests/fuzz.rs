//! Property-based fuzzing (proptest) of every parser of untrusted data: compact and Dstack JSON
//! event logs, secret bundles, DCAP quotes raw and compact (parse and full verification), the request pipeline,
//! chain event logs (ABI decoding), deliveries, and the CLI's hex input.
//!
//! Inputs are mostly structured mutations of valid ones (flip, set, insert, delete, truncate,
//! duplicate, boundary length values), which reach far deeper than random bytes; each target also
//! gets some pure random input. Properties: nothing panics; only the documented error types come
//! back; whatever still decodes re-encodes canonically; and no mutation of a signed input is
//! accepted as anything other than what was signed.
//!
//! `cargo test --test fuzz` runs a small default number of cases per target. `script/fuzz.sh
//! [SECONDS]` runs each target for a time budget (env `FUZZ_SECONDS`) in batches, up to
//! `PROPTEST_CASES` executions, and prints executions per target.

use alloy::{
    primitives::{Address, Bytes, B256, U256},
    sol_types::SolEvent,
};
use proptest::{
    prelude::*,
    sample::Index,
    test_runner::{Config, TestCaseError, TestRunner},
};
use replicatoor::args;
use replicatoor_chain::UpgradeOperator as Op;
use replicatoor_compact_quote as compact;
use replicatoor_core::{
    attest::{
        collateral::NoCollateral,
        eventlog::{self, DigestFormat, Event, EventLog, EventLogError},
        pipeline::{self, Context, Decision},
        quote::Measurements,
        QuoteError, RequestBinding, Verifier,
    },
    crypto::{eip712, HpkeKeypair, SecretBundle},
    delivery::{self, SignedDelivery},
    protocol::{app_reference_id, Deployment, Policy, RefKind},
};
use replicatoor_encode::eventlog::{from_dstack_json, to_compact};
use replicatoor_testkit::{
    doubles::AllowList,
    simulated::{self, SimulatedTd},
};
use sha2::{Digest, Sha256};
use std::{
    fmt::Debug,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        OnceLock,
    },
    time::Instant,
};
use zeroize::Zeroizing;

const NOW: u64 = 1_780_000_000;
const GENUINE_NOW: u64 = 1_751_328_000;
const SECRET_FILE: &[u8] = b"FUZZ-SECRET-FILE::the quick brown fox";

// ---------------------------------------------------------------------------------------------
// The driver: default case counts for `cargo test`, a time budget for script/fuzz.sh.
// ---------------------------------------------------------------------------------------------

/// Run `test` on values of `strategy`: `default_cases` times, or (with `FUZZ_SECONDS`) in batches
/// until the time budget or `PROPTEST_CASES` executions are reached. Panics (with the minimal
/// failing input, after shrinking) on the first failure.
fn fuzz<S>(name: &str, default_cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let env_u64 = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let budget = env_u64("FUZZ_SECONDS");
    let max_cases = env_u64("PROPTEST_CASES");
    let executions = AtomicU64::new(0);
    let start = Instant::now();
    loop {
        let batch = match (budget, max_cases) {
            (None, Some(n)) => n.min(u64::from(u32::MAX)) as u32,
            (None, None) => default_cases,
            (Some(_), _) => 500,
        };
        let config = Config { cases: batch, failure_persistence: None, ..Config::default() };
        let mut runner = TestRunner::new(config);
        let result = runner.run(&strategy, |v| {
            executions.fetch_add(1, Ordering::Relaxed);
            test(v)
        });
        if let Err(e) = result {
            panic!("fuzz target {name} failed after {} executions: {e}", executions.load(Ordering::Relaxed));
        }
        let done = executions.load(Ordering::Relaxed);
        let Some(secs) = budget else { break };
        if start.elapsed().as_secs() >= secs || max_cases.is_some_and(|m| done >= m) {
            break;
        }
    }
    let n = executions.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    eprintln!("fuzz {name}: {n} executions in {secs:.1}s ({:.0}/s)", n as f64 / secs.max(1e-9));
}

/// A structured mutation of a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, u8),
    Truncate(Index),
    /// Copy a run of bytes over another place (repeats fields, lengths, certificates).
    Duplicate(Index, Index, u8),
    /// Overwrite a little-endian u16/u32 (quote length fields) with a boundary value.
    LenLe(Index, bool, u32),
    /// Same, big-endian (compact log and bundle length fields).
    LenBe(Index, bool, u32),
}

fn boundary() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(0x7f),
        Just(0xff),
        Just(0x100),
        Just(0x3fff),
        Just(0x4000),
        Just(0x4001),
        Just(0xffff),
        Just(0x10000),
        Just(0x7fff_ffff),
        Just(u32::MAX),
        any::<u32>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 0..8u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        1 => (any::<Index>(), 1..32u8).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), any::<Index>(), 1..64u8).prop_map(|(a, b, n)| Mutation::Duplicate(a, b, n)),
        1 => (any::<Index>(), any::<bool>(), boundary()).prop_map(|(i, w, v)| Mutation::LenLe(i, w, v)),
        1 => (any::<Index>(), any::<bool>(), boundary()).prop_map(|(i, w, v)| Mutation::LenBe(i, w, v)),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..4)
}

fn apply(base: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut v = base.to_vec();
    for m in muts {
        if v.is_empty() {
            if let Mutation::Insert(_, bytes) = m {
                v.extend_from_slice(bytes);
            }
            continue;
        }
        let len = v.len();
        match m {
            Mutation::Flip(i, bit) => v[i.index(len)] ^= 1 << bit,
            Mutation::Set(i, b) => v[i.index(len)] = *b,
            Mutation::Insert(i, bytes) => {
                let at = i.index(len + 1);
                v.splice(at..at, bytes.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let at = i.index(len);
                v.drain(at..(at + usize::from(*n)).min(len));
            }
            Mutation::Truncate(i) => v.truncate(i.index(len)),
            Mutation::Duplicate(from, to, n) => {
                let (from, to) = (from.index(len), to.index(len));
                let n = usize::from(*n).min(len - from).min(len - to);
                let chunk = v[from..from + n].to_vec();
                v[to..to + n].copy_from_slice(&chunk);
            }
            Mutation::LenLe(i, wide, x) | Mutation::LenBe(i, wide, x) => {
                let bytes: Vec<u8> = match (m, wide) {
                    (Mutation::LenLe(..), true) => x.to_le_bytes().to_vec(),
                    (Mutation::LenLe(..), false) => (*x as u16).to_le_bytes().to_vec(),
                    (_, true) => x.to_be_bytes().to_vec(),
                    (_, false) => (*x as u16).to_be_bytes().to_vec(),
                };
                let at = i.index(len);
                let n = bytes.len().min(len - at);
                v[at..at + n].copy_from_slice(&bytes[..n]);
            }
        }
    }
    v
}

/// A valid input, mutated; or (one time in eight) random bytes starting with `prefix`.
fn mutated_or_random(base: Vec<u8>, prefix: &'static [u8], max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        7 => mutations().prop_map(move |m| apply(&base, &m)),
        1 => prop::collection::vec(any::<u8>(), 0..max).prop_map(move |tail| [prefix, &tail].concat()),
    ]
}

// ---------------------------------------------------------------------------------------------
// Valid inputs.
// ---------------------------------------------------------------------------------------------

fn dep() -> Deployment {
    Deployment { chain_id: 31337, contract: Address::with_last_byte(9) }
}
fn requester() -> Address {
    Address::repeat_byte(0xcd)
}
fn compose_hash() -> [u8; 32] {
    Sha256::digest(b"fuzz app-compose.json").into()
}
fn keys() -> HpkeKeypair {
    HpkeKeypair::from_secret(&Sha256::digest(b"fuzz requester hpke key").into()).expect("key")
}
fn bundle() -> SecretBundle {
    let key: [u8; 32] = Sha256::digest(b"fuzz cluster key").into();
    SecretBundle::new(Zeroizing::new(key), 3, Zeroizing::new(SECRET_FILE.to_vec())).expect("bundle")
}
fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(path)
}

/// A simulated request that the pipeline accepts: (quote, compact log).
fn valid_request() -> &'static (Vec<u8>, Vec<u8>) {
    static R: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    R.get_or_init(|| {
        let td = SimulatedTd::new(compose_hash());
        td.attest(dep().request_report_data(requester(), &keys().public())).expect("attest")
    })
}

fn genuine_quote() -> Vec<u8> {
    std::fs::read(fixture("dcap-qvl-samples/tdx_quote")).expect("fixture")
}

fn dstack_json_log() -> String {
    let text = std::fs::read_to_string(fixture("dstack/tdx-lite-getquote.json")).expect("fixture");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v["event_log"].as_str().expect("event_log").to_string()
}

fn sim_verifier() -> Verifier {
    Verifier::new(Box::new(NoCollateral)).dangerously_trust_simulated_quotes(simulated::anchor())
}

// ---------------------------------------------------------------------------------------------
// Event logs.
// ---------------------------------------------------------------------------------------------

/// Whatever decodes from the compact form re-encodes to the very same bytes, checks against exactly
/// the RTMR3 it replays to, and obeys the claim rules' model.
fn compact_property(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(log) = EventLog::from_compact(bytes) else { return Ok(()) };
    let again = to_compact(&log).map_err(|e| TestCaseError::fail(format!("re-encode: {e}")))?;
    prop_assert_eq!(&again[..], bytes, "compact encoding is not canonical");
    let rtmr3 = log.replay_rtmr3();
    prop_assert!(log.replay_rtmr3_and_check(&rtmr3).is_ok(), "its own replay does not check");
    let mut other = rtmr3;
    other[47] ^= 1;
    prop_assert!(
        matches!(log.replay_rtmr3_and_check(&other), Err(EventLogError::Rtmr3Mismatch { .. })),
        "a different RTMR3 checks"
    );
    let names: Vec<&str> = log.events().iter().map(|e| e.name()).collect();
    let compose = log.events().iter().find(|e| e.name() == eventlog::EVENT_COMPOSE_HASH);
    let got = log.app_info();
    prop_assert_eq!(
        got.is_ok(),
        model_app_info(&names, compose.map_or(0, |e| e.payload().len())),
        "names {:?}: {:?}",
        names,
        got
    );
    Ok(())
}

#[test]
fn fuzz_compact_log_mutated() {
    let base = valid_request().1.clone();
    fuzz("compact_log_mutated", 4096, mutated_or_random(base, b"RPEL\x01\x01", 300), |b| compact_property(&b));
}

#[test]
fn fuzz_compact_log_structured() {
    // Well-formed framing around random names, lengths and payloads: exercises the per-event
    // checks rather than the header.
    let event =
        (prop::collection::vec(any::<u8>(), 0..70), any::<Option<u16>>(), prop::collection::vec(any::<u8>(), 0..40));
    let strategy = (1u8..=3, any::<Option<u16>>(), prop::collection::vec(event, 0..6), any::<bool>());
    fuzz("compact_log_structured", 4096, strategy, |(format, count, events, trailing)| {
        let mut b = b"RPEL\x01".to_vec();
        b.push(format);
        b.extend_from_slice(&count.unwrap_or(events.len() as u16).to_be_bytes());
        for (name, plen, payload) in &events {
            b.push(name.len() as u8);
            b.extend_from_slice(name);
            b.extend_from_slice(&plen.unwrap_or(payload.len() as u16).to_be_bytes());
            b.extend_from_slice(payload);
        }
        if trailing {
            b.push(0);
        }
        compact_property(&b)
    });
}

/// The claim rules of PROTOCOL.md §3.5, written independently of `EventLog::app_info`.
fn model_app_info(names: &[&str], compose_len: usize) -> bool {
    let pos = |n: &str| names.iter().enumerate().filter(|(_, x)| **x == n).map(|(i, _)| i).collect::<Vec<_>>();
    let Some(&boot) = pos(eventlog::EVENT_BOOT_MR_DONE).first() else { return false };
    let ready = pos(eventlog::EVENT_SYSTEM_READY).first().copied();
    let required = |n: &str| matches!(pos(n)[..], [i] if i < boot);
    let optional = |n: &str| match pos(n)[..] {
        [] => true,
        [i] => ready.is_none_or(|r| i < r),
        _ => false,
    };
    required(eventlog::EVENT_COMPOSE_HASH)
        && compose_len == 32
        && required(eventlog::EVENT_APP_ID)
        && required(eventlog::EVENT_INSTANCE_ID)
        && optional(eventlog::EVENT_OS_IMAGE_HASH)
        && optional(eventlog::EVENT_KEY_PROVIDER)
}

#[test]
fn fuzz_claim_rules_match_the_model() {
    const NAMES: [&str; 9] = [
        eventlog::EVENT_BOOT_MR_DONE,
        eventlog::EVENT_SYSTEM_READY,
        eventlog::EVENT_COMPOSE_HASH,
        eventlog::EVENT_APP_ID,
        eventlog::EVENT_INSTANCE_ID,
        eventlog::EVENT_OS_IMAGE_HASH,
        eventlog::EVENT_KEY_PROVIDER,
        "system-preparing",
        "init-script-hash",
    ];
    let strategy = (prop::collection::vec(0..NAMES.len(), 0..12), prop_oneof![Just(32usize), 0..40usize]);
    fuzz("claim_rules_model", 4096, strategy, |(picks, compose_len)| {
        let names: Vec<&str> = picks.iter().map(|&i| NAMES[i]).collect();
        let events = names
            .iter()
            .map(|&n| {
                let payload = if n == eventlog::EVENT_COMPOSE_HASH { vec![0xab; compose_len] } else { vec![1, 2] };
                Event::runtime(n, payload, DigestFormat::V1)
            })
            .collect();
        let got = EventLog::from_events(events).app_info();
        prop_assert_eq!(got.is_ok(), model_app_info(&names, compose_len), "names {:?}: {:?}", names, got);
        Ok(())
    });
}

#[test]
fn fuzz_dstack_json_log() {
    let base = dstack_json_log().into_bytes();
    fuzz("dstack_json_mutated", 2048, mutated_or_random(base, b"[{\"imr\":3,", 200), |b| {
        let s = String::from_utf8_lossy(&b);
        if let Ok(log) = from_dstack_json(&s) {
            let rtmrs = log.replay_all();
            let _ = log.runtime.app_info();
            // Whatever a holder would accept from JSON survives the compact form unchanged.
            if let Ok(compact) = to_compact(&log.runtime) {
                let back = EventLog::from_compact(&compact)
                    .map_err(|e| TestCaseError::fail(format!("own compact output rejected: {e}")))?;
                prop_assert_eq!(back.replay_rtmr3(), rtmrs[3]);
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Secret bundle.
// ---------------------------------------------------------------------------------------------

#[test]
fn fuzz_bundle_decode() {
    let base = bundle().encode().to_vec();
    fuzz("bundle_decode", 4096, mutated_or_random(base, b"RPLB\x01", 120), |b| {
        if let Ok(decoded) = SecretBundle::decode(&b) {
            prop_assert_eq!(&decoded.encode()[..], &b[..], "bundle encoding is not canonical");
            let text = format!("{decoded:?}");
            prop_assert!(!text.contains("FUZZ-SECRET"), "Debug shows the secret: {}", text);
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Quotes: parsing and full verification.
// ---------------------------------------------------------------------------------------------

#[test]
fn fuzz_quote_parse_unverified() {
    let base = valid_request().0.clone();
    let header: &'static [u8] = b"\x04\x00\x02\x00\x81\x00\x00\x00";
    fuzz("quote_parse_unverified", 4096, mutated_or_random(base, header, 1200), |q| parse_property(&q));
}

/// What a parse reads comes from where the layout says, and the signed part lies inside the input.
fn parse_property(q: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(p) = dcap_qvl::quote::Quote::parse(q) {
        prop_assert!(
            p.signed_length() <= q.len(),
            "signed part of {} bytes in a {}-byte quote",
            p.signed_length(),
            q.len()
        );
        if let Ok(chain) = p.raw_cert_chain() {
            prop_assert!(chain.len() <= q.len() - p.signed_length(), "certificate chain longer than the auth data");
        }
    }
    let Ok((version, tee_type, measurements)) = Measurements::parse_unverified(q) else { return Ok(()) };
    prop_assert!(q.len() >= 48, "a {}-byte quote parsed", q.len());
    prop_assert_eq!(version, u16::from_le_bytes([q[0], q[1]]));
    prop_assert_eq!(tee_type, u32::from_le_bytes([q[4], q[5], q[6], q[7]]));
    if let Some(m) = measurements {
        // TD report 1.0 layout, after the 48-byte header (and, in v5, a 6-byte body descriptor).
        let body = if version >= 5 { 54 } else { 48 };
        let at = |offset: usize, len: usize| &q[body + offset..body + offset + len];
        prop_assert_eq!(at(120, 8), &m.td_attributes[..]);
        prop_assert_eq!(at(128, 8), &m.xfam[..]);
        prop_assert_eq!(at(136, 48), &m.mr_td[..]);
        prop_assert_eq!(at(184, 48), &m.mr_config_id[..]);
        for (i, rtmr) in m.rtmr.iter().enumerate() {
            prop_assert_eq!(at(328 + 48 * i, 48), &rtmr[..]);
        }
        prop_assert_eq!(at(520, 64), &m.report_data[..]);
    }
    Ok(())
}

/// A mutated quote verifies only if it still attests exactly what the original did.
fn verify_property(verifier: &Verifier, original: &[u8], q: &[u8], now: u64) -> Result<(), TestCaseError> {
    let want = verifier.verify(original, now, 0).expect("original verifies");
    match verifier.verify(q, now, 0) {
        Ok(got) => {
            prop_assert_eq!(got.measurements(), want.measurements(), "mutation changed what is attested");
            prop_assert_eq!(got.tcb_status(), want.tcb_status());
            prop_assert_eq!(got.is_simulated(), want.is_simulated());
        }
        Err(
            QuoteError::Malformed(_)
            | QuoteError::WrongTeeType { .. }
            | QuoteError::Invalid(_)
            | QuoteError::Tcb(_)
            | QuoteError::CollateralUnavailable(_)
            | QuoteError::SimulatedNotTrusted,
        ) => {}
    }
    Ok(())
}

#[test]
fn fuzz_verify_simulated_quote_mutated() {
    let base = valid_request().0.clone();
    let (trusting, strict) = (sim_verifier(), Verifier::new(Box::new(NoCollateral)));
    fuzz(
        "verify_simulated_mutated",
        512,
        mutated_or_random(base.clone(), b"\x04\x00\x02\x00\x81\x00\x00\x00", 1200),
        |q| {
            verify_property(&trusting, &base, &q, NOW)?;
            // Nothing made from a simulated quote passes for a genuine one.
            prop_assert!(strict.verify(&q, NOW, 0).is_err());
            Ok(())
        },
    );
}

#[test]
fn fuzz_verify_genuine_quote_mutated() {
    let base = genuine_quote();
    let c = replicatoor::collateral::fixed_from_file(&fixture("dcap-qvl-samples/tdx_quote_collateral.json"))
        .expect("collateral");
    let verifier = Verifier::new(Box::new(c));
    fuzz(
        "verify_genuine_mutated",
        512,
        mutated_or_random(base.clone(), b"\x04\x00\x02\x00\x81\x00\x00\x00", 1200),
        |q| verify_property(&verifier, &base, &q, GENUINE_NOW),
    );
}

/// The genuine TDX quote in compact form (PROTOCOL.md §3.9).
fn genuine_compact_quote() -> Vec<u8> {
    compact::encode(&genuine_quote()).expect("the genuine quote has a compact form")
}

/// Decoding a compact quote never panics, stays within the size cap, has one canonical form (what
/// decodes re-encodes to the same bytes), and a reader of the posted bytes sees the rebuilt quote.
fn compact_quote_property(c: &[u8]) -> Result<(), TestCaseError> {
    let Ok(raw) = compact::decode(c) else {
        prop_assert!(Measurements::parse_unverified(c).is_err() || !c.starts_with(&compact::MAGIC));
        return Ok(());
    };
    prop_assert!(raw.len() <= replicatoor_core::attest::verifier::MAX_QUOTE_LEN);
    let again = compact::encode(&raw);
    prop_assert_eq!(again.as_deref(), Some(c), "compact quote is not canonical");
    prop_assert_eq!(Measurements::parse_unverified(c), Measurements::parse_unverified(&raw));
    Ok(())
}

#[test]
fn fuzz_compact_quote_decode() {
    let base = genuine_compact_quote();
    fuzz("compact_quote_decode", 4096, mutated_or_random(base, b"RPQC\x01", 3000), |c| compact_quote_property(&c));
}

#[test]
fn fuzz_verify_genuine_compact_quote_mutated() {
    let (raw, base) = (genuine_quote(), genuine_compact_quote());
    let c = replicatoor::collateral::fixed_from_file(&fixture("dcap-qvl-samples/tdx_quote_collateral.json"))
        .expect("collateral");
    let verifier = Verifier::new(Box::new(c));
    fuzz("verify_genuine_compact_mutated", 512, mutated_or_random(base, b"RPQC\x01", 3000), |q| {
        // Checked against what the raw quote attests: the compact form attests nothing else.
        verify_property(&verifier, &raw, &q, GENUINE_NOW)
    });
}

// ---------------------------------------------------------------------------------------------
// The whole pipeline on mutated requests.
// ---------------------------------------------------------------------------------------------

#[test]
fn fuzz_pipeline_mutated_request() {
    let (quote, log) = valid_request().clone();
    let verifier = sim_verifier();
    let measured = verifier.verify(&quote, NOW, 0).expect("verifies");
    let refs = AllowList::with([
        (measured.measurements().os_reference_id(), RefKind::Os),
        (app_reference_id(&compose_hash()), RefKind::App),
    ]);
    let policy =
        Policy { tcb_statuses: 1, allow_debug: false, allow_simulated: true, min_tcb_evaluation_data_number: 0 };
    let ctx = Context { deployment: dep(), verifier: &verifier, policy, references: &refs, now: NOW };
    let binding = RequestBinding { request_id: U256::from(1), requester: requester(), hpke_pub_key: keys().public() };
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let strategy = (any::<bool>(), mutations());
    fuzz("pipeline_mutated", 512, strategy, |(in_quote, muts)| {
        let (q, l) = if in_quote { (apply(&quote, &muts), log.clone()) } else { (quote.clone(), apply(&log, &muts)) };
        match rt.block_on(pipeline::evaluate(&ctx, binding, &q, &l)) {
            Decision::Accept(a) => {
                // Only an attestation of the same TD, app and key can pass.
                prop_assert_eq!(a.quote().measurements(), measured.measurements());
                prop_assert_eq!(a.app_ref(), app_reference_id(&compose_hash()));
            }
            Decision::Refuse(..) => {}
            // Every reference answers and the simulated root is trusted: nothing is left for later or to others.
            Decision::Retry(why) | Decision::Abstain(why) => {
                prop_assert!(false, "a mutated request is neither accepted nor refused: {}", why)
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Chain event logs (ABI decoding of what the follower hands the roles).
// ---------------------------------------------------------------------------------------------

/// Decoding never panics, and a decoded event re-encodes to something that decodes to itself.
fn event_property<E: SolEvent + Debug + PartialEq>(topics: &[B256], data: &[u8]) -> Result<(), TestCaseError> {
    let inner = alloy::primitives::Log::new_unchecked(
        Address::with_last_byte(9),
        topics.to_vec(),
        Bytes::copy_from_slice(data),
    );
    let rpc = alloy::rpc::types::Log { inner: inner.clone(), ..Default::default() };
    if let Ok(decoded) = rpc.log_decode::<E>() {
        let again = E::decode_log_data(&decoded.inner.data.encode_log_data())
            .map_err(|e| TestCaseError::fail(format!("re-encoded event does not decode: {e}")))?;
        prop_assert_eq!(&again, &decoded.inner.data);
    }
    // Validation is stricter than plain decoding and never disagrees with it. (It does not make
    // the encoding canonical: a shifted tail can still validate. Harmless here, as our logs are
    // emitted by the contract, and noted in the fuzzing report.)
    if let Ok(strict) = E::decode_log_data_validate(&inner.data) {
        let lax = E::decode_log_data(&inner.data).map_err(|e| TestCaseError::fail(format!("lax decode: {e}")))?;
        prop_assert_eq!(strict, lax);
    }
    Ok(())
}

/// A valid log of each event the agents and auditors decode, as (topics, data).
fn valid_event_logs() -> Vec<(Vec<B256>, Vec<u8>)> {
    let (quote, log) = valid_request().clone();
    let enc = |d: alloy::primitives::LogData| (d.topics().to_vec(), d.data.to_vec());
    vec![
        enc(Op::SecretRequested {
            requestId: U256::from(1),
            hpkePubKey: B256::repeat_byte(2),
            requester: requester(),
            epoch: 1,
            quote: quote.into(),
            eventLog: log.clone().into(),
        }
        .encode_log_data()),
        enc(Op::SecretDelivered {
            requestId: U256::from(1),
            epoch: 1,
            relayer: requester(),
            osRef: B256::repeat_byte(3),
            appRef: B256::repeat_byte(4),
            policy: B256::repeat_byte(8),
            encapsulatedKey: vec![5; 32].into(),
            ciphertext: vec![6; 80].into(),
            signature: vec![7; 65].into(),
        }
        .encode_log_data()),
        enc(Op::RequestRefused {
            requestId: U256::from(1),
            epoch: 1,
            relayer: requester(),
            reason: 7,
            signature: vec![7; 65].into(),
        }
        .encode_log_data()),
        enc(Op::GenesisProposed {
            proposalId: U256::from(1),
            cluster: requester(),
            epoch: 1,
            proposer: requester(),
            quote: vec![1; 100].into(),
            eventLog: log.into(),
        }
        .encode_log_data()),
        enc(Op::PolicySet {
            tcbStatuses: 1,
            allowDebug: false,
            allowSimulated: true,
            minTcbEvaluationDataNumber: 3,
            effectiveAt: 9,
            note: "n".into(),
        }
        .encode_log_data()),
        enc(Op::ReferenceProposed {
            id: B256::repeat_byte(8),
            kind: 2,
            measurement: vec![9; 32].into(),
            activatesAt: 10,
            note: "app".into(),
        }
        .encode_log_data()),
    ]
}

fn all_events(topics: &[B256], data: &[u8]) -> Result<(), TestCaseError> {
    event_property::<Op::SecretRequested>(topics, data)?;
    event_property::<Op::SecretDelivered>(topics, data)?;
    event_property::<Op::RequestRefused>(topics, data)?;
    event_property::<Op::GenesisProposed>(topics, data)?;
    event_property::<Op::ClusterBootstrapped>(topics, data)?;
    event_property::<Op::CustodyReset>(topics, data)?;
    event_property::<Op::PolicySet>(topics, data)?;
    event_property::<Op::ReferenceProposed>(topics, data)?;
    event_property::<Op::ReferenceRevoked>(topics, data)
}

#[test]
fn fuzz_chain_log_decode() {
    let logs = valid_event_logs();
    let topic_mut = (any::<Index>(), any::<Index>(), any::<[u8; 32]>(), 0..4u8);
    let strategy = (any::<Index>(), mutations(), prop::collection::vec(topic_mut, 0..2));
    fuzz("chain_log_mutated", 4096, strategy, |(which, data_muts, topic_muts)| {
        let (mut topics, data) = logs[which.index(logs.len())].clone();
        for (i, byte, value, op) in topic_muts {
            match op {
                // Flip one byte of a topic (e.g. dirty an address's upper bytes).
                0 if !topics.is_empty() => {
                    let t = i.index(topics.len());
                    topics[t].0[byte.index(32)] ^= 0x80;
                }
                1 if !topics.is_empty() => {
                    topics.pop();
                }
                2 if topics.len() < 4 => topics.push(B256::from(value)),
                _ => {
                    if !topics.is_empty() {
                        let t = i.index(topics.len());
                        topics[t] = B256::from(value);
                    }
                }
            }
        }
        all_events(&topics, &apply(&data, &data_muts))
    });
}

#[test]
fn fuzz_chain_log_random() {
    let sigs = [
        Op::SecretRequested::SIGNATURE_HASH,
        Op::SecretDelivered::SIGNATURE_HASH,
        Op::ReferenceProposed::SIGNATURE_HASH,
    ];
    let strategy =
        (any::<Index>(), prop::collection::vec(any::<[u8; 32]>(), 0..4), prop::collection::vec(any::<u8>(), 0..400));
    fuzz("chain_log_random", 4096, strategy, |(sig, rest, data)| {
        let mut topics = vec![sigs[sig.index(sigs.len())]];
        topics.extend(rest.into_iter().map(B256::from));
        all_events(&topics, &data)
    });
}

// ---------------------------------------------------------------------------------------------
// Deliveries.
// ---------------------------------------------------------------------------------------------

fn good_delivery() -> &'static SignedDelivery {
    static D: OnceLock<SignedDelivery> = OnceLock::new();
    D.get_or_init(|| {
        let (quote, log) = valid_request().clone();
        let verifier = sim_verifier();
        let os = verifier.verify(&quote, NOW, 0).expect("verifies").measurements().os_reference_id();
        let refs = AllowList::with([(os, RefKind::Os), (app_reference_id(&compose_hash()), RefKind::App)]);
        let policy =
            Policy { tcb_statuses: 1, allow_debug: false, allow_simulated: true, min_tcb_evaluation_data_number: 0 };
        let ctx = Context { deployment: dep(), verifier: &verifier, policy, references: &refs, now: NOW };
        let binding =
            RequestBinding { request_id: U256::from(1), requester: requester(), hpke_pub_key: keys().public() };
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let Decision::Accept(a) = rt.block_on(pipeline::evaluate(&ctx, binding, &quote, &log)) else {
            panic!("valid request not accepted")
        };
        delivery::seal(&dep(), &a, &bundle()).expect("seal")
    })
}

/// A delivery opens only as the original bundle; nothing else leaks through the error.
fn open_property(d: &SignedDelivery) -> Result<(), TestCaseError> {
    let cluster = bundle().cluster_address();
    match delivery::open(&dep(), &keys(), requester(), cluster, d) {
        Ok(b) => {
            prop_assert_eq!(b.file(), SECRET_FILE);
            prop_assert_eq!(b.cluster_address(), cluster);
        }
        Err(e) => {
            let text = format!("{e} {e:?}");
            prop_assert!(!text.contains("FUZZ-SECRET"), "error shows the secret: {}", text);
        }
    }
    Ok(())
}

#[test]
fn fuzz_delivery_open_mutated() {
    let good = good_delivery().clone();
    let cluster_key = bundle().cluster_signer().clone();
    // Which field to mutate, the mutations, and whether the cluster re-signs the result.
    let strategy = (0..6u8, mutations(), any::<bool>());
    fuzz("delivery_open_mutated", 1024, strategy, |(field, muts, resign)| {
        let mut d = good.clone();
        match field {
            0 => d.ciphertext = apply(&d.ciphertext, &muts),
            1 => d.encapsulated_key = apply(&d.encapsulated_key, &muts),
            2 => d.signature = apply(&d.signature, &muts),
            3 => {
                d.os_ref = B256::from_slice(
                    &apply(d.os_ref.as_slice(), &muts).into_iter().chain([0; 32]).take(32).collect::<Vec<_>>(),
                )
            }
            4 => {
                d.request_id = U256::from_be_slice(
                    &apply(&d.request_id.to_be_bytes::<32>(), &muts).into_iter().take(32).collect::<Vec<_>>(),
                )
            }
            _ => {
                d.app_ref = B256::from_slice(
                    &apply(d.app_ref.as_slice(), &muts).into_iter().chain([0; 32]).take(32).collect::<Vec<_>>(),
                )
            }
        }
        if resign && field != 2 {
            let record = replicatoor_testkit::record_of(&d);
            d.signature = eip712::sign(&dep(), &record, &cluster_key).expect("sign").to_vec();
        }
        open_property(&d)
    });
}

#[test]
fn fuzz_delivery_open_random() {
    let strategy = (
        any::<[u8; 32]>(),
        prop::collection::vec(any::<u8>(), 0..40),
        prop::collection::vec(any::<u8>(), 0..200),
        prop::collection::vec(any::<u8>(), 0..70),
    );
    fuzz("delivery_open_random", 1024, strategy, |(id, enc, ct, sig)| {
        let d = SignedDelivery {
            request_id: U256::from_be_bytes(id),
            request: B256::from(id),
            policy: B256::from(id),
            os_ref: B256::from(id),
            app_ref: B256::ZERO,
            encapsulated_key: enc,
            ciphertext: ct,
            signature: sig,
        };
        prop_assert!(delivery::open(&dep(), &keys(), requester(), bundle().cluster_address(), &d).is_err());
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// CLI hex input.
// ---------------------------------------------------------------------------------------------

#[test]
fn fuzz_cli_hex_input() {
    let dir = std::env::temp_dir().join(format!("replicatoor-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("input");
    let text = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..80),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| format!("0x{}\n", hex::encode(b)).into_bytes()),
        prop::collection::vec(prop::sample::select(b"0123456789abcdefABCDEFx \n\t".to_vec()), 0..80),
    ];
    fuzz("cli_hex_input", 256, text, |raw| {
        std::fs::write(&path, &raw).expect("write");
        let got = args::read_bytes(&path).map_err(|e| TestCaseError::fail(format!("read_bytes: {e}")))?;
        let trimmed = std::str::from_utf8(&raw).map(str::trim).unwrap_or_default();
        let digits = trimmed.strip_prefix("0x").unwrap_or(trimmed);
        match hex::decode(digits) {
            Ok(decoded) if !digits.is_empty() => prop_assert_eq!(got, decoded),
            _ => prop_assert_eq!(got, raw.clone()),
        }
        let s = String::from_utf8_lossy(&raw);
        if let Ok(k) = args::hex_n::<32>("key", &s) {
            prop_assert_eq!(hex::decode(s.trim().trim_start_matches("0x")).expect("hex"), k.to_vec());
        }
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
}
