//! Attestation through the public API: genuine Intel DCAP quotes (dcap-qvl's samples), the recorded
//! Dstack GetQuote response, the guest-agent provider against a fake agent on a unix socket, and
//! simulated quotes through the real verifier.
//!
//! Fixtures: `tests/fixtures/dcap-qvl-samples/README.md` and `tests/fixtures/dstack/README.md`.

use replicatoor::{
    collateral::{fmspc_of, DirCollateral, NoCollateral},
    provider::{self, GuestAgentApi, ProviderError, QuoteProvider},
};
use replicatoor_core::{
    attest::{eventlog::EventLog, Measurements, QuoteError, TcbStatus, Verifier},
    refusal::Refusal,
};
use replicatoor_encode::eventlog::{from_dstack_json, to_compact};
use replicatoor_testkit::{
    dstack, fixture, read_fixture,
    sim_pki::SimTcb,
    simulated::{self, SimulatedTd},
};
use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{UnixListener, UnixStream},
};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// 2025-07-01T00:00:00Z: inside the genuine TDX quote's collateral window.
const TDX_NOW: u64 = 1_751_328_000;
/// 2025-07-19T10:00:35Z: the end of that window (the PCK CRL's nextUpdate, the earliest expiry).
const TDX_COLLATERAL_EXPIRY: u64 = 1_752_919_235;
/// 2026-03-01T00:00:00Z: inside the outdated quote's collateral window (2026-02-18 .. 2026-03-20).
const OUTDATED_NOW: u64 = 1_772_323_200;
/// A fixed time for simulated quotes (their collateral is made around it).
const SIM_NOW: u64 = 1_780_000_000;
const DAY: u64 = 86_400;

// Full values of the genuine quote's measurements, read with dcap-qvl (the README gives their
// first and last bytes: 91eb2b44…8873118b7, 44c0197b…9bc9c0, 0084452c…9e9378, d833feef…8c3132,
// 9a9d48e7…2b523f20).
const MR_TD: &str = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7";
const RTMR0: &str = "44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c48aca29b220b80b6a540cf994b9bc9c0";
const RTMR1: &str = "0084452c01668329d4bc06acdf58a7205c26743304509973949e5619bf81a6a7aea8c323c173019b3093d54e579e9378";
const RTMR2: &str = "d833feef2cd945148aa38ead2c53e9b7f138190aaaebfc551dccd829fc207aa3ba80b70870d7330733642e01d48c3132";
const REPORT_DATA: &str = "9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9\
                           eca3efdbb481601c163cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20";

/// The Dstack fixture's compose hash (README).
const DSTACK_COMPOSE_HASH: &str = "86b0e55f2fa8e4fb69d890f14f54d5612707646e2573d54e0d2ddaaade77caa9";

fn verifier_with(collateral: &str) -> Verifier {
    let source = replicatoor::collateral::fixed_from_file(&fixture(&format!("dcap-qvl-samples/{collateral}")))
        .unwrap_or_else(|e| panic!("{collateral}: {e}"));
    Verifier::new(Box::new(source))
}

fn genuine_tdx_quote() -> Vec<u8> {
    read_fixture("dcap-qvl-samples/tdx_quote")
}

fn genuine_verifier() -> Verifier {
    verifier_with("tdx_quote_collateral.json")
}

/// The recorded Dstack GetQuote response, as text and parsed.
fn dstack_fixture() -> (String, serde_json::Value) {
    let text = String::from_utf8(read_fixture("dstack/tdx-lite-getquote.json")).unwrap();
    let json = serde_json::from_str(&text).unwrap();
    (text, json)
}

fn quote_rtmr3(quote: &[u8]) -> [u8; 48] {
    let (version, tee_type, m) = Measurements::parse_unverified(quote).unwrap();
    assert_eq!((version, tee_type), (4, 0x81));
    m.expect("a TD report").rtmr[3]
}

// ---------------------------------------------------------------------------------------------
// 1-3: genuine quotes
// ---------------------------------------------------------------------------------------------

#[test]
fn genuine_tdx_quote_verifies_with_its_measurements() {
    let v = genuine_verifier().verify(&genuine_tdx_quote(), TDX_NOW, 0).expect("genuine quote verifies");
    assert_eq!(v.tcb_status(), TcbStatus::UpToDate);
    assert!(v.advisory_ids().is_empty(), "advisories: {:?}", v.advisory_ids());
    assert!(!v.is_simulated());
    let m = v.measurements();
    assert_eq!(hex::encode(m.mr_td), MR_TD);
    assert_eq!(hex::encode(m.rtmr[0]), RTMR0);
    assert_eq!(hex::encode(m.rtmr[1]), RTMR1);
    assert_eq!(hex::encode(m.rtmr[2]), RTMR2);
    assert_eq!(m.rtmr[3], [0u8; 48], "not a Dstack TD: RTMR3 is zero");
    assert_eq!(hex::encode(m.report_data), REPORT_DATA);
    assert!(!m.is_debug());
    // The README's abbreviations really are these values.
    for (full, head, tail) in [
        (MR_TD, "91eb2b44", "8873118b7"),
        (RTMR0, "44c0197b", "9bc9c0"),
        (RTMR1, "0084452c", "9e9378"),
        (RTMR2, "d833feef", "8c3132"),
        (REPORT_DATA, "9a9d48e7", "2b523f20"),
    ] {
        assert!(full.starts_with(head) && full.ends_with(tail), "{full}");
    }
    // The unverified parse agrees with the verified one.
    let (_, _, parsed) = Measurements::parse_unverified(&genuine_tdx_quote()).unwrap();
    assert_eq!(parsed.as_ref(), Some(m));
}

