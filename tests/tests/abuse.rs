//! Abuse suite: every kind of bad input a holder or a new node can be fed, each refused for its
//! precise reason, and none of them leaking the secret bundle.
//!
//! Table-driven. A valid request is built first and must be accepted; every negative case then
//! differs from it by exactly one mutation (a byte flipped, a field rebound, a reference withdrawn,
//! a policy bit cleared). Quotes are made by the simulated Intel PKI and go through the real
//! dcap-qvl verification; genuine Intel quotes from `tests/fixtures/dcap-qvl-samples/` cover what
//! only real hardware produces. Delivery-side abuse goes through `crypto::delivery::open`.
//!
//! Each case is its own test, named after it (`cargo test -p replicatoor-tests --test abuse
//! quote_empty`), and checks the precise outcome and that it leaks no secret. Cases the code does not
//! handle correctly yet are `#[ignore]`d with the reason and assert the correct outcome (none today).

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
};
use base64::Engine as _;
use dcap_qvl::QuoteCollateralV3;
use replicatoor_core::{
    attest::{
        collateral::{FixedCollateral, NoCollateral},
        eventlog::{self, DigestFormat, Event, EventLog},
        pipeline::{self, Accepted, AcceptedRequest, Binding, Context, Decision},
        GenesisBinding, RequestBinding, Verifier,
    },
    crypto::{
        eip712::{self, SignatureError},
        BundleError, HpkeError, HpkeKeypair, SecretBundle,
    },
    delivery::{self, DeliveryError, SignedDelivery},
    protocol::{app_reference_id, hpke_aad, Deployment, Policy, RefKind},
    refusal::Refusal,
};
use replicatoor_encode::eventlog::to_compact;
use replicatoor_testkit::{
    doubles::AllowList,
    sim_pki::{SimQuoteParams, SimTcb},
    simulated::{self, SimulatedTd},
};
use sha2::{Digest, Sha256};
use std::{path::PathBuf, sync::OnceLock};
use zeroize::Zeroizing;

// ---------------------------------------------------------------------------------------------
// Fixed world: one deployment, one requester, one app, one cluster with a recognisable secret.
// ---------------------------------------------------------------------------------------------

/// Verification time for simulated quotes (the simulated collateral is made around it).
const NOW: u64 = 1_780_000_000;
/// Verification time inside the genuine `tdx_quote` collateral's window (2025-07-01T00:00:00Z).
const GENUINE_NOW: u64 = 1_751_328_000;
/// Inside the `tdx_quote_outdated` collateral's window (2026-02-19T00:00:00Z).
const OUTDATED_NOW: u64 = 1_771_459_200;
/// The secret file every delivery carries: easy to spot in any string it leaks into.
const SECRET_FILE: &[u8] = b"ABUSE-SUITE-SECRET-FILE::correct horse battery staple::5f1d9c0b7e";
const REQUEST_ID: u64 = 7;

fn dep() -> Deployment {
    Deployment { chain_id: 31337, contract: Address::with_last_byte(9) }
}
fn requester() -> Address {
    Address::repeat_byte(0xcd)
}
fn compose_hash() -> [u8; 32] {
    Sha256::digest(b"abuse-suite app-compose.json").into()
}
fn cluster_key() -> [u8; 32] {
    Sha256::digest(b"abuse-suite cluster key").into()
}
fn requester_keys() -> HpkeKeypair {
    HpkeKeypair::from_secret(&Sha256::digest(b"abuse-suite requester hpke key").into()).expect("hpke key")
}
fn bundle() -> SecretBundle {
    SecretBundle::new(Zeroizing::new(cluster_key()), 1, Zeroizing::new(SECRET_FILE.to_vec())).expect("bundle")
}
fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/dcap-qvl-samples").join(name)
}
fn read_fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture")
}

// Offsets in a TDX v4 quote (TD 1.0 body), as the simulated PKI lays it out.
mod at {
    pub const VERSION: usize = 0;
    pub const ATT_KEY_TYPE: usize = 2;
    pub const TEE_TYPE: usize = 4;
    pub const QE_VENDOR_ID: usize = 12;
    pub const USER_DATA: usize = 28;
    const BODY: usize = 48;
    pub const TEE_TCB_SVN: usize = BODY;
    pub const TD_ATTRIBUTES: usize = BODY + 120;
    pub const MR_TD: usize = BODY + 136;
    pub const MR_CONFIG_ID: usize = BODY + 184;
    pub const RTMR3: usize = BODY + 472;
    pub const REPORT_DATA: usize = BODY + 520;
    pub const AUTH_LEN: usize = BODY + 584;
    pub const QUOTE_SIG: usize = AUTH_LEN + 4;
    pub const ATT_KEY: usize = QUOTE_SIG + 64;
    pub const CERT_TYPE: usize = ATT_KEY + 64;
    pub const QE_REPORT: usize = CERT_TYPE + 6;
    pub const QE_REPORT_DATA: usize = QE_REPORT + 320;
    pub const QE_REPORT_SIG: usize = QE_REPORT + 384;
    pub const QE_AUTH_DATA: usize = QE_REPORT_SIG + 64 + 2;
}

// ---------------------------------------------------------------------------------------------
// Building requests: a recipe for the TD (signed by the simulated PKI) and the log it sends.
// ---------------------------------------------------------------------------------------------

fn ev(name: &str, payload: &[u8]) -> Event {
    Event::runtime(name, payload.to_vec(), DigestFormat::V1)
}

