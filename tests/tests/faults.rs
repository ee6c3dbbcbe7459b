//! Fault tests: real anvil, the real contract and real `replicatoor` processes, under crashes at every
//! failpoint, an RPC outage, a range-limited `eth_getLogs` provider, reorgs and a restart storm.
//!
//! The scenarios are independent (own chain, own nodes) and mostly wait on 1 s blocks, so one test
//! runs them all concurrently (the test harness would run at most one test per core) and prints the
//! tally at the end. `FAULTS_ONLY=crash-requester,reorg-delivery` runs a subset.

use alloy::{
    eips::BlockId,
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::{Filter, Log},
    sol_types::SolEvent,
};
use replicatoor::failpoint;
use replicatoor_chain::{Chain, UpgradeOperator as Op};
use replicatoor_core::{
    attest::{collateral::NoCollateral, Verifier},
    crypto::HpkeKeypair,
    delivery,
};
use replicatoor_testkit::simulated::{self, SimulatedTd};
use replicatoor_tests::{compose_good, compose_hash, key, wait_for_file, wait_until, Net, Proc};
use std::{
    fs,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    task::{JoinHandle, JoinSet},
};

const T: Duration = Duration::from_secs(90);
const FP: &str = "REPLICATOOR_FAILPOINT";
const GENESIS_ARGS: [&str; 3] = ["--genesis", "--generate-secret", "64"];
const EXIT: [&str; 1] = ["--exit-after-install"];

/// What one scenario injected and checked.
#[derive(Debug, Default)]
struct Tally {
    crash_points: Vec<&'static str>,
    outage_secs: u64,
    limited_providers: u32,
    getlogs_refused: u64,
    reorgs: u32,
    /// Process restarts after a crash or a stop (the storm's are counted apart).
    restarts: u32,
    storm_kills: u32,
    /// Requests checked to be on chain once and delivered exactly once.
    requests: u32,
    /// Installed files checked to be whole, equal to the genesis secret, 0600, with no temp file.
    files: u32,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.crash_points.extend(o.crash_points);
        self.outage_secs += o.outage_secs;
        self.limited_providers += o.limited_providers;
        self.getlogs_refused += o.getlogs_refused;
        self.reorgs += o.reorgs;
        self.restarts += o.restarts;
        self.storm_kills += o.storm_kills;
        self.requests += o.requests;
        self.files += o.files;
    }
}

type Scenario = fn() -> Pin<Box<dyn Future<Output = Tally>>>;

#[tokio::test]
async fn faults_are_survived() {
    // The admin helpers' futures are not `Send`: the scenarios share this thread (they mostly wait).
    tokio::task::LocalSet::new().run_until(run_scenarios()).await;
}

async fn run_scenarios() {
    let scenarios: [(&str, Scenario); 7] = [
        ("crash-requester", || Box::pin(requester_crash_points())),
        ("crash-holder", || Box::pin(genesis_and_holder_crash_points())),
        ("rpc-outage", || Box::pin(rpc_outage())),
        ("getlogs-limit", || Box::pin(getlogs_limited_provider())),
        ("reorg-delivery", || Box::pin(reorg_drops_a_delivery())),
        ("reorg-request", || Box::pin(reorg_drops_a_request())),
        ("restart-storm", || Box::pin(restart_storm())),
    ];
    let only = std::env::var("FAULTS_ONLY").ok();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (name, run) in scenarios {
        if only.as_ref().is_some_and(|o| !o.split(',').any(|n| n == name)) {
            continue;
        }
        tasks.push((name, tokio::task::spawn_local(run())));
    }
    let (mut total, mut failed) = (Tally::default(), Vec::new());
    for (name, task) in tasks {
        match task.await {
            Ok(t) => {
                eprintln!("scenario {name}: ok {t:?}");
                total.add(t);
            }
            Err(e) => failed.push(format!("{name}: {e}")),
        }
    }
    assert!(failed.is_empty(), "failed scenarios (logs kept, see above): {failed:#?}");
    if only.is_none() {
        let mut fps = total.crash_points.clone();
        fps.sort_unstable();
        let mut all = failpoint::ALL.to_vec();
        all.sort_unstable();
        assert_eq!(fps, all, "every failpoint exercised exactly once");
    }
    eprintln!(
        "faults: {} crash points x restart ({} restarts in all), {} RPC outage ({} s), {} getLogs-limited provider \
         ({} oversized queries refused), {} reorgs, {} kill -9 restarts in a storm — {} requests checked: 0 lost, \
         0 duplicate deliveries; {} files checked: 0 partial files ({:.0} s wall)",
        total.crash_points.len(),
        total.restarts,
        u64::from(total.outage_secs > 0),
        total.outage_secs,
        total.limited_providers,
        total.getlogs_refused,
        total.reorgs,
        total.storm_kills,
        total.requests,
        total.files,
        started.elapsed().as_secs_f64(),
    );
}