#[test]
fn outdated_tdx_quote_is_refused_for_its_tcb() {
    let quote = read_fixture("dcap-qvl-samples/tdx_quote_outdated");
    let err = verifier_with("tdx_quote_outdated_collateral.json").verify(&quote, OUTDATED_NOW, 0).unwrap_err();
    println!("outdated quote: {err}");
    assert!(matches!(err, QuoteError::Tcb(_)), "{err:?}");
    assert_eq!(err.refusal(), Some(Refusal::TcbStatusNotAccepted));
}

/// The policy's TCB evaluation floor (`minTcbEvaluationDataNumber`): collateral older than it may
/// predate a TCB recovery, so its verdict is not used at all, neither to accept nor to refuse; the
/// request waits for fresher collateral (no refusal code).
#[test]
fn collateral_older_than_the_policy_floor_is_a_wait_not_a_verdict() {
    let v = genuine_verifier().verify(&genuine_tdx_quote(), TDX_NOW, 17).expect("evaluation 17 meets a floor of 17");
    assert_eq!(v.tcb_evaluation_data_number(), 17);
    assert_eq!(v.tcb_status(), TcbStatus::UpToDate);
    let err = genuine_verifier().verify(&genuine_tdx_quote(), TDX_NOW, 18).unwrap_err();
    assert!(matches!(&err, QuoteError::CollateralUnavailable(m) if m.contains("minimum 18")), "{err:?}");
    assert_eq!(err.refusal(), None, "a wait, not a refusal");
    // The outdated quote, which its collateral (evaluation 18) refuses for its TCB, is not refused
    // under a floor of 19 either.
    let quote = read_fixture("dcap-qvl-samples/tdx_quote_outdated");
    let err = verifier_with("tdx_quote_outdated_collateral.json").verify(&quote, OUTDATED_NOW, 19).unwrap_err();
    assert!(matches!(err, QuoteError::CollateralUnavailable(_)), "{err:?}");
}

#[test]
fn sgx_quote_is_the_wrong_tee_type() {
    let quote = read_fixture("dcap-qvl-samples/sgx_quote");
    let err = verifier_with("sgx_quote_collateral.json").verify(&quote, TDX_NOW, 0).unwrap_err();
    assert_eq!(err, QuoteError::WrongTeeType { version: 3, tee_type: 0 });
    assert_eq!(err.refusal(), Some(Refusal::WrongTeeType));
}

// ---------------------------------------------------------------------------------------------
// 4: flipped bytes
// ---------------------------------------------------------------------------------------------

// Offsets in a TDX v4 quote: 48-byte header, 584-byte TD report body, u32 signature-data length,
// 64-byte quote signature, 64-byte attestation key, certification data (type 6, u32 size) holding
// the 384-byte QE report, its signature, the QE auth data and the PEM PCK chain (type 5).
const QE_VENDOR_ID: usize = 12;
const MR_TD_OFFSET: usize = 48 + 136;
const QUOTE_SIGNATURE: usize = 48 + 584 + 4;
const QE_REPORT: usize = QUOTE_SIGNATURE + 64 + 64 + 6;

#[test]
fn flipped_bytes_are_refused() {
    let genuine = genuine_tdx_quote();
    let pem =
        genuine.windows(27).position(|w| w == b"-----BEGIN CERTIFICATE-----").expect("the quote embeds a PEM chain");
    // A base64 character well inside the PCK leaf, replaced by another base64 character so the
    // PEM still decodes but the certificate's bytes (and signature check) change.
    let pem_byte = pem + 27 + 300;
    assert!(genuine[pem_byte].is_ascii_alphanumeric());
    // The QE report's ISVPRODID (offset 256 in an enclave report), covered by the PCK's signature.
    let qe_report_byte = QE_REPORT + 256;

    let cases: [(&str, usize, Refusal); 5] = [
        ("TD report body (MRTD)", MR_TD_OFFSET + 5, Refusal::QuoteInvalid),
        ("quote signature", QUOTE_SIGNATURE + 10, Refusal::QuoteInvalid),
        ("PEM certificate data", pem_byte, Refusal::QuoteInvalid),
        ("QE report", qe_report_byte, Refusal::QuoteInvalid),
        ("header qe_vendor_id", QE_VENDOR_ID + 3, Refusal::QuoteInvalid),
    ];
    let verifier = genuine_verifier();
    for (what, offset, expected) in cases {
        let mut quote = genuine.clone();
        quote[offset] = if what.starts_with("PEM") {
            if quote[offset] == b'A' {
                b'B'
            } else {
                b'A'
            }
        } else {
            quote[offset] ^ 0x01
        };
        assert_ne!(quote, genuine);
        let result = verifier.verify(&quote, TDX_NOW, 0);
        let err = match result {
            Ok(v) => panic!("{what}: a flipped byte at {offset} was accepted ({:?})", v.tcb_status()),
            Err(e) => e,
        };
        let refusal = err.refusal();
        println!("flip {what} @ {offset}: {:?} <- {err}", refusal.map(Refusal::name));
        assert_eq!(refusal, Some(expected), "{what}: {err}");
    }
}

