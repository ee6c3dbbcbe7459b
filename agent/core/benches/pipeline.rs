//! Holder pipeline throughput, excluding the chain: what one core spends on one request.
//!
//! `cargo bench -p replicatoor-core --bench pipeline` (release profile, no harness). Each case warms up,
//! then runs a simple timing loop for `BENCH_SECONDS` (default 1.5 s) and prints ns/op and ops/s;
//! the figures also go to `bench/pipeline.json` (or `$PIPELINE_BENCH_OUT`) for `script/bench.sh`.
//! `BENCH_ONLY=verify_genuine,request_genuine` runs only the cases named (e.g. under `perf record`).
//! Single-threaded. A bench, not a test: nothing asserts a time.
//!
//! Fixtures: the genuine Intel TDX quote + collateral from dcap-qvl's samples (verified at
//! 1751328000) and a recorded Dstack GetQuote response (its event log; its quote has no collateral).

use alloy::{
    primitives::{Address, U256},
    signers::local::PrivateKeySigner,
};
use replicatoor_core::{
    attest::{
        collateral::{FixedCollateral, NoCollateral},
        eventlog::EventLog,
        pipeline::{self, Context, Decision},
        quote::Measurements,
        AcceptedRequest, RequestBinding, Verifier,
    },
    crypto::{
        eip712::{self, Delivery},
        HpkeKeypair, SecretBundle,
    },
    delivery,
    protocol::{Deployment, Policy},
};
use replicatoor_testkit::{
    doubles::AllowList,
    simulated::{self, SimulatedTd},
};
use std::{
    future::Future,
    hint::black_box,
    path::{Path, PathBuf},
    pin::pin,
    task::{Context as TaskContext, Poll, Waker},
    time::{Duration, Instant},
};
use zeroize::Zeroizing;

/// When the genuine fixture's collateral is valid (2025-07-01T00:00:00Z).
const GENUINE_NOW: u64 = 1_751_328_000;
/// Any time works for simulated quotes (their collateral is made for the day).
const SIM_NOW: u64 = 1_780_000_000;

/// Drive a future that never waits (no I/O here: references and collateral are in memory).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut TaskContext::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("bench future was not ready: it must not do I/O"),
    }
}

struct Case {
    key: &'static str,
    what: String,
    ns_per_op: f64,
    iterations: u64,
}

struct Bench {
    budget: Duration,
    /// `BENCH_ONLY=key[,key…]`: run only these cases (e.g. under a profiler).
    only: Option<Vec<String>>,
    cases: Vec<Case>,
}