// ------------------------------------------------------------------------------------------------
// 1. kill -9 at every failpoint, then restart the same node
// ------------------------------------------------------------------------------------------------

async fn requester_crash_points() -> Tally {
    let net = Net::start("faults-requester", Net::dev_policy()).await;
    let genesis = net.genesis(1).await;
    let secret = fs::read(genesis.secret_path()).expect("genesis secret");
    // Each crash point on its own node, concurrently (the holder serves them all).
    let (a, b, c, d, e) = tokio::join!(
        crash_requester(&net, "requester_after_keys", 2, &secret),
        crash_requester(&net, "requester_after_post", 3, &secret),
        crash_requester(&net, "requester_after_delivery_seen", 4, &secret),
        crash_requester(&net, "install_before_rename", 5, &secret),
        crash_requester(&net, "requester_after_install", 6, &secret),
    );
    assert_eq!(net.request_count().await, 5, "one request per node, none posted twice");
    let mut t = Tally::default();
    for x in [a, b, c, d, e] {
        t.add(x);
    }
    t
}

/// Crash a new node at `fp`, check what the crash left, restart it and check it recovers exactly once.
async fn crash_requester(net: &Net, fp: &'static str, k: usize, secret: &[u8]) -> Tally {
    let name = format!("node-{fp}");
    let sender = key(k).address();
    let mut p = net.agent_with(&name, k, &compose_good(), &EXIT, &[(FP, fp)]);
    crashed_at(&mut p, fp).await;
    let posted = requests_by(net, sender).await.len();
    match fp {
        "requester_after_keys" => assert_eq!(posted, 0, "{fp}: nothing posted yet"),
        "requester_after_install" => {
            assert_eq!(posted, 1);
            assert_file(&p, secret);
        }
        _ => assert_eq!(posted, 1, "{fp}: the request was posted before the crash"),
    }
    if fp != "requester_after_install" {
        assert!(!p.secret_path().exists(), "{fp}: no file at the destination after the crash");
    }
    if fp == "install_before_rename" {
        assert!(!temp_files(&p).is_empty(), "{fp}: the crash is after the temp file was written");
    }
    drop(p);

    let mut p = net.agent(&name, k, &compose_good(), &EXIT);
    let s = p.exited(T).await;
    assert!(s.success(), "{name} restarted: {s:?}; log:\n{}", p.log());
    assert_file(&p, secret);
    assert_one_request_delivered_once(net, sender).await;
    if fp == "requester_after_post" {
        assert!(p.log().contains("adopting the request posted before a restart"), "{}", p.log());
    }
    // Its state opens as a holder's.
    let h = net.agent(&name, k, &compose_good(), &[]);
    wait_status(&h, "holder").await;
    drop(h);
    Tally { crash_points: vec![fp], restarts: 2, requests: 1, files: 1, ..Tally::default() }
}