#[test]
fn directory_collateral_by_fmspc_and_an_unreadable_pck_chain() {
    let genuine = genuine_tdx_quote();
    let parsed = dcap_qvl::quote::Quote::parse(&genuine).unwrap();
    let fmspc = fmspc_of(&parsed).unwrap();
    let dir = TempDir::new("collateral");
    let verifier = Verifier::new(Box::new(DirCollateral::new(&dir.0)));

    // No file for this platform yet: a local problem, retried.
    let err = verifier.verify(&genuine, TDX_NOW, 0).unwrap_err();
    assert!(matches!(&err, QuoteError::CollateralUnavailable(m) if m.contains(&fmspc)), "{err:?}");
    assert_eq!(err.refusal(), None);

    std::fs::copy(fixture("dcap-qvl-samples/tdx_quote_collateral.json"), dir.0.join(format!("{fmspc}.json"))).unwrap();
    let v = verifier.verify(&genuine, TDX_NOW, 0).expect("collateral found by FMSPC");
    assert_eq!(v.tcb_status(), TcbStatus::UpToDate);

    // A quote whose PCK chain cannot be read yields no FMSPC. That is the quote's fault, so it is
    // refused like any broken certificate (as it is with fixed collateral), never retried forever.
    let mut broken = genuine.clone();
    let pem = broken.windows(27).position(|w| w == b"-----BEGIN CERTIFICATE-----").unwrap();
    broken[pem + 25] = b'X';
    for (name, v) in [("directory", &verifier), ("fixed", &genuine_verifier())] {
        let err = v.verify(&broken, TDX_NOW, 0).unwrap_err();
        println!("unreadable PCK chain ({name} collateral): {err}");
        assert_eq!(err.refusal(), Some(Refusal::QuoteInvalid), "{name}: {err:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5: collateral out of its window
// ---------------------------------------------------------------------------------------------

#[test]
fn expired_or_not_yet_valid_collateral_is_retried_not_refused() {
    let quote = genuine_tdx_quote();
    let verifier = genuine_verifier();
    // One day after the collateral expired; a minute after, when only the PCK CRL has expired (the
    // TCB info and QE identity run to 10:16:03 and 10:32:27); before it was issued (2025-06-19).
    for (when, now) in [
        ("expired", TDX_COLLATERAL_EXPIRY + DAY),
        ("PCK CRL expired", TDX_COLLATERAL_EXPIRY + 60),
        ("not yet valid", 1_750_291_200),
    ] {
        let err = verifier.verify(&quote, now, 0).unwrap_err();
        println!("collateral {when}: {err}");
        assert!(matches!(err, QuoteError::CollateralUnavailable(_)), "{when}: {err:?}");
        assert_eq!(err.refusal(), None, "{when}: a collateral problem must never be a refusal");
    }
    // Still valid the second before it expires.
    assert!(verifier.verify(&quote, TDX_COLLATERAL_EXPIRY - 1, 0).is_ok());
}

// ---------------------------------------------------------------------------------------------
// 6: malformed input
// ---------------------------------------------------------------------------------------------

#[test]
fn truncated_empty_and_zero_quotes_are_malformed() {
    let genuine = genuine_tdx_quote();
    let verifier = genuine_verifier();
    let cases: [(&str, Vec<u8>); 6] = [
        ("empty", vec![]),
        ("header only", genuine[..48].to_vec()),
        ("truncated body", genuine[..400].to_vec()),
        ("truncated signature data", genuine[..genuine.len() - 100].to_vec()),
        ("20 KiB of zeros", vec![0u8; 20 * 1024]),
        ("a quote's length of zeros", vec![0u8; genuine.len()]),
    ];
    for (what, quote) in cases {
        let err = verifier.verify(&quote, TDX_NOW, 0).unwrap_err();
        println!("{what}: {err}");
        assert!(matches!(err, QuoteError::Malformed(_)), "{what}: {err:?}");
        assert_eq!(err.refusal(), Some(Refusal::QuoteMalformed), "{what}");
    }
}

// ---------------------------------------------------------------------------------------------
// 7: the recorded Dstack event log
// ---------------------------------------------------------------------------------------------

#[test]
fn dstack_event_log_replays_to_the_quote_rtmr3() {
    let quote = dstack::quote();
    let rtmr3 = quote_rtmr3(&quote);
    assert!(hex::encode(rtmr3).starts_with("6f24c170d0fd63fc2b1b53202eea47b0"));

    let log = from_dstack_json(&dstack::event_log()).unwrap();
    assert_eq!(log.boot.len(), 20);
    let log = log.runtime;
    let names: Vec<&str> = log.events().iter().map(|e| e.name()).collect();
    assert_eq!(names, dstack::RUNTIME_EVENTS);
    assert_eq!(log.replay_rtmr3(), rtmr3);
    log.replay_rtmr3_and_check(&rtmr3).unwrap();
    let mut wrong = rtmr3;
    wrong[0] ^= 1;
    assert!(log.replay_rtmr3_and_check(&wrong).is_err());
    assert_eq!(hex::encode(log.app_info().unwrap().compose_hash), DSTACK_COMPOSE_HASH);

    // The compact form keeps the runtime events: same RTMR3, same claims, canonical bytes.
    let compact = to_compact(&log).unwrap();
    let back = EventLog::from_compact(&compact).unwrap();
    assert_eq!(back.replay_rtmr3(), rtmr3);
    assert_eq!(hex::encode(back.app_info().unwrap().compose_hash), DSTACK_COMPOSE_HASH);
    assert_eq!(to_compact(&back).unwrap(), compact);
}

// ---------------------------------------------------------------------------------------------
// 8: the guest-agent provider against a fake agent
// ---------------------------------------------------------------------------------------------

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "replicatoor-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One request the fake agent received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    body: serde_json::Value,
}

/// How the fake agent answers a well-formed request.
#[derive(Clone)]
enum Answer {
    /// 200 with this body.
    Ok(String),
    /// This status with a short body.
    Status(u16),
}

/// A fake guest agent on a unix socket: answers each connection's one request, after checking it
/// is the request `api` should send for `expected_report_data` (otherwise 400 and the reason).
struct FakeAgent {
    path: PathBuf,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeAgent {
    fn start(path: PathBuf, api: GuestAgentApi, expected_report_data: [u8; 64], answer: Answer) -> FakeAgent {
        let listener = UnixListener::bind(&path).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (log, answer) = (log.clone(), answer.clone());
                tokio::spawn(async move {
                    let _ = serve_one(stream, api, expected_report_data, answer, log).await;
                });
            }
        });
        FakeAgent { path, seen, task }
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_one(
    mut stream: UnixStream,
    api: GuestAgentApi,
    expected_report_data: [u8; 64],
    answer: Answer,
    log: Arc<Mutex<Vec<Seen>>>,
) -> std::io::Result<()> {
    // Read the head, then Content-Length bytes of body.
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let target = request_line.next().unwrap_or_default().to_string();
    let mut content_length = 0;
    let mut content_type = String::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.trim().parse().unwrap_or(0),
                "content-type" => content_type = value.trim().to_string(),
                _ => {}
            }
        }
    }
    while buf.len() < head_end + content_length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body: serde_json::Value =
        serde_json::from_slice(&buf[head_end..(head_end + content_length).min(buf.len())]).unwrap_or_default();
    log.lock().unwrap().push(Seen { method: method.clone(), target: target.clone(), body: body.clone() });

    let (want_target, want_body) = api.request(&expected_report_data);
    let want_body: serde_json::Value = serde_json::from_str(&want_body).unwrap();
    let problem = if method != "POST" {
        Some(format!("method {method}"))
    } else if target != want_target {
        Some(format!("target {target}, want {want_target}"))
    } else if content_type != "application/json" {
        Some(format!("content-type {content_type:?}"))
    } else if body["report_data"] != want_body["report_data"] {
        Some(format!("report_data {}", body["report_data"]))
    } else if api == GuestAgentApi::Tappd && body["hash_algorithm"] != "raw" {
        Some(format!("hash_algorithm {}", body["hash_algorithm"]))
    } else {
        None
    };
    let (status, reason, text) = match (problem, answer) {
        (Some(p), _) => (if target == want_target { 400 } else { 404 }, "Bad Request", p),
        (None, Answer::Ok(text)) => (200, "OK", text),
        (None, Answer::Status(code)) => (code, "Error", "{\"error\":\"the TDX driver is on strike\"}".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The Dstack fixture's response with its quote and report data, and the checks on what came back.
fn assert_is_the_fixture(att: &provider::Attestation) {
    let quote = dstack::quote();
    assert_eq!(att.quote, quote);
    let log = EventLog::from_compact(&att.event_log).unwrap();
    log.replay_rtmr3_and_check(&quote_rtmr3(&quote)).unwrap();
    assert_eq!(hex::encode(log.app_info().unwrap().compose_hash), DSTACK_COMPOSE_HASH);
}

#[tokio::test]
async fn dstack_provider_gets_quote_and_event_log_from_the_guest_agent() {
    let (text, _) = dstack_fixture();
    let report_data = dstack::report_data();
    let dir = TempDir::new("dstack");
    let agent =
        FakeAgent::start(dir.0.join("dstack.sock"), GuestAgentApi::Dstack, report_data, Answer::Ok(text.clone()));

    let att = provider::dstack_get_quote(&agent.path, &report_data).await.expect("the fake agent answers");
    assert_is_the_fixture(&att);
    let seen = agent.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].method.as_str(), seen[0].target.as_str()), ("POST", "/GetQuote"));
    assert_eq!(seen[0].body, serde_json::json!({ "report_data": hex::encode(report_data) }));

    // Through QuoteProvider: a missing first socket falls back to the second.
    let missing = dir.0.join("missing.sock");
    let p = QuoteProvider::Dstack { sockets: vec![missing.clone(), agent.path.clone()] };
    assert!(!p.is_simulated());
    let att = p.attest(report_data).await.expect("the fallback socket answers");
    assert_is_the_fixture(&att);
    assert_eq!(agent.requests().len(), 2);

    // No socket at all: an error naming the paths tried.
    let p = QuoteProvider::Dstack { sockets: vec![missing.clone()] };
    let err = p.attest(report_data).await.unwrap_err();
    assert!(matches!(&err, ProviderError::NoGuestAgent { paths } if paths.contains("missing.sock")), "{err}");
}