/// A Dstack-shaped runtime log (fixed instance id, so the suite is deterministic).
fn good_events() -> Vec<Event> {
    let td = SimulatedTd::new(compose_hash());
    vec![
        ev("system-preparing", b""),
        ev(eventlog::EVENT_APP_ID, &td.app_id),
        ev(eventlog::EVENT_COMPOSE_HASH, &compose_hash()),
        ev(eventlog::EVENT_INSTANCE_ID, &[0x1d; 20]),
        ev(eventlog::EVENT_BOOT_MR_DONE, b""),
        ev(eventlog::EVENT_KEY_PROVIDER, br#"{"name":"replicatoor-simulated"}"#),
        ev(eventlog::EVENT_SYSTEM_READY, b""),
    ]
}

/// What the simulated TD measures and what its quote binds. The quote's RTMR3 is replayed from
/// `events`, so a recipe whose events break a claim rule still passes the RTMR3 check.
#[derive(Clone)]
struct Recipe {
    params: SimQuoteParams,
    events: Vec<Event>,
}

impl Recipe {
    fn new(report_data: [u8; 64]) -> Self {
        let td = SimulatedTd::new(compose_hash());
        let mut params = SimQuoteParams::new(report_data);
        params.mr_td = td.mr_td;
        params.rtmr = [td.rtmr0, td.rtmr1, td.rtmr2, [0; 48]];
        params.mr_config_id = [0; 48];
        params.mr_config_id[0] = 0x01;
        params.mr_config_id[1..33].copy_from_slice(&compose_hash());
        Recipe { params, events: good_events() }
    }

    fn quote(&self) -> Vec<u8> {
        let mut p = self.params.clone();
        p.rtmr[3] = EventLog::from_events(self.events.clone()).replay_rtmr3();
        simulated::pki().expect("simulated PKI").quote(&p).expect("quote")
    }

    fn log(&self) -> Vec<u8> {
        to_compact(&EventLog::from_events(self.events.clone())).expect("compact log")
    }

    fn os_ref(&self) -> B256 {
        let p = &self.params;
        replicatoor_core::protocol::os_reference_id(&p.mr_td, &p.rtmr[0], &p.rtmr[1], &p.rtmr[2])
    }
}

/// Which verifier the holder runs.
#[derive(Clone, Copy)]
enum Trust {
    /// `--allow-simulated-quotes`, no collateral for genuine quotes (a dev holder).
    Simulated,
    /// Production: Intel's root only, no collateral configured.
    Strict,
    /// Production with fixed collateral (a genuine fixture's).
    Genuine(&'static str),
    /// Production with a genuine fixture's collateral, damaged on the holder's side.
    Tampered(&'static str, fn(&mut QuoteCollateralV3)),
}

impl Trust {
    fn verifier(self) -> Verifier {
        match self {
            Trust::Simulated => {
                Verifier::new(Box::new(NoCollateral)).dangerously_trust_simulated_quotes(simulated::anchor())
            }
            Trust::Strict => Verifier::new(Box::new(NoCollateral)),
            Trust::Genuine(file) => {
                Verifier::new(Box::new(replicatoor::collateral::fixed_from_file(&fixture(file)).expect("json")))
            }
            Trust::Tampered(file, f) => {
                let mut c = replicatoor::collateral::fixed_from_file(&fixture(file)).expect("json").0;
                f(&mut c);
                Verifier::new(Box::new(FixedCollateral(c)))
            }
        }
    }
}

/// One request as a holder sees it, with the holder's own settings.
#[derive(Clone)]
struct Input {
    trust: Trust,
    policy: Policy,
    refs: AllowList,
    now: u64,
    binding: Bind,
    quote: Vec<u8>,
    log: Vec<u8>,
}

/// The valid request every case starts from.
struct Base {
    recipe: Recipe,
    input: Input,
}

impl Base {
    fn new() -> Self {
        let pk = requester_keys().public();
        let recipe = Recipe::new(dep().request_report_data(requester(), &pk));
        let refs = AllowList::with([(recipe.os_ref(), RefKind::Os), (app_reference_id(&compose_hash()), RefKind::App)]);
        let input = Input {
            trust: Trust::Simulated,
            policy: Policy {
                tcb_statuses: 1,
                allow_debug: false,
                allow_simulated: true,
                min_tcb_evaluation_data_number: 0,
            },
            refs,
            now: NOW,
            binding: Bind::Request(RequestBinding {
                request_id: U256::from(REQUEST_ID),
                requester: requester(),
                hpke_pub_key: pk,
            }),
            quote: recipe.quote(),
            log: recipe.log(),
        };
        Base { recipe, input }
    }

    /// The base request with its quote bytes changed.
    fn quote(&self, f: impl FnOnce(&mut Vec<u8>)) -> Input {
        let mut i = self.input.clone();
        f(&mut i.quote);
        i
    }

    /// The base request with its log bytes changed (the quote is untouched).
    fn log(&self, f: impl FnOnce(&mut Vec<u8>)) -> Input {
        let mut i = self.input.clone();
        f(&mut i.log);
        i
    }

    /// A TD measured differently: a freshly signed quote, and the log that matches it.
    fn td(&self, f: impl FnOnce(&mut Recipe)) -> Input {
        let mut r = self.recipe.clone();
        f(&mut r);
        Input { quote: r.quote(), log: r.log(), ..self.input.clone() }
    }

    /// The base request judged under other holder settings.
    fn with(&self, f: impl FnOnce(&mut Input)) -> Input {
        let mut i = self.input.clone();
        f(&mut i);
        i
    }
}

/// What a case binds its quote to: a request, or a genesis proposal (the pipeline types them apart).
#[derive(Clone, Copy)]
enum Bind {
    Request(RequestBinding),
    Genesis(GenesisBinding),
}

/// A decision of either kind; only a request's acceptance is kept (genesis ones are only matched).
type Outcome = Decision<Option<AcceptedRequest>>;

async fn evaluate<B: Binding>(i: &Input, binding: B) -> Decision<Accepted<B>> {
    let verifier = i.trust.verifier();
    let ctx = Context { deployment: dep(), verifier: &verifier, policy: i.policy, references: &i.refs, now: i.now };
    pipeline::evaluate(&ctx, binding, &i.quote, &i.log).await
}

async fn run(i: &Input) -> Outcome {
    match i.binding {
        Bind::Request(b) => erase(evaluate(i, b).await, Some),
        Bind::Genesis(b) => erase(evaluate(i, b).await, |_| None),
    }
}

fn erase<A>(d: Decision<A>, keep: impl FnOnce(A) -> Option<AcceptedRequest>) -> Outcome {
    match d {
        Decision::Accept(a) => Decision::Accept(Box::new(keep(*a))),
        Decision::Refuse(r, detail) => Decision::Refuse(r, detail),
        Decision::Retry(detail) => Decision::Retry(detail),
        Decision::Abstain(detail) => Decision::Abstain(detail),
    }
}

// ---------------------------------------------------------------------------------------------
// Expectations and the leak check.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Expect {
    /// A positive control: accepted.
    Accept,
    /// Refused with this reason, and the detail mentions this text (case-insensitive).
    Refuse(Refusal, &'static str),
    /// Not a refusal: evaluated again later. The detail mentions this text.
    Retry(&'static str),
    /// This holder leaves the request to others.
    Abstain,
    /// A genuine quote for another request: refused 7 at once (PROTOCOL.md §5.1 since version 5:
    /// report_data before any collateral or signature work), and the verifier alone, on the same
    /// quote, decides as given (what the pipeline would do with a quote that bound the request).
    Unbound(&'static Expect),
}

impl Expect {
    fn describe(self) -> String {
        match self {
            Expect::Accept => "accept".into(),
            Expect::Refuse(r, text) => format!("refuse {} mentioning {text:?}", r.name()),
            Expect::Retry(text) => format!("retry mentioning {text:?}"),
            Expect::Abstain => "abstain".into(),
            Expect::Unbound(e) => format!("refuse report_data_mismatch, then (verifier alone) {}", e.describe()),
        }
    }

    /// Panics unless `d` is this decision, for this precise reason, saying this.
    fn check(self, case: &str, d: &Outcome) {
        let says = |detail: &str, want: &str| detail.to_lowercase().contains(&want.to_lowercase());
        match (self, d) {
            (Expect::Accept, Decision::Accept(_)) | (Expect::Abstain, Decision::Abstain(_)) => {}
            (Expect::Refuse(want, text), Decision::Refuse(got, detail)) => {
                assert_eq!(*got, want, "{case}: refused for the wrong reason ({})", describe(d));
                assert!(says(detail, text), "{case}: the refusal does not say {text:?}: {detail}");
            }
            (Expect::Retry(text), Decision::Retry(detail)) => {
                assert!(says(detail, text), "{case}: the retry does not say {text:?}: {detail}");
            }
            _ => panic!("{case}: expected {}, got {}", self.describe(), describe(d)),
        }
    }
}

fn describe(d: &Outcome) -> String {
    let short = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect::<String>();
    match d {
        Decision::Accept(_) => "accept".into(),
        Decision::Refuse(r, detail) => format!("refuse {}: {}", r.name(), short(detail)),
        Decision::Retry(detail) => format!("retry: {}", short(detail)),
        Decision::Abstain(detail) => format!("abstain: {}", short(detail)),
    }
}

/// Every rendering of the cluster key, the secret file, the encoded bundle and the requester's
/// HPKE private key that could show up in a string, including 8-byte windows of the keys.
fn secret_needles() -> &'static [String] {
    static NEEDLES: OnceLock<Vec<String>> = OnceLock::new();
    NEEDLES.get_or_init(|| {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let b64url = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let mut out = vec!["ABUSE-SUITE-SECRET".to_string(), "correct horse battery staple".to_string()];
        let hpke_sk = requester_keys().secret_bytes();
        for blob in [&cluster_key()[..], &hpke_sk[..], SECRET_FILE, &bundle().encode()[..]] {
            out.extend([hex::encode(blob), hex::encode_upper(blob), b64(blob), b64url(blob)]);
        }
        for key in [&cluster_key()[..], &hpke_sk[..]] {
            out.extend(key.windows(8).map(hex::encode));
            out.push(format!("{key:?}")); // a Debug-printed byte array
        }
        out
    })
}

/// The secret rendering found in `text`, if any: hex, base64 and Debug forms, or the raw bytes.
fn leaks(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    let found = secret_needles().iter().find(|n| text.contains(n.as_str()) || lower.contains(&n.to_lowercase()));
    found.cloned().or_else(|| raw_leak(text.as_bytes()))
}

/// Which secret occurs in `bytes` as raw bytes, if any.
fn raw_leak(bytes: &[u8]) -> Option<String> {
    let (key, hpke_sk, encoded) = (cluster_key(), requester_keys().secret_bytes(), bundle().encode());
    let raw: [(&str, &[u8]); 4] = [
        ("raw cluster key", &key),
        ("raw HPKE private key", &hpke_sk[..]),
        ("raw secret file", SECRET_FILE),
        ("raw bundle", &encoded[..]),
    ];
    raw.iter().find(|(_, blob)| bytes.windows(blob.len()).any(|w| w == *blob)).map(|(what, _)| what.to_string())
}

fn assert_leaks_nothing(case: &str, text: &str) {
    if let Some(found) = leaks(text) {
        panic!("{case}: the outcome leaks a secret ({found}): {text}");
    }
}

/// A test name for a case name: lower case, words joined by `_`, signs spelled out
/// (`quote: oversized (16 KiB + 1)` → `quote_oversized_16_kib_plus_1`).
fn slug(name: &str) -> String {
    let spelled = name.replace("->", " to ").replace(" - ", " minus ").replace('+', " plus ").replace('=', " eq ");
    let mut out = String::new();
    for c in spelled.chars().filter(|c| *c != '\'') {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

// ---------------------------------------------------------------------------------------------
// Holder side: the request pipeline.
// ---------------------------------------------------------------------------------------------

/// Curve25519 points of small order (and their non-canonical and high-bit encodings): any DH
/// with them yields an all-zero or predictable shared secret.
fn low_order_keys() -> Vec<(&'static str, [u8; 32])> {
    let h = |s: &str| -> [u8; 32] {
        let mut k = [0u8; 32];
        hex::decode_to_slice(s, &mut k).expect("hex");
        k
    };
    vec![
        ("all-zero (order 2)", [0; 32]),
        ("u = 1 (order 4)", h("0100000000000000000000000000000000000000000000000000000000000000")),
        ("order 8, first", h("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")),
        ("order 8, second", h("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157")),
        ("p - 1 (order 2)", h("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")),
        ("p (= 0)", h("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")),
        ("p + 1 (= 1)", h("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")),
        ("all-zero with bit 255 set", h("0000000000000000000000000000000000000000000000000000000000000080")),
        ("order 8 with bit 255 set", h("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880")),
        ("p + 1 with bit 255 set", h("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff")),
    ]
}

fn flip(at: usize) -> impl FnOnce(&mut Vec<u8>) {
    move |q: &mut Vec<u8>| q[at] ^= 0x01
}

fn pem_start(q: &[u8]) -> usize {
    q.windows(5).position(|w| w == b"-----").expect("PEM chain in quote")
}

/// Compact log header with `count` events and the given event bodies.
fn compact(format: u8, count: u16, body: &[u8]) -> Vec<u8> {
    let mut out = b"RPEL\x01".to_vec();
    out.push(format);
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn compact_event(name: &[u8], payload_len: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![name.len() as u8];
    out.extend_from_slice(name);
    out.extend_from_slice(&payload_len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn pipeline_cases(base: &Base) -> Vec<(String, Expect, Input)> {
    use Expect::*;
    use Refusal::*;
    let q = &base.input.quote;
    let pk = requester_keys().public();
    let rd_for = |d: Deployment, who: Address, key: &[u8; 32]| d.request_report_data(who, key);
    let cluster = bundle().cluster_address();
    let mut c: Vec<(String, Expect, Input)> = Vec::new();
    let mut add = |name: &str, e: Expect, i: Input| c.push((name.to_string(), e, i));

    // --- Quote bytes that do not parse. ---
    add("quote: empty", Refuse(QuoteMalformed, "quote malformed"), base.quote(Vec::clear));
    add("quote: 47 bytes (header cut)", Refuse(QuoteMalformed, "quote malformed"), base.quote(|q| q.truncate(47)));
    let half = q.len() / 2;
    add("quote: truncated to half", Refuse(QuoteMalformed, "quote malformed"), base.quote(|q| q.truncate(half)));
    add(
        "quote: last byte cut",
        Refuse(QuoteMalformed, "quote malformed"),
        base.quote(|q| {
            q.pop();
        }),
    );
    add("quote: auth-data length +1", Refuse(QuoteMalformed, "quote malformed"), base.quote(|q| q[at::AUTH_LEN] += 1));
    add(
        "quote: oversized (16 KiB + 1)",
        Refuse(QuoteMalformed, "exceeds the 16384 byte limit"),
        base.quote(|q| q.resize(16 * 1024 + 1, 0)),
    );
    add(
        "quote: 4 KiB pseudo-random garbage",
        Refuse(QuoteMalformed, "quote malformed"),
        base.quote(|q| *q = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()),
    );
    add("quote: 5000 x 0xff", Refuse(QuoteMalformed, "quote malformed"), base.quote(|q| *q = vec![0xff; 5000]));
    add(
        "quote: unknown TEE type 0x7f",
        Refuse(QuoteMalformed, "quote malformed"),
        base.quote(|q| q[at::TEE_TYPE] = 0x7f),
    );

    // --- Well-formed, but not a TDX v4/v5 quote. ---
    add("quote: version 3 header", Refuse(WrongTeeType, "version 3"), base.quote(|q| q[at::VERSION] = 3));
    add("quote: version 6 header", Refuse(WrongTeeType, "version 6"), base.quote(|q| q[at::VERSION] = 6));
    add(
        "quote: TEE type SGX in a v4 header",
        Refuse(WrongTeeType, "TEE type 0x0"),
        base.quote(|q| q[at::TEE_TYPE] = 0),
    );
    add(
        "genuine SGX quote (fixture)",
        Refuse(WrongTeeType, "TEE type 0x0"),
        base.with(|i| i.quote = read_fixture("sgx_quote")),
    );

    // --- Genuine Intel TDX quotes: valid signatures, but not for us. ---
    let genuine = |i: &mut Input| {
        i.trust = Trust::Genuine("tdx_quote_collateral.json");
        i.now = GENUINE_NOW;
        i.quote = read_fixture("tdx_quote");
    };
    add(
        "genuine TDX quote: report_data binds another request",
        Refuse(ReportDataMismatch, "does not bind"),
        base.with(genuine),
    );
    add(
        "genuine TDX quote: signature byte flipped",
        Unbound(&Refuse(QuoteInvalid, "quote verification failed")),
        base.with(|i| {
            genuine(i);
            i.quote[at::QUOTE_SIG + 7] ^= 0x01;
        }),
    );
    add(
        "genuine TDX quote: report_data byte flipped",
        Unbound(&Refuse(QuoteInvalid, "quote verification failed")),
        base.with(|i| {
            genuine(i);
            i.quote[at::REPORT_DATA] ^= 0x01;
        }),
    );
    // --- Compact quotes (PROTOCOL.md §3.9): decoded first; what does not decode is malformed (1),
    // what decodes is judged exactly as its raw quote. ---
    let genuine_compact = |edit: fn(&mut Vec<u8>)| {
        move |i: &mut Input| {
            genuine(i);
            i.quote = replicatoor_compact_quote::encode(&i.quote).expect("compact form");
            edit(&mut i.quote);
        }
    };
    add(
        "genuine TDX quote, compact: report_data binds another request",
        Refuse(ReportDataMismatch, "does not bind"),
        base.with(genuine_compact(|_| {})),
    );
    add(
        "genuine TDX quote, compact: signature byte flipped",
        Unbound(&Refuse(QuoteInvalid, "quote verification failed")),
        base.with(genuine_compact(|q| q[5 + at::QUOTE_SIG - 4 + 7] ^= 0x01)),
    );
    add(
        "compact quote: trailing byte",
        Refuse(QuoteMalformed, "1 trailing bytes"),
        base.with(genuine_compact(|q| q.push(0))),
    );
    add(
        "compact quote: last byte cut",
        Refuse(QuoteMalformed, "compact quote truncated"),
        base.with(genuine_compact(|q| {
            q.pop();
        })),
    );
    add(
        "compact quote: unknown certificate id",
        Refuse(QuoteMalformed, "unknown id 0x09"),
        base.with(genuine_compact(|q| {
            let n = q.len();
            q[n - 3] = 0x09;
        })),
    );
    add(
        "compact quote: unknown format version",
        Refuse(QuoteMalformed, "format version 0x02 is unknown"),
        base.with(genuine_compact(|q| q[4] = 2)),
    );
    add(
        "compact quote: SGX header",
        Refuse(QuoteMalformed, "compact quote header unsupported"),
        base.with(genuine_compact(|q| q[5 + at::TEE_TYPE] = 0)),
    );
    add(
        "genuine TDX v5 quote: TCB matches no level",
        Unbound(&Refuse(TcbStatusNotAccepted, "no matching tcb level")),
        base.with(|i| {
            i.trust = Trust::Genuine("tdx_quote_outdated_collateral.json");
            i.now = OUTDATED_NOW;
            i.quote = read_fixture("tdx_quote_outdated");
        }),
    );
    add(
        "genuine TDX quote, no collateral configured",
        Unbound(&Retry("collateral unavailable")),
        base.with(|i| {
            genuine(i);
            i.trust = Trust::Strict;
        }),
    );
    add(
        "genuine TDX quote, collateral expired",
        Unbound(&Retry("collateral unavailable")),
        base.with(|i| {
            genuine(i);
            i.now = 1_752_969_600; // 2025-07-20, after nextUpdate
        }),
    );
    add(
        "genuine TDX quote, collateral not yet valid",
        Unbound(&Retry("collateral unavailable")),
        base.with(|i| {
            genuine(i);
            i.now = 1_750_204_800; // 2025-06-18, before issueDate
        }),
    );
    for (name, tamper) in [
        ("TCB info signature", (|c| c.tcb_info_signature[3] ^= 1) as fn(&mut QuoteCollateralV3)),
        ("QE identity signature", |c| c.qe_identity_signature[3] ^= 1),
        ("TCB info JSON", |c| c.tcb_info = c.tcb_info.replacen("UpToDate", "UpToDatf", 1)),
        ("TCB info not JSON", |c| c.tcb_info.truncate(10)),
        ("QE identity id", |c| c.qe_identity = c.qe_identity.replacen("TD_QE", "QE", 1)),
        ("PCK CRL", |c| c.pck_crl.truncate(20)),
        ("root CA CRL", |c| c.root_ca_crl[40] ^= 1),
        ("TCB signer chain", |c| c.tcb_info_issuer_chain = String::new()),
        ("TCB signer chain swapped for the PCK CA's", |c| c.tcb_info_issuer_chain = c.pck_crl_issuer_chain.clone()),
        ("QE identity signer chain swapped", |c| c.qe_identity_issuer_chain = c.pck_crl_issuer_chain.clone()),
    ] {
        add(
            &format!("genuine TDX quote, holder's collateral corrupt: {name}"),
            Unbound(&Retry("collateral unavailable")),
            base.with(|i| {
                genuine(i);
                i.trust = Trust::Tampered("tdx_quote_collateral.json", tamper);
            }),
        );
    }
    add(
        "genuine TDX quote, collateral of another platform",
        Unbound(&Retry("collateral unavailable")),
        base.with(|i| {
            genuine(i);
            i.trust = Trust::Genuine("sgx_quote_collateral.json");
        }),
    );
    // A PCK leaf that names the genuine platform and whose chain ends in Intel's root, but that
    // Intel did not sign (its signature damaged): refused before any collateral is consulted, so
    // it can neither wait forever nor choose what a PCCS-backed holder fetches and caches.
    add(
        "genuine TDX quote: PCK leaf forged, chain still ends in Intel's root",
        Unbound(&Refuse(Refusal::QuoteInvalid, "does not verify against the trusted root")),
        base.with(|i| {
            genuine(i);
            let q = &mut i.quote;
            let end = q.windows(25).position(|w| w == b"-----END CERTIFICATE-----").expect("a PEM chain");
            let mut at = end - 1;
            while matches!(q[at], b'\n' | b'\r' | b'=') {
                at -= 1;
            }
            at -= 4; // inside the leaf's signature
            q[at] = if q[at] == b'A' { b'B' } else { b'A' };
        }),
    );

    // --- Simulated quote, one byte flipped in each signed or certified part. ---
    for (name, at) in [
        ("header: attestation key type", at::ATT_KEY_TYPE),
        ("header: QE vendor id", at::QE_VENDOR_ID),
        ("header: user data", at::USER_DATA + 5),
        ("body: TEE TCB SVN", at::TEE_TCB_SVN + 2),
        ("body: TD attributes DEBUG bit", at::TD_ATTRIBUTES),
        ("body: MRTD", at::MR_TD + 10),
        ("body: mr_config_id", at::MR_CONFIG_ID + 3),
        ("body: RTMR3", at::RTMR3 + 20),
        ("body: report_data", at::REPORT_DATA + 63),
        ("quote signature", at::QUOTE_SIG + 10),
        ("attestation key", at::ATT_KEY + 10),
        ("QE report", at::QE_REPORT + 100),
        ("QE report: report_data (key hash)", at::QE_REPORT_DATA + 5),
        ("QE report signature", at::QE_REPORT_SIG + 10),
        ("QE auth data", at::QE_AUTH_DATA + 3),
        ("PEM chain: PCK leaf certificate", pem_start(q) + 400),
    ] {
        // Flips in what the cheap checks read (PROTOCOL.md §5.1 rows 0-9 since version 5) are refused
        // by them, before the signature check that would also fail.
        let expect = match name {
            "body: MRTD" => Refuse(OsReferenceNotAllowed, "not allowed"),
            "body: mr_config_id" => Refuse(ComposeHashMismatch, "mr_config_id binds"),
            "body: RTMR3" => Refuse(Rtmr3Mismatch, "rtmr3"),
            "body: report_data" => Refuse(ReportDataMismatch, "does not bind"),
            _ => Refuse(QuoteInvalid, "quote verification failed"),
        };
        add(&format!("flip in {name}"), expect, base.quote(flip(at)));
    }
    // Chains to neither the simulated nor Intel's root: refused at once, no collateral fetched
    // (otherwise a junk quote would wait, and trigger PCCS fetches, forever).
    add(
        "quote: PEM chain's root certificate altered",
        Refuse(Refusal::QuoteInvalid, "does not verify against the trusted root"),
        base.quote(|q| {
            let root = q.len() - 200; // inside the last (root) certificate's base64
            q[root] = if q[root] == b'A' { b'B' } else { b'A' };
        }),
    );
    // Controls: bytes outside everything signed. Genuine Dstack quotes end in 70 zero bytes of
    // padding, so trailing bytes must stay accepted; the outer certification-data type is not
    // signed and dcap-qvl reads the QE report data whatever it says.
    add("quote: 100 trailing zero bytes (control)", Accept, base.quote(|q| q.extend([0; 100])));
    add("quote: outer cert data type 6 -> 7 (control)", Accept, base.quote(|q| q[at::CERT_TYPE] = 7));

    // --- TD attributes and TCB levels vs. the policy. ---
    let debug = |r: &mut Recipe| r.params.set_debug();
    add("debug TD, policy forbids", Refuse(DebugTdNotAllowed, "DEBUG"), base.td(debug));
    add("debug TD, policy allows (control)", Accept, {
        let mut i = base.td(debug);
        i.policy.allow_debug = true;
        i
    });
    let profiling = |r: &mut Recipe| r.params.td_attributes[0] |= 0x10;
    add("profiling TUD bit, policy forbids debug", Refuse(TdAttributesNotAccepted, "profiling"), base.td(profiling));
    add("profiling TUD bit, policy allows debug (control)", Accept, {
        let mut i = base.td(profiling);
        i.policy.allow_debug = true;
        i
    });
    add("reserved TUD bit 1 set (even with debug allowed)", Refuse(QuoteInvalid, "reserved"), {
        let mut i = base.td(|r| r.params.td_attributes[0] |= 0x02);
        i.policy.allow_debug = true;
        i
    });
    add("MIGRATABLE attribute set", Refuse(QuoteInvalid, "migration"), base.td(|r| r.params.td_attributes[3] |= 0x20));
    add(
        "SERVTD_EXT attribute set (TD 1.0 body)",
        Refuse(QuoteInvalid, "SERVTD_EXT"),
        base.td(|r| r.params.td_attributes[2] |= 0x02),
    );
    add(
        "SEPT_VE_DISABLE attribute cleared",
        Refuse(QuoteInvalid, "SEPT_VE_DISABLE"),
        base.td(|r| r.params.td_attributes[3] &= !0x10),
    );
    for (tcb, status) in [
        (SimTcb::OutOfDate, "OutOfDate"),
        (SimTcb::SwHardeningNeeded, "SWHardeningNeeded"),
        (SimTcb::ConfigurationNeeded, "ConfigurationNeeded"),
    ] {
        add(
            &format!("TCB {status}, mask UpToDate only"),
            Refuse(TcbStatusNotAccepted, status),
            base.td(|r| r.params.tcb = tcb),
        );
    }
    add("TCB OutOfDate, mask includes it (control)", Accept, {
        let mut i = base.td(|r| r.params.tcb = SimTcb::OutOfDate);
        i.policy.tcb_statuses = 1 | 1 << 4;
        i
    });
    add("TCB Revoked, all-ones mask", Refuse(TcbStatusNotAccepted, "revoked"), {
        let mut i = base.td(|r| r.params.tcb = SimTcb::Revoked);
        i.policy.tcb_statuses = u16::MAX;
        i
    });
    add("TCB UpToDate, empty mask", Refuse(TcbStatusNotAccepted, "UpToDate"), base.with(|i| i.policy.tcb_statuses = 0));

    // --- Simulated quotes vs. policy and holder trust. ---
    add(
        "simulated quote, policy forbids (trusting holder)",
        Refuse(SimulatedQuoteNotAllowed, "policy does not allow"),
        base.with(|i| i.policy.allow_simulated = false),
    );
    add(
        "simulated quote, policy forbids (strict holder)",
        Refuse(SimulatedQuoteNotAllowed, "SIMULATED PKI"),
        base.with(|i| {
            i.policy.allow_simulated = false;
            i.trust = Trust::Strict;
        }),
    );
    add("simulated quote, policy allows, strict holder", Abstain, base.with(|i| i.trust = Trust::Strict));

    // --- report_data that binds something else. ---
    let other_chain = Deployment { chain_id: 1, ..dep() };
    let other_contract = Deployment { contract: Address::with_last_byte(10), ..dep() };
    let rebind = |rd: [u8; 64]| base.td(move |r| r.params.report_data = rd);
    add(
        "report_data binds another chain",
        Refuse(ReportDataMismatch, "does not bind"),
        rebind(rd_for(other_chain, requester(), &pk)),
    );
    add(
        "report_data binds another contract",
        Refuse(ReportDataMismatch, "does not bind"),
        rebind(rd_for(other_contract, requester(), &pk)),
    );
    add(
        "report_data binds another requester",
        Refuse(ReportDataMismatch, "does not bind"),
        rebind(rd_for(dep(), Address::repeat_byte(0xce), &pk)),
    );
    add(
        "report_data binds another HPKE key",
        Refuse(ReportDataMismatch, "does not bind"),
        rebind(rd_for(dep(), requester(), &HpkeKeypair::generate().public())),
    );
    add(
        "report_data is a genesis binding",
        Refuse(ReportDataMismatch, "does not bind"),
        rebind(dep().genesis_report_data(cluster, 1)),
    );
    add("report_data all zero", Refuse(ReportDataMismatch, "does not bind"), rebind([0; 64]));
    let genesis = |rd: [u8; 64], epoch: u64| {
        let mut i = rebind(rd);
        i.binding = Bind::Genesis(GenesisBinding { cluster, epoch });
        i
    };
    add(
        "genesis quote for this cluster and epoch (control)",
        Accept,
        genesis(dep().genesis_report_data(cluster, 1), 1),
    );
    add(
        "genesis: request quote offered as genesis quote",
        Refuse(ReportDataMismatch, "does not bind"),
        genesis(rd_for(dep(), requester(), &pk), 1),
    );
    add(
        "genesis: epoch-1 quote reused at epoch 2",
        Refuse(ReportDataMismatch, "does not bind"),
        genesis(dep().genesis_report_data(cluster, 1), 2),
    );
    add(
        "genesis: quote binds another cluster",
        Refuse(ReportDataMismatch, "does not bind"),
        genesis(dep().genesis_report_data(Address::repeat_byte(0x77), 1), 1),
    );

    // --- Low-order HPKE keys (the quote binds the bad key, so only the key is wrong). ---
    for (name, key) in low_order_keys() {
        let mut i = rebind(rd_for(dep(), requester(), &key));
        i.binding = Bind::Request(RequestBinding {
            request_id: U256::from(REQUEST_ID),
            requester: requester(),
            hpke_pub_key: key,
        });
        add(&format!("HPKE key low-order: {name}"), Refuse(InvalidPublicKey, "low-order"), i);
    }

    // --- Compact event logs that do not decode (the quote is the valid one). ---
    let good_log = base.input.log.clone();
    let body = good_log[8..].to_vec();
    add("log: empty", Refuse(EventLogMalformed, "truncated"), base.log(Vec::clear));
    add("log: bad magic", Refuse(EventLogMalformed, "magic"), base.log(|l| l[0] = b'X'));
    add("log: version 2", Refuse(EventLogMalformed, "version 0x02"), base.log(|l| l[4] = 2));
    add("log: unknown digest format 0x03", Refuse(EventLogMalformed, "digest format 0x03"), base.log(|l| l[5] = 3));
    add(
        "log: last byte cut",
        Refuse(EventLogMalformed, "truncated"),
        base.log(|l| {
            l.pop();
        }),
    );
    add("log: one trailing byte", Refuse(EventLogMalformed, "trailing"), base.log(|l| l.push(0)));
    add("log: count one too high", Refuse(EventLogMalformed, "truncated"), base.log(|l| l[7] += 1));
    add("log: count one too low", Refuse(EventLogMalformed, "trailing"), base.log(|l| l[7] -= 1));
    add(
        "log: 257 events announced",
        Refuse(EventLogMalformed, "257 runtime events"),
        base.log(|l| *l = compact(1, 257, &body)),
    );
    add(
        "log: payload length 16385 announced",
        Refuse(EventLogMalformed, "payload of 16385 bytes"),
        base.log(|l| *l = compact(1, 1, &compact_event(b"x", 16385, &[0; 16385]))),
    );
    add(
        "log: payload length 65535 announced, absent",
        Refuse(EventLogMalformed, "payload of 65535 bytes"),
        base.log(|l| *l = compact(1, 1, &compact_event(b"x", u16::MAX, b""))),
    );
    add("log: 64 KiB + 1 bytes", Refuse(EventLogMalformed, "65537 bytes"), base.log(|l| l.resize(64 * 1024 + 1, 0)));
    add(
        "log: zero-length event name",
        Refuse(EventLogMalformed, "name length 0"),
        base.log(|l| *l = compact(1, 1, &compact_event(b"", 0, b""))),
    );
    add(
        "log: 65-byte event name",
        Refuse(EventLogMalformed, "name length 65"),
        base.log(|l| *l = compact(1, 1, &compact_event(&[b'a'; 65], 0, b""))),
    );
    add(
        "log: ':' (colon) in event name",
        Refuse(EventLogMalformed, "name byte 0x3a"),
        base.log(|l| *l = compact(1, 1, &compact_event(b"compose-hash:x", 0, b""))),
    );
    add(
        "log: newline in event name",
        Refuse(EventLogMalformed, "name byte 0x0a"),
        base.log(|l| *l = compact(1, 1, &compact_event(b"app\nid", 0, b""))),
    );
    add("log: V2 digest format on an empty log", Refuse(EventLogMalformed, "digest format 0x02"), {
        base.log(|l| *l = compact(2, 0, b""))
    });

    // --- Logs that decode but do not replay to the quote's RTMR3. ---
    let events_log = |events: Vec<Event>| to_compact(&EventLog::from_events(events)).expect("compact");
    add(
        "log: compose-hash payload altered",
        Refuse(Rtmr3Mismatch, "RTMR3 mismatch"),
        base.log(|l| {
            let mut e = good_events();
            e[2] = ev(eventlog::EVENT_COMPOSE_HASH, &[0xee; 32]);
            *l = events_log(e);
        }),
    );
    add("log: last payload byte altered", Refuse(Rtmr3Mismatch, "RTMR3 mismatch"), {
        // The log ends with key-provider's payload, then system-ready (1 + 12 + 2 bytes).
        base.log(flip(good_log.len() - 16))
    });
    add(
        "log: two events swapped",
        Refuse(Rtmr3Mismatch, "RTMR3 mismatch"),
        base.log(|l| {
            let mut e = good_events();
            e.swap(1, 3);
            *l = events_log(e);
        }),
    );
    add(
        "log: an event dropped",
        Refuse(Rtmr3Mismatch, "RTMR3 mismatch"),
        base.log(|l| {
            let mut e = good_events();
            e.remove(0);
            *l = events_log(e);
        }),
    );
    add(
        "log: an event appended",
        Refuse(Rtmr3Mismatch, "RTMR3 mismatch"),
        base.log(|l| {
            let mut e = good_events();
            e.push(ev("system-ready", b""));
            *l = events_log(e);
        }),
    );
    add("log: V2 digest format byte on a V1 log", Refuse(Rtmr3Mismatch, "RTMR3 mismatch"), base.log(|l| l[5] = 2));
    add("log: empty (zero events)", Refuse(Rtmr3Mismatch, "RTMR3 mismatch"), base.log(|l| *l = compact(1, 0, b"")));

    // --- Logs that replay correctly (the quote was made over them) but break the claim rules. ---
    let claims = |f: fn(&mut Vec<Event>)| base.td(move |r| f(&mut r.events));
    add(
        "claims: compose-hash duplicated",
        Refuse(EventLogMalformed, "`compose-hash` occurs more than once"),
        claims(|e| e.insert(3, ev(eventlog::EVENT_COMPOSE_HASH, &compose_hash()))),
    );
    add(
        "claims: compose-hash missing",
        Refuse(EventLogMalformed, "`compose-hash` is missing"),
        claims(|e| {
            e.remove(2);
        }),
    );
    add(
        "claims: compose-hash after boot-mr-done",
        Refuse(EventLogMalformed, "comes after `boot-mr-done`"),
        claims(|e| e.swap(2, 4)),
    );
    add(
        "claims: second compose-hash after boot-mr-done",
        Refuse(EventLogMalformed, "`compose-hash` occurs more than once"),
        claims(|e| e.push(ev(eventlog::EVENT_COMPOSE_HASH, &[0xee; 32]))),
    );
    add(
        "claims: compose-hash of 31 bytes",
        Refuse(EventLogMalformed, "compose-hash payload is 31 bytes"),
        claims(|e| e[2] = ev(eventlog::EVENT_COMPOSE_HASH, &[0xab; 31])),
    );
    add(
        "claims: boot-mr-done missing",
        Refuse(EventLogMalformed, "`boot-mr-done` is missing"),
        claims(|e| {
            e.remove(4);
        }),
    );
    add(
        "claims: app-id duplicated",
        Refuse(EventLogMalformed, "`app-id` occurs more than once"),
        claims(|e| e.insert(1, ev(eventlog::EVENT_APP_ID, b"other"))),
    );
    add(
        "claims: instance-id missing",
        Refuse(EventLogMalformed, "`instance-id` is missing"),
        claims(|e| {
            e.remove(3);
        }),
    );
    add(
        "claims: key-provider after system-ready",
        Refuse(EventLogMalformed, "`key-provider` (event 6) comes after `system-ready`"),
        claims(|e| e.swap(5, 6)),
    );
    add(
        "mr_config_id binds another compose hash",
        Refuse(ComposeHashMismatch, "mr_config_id binds eeee"),
        base.td(|r| r.params.mr_config_id[1..33].copy_from_slice(&[0xee; 32])),
    );

    // --- Reference values. On chain, pending (timelocked), revoked and never-proposed ids all read
    // as not allowed; an id has one kind. ---
    let os = base.recipe.os_ref();
    let app = app_reference_id(&compose_hash());
    let refs = |f: &dyn Fn(&mut AllowList)| base.with(|i| f(&mut i.refs));
    add(
        "OS ref: other MRTD, never proposed",
        Refuse(OsReferenceNotAllowed, "is not allowed now"),
        base.td(|r| r.params.mr_td[0] ^= 1),
    );
    add("OS ref: pending (timelocked)", Refuse(OsReferenceNotAllowed, "Os reference"), {
        refs(&|r| {
            r.withdraw(os);
        })
    });
    add("OS ref: revoked", Refuse(OsReferenceNotAllowed, "Os reference"), {
        refs(&|r| {
            r.withdraw(os);
        })
    });
    add(
        "OS ref: id proposed as an App reference",
        Refuse(OsReferenceNotAllowed, "Os reference"),
        refs(&|r| {
            r.allow(os, RefKind::App);
        }),
    );
    add(
        "app ref: other compose hash, never proposed",
        Refuse(AppReferenceNotAllowed, "App reference"),
        base.td(|r| {
            let other = [0x0c; 32];
            r.params.mr_config_id[1..33].copy_from_slice(&other);
            r.events[2] = ev(eventlog::EVENT_COMPOSE_HASH, &other);
        }),
    );
    add("app ref: pending (timelocked)", Refuse(AppReferenceNotAllowed, "App reference"), {
        refs(&|r| {
            r.withdraw(app);
        })
    });
    add("app ref: revoked", Refuse(AppReferenceNotAllowed, "App reference"), {
        refs(&|r| {
            r.withdraw(app);
        })
    });
    add(
        "app ref: id proposed as an OS reference",
        Refuse(AppReferenceNotAllowed, "App reference"),
        refs(&|r| {
            r.allow(app, RefKind::Os);
        }),
    );
    add(
        "references unreadable (RPC down)",
        Retry("rpc down"),
        refs(&|r| *r = AllowList::unreadable("connection refused (rpc down)")),
    );
    c
}

// ---------------------------------------------------------------------------------------------
// New-node side: opening a delivery.
// ---------------------------------------------------------------------------------------------

type DeliveryCheck = fn(&DeliveryError) -> bool;

/// A delivery a new node is handed, the context it opens it in, and the error it must get.
struct DeliveryCase {
    name: String,
    /// The `DeliveryError` variant expected, as the check matches it.
    want: &'static str,
    cluster: Address,
    keys: HpkeKeypair,
    deployment: Deployment,
    delivery: SignedDelivery,
    check: DeliveryCheck,
}

/// Re-sign a delivery's fields as `key` (what a malicious or confused cluster could post).
fn resign(d: &SignedDelivery, key: &PrivateKeySigner) -> SignedDelivery {
    let record = replicatoor_testkit::record_of(d);
    SignedDelivery { signature: eip712::sign(&dep(), &record, key).expect("sign").to_vec(), ..d.clone() }
}

/// HPKE-seal arbitrary plaintext exactly as a holder would, then sign it as the cluster.
fn seal_raw(d: &SignedDelivery, plaintext: &[u8], cluster: &PrivateKeySigner) -> SignedDelivery {
    use hpke::{aead::ChaCha20Poly1305, kdf::HkdfSha256, kem::X25519HkdfSha256, Deserializable, OpModeS, Serializable};
    let pk = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(&requester_keys().public()).expect("pk");
    let info = dep().hpke_info(d.request_id);
    let aad = hpke_aad(d.os_ref, d.app_ref);
    let (enc, ct) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &pk,
        &info,
        plaintext,
        &aad,
    )
    .expect("seal");
    resign(&SignedDelivery { encapsulated_key: enc.to_bytes().to_vec(), ciphertext: ct, ..d.clone() }, cluster)
}

fn delivery_cases(accepted: &AcceptedRequest) -> Vec<DeliveryCase> {
    let b = bundle();
    let c_key = b.cluster_signer().clone();
    let c = b.cluster_address();
    let good = delivery::seal(&dep(), accepted, &b).expect("seal");
    let stranger = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x31)).expect("key");
    let mut out: Vec<DeliveryCase> = vec![];
    let mut add = |name: &str, want: &'static str, delivery: SignedDelivery, check: DeliveryCheck| {
        out.push(DeliveryCase {
            name: name.to_string(),
            want,
            cluster: c,
            keys: requester_keys(),
            deployment: dep(),
            delivery,
            check,
        });
    };
    let edit = |f: &dyn Fn(&mut SignedDelivery)| {
        let mut d = good.clone();
        f(&mut d);
        d
    };
    let edit_signed = |f: &dyn Fn(&mut SignedDelivery)| resign(&edit(f), &c_key);

    add("delivery signed by a non-cluster key", "WrongSigner", resign(&good, &stranger), |e| {
        matches!(e, DeliveryError::WrongSigner { .. })
    });
    add("delivery: ciphertext flipped, stale signature", "WrongSigner", edit(&|d| d.ciphertext[0] ^= 1), |e| {
        matches!(e, DeliveryError::WrongSigner { .. })
    });
    add(
        "delivery: refs swapped, stale signature",
        "WrongSigner",
        edit(&|d| std::mem::swap(&mut d.os_ref, &mut d.app_ref)),
        |e| matches!(e, DeliveryError::WrongSigner { .. }),
    );
    add(
        "delivery: ciphertext flipped, re-signed by cluster",
        "Hpke(OpenFailed)",
        edit_signed(&|d| d.ciphertext[5] ^= 1),
        |e| matches!(e, DeliveryError::Hpke(HpkeError::OpenFailed)),
    );
    add(
        "delivery: auth tag flipped, re-signed",
        "Hpke(OpenFailed)",
        edit_signed(&|d| *d.ciphertext.last_mut().expect("ct") ^= 1),
        |e| matches!(e, DeliveryError::Hpke(HpkeError::OpenFailed)),
    );
    add(
        "delivery: ciphertext truncated by 1, re-signed",
        "Hpke(OpenFailed)",
        edit_signed(&|d| {
            d.ciphertext.pop();
        }),
        |e| matches!(e, DeliveryError::Hpke(HpkeError::OpenFailed)),
    );
    add("delivery: ciphertext empty, re-signed", "Hpke(OpenFailed)", edit_signed(&|d| d.ciphertext.clear()), |e| {
        matches!(e, DeliveryError::Hpke(HpkeError::OpenFailed))
    });
    add(
        "delivery: another ephemeral key, re-signed",
        "Hpke(OpenFailed)",
        edit_signed(&|d| d.encapsulated_key = HpkeKeypair::generate().public().to_vec()),
        |e| matches!(e, DeliveryError::Hpke(HpkeError::OpenFailed)),
    );
    add(
        "delivery: all-zero (low-order) ephemeral key, re-signed",
        "Hpke(OpenFailed)",
        edit_signed(&|d| d.encapsulated_key = vec![0; 32]),
        |e| matches!(e, DeliveryError::Hpke(HpkeError::OpenFailed)),
    );
    add(
        "delivery: 31-byte encapsulated key, re-signed",
        "Hpke(BadEncapsulatedKey)",
        edit_signed(&|d| {
            d.encapsulated_key.pop();
        }),
        |e| matches!(e, DeliveryError::Hpke(HpkeError::BadEncapsulatedKey)),
    );
    add(
        "delivery: 33-byte encapsulated key, re-signed",
        "Hpke(BadEncapsulatedKey)",
        edit_signed(&|d| d.encapsulated_key.push(0)),
        |e| matches!(e, DeliveryError::Hpke(HpkeError::BadEncapsulatedKey)),
    );
    add(
        "delivery: re-posted under another request id",
        "Hpke(OpenFailed)",
        edit_signed(&|d| d.request_id = U256::from(REQUEST_ID + 1)),
        |e| matches!(e, DeliveryError::Hpke(HpkeError::OpenFailed)),
    );
    add(
        "delivery: re-posted under other refs",
        "Hpke(OpenFailed)",
        edit_signed(&|d| d.os_ref = B256::repeat_byte(0x0e)),
        |e| matches!(e, DeliveryError::Hpke(HpkeError::OpenFailed)),
    );
    add("delivery: 64-byte signature", "Signature(Recover)", edit(&|d| d.signature.truncate(64)), |e| {
        matches!(e, DeliveryError::Signature(SignatureError::Recover(_)))
    });
    add("delivery: 66-byte signature", "Signature(Recover)", edit(&|d| d.signature.push(0)), |e| {
        matches!(e, DeliveryError::Signature(SignatureError::Recover(_)))
    });
    add("delivery: empty signature", "Signature(Recover)", edit(&|d| d.signature.clear()), |e| {
        matches!(e, DeliveryError::Signature(SignatureError::Recover(_)))
    });
    add("delivery: all-zero signature", "Signature(Recover)", edit(&|d| d.signature = vec![0; 65]), |e| {
        matches!(e, DeliveryError::Signature(SignatureError::Recover(_)))
    });
    let other_bundle =
        SecretBundle::new(Zeroizing::new([0x44; 32]), 1, Zeroizing::new(b"decoy".to_vec())).expect("bundle");
    add(
        "delivery: bundle of another cluster, signed by the real one",
        "ClusterMismatch",
        resign(&delivery::seal(&dep(), accepted, &other_bundle).expect("seal"), &c_key),
        |e| matches!(e, DeliveryError::ClusterMismatch { .. }),
    );
    let mut encoded = b.encode().to_vec();
    add("delivery: plaintext is not a bundle", "Bundle(BadMagic)", seal_raw(&good, SECRET_FILE, &c_key), |e| {
        matches!(e, DeliveryError::Bundle(BundleError::BadMagic))
    });
    encoded[4] = 1;
    add("delivery: bundle version 1", "Bundle(UnsupportedVersion(1))", seal_raw(&good, &encoded, &c_key), |e| {
        matches!(e, DeliveryError::Bundle(BundleError::UnsupportedVersion(1)))
    });
    encoded[4] = 2;
    // The keyring (PROTOCOL.md §3.4): its count is the last two bytes of a bundle without one.
    let ring_at = encoded.len() - 2;
    let mut ring = encoded[..ring_at].to_vec();
    ring.extend_from_slice(&1u16.to_be_bytes());
    ring.extend_from_slice(&b.epoch().to_be_bytes());
    ring.extend_from_slice(&3u32.to_be_bytes());
    ring.extend_from_slice(b"old");
    add(
        "delivery: bundle keyring entry not below its epoch",
        "Bundle(KeyringOrder)",
        seal_raw(&good, &ring, &c_key),
        |e| matches!(e, DeliveryError::Bundle(BundleError::KeyringOrder { .. })),
    );
    ring.truncate(ring.len() - 1);
    add("delivery: bundle keyring entry past the end", "Bundle(LengthMismatch)", seal_raw(&good, &ring, &c_key), |e| {
        matches!(e, DeliveryError::Bundle(BundleError::LengthMismatch { .. }))
    });
    encoded.push(0);
    add("delivery: bundle with a trailing byte", "Bundle(LengthMismatch)", seal_raw(&good, &encoded, &c_key), |e| {
        matches!(e, DeliveryError::Bundle(BundleError::LengthMismatch { .. }))
    });
    encoded.pop();
    let mut zero_key = encoded.clone();
    zero_key[5..37].fill(0);
    add("delivery: bundle with a zero cluster key", "Bundle(BadClusterKey)", seal_raw(&good, &zero_key, &c_key), |e| {
        matches!(e, DeliveryError::Bundle(BundleError::BadClusterKey))
    });
    let mut over_n = encoded.clone();
    over_n[5..37].fill(0xff);
    add("delivery: bundle key above the curve order", "Bundle(BadClusterKey)", seal_raw(&good, &over_n, &c_key), |e| {
        matches!(e, DeliveryError::Bundle(BundleError::BadClusterKey))
    });
    add("delivery: bundle header only", "Bundle(Truncated)", seal_raw(&good, &encoded[..40], &c_key), |e| {
        matches!(e, DeliveryError::Bundle(BundleError::Truncated { len: 40 }))
    });

    // The same good delivery opened in the wrong context.
    let in_context = |name: &str, cluster: Address, keys: HpkeKeypair, deployment: Deployment, want, check| {
        DeliveryCase { name: name.into(), want, cluster, keys, deployment, delivery: good.clone(), check }
    };
    out.push(in_context(
        "delivery opened on another chain",
        c,
        requester_keys(),
        Deployment { chain_id: 1, ..dep() },
        "WrongSigner",
        |e| matches!(e, DeliveryError::WrongSigner { .. }),
    ));
    out.push(in_context(
        "delivery while the chain has no cluster",
        Address::ZERO,
        requester_keys(),
        dep(),
        "WrongSigner",
        |e| matches!(e, DeliveryError::WrongSigner { .. }),
    ));
    // Protocol v2: the signature names the request, i.e. the opener's own key and account, so another
    // node's key is turned away at the signature, before any decryption is tried.
    out.push(in_context(
        "delivery opened with another node's key",
        c,
        HpkeKeypair::generate(),
        dep(),
        "WrongSigner",
        |e| matches!(e, DeliveryError::WrongSigner { .. }),
    ));
    out
}

fn variant(e: &DeliveryError) -> String {
    let s = format!("{e:?}");
    s.split([' ', '{']).next().unwrap_or_default().to_string()
}

// ---------------------------------------------------------------------------------------------
// The suite: the baseline, then one test per case (named after it), and checks of the suite itself.
// ---------------------------------------------------------------------------------------------

/// Drive a future to completion: the pipeline and the doubles do no I/O here.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// The holder-side cases, built once per test process (each signs a quote).
fn holder_cases() -> &'static [(String, Expect, Input)] {
    static CASES: OnceLock<Vec<(String, Expect, Input)>> = OnceLock::new();
    CASES.get_or_init(|| pipeline_cases(&Base::new()))
}

/// The baseline request, accepted: what every holder case mutates and every delivery case seals to.
fn accepted() -> &'static AcceptedRequest {
    static ACCEPTED: OnceLock<AcceptedRequest> = OnceLock::new();
    ACCEPTED.get_or_init(|| match block_on(run(&Base::new().input)) {
        Decision::Accept(a) => a.expect("a request's acceptance"),
        other => panic!("baseline request not accepted: {}", describe(&other)),
    })
}

/// Run the holder case whose test is `test` and check its outcome and that it leaks nothing.
fn holder_case(test: &str) {
    let (name, expect, input) = holder_cases()
        .iter()
        .find(|(name, ..)| slug(name) == test)
        .unwrap_or_else(|| panic!("no holder case is named like the test {test}"));
    let d = block_on(run(input));
    assert_leaks_nothing(name, &format!("{d:?}"));
    match expect {
        Expect::Unbound(verifier_alone) => {
            Expect::Refuse(Refusal::ReportDataMismatch, "does not bind").check(name, &d);
            let v = input.trust.verifier();
            let verified = v.verify(&input.quote, input.now, input.policy.min_tcb_evaluation_data_number);
            let alone: Outcome = match verified {
                Ok(_) => Decision::Accept(Box::new(None)),
                Err(e) => match e.refusal() {
                    Some(r) => Decision::Refuse(r, e.to_string()),
                    None => Decision::Retry(e.to_string()),
                },
            };
            verifier_alone.check(&format!("{name} (verifier alone)"), &alone);
        }
        _ => expect.check(name, &d),
    }
}

/// Open the delivery of the case whose test is `test`: it must fail with the case's error and leak nothing.
fn delivery_case(test: &str) {
    let case = delivery_cases(accepted())
        .into_iter()
        .find(|c| slug(&c.name) == test)
        .unwrap_or_else(|| panic!("no delivery case is named like the test {test}"));
    match delivery::open(&case.deployment, &case.keys, requester(), case.cluster, &case.delivery) {
        Ok(b) => panic!("{}: opened (expected error {}): {b:?}", case.name, case.want),
        Err(e) => {
            assert_leaks_nothing(&case.name, &format!("{e} {e:?}"));
            assert!((case.check)(&e), "{}: expected error {}, got {}: {e}", case.name, case.want, variant(&e));
        }
    }
}

/// One `#[test]` per case, named after it (see [`slug`]), that runs `$check` on it; `$list` names
/// them all so that `every_case_has_its_own_test` catches a case added to a table without a test.
macro_rules! case_tests {
    ($list:ident, $check:ident: $($(#[$attr:meta])* $name:ident),* $(,)?) => {
        const $list: &[&str] = &[$(stringify!($name)),*];
        $(
            $(#[$attr])*
            #[test]
            fn $name() {
                $check(stringify!($name));
            }
        )*
    };
}

case_tests!(HOLDER_TESTS, holder_case:
    quote_empty,
    quote_47_bytes_header_cut,
    quote_truncated_to_half,
    quote_last_byte_cut,
    quote_auth_data_length_plus_1,
    quote_oversized_16_kib_plus_1,
    quote_4_kib_pseudo_random_garbage,
    quote_5000_x_0xff,
    quote_unknown_tee_type_0x7f,
    quote_version_3_header,
    quote_version_6_header,
    quote_tee_type_sgx_in_a_v4_header,
    genuine_sgx_quote_fixture,
    genuine_tdx_quote_report_data_binds_another_request,
    genuine_tdx_quote_signature_byte_flipped,
    genuine_tdx_quote_compact_report_data_binds_another_request,
    genuine_tdx_quote_compact_signature_byte_flipped,
    compact_quote_trailing_byte,
    compact_quote_last_byte_cut,
    compact_quote_unknown_certificate_id,
    compact_quote_unknown_format_version,
    compact_quote_sgx_header,
    genuine_tdx_quote_report_data_byte_flipped,
    genuine_tdx_v5_quote_tcb_matches_no_level,
    genuine_tdx_quote_no_collateral_configured,
    genuine_tdx_quote_collateral_expired,
    genuine_tdx_quote_collateral_not_yet_valid,
    genuine_tdx_quote_holders_collateral_corrupt_tcb_info_signature,
    genuine_tdx_quote_holders_collateral_corrupt_qe_identity_signature,
    genuine_tdx_quote_holders_collateral_corrupt_tcb_info_json,
    genuine_tdx_quote_holders_collateral_corrupt_tcb_info_not_json,
    genuine_tdx_quote_holders_collateral_corrupt_qe_identity_id,
    genuine_tdx_quote_holders_collateral_corrupt_pck_crl,
    genuine_tdx_quote_holders_collateral_corrupt_root_ca_crl,
    genuine_tdx_quote_holders_collateral_corrupt_tcb_signer_chain,
    genuine_tdx_quote_holders_collateral_corrupt_tcb_signer_chain_swapped_for_the_pck_cas,
    genuine_tdx_quote_holders_collateral_corrupt_qe_identity_signer_chain_swapped,
    genuine_tdx_quote_collateral_of_another_platform,
    genuine_tdx_quote_pck_leaf_forged_chain_still_ends_in_intels_root,
    flip_in_header_attestation_key_type,
    flip_in_header_qe_vendor_id,
    flip_in_header_user_data,
    flip_in_body_tee_tcb_svn,
    flip_in_body_td_attributes_debug_bit,
    flip_in_body_mrtd,
    flip_in_body_mr_config_id,
    flip_in_body_rtmr3,
    flip_in_body_report_data,
    flip_in_quote_signature,
    flip_in_attestation_key,
    flip_in_qe_report,
    flip_in_qe_report_report_data_key_hash,
    flip_in_qe_report_signature,
    flip_in_qe_auth_data,
    flip_in_pem_chain_pck_leaf_certificate,
    quote_pem_chains_root_certificate_altered,
    quote_100_trailing_zero_bytes_control,
    quote_outer_cert_data_type_6_to_7_control,
    debug_td_policy_forbids,
    debug_td_policy_allows_control,
    profiling_tud_bit_policy_forbids_debug,
    profiling_tud_bit_policy_allows_debug_control,
    reserved_tud_bit_1_set_even_with_debug_allowed,
    migratable_attribute_set,
    servtd_ext_attribute_set_td_1_0_body,
    sept_ve_disable_attribute_cleared,
    tcb_outofdate_mask_uptodate_only,
    tcb_swhardeningneeded_mask_uptodate_only,
    tcb_configurationneeded_mask_uptodate_only,
    tcb_outofdate_mask_includes_it_control,
    tcb_revoked_all_ones_mask,
    tcb_uptodate_empty_mask,
    simulated_quote_policy_forbids_trusting_holder,
    simulated_quote_policy_forbids_strict_holder,
    simulated_quote_policy_allows_strict_holder,
    report_data_binds_another_chain,
    report_data_binds_another_contract,
    report_data_binds_another_requester,
    report_data_binds_another_hpke_key,
    report_data_is_a_genesis_binding,
    report_data_all_zero,
    genesis_quote_for_this_cluster_and_epoch_control,
    genesis_request_quote_offered_as_genesis_quote,
    genesis_epoch_1_quote_reused_at_epoch_2,
    genesis_quote_binds_another_cluster,
    hpke_key_low_order_all_zero_order_2,
    hpke_key_low_order_u_eq_1_order_4,
    hpke_key_low_order_order_8_first,
    hpke_key_low_order_order_8_second,
    hpke_key_low_order_p_minus_1_order_2,
    hpke_key_low_order_p_eq_0,
    hpke_key_low_order_p_plus_1_eq_1,
    hpke_key_low_order_all_zero_with_bit_255_set,
    hpke_key_low_order_order_8_with_bit_255_set,
    hpke_key_low_order_p_plus_1_with_bit_255_set,
    log_empty,
    log_bad_magic,
    log_version_2,
    log_unknown_digest_format_0x03,
    log_last_byte_cut,
    log_one_trailing_byte,
    log_count_one_too_high,
    log_count_one_too_low,
    log_257_events_announced,
    log_payload_length_16385_announced,
    log_payload_length_65535_announced_absent,
    log_64_kib_plus_1_bytes,
    log_zero_length_event_name,
    log_65_byte_event_name,
    log_colon_in_event_name,
    log_newline_in_event_name,
    log_v2_digest_format_on_an_empty_log,
    log_compose_hash_payload_altered,
    log_last_payload_byte_altered,
    log_two_events_swapped,
    log_an_event_dropped,
    log_an_event_appended,
    log_v2_digest_format_byte_on_a_v1_log,
    log_empty_zero_events,
    claims_compose_hash_duplicated,
    claims_compose_hash_missing,
    claims_compose_hash_after_boot_mr_done,
    claims_second_compose_hash_after_boot_mr_done,
    claims_compose_hash_of_31_bytes,
    claims_boot_mr_done_missing,
    claims_app_id_duplicated,
    claims_instance_id_missing,
    claims_key_provider_after_system_ready,
    mr_config_id_binds_another_compose_hash,
    os_ref_other_mrtd_never_proposed,
    os_ref_pending_timelocked,
    os_ref_revoked,
    os_ref_id_proposed_as_an_app_reference,
    app_ref_other_compose_hash_never_proposed,
    app_ref_pending_timelocked,
    app_ref_revoked,
    app_ref_id_proposed_as_an_os_reference,
    references_unreadable_rpc_down,
);

case_tests!(DELIVERY_TESTS, delivery_case:
    delivery_signed_by_a_non_cluster_key,
    delivery_ciphertext_flipped_stale_signature,
    delivery_refs_swapped_stale_signature,
    delivery_ciphertext_flipped_re_signed_by_cluster,
    delivery_auth_tag_flipped_re_signed,
    delivery_ciphertext_truncated_by_1_re_signed,
    delivery_ciphertext_empty_re_signed,
    delivery_another_ephemeral_key_re_signed,
    delivery_all_zero_low_order_ephemeral_key_re_signed,
    delivery_31_byte_encapsulated_key_re_signed,
    delivery_33_byte_encapsulated_key_re_signed,
    delivery_re_posted_under_another_request_id,
    delivery_re_posted_under_other_refs,
    delivery_64_byte_signature,
    delivery_66_byte_signature,
    delivery_empty_signature,
    delivery_all_zero_signature,
    delivery_bundle_of_another_cluster_signed_by_the_real_one,
    delivery_plaintext_is_not_a_bundle,
    delivery_bundle_version_1,
    delivery_bundle_keyring_entry_not_below_its_epoch,
    delivery_bundle_keyring_entry_past_the_end,
    delivery_bundle_with_a_trailing_byte,
    delivery_bundle_with_a_zero_cluster_key,
    delivery_bundle_key_above_the_curve_order,
    delivery_bundle_header_only,
    delivery_opened_on_another_chain,
    delivery_while_the_chain_has_no_cluster,
    delivery_opened_with_another_nodes_key,
);

#[test]
fn baseline_request_is_accepted_and_its_delivery_opens() {
    let d = block_on(run(&Base::new().input));
    assert!(matches!(d, Decision::Accept(_)), "baseline: {}", describe(&d));
    let good = delivery::seal(&dep(), accepted(), &bundle()).expect("seal");
    let opened = delivery::open(&dep(), &requester_keys(), requester(), bundle().cluster_address(), &good)
        .expect("baseline opens");
    assert_eq!(opened.file(), SECRET_FILE, "baseline delivery carries the secret");
}

/// Every case of both tables has exactly one test, and the tables are as broad as the suite claims.
#[test]
fn every_case_has_its_own_test() {
    let holder: Vec<String> = holder_cases().iter().map(|(name, ..)| slug(name)).collect();
    let deliveries: Vec<String> = delivery_cases(accepted()).iter().map(|c| slug(&c.name)).collect();
    for (table, tests, what) in [(&holder, HOLDER_TESTS, "holder"), (&deliveries, DELIVERY_TESTS, "delivery")] {
        let mut names = table.clone();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), table.len(), "two {what} cases share a test name");
        let missing: Vec<&String> = table.iter().filter(|n| !tests.contains(&n.as_str())).collect();
        let stale: Vec<&&str> = tests.iter().filter(|t| !table.iter().any(|n| n == *t)).collect();
        assert!(missing.is_empty(), "{what} cases without a test (add them to {what} case_tests!): {missing:#?}");
        assert!(stale.is_empty(), "{what} tests without a case: {stale:#?}");
    }
    let controls = holder_cases().iter().filter(|(_, e, _)| matches!(e, Expect::Accept)).count();
    let bad = holder.len() - controls + deliveries.len();
    assert_eq!(controls, 6, "positive controls");
    assert!(bad >= 30, "the suite must try at least 30 kinds of bad input, tries {bad}");
}

/// The leak check itself must catch a leak, or the tests' "leaks nothing" means nothing.
#[test]
fn leak_check_detects_each_rendering() {
    let key = cluster_key();
    for text in [
        format!("detail {}", hex::encode(key)),
        format!("detail 0x{}", hex::encode_upper(&key[4..12])),
        format!("detail {}", base64::engine::general_purpose::STANDARD.encode(SECRET_FILE)),
        format!("detail {}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)),
        format!("detail {}", String::from_utf8_lossy(SECRET_FILE)),
        format!("detail {:?}", key),
        format!("detail {}", hex::encode(requester_keys().secret_bytes())),
    ] {
        assert!(leaks(&text).is_some(), "not caught: {text}");
    }
    let mut raw = b"detail ".to_vec();
    raw.extend_from_slice(&key);
    assert_eq!(raw_leak(&raw).as_deref(), Some("raw cluster key"));
    assert!(leaks("report_data 0011 does not bind this request").is_none());
}