async fn genesis_and_holder_crash_points() -> Tally {
    let net = Net::start("faults-holder", Net::dev_policy()).await;
    let mut t = Tally::default();

    // Genesis: crash after the proposal is mined but before it is recorded.
    let fp = "genesis_after_propose";
    let mut g = net.agent_with("genesis", 1, &compose_good(), &GENESIS_ARGS, &[(FP, fp)]);
    crashed_at(&mut g, fp).await;
    assert_eq!(genesis_count(&net).await, 1, "the proposal was mined before the crash");
    drop(g);
    let mut g = net.agent("genesis", 1, &compose_good(), &GENESIS_ARGS);
    wait_until("the restarted genesis node to wait for approval", T, || async {
        g.log().contains("waiting for the owner to approve genesis")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(genesis_count(&net).await, 1, "genesis proposed twice for the same cluster key");
    let v = Verifier::new(Box::new(NoCollateral)).dangerously_trust_simulated_quotes(simulated::anchor());
    replicatoor::admin::approve_genesis(&net.owner, &v, U256::from(1), "test genesis").await.expect("approve");
    wait_for_file(&mut g, T).await;
    let secret = fs::read(g.secret_path()).expect("genesis secret");
    assert_eq!(secret.len(), 64);
    assert_file(&g, &secret);
    t.crash_points.push(fp);
    t.restarts += 1;
    t.files += 1;

    // Holder: one node per crash point; only the genesis node serves.
    let holder_fps = ["holder_after_seal", "holder_after_send", "holder_before_checkpoint"];
    for (i, fp) in holder_fps.into_iter().enumerate() {
        let k = 2 + i;
        wait_caught_up(&net, &g).await;
        stop(&mut g).await;
        g = net.agent_with("genesis", 1, &compose_good(), &[], &[(FP, fp)]);
        let mut n = net.agent(&format!("node-{fp}"), k, &compose_good(), &EXIT);
        crashed_at(&mut g, fp).await;
        let id = U256::from(i + 1);
        let delivered = net.request_logs::<Op::SecretDelivered>(id).await.len();
        if fp == "holder_after_seal" {
            assert_eq!((net.status(i as u64 + 1).await, delivered), (1, 0), "{fp}: sealed, nothing sent");
        } else {
            assert_eq!((net.status(i as u64 + 1).await, delivered), (2, 1), "{fp}: the delivery was mined");
        }
        g = net.agent("genesis", 1, &compose_good(), &[]);
        let s = n.exited(T).await;
        assert!(s.success(), "node after {fp}: {s:?}\n{}", n.log());
        assert_file(&n, &secret);
        assert_one_request_delivered_once(&net, key(k).address()).await;
        t.crash_points.push(fp);
        t.restarts += 1;
        t.requests += 1;
        t.files += 1;
    }

    // The restarted holder keeps serving, and its state and endpoint are sound.
    let mut n = net.agent("node-after", 5, &compose_good(), &EXIT);
    let s = n.exited(T).await;
    assert!(s.success(), "node after the holder crashes: {s:?}\n{}", n.log());
    assert_file(&n, &secret);
    assert_one_request_delivered_once(&net, key(5).address()).await;
    assert!(g.alive(), "holder died:\n{}", g.log());
    wait_status(&g, "holder").await;
    assert_eq!(net.request_count().await, 4);
    t.requests += 1;
    t.files += 1;
    t
}

// ------------------------------------------------------------------------------------------------
// 2. RPC outage, and a provider that limits eth_getLogs ranges
// ------------------------------------------------------------------------------------------------

async fn rpc_outage() -> Tally {
    const OUTAGE: Duration = Duration::from_secs(30);
    let net = Net::start("faults-outage", Net::dev_policy()).await;
    let mut g = net.genesis(1).await;
    let secret = fs::read(g.secret_path()).expect("genesis secret");
    stop(&mut g).await;
    let mut proxy = TcpProxy::start(anvil_addr(&net)).await;
    let h = net.agent_via(&proxy.url(), "genesis", 1, &compose_good(), &[], &[]);
    wait_caught_up(&net, &h).await;

    proxy.stop().await;
    let (hpke, id) = post_request_directly(&net, 2).await;
    let start = Instant::now();
    let mut h = h;
    while start.elapsed() < OUTAGE {
        assert!(h.alive(), "holder died during the outage:\n{}", h.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(net.status(id.to()).await, 1, "nobody could answer during the outage");
    // It backs off (200 ms doubling to 15 s) instead of hammering the dead endpoint.
    let complaints = h.log().matches("chain unavailable").count();
    assert!((3..=20).contains(&complaints), "{complaints} RPC retries in {OUTAGE:?}:\n{}", h.log());
    proxy.resume().await;

    wait_until("delivery after the outage", T, || async { net.status(id.to()).await == 2 }).await;
    assert!(h.alive(), "holder died after the outage:\n{}", h.log());
    assert_eq!(net.request_logs::<Op::SecretDelivered>(id).await.len(), 1);
    assert_eq!(open_delivery(&net, &hpke, id).await, secret, "the delivery opens to the secret");
    wait_status(&h, "holder").await;
    drop(proxy);
    Tally { outage_secs: OUTAGE.as_secs(), requests: 1, ..Tally::default() }
}

async fn getlogs_limited_provider() -> Tally {
    const LIMIT: u64 = 5;
    let net = Net::start("faults-getlogs", Net::dev_policy()).await;
    mine(&net, 30).await;
    let rpc = LimitedRpc::start(net.url.clone(), LIMIT).await;
    // The genesis node and holder sees the chain only through the limited provider; its first scan
    // starts at the deployment block, 30+ blocks back.
    let mut g = net.agent_via(&rpc.url, "genesis", 1, &compose_good(), &GENESIS_ARGS, &[]);
    wait_until("genesis proposal", T, || async { genesis_count(&net).await >= 1 }).await;
    let v = Verifier::new(Box::new(NoCollateral)).dangerously_trust_simulated_quotes(simulated::anchor());
    replicatoor::admin::approve_genesis(&net.owner, &v, U256::from(1), "test genesis").await.expect("approve");
    wait_for_file(&mut g, T).await;
    let secret = fs::read(g.secret_path()).expect("genesis secret");
    wait_caught_up(&net, &g).await;
    stop(&mut g).await;

    // Requests sprinkled over ~40 blocks while the holder is away.
    let mut posted = Vec::new();
    for _ in 0..4 {
        posted.push(post_request_directly(&net, 2).await);
        mine(&net, 8).await;
    }
    let h = net.agent_via(&rpc.url, "genesis", 1, &compose_good(), &[], &[]);
    for (hpke, id) in &posted {
        wait_until("every late request delivered", T, || async { net.status(id.to()).await == 2 }).await;
        assert_eq!(net.request_logs::<Op::SecretDelivered>(*id).await.len(), 1);
        assert_eq!(open_delivery(&net, hpke, *id).await, secret);
    }
    assert!(h.log().contains("halving range"), "the holder met the limit:\n{}", h.log());

    // A new node behind the same provider, crashed after posting: it adopts its request and must
    // find the answer from the deployment block on, in ranges the provider accepts.
    let fp = "requester_after_post";
    let mut n = net.agent_via(&rpc.url, "node-late", 3, &compose_good(), &EXIT, &[(FP, fp)]);
    crashed_at(&mut n, fp).await;
    mine(&net, 10).await;
    let mut n = net.agent_via(&rpc.url, "node-late", 3, &compose_good(), &EXIT, &[]);
    let s = n.exited(T).await;
    assert!(s.success(), "node behind a limited provider: {s:?}\n{}", n.log());
    assert_file(&n, &secret);
    assert_one_request_delivered_once(&net, key(3).address()).await;
    let refused = rpc.refused.load(Ordering::SeqCst);
    assert!(refused > 0, "the provider limit was exercised");
    Tally { limited_providers: 1, getlogs_refused: refused, requests: 5, files: 1, restarts: 2, ..Tally::default() }
}

// ------------------------------------------------------------------------------------------------
// 3. Reorgs. anvil 1.7 `anvil_reorg(depth, [])` replaces the last `depth` blocks with empty ones at
//    the same height: the dropped transactions are gone (no receipt, not in the pool, never
//    re-included), unlike geth, which returns them to its pool. The senders' nonces roll back.
// ------------------------------------------------------------------------------------------------

async fn reorg_drops_a_delivery() -> Tally {
    let net = Net::start("faults-reorg-delivery", Net::dev_policy()).await;
    let mut g = net.genesis(1).await;
    let secret = fs::read(g.secret_path()).expect("genesis secret");
    let mut n = net.agent("node", 2, &compose_good(), &EXIT);
    // Drop the delivery's block as soon as the holder has its receipt: usually still the head, above
    // the holder's checkpoint (so the follower's own reorg check cannot see it).
    let id = U256::from(1);
    wait_until("the delivery", T, || async { g.log().contains("secret delivered") }).await;
    let first = net.request_logs::<Op::SecretDelivered>(id).await.pop().expect("delivery log");
    let (block, tx) = (first.block_number.expect("block"), first.transaction_hash.expect("tx"));
    let checkpoint = g.status_json().await.and_then(|s| s["checkpoint"].as_u64());
    let head = net.owner.provider().get_block_number().await.expect("head");
    reorg(&net, head - block + 1).await;
    eprintln!(
        "reorg-delivery: delivery in block {block}, head {head}, holder checkpoint {checkpoint:?}: dropped {} blocks",
        head - block + 1
    );
    assert_eq!(net.status(1).await, 1, "the delivery was dropped: pending again");
    assert!(net.request_logs::<Op::SecretDelivered>(id).await.is_empty());
    assert!(tx_is_gone(&net, tx).await, "anvil_reorg drops the delivery transaction (not re-included)");

    wait_until("re-delivery after the reorg", T, || async { net.status(1).await == 2 }).await;
    let s = n.exited(T).await;
    assert!(s.success(), "node: {s:?}\n{}", n.log());
    assert_file(&n, &secret);
    assert_one_request_delivered_once(&net, key(2).address()).await;
    let again = net.request_logs::<Op::SecretDelivered>(id).await;
    assert_ne!(again[0].transaction_hash, Some(tx), "a new delivery, not the dropped one");
    assert!(g.log().contains("answering again") || g.log().contains("reorg detected"), "{}", g.log());

    // Deeper: once the holder's checkpoint passed the new delivery, drop it again with the blocks
    // around it; now the follower sees its checkpoint replaced and rewinds.
    let second = again[0].clone();
    let (block, tx) = (second.block_number.expect("block"), second.transaction_hash.expect("tx"));
    wait_until("the holder's checkpoint past the delivery", T, || async {
        g.status_json().await.and_then(|s| s["checkpoint"].as_u64()).is_some_and(|c| c > block)
    })
    .await;
    let head = net.owner.provider().get_block_number().await.expect("head");
    reorg(&net, head - block + 2).await;
    assert_eq!(net.status(1).await, 1, "the second delivery was dropped");
    assert!(tx_is_gone(&net, tx).await);
    wait_until("re-delivery after the deeper reorg", T, || async { net.status(1).await == 2 }).await;
    assert!(g.log().contains("reorg detected"), "the follower rewound:\n{}", g.log());
    assert_one_request_delivered_once(&net, key(2).address()).await;
    assert!(g.alive(), "holder:\n{}", g.log());
    eprintln!("reorg-delivery: second reorg dropped {} blocks incl. the holder's checkpoint", head - block + 2);
    Tally { reorgs: 2, requests: 1, files: 1, ..Tally::default() }
}

async fn reorg_drops_a_request() -> Tally {
    let net = Net::start("faults-reorg-request", Net::dev_policy()).await;
    let g = net.genesis(1).await;
    let secret = fs::read(g.secret_path()).expect("genesis secret");
    let sender = key(3).address();
    let mut n = net.agent("node", 3, &compose_good(), &EXIT);
    wait_until("the request", T, || async { n.log().contains("request posted") }).await;
    let req = requests_by(&net, sender).await.pop().expect("request log");
    let (block, tx) = (req.block_number.expect("block"), req.transaction_hash.expect("tx"));
    let head = net.owner.provider().get_block_number().await.expect("head");
    reorg(&net, head - block + 1).await;
    assert!(requests_by(&net, sender).await.is_empty(), "the request was dropped");
    assert_eq!(net.request_count().await, 0);
    assert!(tx_is_gone(&net, tx).await, "anvil_reorg drops the request transaction (not re-included)");

    let s = n.exited(T).await;
    assert!(s.success(), "node: {s:?}\n{}", n.log());
    assert!(n.log().contains("request no longer exists on chain (reorg)"), "the node re-posted:\n{}", n.log());
    eprintln!(
        "reorg-request: request in block {block}, head {head}: dropped {} blocks; holder rewound: {}",
        head - block + 1,
        g.log().contains("reorg detected")
    );
    assert_file(&n, &secret);
    assert_one_request_delivered_once(&net, sender).await;
    assert_eq!(net.request_count().await, 1);
    drop(g);
    Tally { reorgs: 1, requests: 1, files: 1, ..Tally::default() }
}

// ------------------------------------------------------------------------------------------------
// 4. Restart storm
// ------------------------------------------------------------------------------------------------

async fn restart_storm() -> Tally {
    const RESTARTS: u32 = 20;
    let net = Net::start("faults-storm", Net::dev_policy()).await;
    let mut g = net.genesis(1).await;
    let secret = fs::read(g.secret_path()).expect("genesis secret");
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    let mut nodes = Vec::new();
    for i in 0..RESTARTS {
        if i % 4 == 0 {
            let k = 2 + nodes.len();
            nodes.push((k, net.agent(&format!("node-{k}"), k, &compose_good(), &EXIT)));
        }
        tokio::time::sleep(Duration::from_millis(300 + rng.next() % 1200)).await;
        g.kill9();
        g = net.agent("genesis", 1, &compose_good(), &[]);
    }
    for (k, n) in &mut nodes {
        let s = n.exited(T).await;
        assert!(s.success(), "node-{k}: {s:?}\n{}", n.log());
        assert_file(n, &secret);
        assert_one_request_delivered_once(&net, key(*k).address()).await;
    }
    assert_eq!(net.request_count().await, nodes.len() as u64);
    assert!(g.alive(), "holder after the storm:\n{}", g.log());
    wait_status(&g, "holder").await;
    let starts = g.log().matches("agent starting").count();
    assert!(starts > RESTARTS as usize, "{starts} starts");
    assert!(!g.log().contains("corrupt"), "state corrupted:\n{}", g.log());
    let log = g.log();
    eprintln!(
        "restart-storm: {starts} holder starts; deliverSecret sent {} times, confirmed {} times, lost races {}; {} deliveries on chain",
        log.matches("sent call=\"deliverSecret").count(),
        log.matches("secret delivered").count(),
        log.matches("lost race").count(),
        nodes.len()
    );
    Tally { storm_kills: RESTARTS, requests: nodes.len() as u32, files: nodes.len() as u32, ..Tally::default() }
}

// ------------------------------------------------------------------------------------------------
// Checks
// ------------------------------------------------------------------------------------------------

/// SIGTERM and wait for a clean exit, without blocking the other scenarios.
async fn stop(p: &mut Proc) {
    let _ = std::process::Command::new("kill").arg("-TERM").arg(p.child.id().to_string()).status();
    let s = p.exited(Duration::from_secs(20)).await;
    assert!(s.success(), "{} stops cleanly on SIGTERM: {s:?}\n{}", p.name, p.log());
}

/// The process aborted at `fp` (a simulated kill -9).
async fn crashed_at(p: &mut Proc, fp: &str) {
    let s = p.exited(T).await;
    assert!(!s.success(), "{} should have crashed at {fp}: {s:?}\n{}", p.name, p.log());
    assert!(p.log().contains(&format!("failpoint {fp}")), "{} did not stop at {fp}:\n{}", p.name, p.log());
}

/// The node's file is the genesis secret, whole, mode 0600, with no temp file left beside it.
fn assert_file(p: &Proc, secret: &[u8]) {
    let got = fs::read(p.secret_path()).unwrap_or_else(|e| panic!("{}: no secret file ({e}):\n{}", p.name, p.log()));
    assert!(got == secret, "{}: file differs from the genesis secret ({} bytes)", p.name, got.len());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(p.secret_path()).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}: file mode", p.name);
    }
    assert!(temp_files(p).is_empty(), "{}: temp files left: {:?}", p.name, temp_files(p));
}

fn temp_files(p: &Proc) -> Vec<String> {
    fs::read_dir(&p.dir)
        .expect("node dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("replicatoor-tmp"))
        .collect()
}

/// `SecretRequested` logs posted by `sender` on the canonical chain.
async fn requests_by(net: &Net, sender: Address) -> Vec<Log> {
    let f = Filter::new()
        .address(net.contract)
        .event_signature(Op::SecretRequested::SIGNATURE_HASH)
        .topic3(sender.into_word())
        .from_block(0);
    net.owner.provider().get_logs(&f).await.expect("get_logs")
}

/// `sender` has exactly one request on chain, with exactly one delivery, and it is Delivered.
async fn assert_one_request_delivered_once(net: &Net, sender: Address) -> U256 {
    let reqs = requests_by(net, sender).await;
    assert_eq!(reqs.len(), 1, "{sender}: exactly one request on chain");
    let id = reqs[0].log_decode::<Op::SecretRequested>().expect("decode").inner.data.requestId;
    assert_eq!(net.request_logs::<Op::SecretDelivered>(id).await.len(), 1, "request {id}: exactly one delivery");
    assert_eq!(net.status(id.to()).await, 2, "request {id}: Delivered");
    id
}

async fn genesis_count(net: &Net) -> u64 {
    net.owner.contract().genesisCount().call().await.expect("genesisCount").to()
}

/// Wait until the agent's /status says `role`.
async fn wait_status(p: &Proc, role: &str) {
    wait_until(&format!("{} /status role {role}", p.name), T, || async {
        p.status_json().await.is_some_and(|s| s["role"] == role)
    })
    .await;
}

/// Wait until a holder's checkpoint reached the head (less its confirmation).
async fn wait_caught_up(net: &Net, p: &Proc) {
    let head = net.owner.provider().get_block_number().await.expect("head");
    wait_until(&format!("{} caught up to {head}", p.name), T, || async {
        p.status_json().await.and_then(|s| s["checkpoint"].as_u64()).is_some_and(|c| c + 1 >= head)
    })
    .await;
}

/// Post a request from the test itself (sender `k`, a fresh HPKE key), straight to anvil.
async fn post_request_directly(net: &Net, k: usize) -> (HpkeKeypair, U256) {
    let signer = key(k);
    let chain = Chain::connect(&net.url, net.contract, Some(signer.clone())).await.expect("connect");
    let hpke = HpkeKeypair::generate();
    let report_data = chain.deployment().request_report_data(signer.address(), &hpke.public());
    let (quote, log) = SimulatedTd::new(compose_hash(&compose_good())).attest(report_data).expect("quote");
    let o = chain
        .send(chain.contract().requestSecret(B256::from(hpke.public()), quote.into(), log.into()))
        .await
        .expect("requestSecret");
    let id = o.event::<Op::SecretRequested>().expect("SecretRequested").requestId;
    (hpke, id)
}

/// Open the delivery of request `id` with its HPKE key: the file the node would install.
async fn open_delivery(net: &Net, hpke: &HpkeKeypair, id: U256) -> Vec<u8> {
    let logs = net.request_logs::<Op::SecretDelivered>(id).await;
    let log = logs.last().expect("delivery");
    let ev = log.log_decode::<Op::SecretDelivered>().expect("decode").inner.data;
    let at = BlockId::number(log.block_number.expect("block"));
    let (cluster, _) = net.owner.cluster_at(at).await.expect("cluster");
    let d = delivery::SignedDelivery::from(&ev);
    delivery::open(&net.owner.deployment(), hpke, cluster, &d).expect("delivery opens").file().to_vec()
}

// ------------------------------------------------------------------------------------------------
// Chain control
// ------------------------------------------------------------------------------------------------

async fn mine(net: &Net, blocks: u64) {
    let _: serde_json::Value =
        net.owner.provider().raw_request("anvil_mine".into(), (blocks,)).await.expect("anvil_mine");
}

/// Replace the last `depth` blocks (anvil keeps the height; we re-include nothing).
async fn reorg(net: &Net, depth: u64) {
    let none: Vec<serde_json::Value> = Vec::new();
    let _: serde_json::Value =
        net.owner.provider().raw_request("anvil_reorg".into(), (depth, none)).await.expect("anvil_reorg");
}

/// Neither mined nor waiting in the pool.
async fn tx_is_gone(net: &Net, tx: B256) -> bool {
    let p = net.owner.provider();
    p.get_transaction_receipt(tx).await.expect("receipt").is_none()
        && p.get_transaction_by_hash(tx).await.expect("tx").is_none()
}

fn anvil_addr(net: &Net) -> SocketAddr {
    net.url.trim_start_matches("http://").parse().expect("anvil address")
}

/// Deterministic jitter for the restart storm.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

// ------------------------------------------------------------------------------------------------
// Proxies
// ------------------------------------------------------------------------------------------------

/// A TCP proxy to anvil that can be cut (listener and every connection closed) and restored on
/// the same port.
struct TcpProxy {
    port: u16,
    target: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl TcpProxy {
    async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        TcpProxy { port, target, task: Some(Self::serve(listener, target)) }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn serve(listener: TcpListener, target: SocketAddr) -> JoinHandle<()> {
        tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every connection.
            let mut conns = JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                conns.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                while conns.try_join_next().is_some() {}
            }
        })
    }

    /// Close the listener and every connection.
    async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    /// Listen again on the same port.
    async fn resume(&mut self) {
        let start = Instant::now();
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) if start.elapsed() < Duration::from_secs(10) => {
                    eprintln!("proxy rebind: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot rebind proxy port {}: {e}", self.port),
            }
        };
        self.task = Some(Self::serve(listener, self.target));
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A JSON-RPC proxy that, like hosted providers, refuses `eth_getLogs` over more than `limit` blocks.
struct LimitedRpc {
    url: String,
    refused: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl LimitedRpc {
    async fn start(upstream: String, limit: u64) -> LimitedRpc {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind rpc proxy");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let refused = Arc::new(AtomicU64::new(0));
        let counter = refused.clone();
        let task = tokio::spawn(async move {
            let client = alloy::transports::http::reqwest::Client::new();
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let up = Upstream { url: upstream.clone(), client: client.clone(), limit, refused: counter.clone() };
                conns.spawn(async move {
                    let _ = up.serve(stream).await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        LimitedRpc { url, refused, task }
    }
}

impl Drop for LimitedRpc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Upstream {
    url: String,
    client: alloy::transports::http::reqwest::Client,
    limit: u64,
    refused: Arc<AtomicU64>,
}

impl Upstream {
    /// HTTP/1.1 keep-alive loop: one JSON-RPC POST at a time.
    async fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let mut len = 0usize;
            loop {
                line.clear();
                if r.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).await?;
            let answer = self.answer(&body).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                answer.len()
            );
            w.write_all(head.as_bytes()).await?;
            w.write_all(&answer).await?;
        }
    }

    async fn answer(&self, body: &[u8]) -> Vec<u8> {
        let req: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        if req["method"] == "eth_getLogs" && req["params"][0].get("blockHash").is_none() {
            let p = &req["params"][0];
            let from = self.block_number(&p["fromBlock"]).await;
            let to = self.block_number(&p["toBlock"]).await;
            if to.saturating_sub(from) + 1 > self.limit {
                self.refused.fetch_add(1, Ordering::SeqCst);
                let err = serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": req["id"],
                    "error": { "code": -32005, "message": format!("query exceeds max block range {}", self.limit) },
                });
                return err.to_string().into_bytes();
            }
        }
        self.forward(body.to_vec()).await
    }

    async fn forward(&self, body: Vec<u8>) -> Vec<u8> {
        let resp = self.client.post(&self.url).header("content-type", "application/json").body(body).send().await;
        match resp {
            Ok(r) => r.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
            Err(e) => serde_json::json!({"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":e.to_string()}})
                .to_string()
                .into_bytes(),
        }
    }

    /// A block tag or number as a number ("latest", "pending", absent → the head).
    async fn block_number(&self, v: &serde_json::Value) -> u64 {
        match v.as_str() {
            Some("earliest") => 0,
            Some(s) if s.starts_with("0x") => u64::from_str_radix(&s[2..], 16).unwrap_or(0),
            _ => {
                let q = br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#.to_vec();
                let r: serde_json::Value = serde_json::from_slice(&self.forward(q).await).unwrap_or_default();
                r["result"].as_str().and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()).unwrap_or(0)
            }
        }
    }
}