#[tokio::test]
async fn dstack_provider_errors() {
    let (text, json) = dstack_fixture();
    let report_data = dstack::report_data();
    let dir = TempDir::new("dstack-errors");

    // The socket path does not exist.
    let err = provider::dstack_get_quote(&dir.0.join("nope.sock"), &report_data).await.unwrap_err();
    println!("missing socket: {err}");
    assert!(matches!(err, ProviderError::Socket { .. }), "{err:?}");

    // HTTP 500.
    let failing = FakeAgent::start(dir.0.join("500.sock"), GuestAgentApi::Dstack, report_data, Answer::Status(500));
    let err = provider::dstack_get_quote(&failing.path, &report_data).await.unwrap_err();
    println!("HTTP 500: {err}");
    assert!(matches!(&err, ProviderError::Status { status: 500, body } if body.contains("strike")), "{err:?}");

    // Not JSON, JSON without the fields, a quote that is not hex, an event log that is not one.
    let mut broken_log = json.clone();
    broken_log["event_log"] = serde_json::Value::String("[{\"imr\":9}]".into());
    let mut broken_quote = json.clone();
    broken_quote["quote"] = serde_json::Value::String("zz".into());
    for (i, (what, body)) in [
        ("garbage", "this is not JSON {".to_string()),
        ("wrong shape", "{\"hello\":\"world\"}".to_string()),
        ("quote not hex", broken_quote.to_string()),
        ("bad event log", broken_log.to_string()),
    ]
    .into_iter()
    .enumerate()
    {
        let agent =
            FakeAgent::start(dir.0.join(format!("bad{i}.sock")), GuestAgentApi::Dstack, report_data, Answer::Ok(body));
        let err = provider::dstack_get_quote(&agent.path, &report_data).await.unwrap_err();
        println!("{what}: {err}");
        assert!(matches!(err, ProviderError::BadResponse(_)), "{what}: {err:?}");
    }

    // A quote over other report data than we asked for (e.g. an agent that hashed it).
    let agent = FakeAgent::start(dir.0.join("other.sock"), GuestAgentApi::Dstack, [0x42; 64], Answer::Ok(text));
    let err = provider::dstack_get_quote(&agent.path, &[0x42; 64]).await.unwrap_err();
    println!("other report data: {err}");
    assert!(matches!(&err, ProviderError::BadResponse(m) if m.contains("report_data")), "{err:?}");

    // The Dstack API on a tappd socket: tappd has no /GetQuote (the fake answers 404 to any other path).
    let tappd = FakeAgent::start(dir.0.join("tappd.sock"), GuestAgentApi::Tappd, report_data, Answer::Status(200));
    let err = provider::dstack_get_quote(&tappd.path, &report_data).await.unwrap_err();
    assert!(matches!(err, ProviderError::Status { status: 404, .. }), "{err:?}");
}

