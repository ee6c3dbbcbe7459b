//! Consensus-authenticated execution headers on a dev chain: the light client
//! (`replicatoor_chain::beacon`) follows the simulated beacon (`replicatoor_testkit::beacon`) of a
//! real anvil over HTTP, with the mainnet verification code, and its headers anchor `proof.rs`.
//! Then the ways a beacon API can fail or lie are each refused for their own reason, and the client
//! keeps its last verified state.

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{B256, U64},
    providers::{DynProvider, Provider, ProviderBuilder},
    transports::http::reqwest,
};
use http_body_util::Full;
use hyper::{body::Bytes, server::conn::http1, service::service_fn, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use replicatoor::admin;
use replicatoor_beacon::Error as VerifyError;
use replicatoor_chain::{
    beacon::{BeaconError, FetchError, LightClient, MAX_RESPONSE_BYTES, WEAK_SUBJECTIVITY_SECS},
    layout::{Reads, Views},
    proof::{ProvenStorage, TrustedHeader},
    Chain,
};
use replicatoor_testkit::beacon::{self as sim, Committee, SimBeacon};
use replicatoor_tests::{key, root, Net};
use std::{
    convert::Infallible,
    net::{SocketAddr, TcpListener},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

const ANY_PORT: &str = "127.0.0.1:0";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// CPU time of this process's live threads (for the measurements printed with --nocapture). A
/// thread that exits in between takes its time out of the sum, so differences are lower bounds and
/// may even come out negative: callers subtract with `saturating_sub`.
fn process_cpu() -> Duration {
    let tasks = std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten();
    let ns = tasks
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
        .sum();
    Duration::from_nanos(ns)
}

fn listen() -> SocketAddr {
    ANY_PORT.parse().expect("socket address")
}

/// anvil without a block timer: blocks come from transactions and `anvil_mine` only, so "the head"
/// holds still while a test compares it with the light client.
struct Anvil {
    child: Child,
    url: String,
    rpc: DynProvider,
}

impl Anvil {
    async fn start() -> Anvil {
        let port = TcpListener::bind(ANY_PORT).and_then(|l| l.local_addr()).expect("free port").port();
        let child = Command::new(root().join(".toolchain/bin/anvil"))
            .args(["--port", &port.to_string(), "--host", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start anvil (run script/setup.sh first)");
        let url = format!("http://127.0.0.1:{port}");
        let rpc = ProviderBuilder::new().connect_http(url.parse().expect("url")).erased();
        let start = Instant::now();
        while rpc.get_block_number().await.is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "anvil did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Anvil { child, url, rpc }
    }

    async fn mine(&self, blocks: u64) {
        let _: serde_json::Value = self.rpc.raw_request("anvil_mine".into(), (U64::from(blocks),)).await.expect("mine");
    }

    async fn head(&self) -> TrustedHeader {
        let block = self.rpc.get_block_by_number(BlockNumberOrTag::Latest).await.expect("rpc").expect("head");
        TrustedHeader {
            number: block.header.number,
            hash: block.header.hash,
            state_root: block.header.state_root,
            receipts_root: block.header.receipts_root,
            timestamp: block.header.timestamp,
        }
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(beacon: &SimBeacon) -> LightClient {
    LightClient::new(beacon.url(), beacon.network().clone(), beacon.checkpoint().block_root).expect("client")
}

/// The sync-committee period of a verified head (the simulated beacon's slots count blocks).
fn period(head: Option<TrustedHeader>) -> u64 {
    sim::network().period_at_slot(sim::slot_of_block(head.expect("bootstrapped").number))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_anvil_and_anchors_storage_proofs() {
    let anvil = Anvil::start().await;
    let (contract, _) =
        admin::deploy(&anvil.url, key(0), key(0).address(), 0, Net::dev_policy()).await.expect("deploy");
    let beacon = sim::serve(&anvil.url, listen(), Committee::Public).await.expect("simulated beacon");
    let checkpoint = beacon.checkpoint();
    assert_eq!(checkpoint.execution_block, anvil.head().await.number);
    assert_eq!(checkpoint.slot, sim::slot_of_block(checkpoint.execution_block));
    // The checkpoint is also published for clients to pin.
    let published: sim::Checkpoint =
        reqwest::get(format!("{}/replicatoor/checkpoint", beacon.url())).await.unwrap().json().await.unwrap();
    assert_eq!(published, checkpoint);

    let mut lc = client(&beacon);
    assert_eq!((lc.finalized(), lc.optimistic()), (None, None), "not bootstrapped yet");
    anvil.mine(20).await;
    let (wall, cpu) = (Instant::now(), process_cpu());
    let report = lc.sync(now()).await.expect("sync");
    eprintln!(
        "first sync (bootstrap, one period, finality, optimistic; client and simulated beacon in this process): \
         wall {:?}, cpu {:?}, {report:?}",
        wall.elapsed(),
        process_cpu().saturating_sub(cpu)
    );
    assert!(report.bootstrapped && report.finalized_advanced && report.optimistic_advanced, "{report:?}");
    // The period update already attests the head; the finality and optimistic updates repeat it.
    assert_eq!((report.verified, report.skipped), (1, 2), "{report:?}");
    // bootstrap, one page of updates, finality, optimistic
    assert_eq!(report.requests, 4, "{report:?}");

    // ---- the optimistic header is anvil's head, the finalized one trails by two epochs
    let head = anvil.head().await;
    assert_eq!(lc.optimistic(), Some(head));
    let finalized = lc.finalized().expect("finalized");
    assert!(finalized.number < head.number && finalized.number > checkpoint.execution_block, "{finalized:?}");
    let block = anvil.rpc.get_block_by_number(finalized.number.into()).await.unwrap().unwrap();
    assert_eq!((block.header.hash, block.header.state_root), (finalized.hash, finalized.state_root));

    // ---- storage proven against the consensus-verified state root equals the contract's view
    let reads = Reads::state();
    let answer = anvil.rpc.get_proof(contract, reads.slots().to_vec()).block_id(finalized.number.into()).await.unwrap();
    let proven = ProvenStorage::verify(&finalized, contract, &answer).expect("proof against the finalized header");
    assert_eq!(Views(&proven).policy().unwrap(), Net::dev_policy());
    let answer = anvil.rpc.get_proof(contract, reads.slots().to_vec()).block_id(head.number.into()).await.unwrap();
    let proven = ProvenStorage::verify(&head, contract, &answer).expect("proof against the optimistic header");
    let chain = Chain::connect(&anvil.url, contract, None).await.unwrap();
    assert_eq!(Views(&proven).policy().unwrap(), chain.policy_at(head.number.into()).await.unwrap());

    // ---- a sync with nothing new changes nothing and does not bootstrap again
    let again = lc.sync(now()).await.expect("idle sync");
    assert!(!again.bootstrapped && !again.optimistic_advanced && !again.finalized_advanced, "{again:?}");
    assert_eq!((again.requests, again.verified), (3, 0), "updates, finality, optimistic; no signature re-checked");

    // ---- restart from the persisted store: no bootstrap, continues where it was
    let saved = lc.to_persisted();
    drop(lc);
    let mut lc = LightClient::from_persisted(beacon.url(), sim::network(), checkpoint.block_root, &saved).unwrap();
    assert_eq!(lc.optimistic(), Some(head));
    anvil.mine(5).await;
    let report = lc.sync(now()).await.expect("sync after restart");
    assert!(!report.bootstrapped && report.optimistic_advanced, "{report:?}");
    assert_eq!(lc.optimistic(), Some(anvil.head().await));

    // ---- a store restored from a backup, or a pinned checkpoint, older than the weak-subjectivity
    // bound by the TD's clock is not synced from (the node waits to be re-pinned); at the bound it is
    let restored = || LightClient::from_persisted(beacon.url(), sim::network(), checkpoint.block_root, &saved).unwrap();
    let finalized_at = restored().finalized().expect("persisted finality").timestamp;
    let err = restored().sync(finalized_at + WEAK_SUBJECTIVITY_SECS + 1).await.unwrap_err();
    assert!(
        matches!(err, BeaconError::BeyondWeakSubjectivity { age_secs, .. } if age_secs == WEAK_SUBJECTIVITY_SECS + 1),
        "{err}"
    );
    restored().sync(finalized_at + WEAK_SUBJECTIVITY_SECS).await.expect("at the bound");
    let err = client(&beacon).sync(now() + WEAK_SUBJECTIVITY_SECS + 60).await.unwrap_err();
    assert!(matches!(err, BeaconError::BeyondWeakSubjectivity { .. }), "an old checkpoint: {err}");
    // ... but not for another checkpoint or another network
    let other_root = B256::repeat_byte(7);
    assert!(matches!(
        LightClient::from_persisted(beacon.url(), sim::network(), other_root, &saved),
        Err(BeaconError::Persisted(_))
    ));
    let mut other_network = sim::network();
    other_network.genesis_validators_root = other_root;
    assert!(matches!(
        LightClient::from_persisted(beacon.url(), other_network, checkpoint.block_root, &saved),
        Err(BeaconError::Persisted(_))
    ));
    assert!(matches!(
        LightClient::from_persisted(beacon.url(), sim::network(), checkpoint.block_root, &saved[..saved.len() / 2]),
        Err(BeaconError::Persisted(_))
    ));

    // ---- the JSON forms verify the same way (a proxy that drops the SSZ Accept header)
    let upstream = beacon.url().to_owned();
    let proxy =
        Proxy::start(move |path| Action::Forward { base: upstream.clone(), path: path.into(), json: true }).await;
    let mut lc = LightClient::new(&proxy.url, sim::network(), checkpoint.block_root).unwrap();
    lc.sync(now()).await.expect("sync over JSON");
    assert_eq!(lc.optimistic(), Some(anvil.head().await));
    assert!(proxy.json_served() >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_across_periods_and_thousands_of_blocks() {
    let anvil = Anvil::start().await;
    let beacon = sim::serve(&anvil.url, listen(), Committee::Public).await.expect("simulated beacon");
    let mut lc = client(&beacon);
    lc.sync(now()).await.expect("bootstrap");
    let start = period(lc.finalized());

    // Two periods (32 blocks each) one sync at a time, then 2000 blocks at once.
    for _ in 0..8 {
        anvil.mine(9).await;
        lc.sync(now()).await.expect("sync");
        assert_eq!(lc.optimistic(), Some(anvil.head().await));
    }
    assert!(period(lc.finalized()) >= start + 2, "finalized period {}", period(lc.finalized()));

    anvil.mine(2000).await;
    let (t, cpu) = (Instant::now(), process_cpu());
    let report = lc.sync(now()).await.expect("sync over 2000 blocks");
    let cpu = process_cpu().saturating_sub(cpu);
    let head = anvil.head().await;
    assert_eq!(lc.optimistic(), Some(head));
    assert!(period(lc.optimistic()) >= start + 62);
    assert!(lc.finalized().unwrap().number + 16 > head.number, "finality follows the head");
    // ~63 periods in pages of 32, plus finality and optimistic
    assert!(report.verified >= 63 && report.requests <= 5, "{report:?}");
    eprintln!("2000 blocks (63 periods) in one sync: wall {:?}, cpu {cpu:?}, {report:?}", t.elapsed());

    // A TD clock before the simulated slots refuses the updates for their signature slot.
    let mut early = client(&beacon);
    let err = early.sync(0).await.unwrap_err();
    assert!(matches!(err, BeaconError::Verification { source: VerifyError::SlotOrdering { .. }, .. }), "{err}");
    assert_eq!(early.optimistic().map(|h| h.number), Some(beacon.checkpoint().execution_block));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_and_broken_beacons_are_refused() {
    let anvil = Anvil::start().await;
    let honest = sim::serve(&anvil.url, listen(), Committee::Public).await.expect("honest beacon");
    // The attacker runs a beacon for the very same execution chain but cannot sign for the public
    // committee the honest checkpoint commits to.
    let attacker = sim::serve(&anvil.url, listen(), Committee::Private).await.expect("attacker beacon");
    assert_ne!(attacker.checkpoint().block_root, honest.checkpoint().block_root);
    let pinned = honest.checkpoint().block_root;

    anvil.mine(40).await;
    let mut lc = client(&honest);
    lc.sync(now()).await.expect("honest sync");
    let verified = lc.to_persisted();
    let unchanged = |lc: &LightClient| assert!(lc.to_persisted() == verified, "the verified state changed");

    // ---- honest period updates replayed, head updates forged for another chain (a second anvil,
    // further ahead): the signature is what fails, and the forged head is not taken.
    let other = Anvil::start().await;
    other.mine(45).await;
    let forger = sim::serve(&other.url, listen(), Committee::Private).await.expect("forger beacon");
    let (h, f) = (honest.url().to_owned(), forger.url().to_owned());
    let mixed = Proxy::start(move |path| {
        let base = if path.contains("/updates") { h.clone() } else { f.clone() };
        Action::Forward { base, path: path.into(), json: false }
    })
    .await;
    let mut via_mixed = LightClient::from_persisted(&mixed.url, sim::network(), pinned, &verified).unwrap();
    let err = via_mixed.sync(now()).await.unwrap_err();
    assert!(matches!(err, BeaconError::Verification { source: VerifyError::BadSignature, .. }), "{err}");
    // (The replayed honest update may replace the store's best-update candidate: honest data.)
    assert_eq!((via_mixed.finalized(), via_mixed.optimistic()), (lc.finalized(), lc.optimistic()), "nothing advanced");
    assert_ne!(via_mixed.optimistic(), Some(other.head().await));

    // ---- the attacker's own beacon: its period update already fails, bringing a next committee
    // other than the one the honest chain committed to.
    anvil.mine(3).await;
    let mut via_attacker = LightClient::from_persisted(attacker.url(), sim::network(), pinned, &verified).unwrap();
    let err = via_attacker.sync(now()).await.unwrap_err();
    assert!(matches!(err, BeaconError::Verification { source: VerifyError::NextSyncCommitteeMismatch, .. }), "{err}");
    unchanged(&via_attacker);

    // ---- a fresh client pinned to the honest checkpoint: the attacker has no such block, and a
    // bootstrap of another block is refused.
    let mut fresh = LightClient::new(attacker.url(), sim::network(), pinned).unwrap();
    let err = fresh.sync(now()).await.unwrap_err();
    assert!(matches!(err, BeaconError::Fetch(FetchError::Status { status: 404, .. })), "{err}");
    let (a, their_root) = (attacker.url().to_owned(), attacker.checkpoint().block_root);
    let swap = Proxy::start(move |path| {
        let path = if path.contains("/bootstrap/") {
            format!("/eth/v1/beacon/light_client/bootstrap/{their_root}")
        } else {
            path.into()
        };
        Action::Forward { base: a.clone(), path, json: false }
    })
    .await;
    let mut fresh = LightClient::new(&swap.url, sim::network(), pinned).unwrap();
    let err = fresh.sync(now()).await.unwrap_err();
    assert!(
        matches!(err, BeaconError::Verification { source: VerifyError::CheckpointMismatch { expected, .. }, .. } if expected == pinned),
        "{err}"
    );
    assert_eq!(fresh.optimistic(), None, "not bootstrapped");

    // ---- broken transports: each a typed error, the verified state kept
    let h = honest.url().to_owned();
    let cases: Vec<(&str, Rule)> = vec![
        (
            "garbage",
            Arc::new(|_: &str| Action::Respond(StatusCode::OK, b"\x01\x02 not a light-client object".to_vec())),
        ),
        (
            "json garbage",
            Arc::new(|_: &str| Action::Respond(StatusCode::OK, br#"{"version":"electra","data":{}}"#.to_vec())),
        ),
        ("http 500", Arc::new(|_: &str| Action::Respond(StatusCode::INTERNAL_SERVER_ERROR, b"boom".to_vec()))),
        ("oversize", Arc::new(|_: &str| Action::Respond(StatusCode::OK, vec![0; MAX_RESPONSE_BYTES + 1]))),
        ("truncated ssz", Arc::new(move |path: &str| Action::Truncate { base: h.clone(), path: path.into() })),
    ];
    anvil.mine(2).await;
    for (name, rule) in cases {
        let proxy = Proxy::start(move |path| rule(path)).await;
        let mut lc = LightClient::from_persisted(&proxy.url, sim::network(), pinned, &verified).unwrap();
        let err = lc.sync(now()).await.unwrap_err();
        let expected = match name {
            "http 500" => matches!(err, BeaconError::Fetch(FetchError::Status { status: 500, .. })),
            "oversize" => matches!(err, BeaconError::Fetch(FetchError::TooLarge { .. })),
            _ => matches!(err, BeaconError::Fetch(FetchError::Malformed { .. })),
        };
        assert!(expected, "{name}: {err}");
        unchanged(&lc);
    }
    // Nothing listens on the discard port.
    let mut lc = LightClient::from_persisted("http://127.0.0.1:9", sim::network(), pinned, &verified).unwrap();
    assert!(matches!(lc.sync(now()).await.unwrap_err(), BeaconError::Fetch(FetchError::Transport { .. })));
    unchanged(&lc);

    // After all that, the honest beacon still brings it forward.
    let mut lc = LightClient::from_persisted(honest.url(), sim::network(), pinned, &verified).unwrap();
    lc.sync(now()).await.expect("honest sync");
    assert_eq!(lc.optimistic(), Some(anvil.head().await));
}

// ---- a beacon API proxy that forwards, rewrites or breaks answers ----

/// What the proxy does with a request, by path and query.
type Rule = Arc<dyn Fn(&str) -> Action + Send + Sync>;

enum Action {
    /// Forward `path` to `base`, asking for JSON instead of SSZ when `json`.
    Forward { base: String, path: String, json: bool },
    /// Forward, then cut the body in half.
    Truncate { base: String, path: String },
    /// Answer this.
    Respond(StatusCode, Vec<u8>),
}

struct Proxy {
    url: String,
    json: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(rule: impl Fn(&str) -> Action + Send + Sync + 'static) -> Proxy {
        let listener = tokio::net::TcpListener::bind(ANY_PORT).await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let rule = Arc::new(rule);
        let json = Arc::new(Mutex::new(0));
        let counter = json.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (rule, counter) = (rule.clone(), counter.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (rule, counter) = (rule.clone(), counter.clone());
                        async move { Ok::<_, Infallible>(act(rule(&path_and_query(&req)), &req, &counter).await) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Proxy { url, json, task }
    }

    fn json_served(&self) -> usize {
        *self.json.lock().unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn path_and_query<B>(req: &Request<B>) -> String {
    req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default()
}

async fn act<B>(action: Action, req: &Request<B>, json: &Mutex<usize>) -> Response<Full<Bytes>> {
    let forward = |base: &str, path: &str, as_json: bool| {
        let mut r = reqwest::Client::new().get(format!("{base}{path}"));
        if !as_json {
            if let Some(accept) = req.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok()) {
                r = r.header("accept", accept);
            }
        }
        r.send()
    };
    let (status, body) = match action {
        Action::Respond(status, body) => (status, body),
        Action::Forward { base, path, json: as_json } => {
            let r = forward(&base, &path, as_json).await.expect("upstream");
            if as_json && r.headers().get("content-type").is_some_and(|c| c == "application/json") {
                *json.lock().unwrap() += 1;
            }
            (StatusCode::from_u16(r.status().as_u16()).unwrap(), r.bytes().await.expect("upstream body").to_vec())
        }
        Action::Truncate { base, path } => {
            let r = forward(&base, &path, false).await.expect("upstream");
            let body = r.bytes().await.expect("upstream body");
            (StatusCode::OK, body[..body.len() / 2].to_vec())
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

/// The simulated beacon follows an anvil reorg: asked again at the same height, it signs the new
/// fork's block, and the finalized block it names is one the chain still has (the reorg here is
/// deeper than the finality lag). A light client synced on the old fork takes the new one as soon
/// as it is higher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_beacon_follows_an_anvil_reorg() {
    let anvil = Anvil::start().await;
    let beacon = sim::serve(&anvil.url, listen(), Committee::Public).await.expect("simulated beacon");
    anvil.mine(40).await;
    let mut lc = client(&beacon);
    lc.sync(now()).await.expect("sync");
    let old = anvil.head().await;
    assert_eq!(lc.optimistic(), Some(old));

    let none: Vec<serde_json::Value> = Vec::new();
    let _: serde_json::Value = anvil.rpc.raw_request("anvil_reorg".into(), (20u64, none)).await.expect("reorg");
    let new = anvil.head().await;
    assert_eq!(new.number, old.number, "anvil_reorg keeps the height");
    assert_ne!(new.hash, old.hash);
    let served: serde_json::Value =
        reqwest::get(format!("{}/eth/v1/beacon/light_client/finality_update", beacon.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let hash_of = |v: &serde_json::Value| v["execution"]["block_hash"].as_str().unwrap().parse::<B256>().unwrap();
    assert_eq!(hash_of(&served["data"]["attested_header"]), new.hash, "the new fork's head is signed");
    let finalized = &served["data"]["finalized_header"];
    let number: u64 = finalized["execution"]["block_number"].as_str().unwrap().parse().unwrap();
    assert!(number + 20 > old.number, "the finalized block was replaced by the reorg");
    let canonical = anvil.rpc.get_block_by_number(number.into()).await.unwrap().unwrap();
    assert_eq!(hash_of(finalized), canonical.header.hash, "the finalized block is on the chain");

    anvil.mine(1).await;
    lc.sync(now()).await.expect("sync on the new fork");
    assert_eq!(lc.optimistic(), Some(anvil.head().await));
}