impl Bench {
    /// Warm up, then time `f` in batches until the budget is spent.
    fn run<T>(&mut self, key: &'static str, what: impl Into<String>, mut f: impl FnMut() -> T) -> f64 {
        let what = what.into();
        if self.only.as_ref().is_some_and(|only| !only.iter().any(|k| k == key)) {
            return f64::NAN;
        }
        let warm = Instant::now();
        let mut batch = 1u64;
        while warm.elapsed() < self.budget / 5 {
            black_box(f());
            batch += 1;
        }
        let batch = (batch / 20).clamp(1, 10_000);
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < self.budget {
            for _ in 0..batch {
                black_box(f());
            }
            n += batch;
        }
        let ns = start.elapsed().as_nanos() as f64 / n as f64;
        println!("  {what:<58} {ns:>12.0} ns/op {:>12.1} ops/s", 1e9 / ns);
        self.cases.push(Case { key, what, ns_per_op: ns, iterations: n });
        ns
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn bundle(file_len: usize) -> SecretBundle {
    let key = PrivateKeySigner::random();
    let mut file = vec![0u8; file_len];
    getrandom::fill(&mut file).expect("OS randomness");
    SecretBundle::new(Zeroizing::new(key.to_bytes().0), 1, Zeroizing::new(file)).expect("valid bundle")
}

/// A simulated new node's request: (binding, quote, compact event log).
fn simulated_request(dep: &Deployment, td: &SimulatedTd, id: u64) -> (RequestBinding, Vec<u8>, Vec<u8>) {
    let requester = Address::repeat_byte(0xcd);
    let pk = HpkeKeypair::generate().public();
    let (quote, log) = td.attest(dep.request_report_data(requester, &pk)).expect("simulated quote");
    (RequestBinding { request_id: U256::from(id), requester, hpke_pub_key: pk }, quote, log)
}

fn accept(ctx: &Context<'_, AllowList>, binding: RequestBinding, quote: &[u8], log: &[u8]) -> AcceptedRequest {
    match ready(pipeline::evaluate(ctx, binding, quote, log)) {
        Decision::Accept(a) => *a,
        other => panic!("simulated request not accepted: {other:?}"),
    }
}

fn main() {
    let secs: f64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1.5);
    let only = std::env::var("BENCH_ONLY").ok().map(|s| s.split(',').map(str::to_owned).collect());
    let mut b = Bench { budget: Duration::from_secs_f64(secs), only, cases: Vec::new() };
    let dep = Deployment { chain_id: 31337, contract: Address::repeat_byte(9) };
    let policy =
        Policy { tcb_statuses: 1, allow_debug: false, allow_simulated: true, min_tcb_evaluation_data_number: 0 };

    // Fixtures.
    let genuine_quote = std::fs::read(fixtures().join("dcap-qvl-samples/tdx_quote")).expect("genuine quote");
    let genuine_collateral = std::fs::read(fixtures().join("dcap-qvl-samples/tdx_quote_collateral.json"));
    let genuine = Verifier::new(Box::new(FixedCollateral(
        serde_json::from_slice(&genuine_collateral.expect("genuine collateral")).expect("collateral JSON"),
    )));
    let dstack: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("dstack/tdx-lite-getquote.json")).expect("dstack fixture"),
    )
    .expect("dstack json");
    let dstack_log = replicatoor_encode::eventlog::from_dstack_json(dstack["event_log"].as_str().expect("event_log"))
        .expect("dstack event log");
    let dstack_log = replicatoor_encode::eventlog::to_compact(&dstack_log.runtime).expect("compact log");
    let dstack_quote = hex::decode(dstack["quote"].as_str().expect("quote")).expect("quote hex");
    let dstack_rtmr3 =
        Measurements::parse_unverified(&dstack_quote).expect("dstack quote").2.expect("TD report").rtmr[3];
    let sim_verifier = Verifier::new(Box::new(NoCollateral)).dangerously_trust_simulated_quotes(simulated::anchor());
    let td = SimulatedTd::new([7u8; 32]);
    let (sim_binding, sim_quote, sim_log) = simulated_request(&dep, &td, 1);
    let ctx =
        Context { deployment: dep, verifier: &sim_verifier, policy, references: &AllowList::allow_all(), now: SIM_NOW };
    let accepted = accept(&ctx, sim_binding, &sim_quote, &sim_log);
    let (b1k, b64k) = (bundle(1024), bundle(64 * 1024));
    let signer = b1k.cluster_signer().clone();

    println!(
        "holder pipeline, single thread ({} s per case; genuine quote {} B, simulated quote {} B, Dstack compact log {} B)",
        secs,
        genuine_quote.len(),
        sim_quote.len(),
        dstack_log.len()
    );

    // (a) genuine quote verification with dcap-qvl.
    let v = genuine.verify(&genuine_quote, GENUINE_NOW, 0).expect("genuine quote verifies");
    assert_eq!(v.tcb_status().name(), "UpToDate");
    b.run("verify_genuine", "(a) verify genuine TDX quote (dcap-qvl, fixed collateral)", || {
        genuine.verify(&genuine_quote, GENUINE_NOW, 0).expect("verifies")
    });

    // (b) simulated quote verification (trusted simulated root).
    b.run("verify_simulated", "(b) verify simulated TDX quote (simulated PKI, trusted)", || {
        sim_verifier.verify(&sim_quote, SIM_NOW, 0).expect("verifies")
    });

    // (c) Dstack event log: decode the compact form, replay RTMR3, read the app claims.
    let replay = || {
        let log = EventLog::from_compact(&dstack_log).expect("compact log");
        log.replay_rtmr3_and_check(&dstack_rtmr3).expect("RTMR3 replays");
        log.app_info().expect("app info")
    };
    b.run("eventlog_replay", "(c) Dstack log: from_compact + RTMR3 replay + app_info", replay);

    // (d) HPKE seal alone (the hpke crate with our suite; holders reach it only via delivery::seal),
    // and delivery::seal = bundle encode + HPKE seal + EIP-712 sign as the cluster.
    let pk = accepted.binding().hpke_pub_key;
    for (key, label, bd) in [("hpke_seal_1k", "1 KiB", &b1k), ("hpke_seal_64k", "64 KiB", &b64k)] {
        let plaintext = bd.encode();
        let info = dep.hpke_info(U256::from(1));
        let aad = replicatoor_core::protocol::hpke_aad(accepted.os_ref(), accepted.app_ref());
        b.run(key, format!("(d) HPKE seal of a {label} bundle (X25519, ChaCha20-Poly1305)"), || {
            hpke_seal(&pk, &info, &aad, &plaintext)
        });
    }
    for (key, label, bd) in [("delivery_seal_1k", "1 KiB", &b1k), ("delivery_seal_64k", "64 KiB", &b64k)] {
        b.run(key, format!("(d) delivery::seal of a {label} bundle (encode+HPKE+sign)"), || {
            delivery::seal(&dep, &accepted, bd).expect("sealed")
        });
    }

    // The pipeline's first step: is the requester's X25519 key usable (not a low-order point)?
    b.run("key_check", "(d) recipient key check (pipeline step 0: one X25519 multiplication)", || {
        replicatoor_core::crypto::hpke::is_usable_public_key(&pk)
    });

    // (e) EIP-712 signature of a delivery (1 KiB bundle's ciphertext).
    let sealed = delivery::seal(&dep, &accepted, &b1k).expect("sealed");
    let record = Delivery {
        requestId: sealed.request_id,
        request: sealed.request,
        policy: sealed.policy,
        osRef: sealed.os_ref,
        appRef: sealed.app_ref,
        encapsulatedKey: sealed.encapsulated_key.into(),
        ciphertext: sealed.ciphertext.into(),
    };
    b.run("eip712_sign", "(e) EIP-712 sign of a Delivery (secp256k1)", || {
        eip712::sign(&dep, &record, &signer).expect("signed")
    });

    // (f) one whole request, single-threaded.
    let sim_ns = b.run("request_simulated", "(f) simulated request: evaluate + seal + sign (1 KiB)", || {
        let a = accept(&ctx, sim_binding, &sim_quote, &sim_log);
        delivery::seal(&dep, &a, &b1k).expect("sealed")
    });
    let genuine_ns =
        b.run("request_genuine", "(f) genuine path: key check + verify + log replay + seal + sign", || {
            assert!(replicatoor_core::crypto::hpke::is_usable_public_key(&pk));
            let v = genuine.verify(&genuine_quote, GENUINE_NOW, 0).expect("verifies");
            let app = replay();
            black_box((v, app));
            delivery::seal(&dep, &accepted, &b1k).expect("sealed")
        });
    println!(
        "  => {:.0} requests/s per core (simulated), {:.0} requests/s per core (genuine)",
        1e9 / sim_ns,
        1e9 / genuine_ns
    );

    write_json(&b, secs);
}