/// PROTOCOL.md §3.5.1, fallback: a log with no compact form (too many runtime events, a name the
/// form cannot carry, another IMR-3 event type, mixed digest versions) is refused by the provider
/// with the rule it breaks, before the requester posts anything (it attests before it sends).
#[tokio::test]
async fn a_log_without_a_compact_form_is_refused_before_anything_is_posted() {
    let (_, json) = dstack_fixture();
    let report_data = dstack::report_data();
    let dir = TempDir::new("dstack-unfit");
    let events: Vec<serde_json::Value> = serde_json::from_str(json["event_log"].as_str().unwrap()).unwrap();
    let runtime = |name: &str, version: Option<u32>| {
        let mut e = serde_json::json!({ "imr": 3, "event_type": 0x0800_0001u32, "digest": "", "event": name, "event_payload": "00" });
        if let Some(v) = version {
            e["version"] = v.into();
        }
        e
    };
    let with = |extra: Vec<serde_json::Value>| {
        let mut j = json.clone();
        let mut all = events.clone();
        all.extend(extra);
        j["event_log"] = serde_json::Value::String(serde_json::Value::Array(all).to_string());
        j.to_string()
    };
    let cases = [
        (
            "257 runtime events",
            with((0..248).map(|_| runtime("app-event", None)).collect()),
            "more than the 256 allowed",
        ),
        ("a name with ':'", with(vec![runtime("app:event", None)]), "is not allowed"),
        ("a 65-byte name", with(vec![runtime(&"n".repeat(65), None)]), "outside 1..=64"),
        ("an empty name", with(vec![runtime("", None)]), "outside 1..=64"),
        ("V1 then V2", with(vec![runtime("app-event", Some(2))]), "digest format"),
        (
            "another IMR-3 event type",
            with(vec![
                serde_json::json!({ "imr": 3, "event_type": 1, "digest": "", "event": "x", "event_payload": "" }),
            ]),
            "not allowed on imr 3",
        ),
    ];
    for (i, (what, body, why)) in cases.into_iter().enumerate() {
        let agent = FakeAgent::start(
            dir.0.join(format!("unfit{i}.sock")),
            GuestAgentApi::Dstack,
            report_data,
            Answer::Ok(body),
        );
        let err = provider::dstack_get_quote(&agent.path, &report_data).await.unwrap_err();
        assert!(
            matches!(&err, ProviderError::BadResponse(m) if m.contains("event log") && m.contains(why)),
            "{what}: {err}"
        );
    }
}

#[tokio::test]
async fn tappd_fallback_uses_the_legacy_api() {
    let (_, json) = dstack_fixture();
    let report_data = dstack::report_data();
    // What tappd's TdxQuote answers: quote and event_log, plus hash_algorithm and prefix.
    let answer = serde_json::json!({
        "quote": json["quote"],
        "event_log": json["event_log"],
        "hash_algorithm": "raw",
        "prefix": "",
    })
    .to_string();
    let dir = TempDir::new("tappd");
    let tappd = FakeAgent::start(dir.0.join("tappd.sock"), GuestAgentApi::Tappd, report_data, Answer::Ok(answer));

    assert_eq!(GuestAgentApi::for_socket(Path::new(provider::TAPPD_SOCKET)), GuestAgentApi::Tappd);
    assert_eq!(GuestAgentApi::for_socket(Path::new(provider::DSTACK_SOCKET)), GuestAgentApi::Dstack);

    let att = provider::tappd_get_quote(&tappd.path, &report_data).await.expect("tappd answers");
    assert_is_the_fixture(&att);

    // The default socket order: dstack.sock is absent here, so tappd.sock is used, with its own API.
    let p = QuoteProvider::Dstack { sockets: vec![dir.0.join("dstack.sock"), tappd.path.clone()] };
    let att = p.attest(report_data).await.expect("the tappd fallback answers");
    assert_is_the_fixture(&att);

    let seen = tappd.requests();
    assert_eq!(seen.len(), 2);
    for s in seen {
        assert_eq!((s.method.as_str(), s.target.as_str()), ("POST", "/prpc/Tappd.TdxQuote?json"));
        assert_eq!(s.body, serde_json::json!({ "report_data": hex::encode(report_data), "hash_algorithm": "raw" }));
    }
}

// ---------------------------------------------------------------------------------------------
// 9: simulated quotes through the real verifier
// ---------------------------------------------------------------------------------------------

fn dev_verifier() -> Verifier {
    Verifier::new(Box::new(NoCollateral)).dangerously_trust_simulated_quotes(simulated::anchor())
}