/// The same HPKE suite as `crypto::hpke` (RFC 9180 base mode, DHKEM-X25519, HKDF-SHA256, ChaCha20-Poly1305).
fn hpke_seal(pk: &[u8; 32], info: &[u8], aad: &[u8], plaintext: &[u8]) -> (Vec<u8>, Vec<u8>) {
    use hpke::{aead::ChaCha20Poly1305, kdf::HkdfSha256, kem::X25519HkdfSha256, Deserializable, OpModeS, Serializable};
    let pk = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(pk).expect("public key");
    let (enc, ct) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &pk,
        info,
        plaintext,
        aad,
    )
    .expect("sealed");
    (enc.to_bytes().to_vec(), ct)
}

fn write_json(b: &Bench, secs: f64) {
    let cases: serde_json::Map<String, serde_json::Value> = b
        .cases
        .iter()
        .map(|c| {
            let v = serde_json::json!({
                "what": c.what,
                "ns_per_op": (c.ns_per_op * 10.0).round() / 10.0,
                "ops_per_s": (1e10 / c.ns_per_op).round() / 10.0,
                "iterations": c.iterations,
            });
            (c.key.to_string(), v)
        })
        .collect();
    let out = serde_json::json!({
        "seconds_per_case": secs,
        "threads": 1,
        "profile": "bench (release)",
        "cases": cases,
    });
    let path = std::env::var("PIPELINE_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/pipeline.json"));
    match std::fs::write(&path, serde_json::to_string_pretty(&out).expect("json") + "\n") {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}