#[test]
fn simulated_tcb_levels_give_their_status() {
    let verifier = dev_verifier();
    let cases = [
        (SimTcb::UpToDate, Ok(TcbStatus::UpToDate)),
        (SimTcb::SwHardeningNeeded, Ok(TcbStatus::SWHardeningNeeded)),
        (SimTcb::ConfigurationNeeded, Ok(TcbStatus::ConfigurationNeeded)),
        (SimTcb::OutOfDate, Ok(TcbStatus::OutOfDate)),
        (SimTcb::Revoked, Err(Refusal::TcbStatusNotAccepted)),
    ];
    for (tcb, expected) in cases {
        let mut td = SimulatedTd::new([3; 32]);
        td.tcb = tcb;
        let (quote, log) = td.attest([tcb as u8; 64]).unwrap();
        match (verifier.verify(&quote, SIM_NOW, 0), expected) {
            (Ok(v), Ok(status)) => {
                assert_eq!(v.tcb_status(), status, "{tcb:?}");
                assert_eq!(v.advisory_ids().is_empty(), status == TcbStatus::UpToDate, "{tcb:?}");
                assert!(v.is_simulated());
                assert!(!v.measurements().is_debug());
                assert_eq!(v.measurements().report_data, [tcb as u8; 64]);
                assert_eq!(v.measurements().mr_td, td.mr_td);
                EventLog::from_compact(&log).unwrap().replay_rtmr3_and_check(&v.measurements().rtmr[3]).unwrap();
            }
            (Err(e), Err(refusal)) => {
                println!("{tcb:?}: {e}");
                assert_eq!(e.refusal(), Some(refusal), "{tcb:?}: {e}");
            }
            (got, want) => panic!("{tcb:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn simulated_debug_td_verifies_and_says_so() {
    let mut td = SimulatedTd::new([4; 32]);
    td.debug = true;
    let (quote, _) = td.attest([5; 64]).unwrap();
    let v = dev_verifier().verify(&quote, SIM_NOW, 0).expect("debug TDs are judged by policy, not the verifier");
    assert!(v.measurements().is_debug());
    assert!(v.is_simulated());
}

#[test]
fn simulated_quote_under_a_strict_verifier_is_refused() {
    let (quote, _) = SimulatedTd::new([6; 32]).attest([7; 64]).unwrap();
    let strict = Verifier::new(Box::new(NoCollateral));
    let err = strict.verify(&quote, SIM_NOW, 0).unwrap_err();
    assert_eq!(err, QuoteError::SimulatedNotTrusted);
    assert_eq!(err.refusal(), Some(Refusal::SimulatedQuoteNotAllowed));
    // Even with genuine collateral configured.
    let err = genuine_verifier().verify(&quote, SIM_NOW, 0).unwrap_err();
    assert_eq!(err, QuoteError::SimulatedNotTrusted);
}

/// The `verify-quote` command, run as a user would.
mod verify_quote_cli {
    use std::process::Command;

    fn fixture(name: &str) -> String {
        format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn run(args: &[&str]) -> (Option<i32>, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_replicatoor")).arg("verify-quote").args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    }

    #[test]
    fn genuine_quote_text_and_json() {
        let (q, c) = (fixture("dcap-qvl-samples/tdx_quote"), fixture("dcap-qvl-samples/tdx_quote_collateral.json"));
        let (code, text) = run(&["--quote", &q, "--collateral", &c, "--at", "1751328000"]);
        assert_eq!(code, Some(0), "{text}");
        assert!(text.contains("VERIFIED") && text.contains("UpToDate"), "{text}");
        assert!(text.contains("mr_td:          91eb2b44"), "{text}");
        let (code, json) = run(&["--quote", &q, "--collateral", &c, "--at", "1751328000", "--json"]);
        assert_eq!(code, Some(0));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["verified"], true);
        assert_eq!(v["quote"]["tcb_status"], "UpToDate");
        assert!(v["quote"]["measurements"]["rtmr"].as_array().is_some_and(|a| a.len() == 4));
        assert!(v["os_reference_id"].as_str().is_some_and(|s| s.starts_with("0x") && s.len() == 66));
    }

    #[test]
    fn compact_quote_file_verifies_and_measures_like_the_raw_quote() {
        // A quote copied from a SecretRequested event is in compact form (PROTOCOL.md §3.9).
        let (q, c) = (fixture("dcap-qvl-samples/tdx_quote"), fixture("dcap-qvl-samples/tdx_quote_collateral.json"));
        let compact = replicatoor_compact_quote::encode(&std::fs::read(&q).unwrap()).unwrap();
        let dir = std::env::temp_dir().join(format!("replicatoor-vq-compact-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cq = dir.join("quote.compact.hex");
        std::fs::write(&cq, hex::encode(&compact)).unwrap();
        let cq = cq.to_str().unwrap();
        let args =
            |quote: &str| ["--quote", quote, "--collateral", &c, "--at", "1751328000", "--json"].map(String::from);
        let (code, json) = run(&args(cq).each_ref().map(String::as_str));
        assert_eq!(code, Some(0), "{json}");
        assert_eq!(json, run(&args(&q).each_ref().map(String::as_str)).1, "same report as the raw quote");
        let measure = |quote: &str| {
            Command::new(env!("CARGO_BIN_EXE_replicatoor"))
                .args(["measure", "--quote", quote, "--json"])
                .output()
                .unwrap()
        };
        let (a, b) = (measure(cq), measure(&q));
        assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
        assert_eq!(a.stdout, b.stdout, "measure reads the same TD report");
        // A compact quote that does not decode is malformed, like an unparsable raw quote.
        std::fs::write(dir.join("bad.hex"), hex::encode(&compact[..compact.len() - 1])).unwrap();
        let (code, json) = run(&args(dir.join("bad.hex").to_str().unwrap()).each_ref().map(String::as_str));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!((code, &v["refusal"]), (Some(4), &serde_json::json!("quote_malformed")), "{json}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn outdated_and_expired_are_rejected_with_reasons() {
        let (code, json) = run(&[
            "--quote",
            &fixture("dcap-qvl-samples/tdx_quote_outdated"),
            "--collateral",
            &fixture("dcap-qvl-samples/tdx_quote_outdated_collateral.json"),
            "--at",
            "1772323200",
            "--json",
        ]);
        assert_eq!(code, Some(4), "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["verified"], false);
        assert_eq!(v["refusal"], "tcb_status_not_accepted");
        // A year after the collateral expired: not a refusal, a local problem (retry with fresh collateral).
        let (code, text) = run(&[
            "--quote",
            &fixture("dcap-qvl-samples/tdx_quote"),
            "--collateral",
            &fixture("dcap-qvl-samples/tdx_quote_collateral.json"),
            "--at",
            "1782864000",
        ]);
        assert_eq!(code, Some(4));
        assert!(text.contains("REJECTED") && text.contains("none (local problem: retry)"), "{text}");
    }

    #[test]
    fn dstack_quote_with_event_log_replays() {
        // No collateral ships with the Dstack fixture, so verification waits; the replay is still shown.
        let resp = fixture("dstack/tdx-lite-getquote.json");
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&resp).unwrap()).unwrap();
        let dir = std::env::temp_dir().join(format!("replicatoor-vq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let q = dir.join("quote.hex");
        std::fs::write(&q, v["quote"].as_str().unwrap()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_replicatoor"))
            .args(["measure", "--quote", q.to_str().unwrap(), "--event-log", &resp, "--json"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(m["compose_hash"], "86b0e55f2fa8e4fb69d890f14f54d5612707646e2573d54e0d2ddaaade77caa9");
        assert_eq!(m["replayed_rtmrs"][3], m["measurements"]["rtmr"][3], "event log replays to the quote's RTMR3");
        // The OS image is named next to MRTD/RTMR0-2, and every runtime event is shown with its meaning.
        assert_eq!(m["os_image_hash"], "07a2388c7a6a1b6a646d443f1517990a4ec294471d63146cda9d56972765051d");
        assert!(m["key_provider"].as_str().unwrap().starts_with(r#"{"name":"kms","id":"#), "{}", m["key_provider"]);
        let events = m["runtime_events"].as_array().unwrap();
        let names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
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
        assert!(events.iter().all(|e| e["meaning"] != "not a known Dstack event"), "{events:?}");
        assert_eq!(events[7]["value"], "zfs");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Collateral cache poisoning (issue 13, item 5)
// ---------------------------------------------------------------------------------------------

/// Counts `prepare` calls (each would be a PCCS fetch) and never has collateral.
#[derive(Default, Clone)]
struct CountingSource(Arc<AtomicUsize>);

impl replicatoor_core::attest::collateral::CollateralSource for CountingSource {
    fn collateral_for(
        &self,
        _: &replicatoor_core::attest::collateral::CollateralKey,
    ) -> Result<dcap_qvl::QuoteCollateralV3, replicatoor_core::attest::collateral::CollateralError> {
        Err(replicatoor_core::attest::collateral::CollateralError::NotConfigured)
    }
    fn prepare<'a>(
        &'a self,
        _: &'a replicatoor_core::attest::collateral::VerifiedPck,
        _: u64,
        _: u32,
    ) -> replicatoor_core::attest::collateral::Prepare<'a> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
}

/// The genuine quote with its PCK leaf certificate's signature damaged: the chain still *ends* in
/// Intel's root and the leaf still names the genuine FMSPC, but it is not Intel's certificate.
fn quote_with_a_forged_pck_leaf() -> Vec<u8> {
    let mut q = genuine_tdx_quote();
    let end = q.windows(25).position(|w| w == b"-----END CERTIFICATE-----").expect("a PEM chain");
    // Back over the newline and any base64 padding to the last data characters: the signature's tail.
    let mut at = end - 1;
    while matches!(q[at], b'\n' | b'\r' | b'=') {
        at -= 1;
    }
    at -= 4;
    q[at] = if q[at] == b'A' { b'B' } else { b'A' };
    q
}

#[test]
fn a_quote_whose_pck_chain_merely_ends_in_intels_root_fetches_no_collateral() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let junk = quote_with_a_forged_pck_leaf();
    let parsed = dcap_qvl::quote::Quote::parse(&junk).expect("still parses");
    assert_eq!(
        fmspc_of(&parsed).unwrap(),
        fmspc_of(&dcap_qvl::quote::Quote::parse(&genuine_tdx_quote()).unwrap()).unwrap()
    );

    let fetches = CountingSource::default();
    let verifier = Verifier::new(Box::new(fetches.clone()));
    rt.block_on(verifier.prepare(&junk, TDX_NOW, 0)).expect("nothing to wait for");
    assert_eq!(fetches.0.load(Ordering::SeqCst), 0, "a forged PCK leaf must not cause a collateral fetch");
    // And it is refused as invalid, with any collateral, without consulting the source's cache.
    let err = genuine_verifier().verify(&junk, TDX_NOW, 0).unwrap_err();
    assert_eq!(err.refusal(), Some(Refusal::QuoteInvalid), "{err}");

    // The genuine quote is worth a fetch.
    rt.block_on(verifier.prepare(&genuine_tdx_quote(), TDX_NOW, 0)).unwrap();
    assert_eq!(fetches.0.load(Ordering::SeqCst), 1);
}
