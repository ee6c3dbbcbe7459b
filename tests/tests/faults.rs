//! Fault tests: real anvil, the real contract and real `replicatoor` processes, under a crash at
//! every failpoint, an RPC outage, a range-limited `eth_getLogs` provider, reorgs and a restart storm.
//!
//! One test per scenario, each on its own chain with its own nodes, so a failure names itself and
//! `cargo test -p replicatoor-tests --test faults crash_at_holder_after_send` runs one. Every
//! scenario checks, for each request it makes: on chain once, delivered exactly once (0 lost, 0
//! duplicates), and each installed file whole, equal to the genesis secret, mode 0600, with no temp
//! file beside it (0 partial files).
//!
//! Every scenario runs pinned (`Net::start_pinned`): its agents decide, install and start on state
//! proven against simulated-beacon headers. The simulated beacon follows anvil reorgs (it rebuilds
//! and signs the blocks a reorg replaced), so the reorg scenarios exercise the verified view too.
//!
//! The scenarios mostly wait on 1 s blocks (the whole suite uses a few CPU seconds), so running
//! more than one per core is fine: `-- --test-threads 8` cuts the wall time to that of the
//! longest scenario (the 30 s outage).

use alloy::{
    eips::BlockId,
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::{Filter, Log},
    sol_types::SolEvent,
};
use replicatoor::{admin, failpoint};
use replicatoor_chain::{Chain, UpgradeOperator as Op};
use replicatoor_core::{
    attest::{collateral::NoCollateral, Verifier},
    crypto::HpkeKeypair,
    delivery,
};
use replicatoor_testkit::simulated::{self, SimulatedTd};
use replicatoor_tests::{
    compose_good, compose_hash, key,
    proxy::{LimitedRpc, TcpProxy},
    wait_for_file, wait_until, Net, Proc,
};
use std::{
    fs,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

const T: Duration = Duration::from_secs(90);
const FP: &str = "REPLICATOOR_FAILPOINT";
const GENESIS_ARGS: [&str; 3] = ["--genesis", "--generate-secret", "64"];
const EXIT: [&str; 1] = ["--exit-after-install"];

// ------------------------------------------------------------------------------------------------
// 1. kill -9 at every failpoint, then restart the same node
// ------------------------------------------------------------------------------------------------

/// One `#[tokio::test]` per failpoint, `crash_at_<failpoint>`, running `$scenario(failpoint)`.
/// `CRASH_TESTS` lists them for `every_failpoint_has_a_crash_test`.
macro_rules! crash_tests {
    ($($test:ident => $scenario:ident($fp:literal)),+ $(,)?) => {
        const CRASH_TESTS: &[(&str, &str)] = &[$((stringify!($test), $fp)),+];
        $(
            #[tokio::test]
            async fn $test() {
                $scenario($fp).await;
            }
        )+
    };
}

crash_tests! {
    crash_at_genesis_after_propose => genesis_crash("genesis_after_propose"),
    crash_at_requester_after_keys => requester_crash("requester_after_keys"),
    crash_at_requester_after_post => requester_crash("requester_after_post"),
    crash_at_requester_after_delivery_seen => requester_crash("requester_after_delivery_seen"),
    crash_at_install_before_rename => requester_crash("install_before_rename"),
    crash_at_requester_after_install => requester_crash("requester_after_install"),
    crash_at_holder_after_seal => holder_crash("holder_after_seal"),
    crash_at_holder_after_send => holder_crash("holder_after_send"),
    crash_at_holder_before_checkpoint => holder_crash("holder_before_checkpoint"),
    crash_at_rotation_after_propose => rotation_crash("rotation_after_propose"),
    crash_at_rotation_after_install => rotation_crash("rotation_after_install"),
}

/// Each failpoint the agent has is crashed at by exactly one test, named after it.
#[test]
fn every_failpoint_has_a_crash_test() {
    let mut tested: Vec<&str> = CRASH_TESTS.iter().map(|(_, fp)| *fp).collect();
    tested.sort_unstable();
    let mut all = failpoint::ALL.to_vec();
    all.sort_unstable();
    assert_eq!(tested, all, "every failpoint exercised exactly once");
    for (test, fp) in CRASH_TESTS {
        assert_eq!(*test, format!("crash_at_{fp}"), "test named after its failpoint");
    }
}

/// A new node crashes at `fp`; the crash left what it should; restarted, it recovers exactly once.
async fn requester_crash(fp: &'static str) {
    let net = Net::start_pinned(&format!("faults-{fp}"), Net::dev_policy()).await;
    let genesis = net.genesis(1).await;
    let secret = fs::read(genesis.secret_path()).expect("genesis secret");
    let (k, name) = (2, format!("node-{fp}"));
    let sender = key(k).address();
    let mut p = net.agent_with(&name, k, &compose_good(), &EXIT, &[(FP, fp)]);
    crashed_at(&mut p, fp).await;
    let posted = requests_by(&net, sender).await.len();
    match fp {
        "requester_after_keys" => assert_eq!(posted, 0, "{fp}: nothing posted yet"),
        "requester_after_install" => {
            assert_eq!(posted, 1);
            assert_file(&p, &secret);
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
    assert_file(&p, &secret);
    assert_one_request_delivered_once(&net, sender).await;
    if fp == "requester_after_post" {
        assert!(p.log().contains("adopting the request posted before a restart"), "{}", p.log());
    }
    assert_eq!(net.request_count().await, 1, "{fp}: one request, none posted twice");
    // Its state opens as a holder's.
    let h = net.agent(&name, k, &compose_good(), &[]);
    wait_status(&h, "holder").await;
    drop(genesis);
}

/// The genesis node crashes after its proposal is mined but before it is recorded: restarted, it
/// proposes nothing twice, installs the approved secret and serves.
async fn genesis_crash(fp: &'static str) {
    let net = Net::start_pinned(&format!("faults-{fp}"), Net::dev_policy()).await;
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

    // The recovered genesis node holds and serves.
    assert_serves(&net, &mut g, 2, &secret).await;
    assert_eq!(net.request_count().await, 1);
}

/// The holder crashes at `fp` while answering a new node: restarted, it finishes the job exactly
/// once, and keeps serving.
async fn holder_crash(fp: &'static str) {
    let net = Net::start_pinned(&format!("faults-{fp}"), Net::dev_policy()).await;
    let mut g = net.genesis(1).await;
    let secret = fs::read(g.secret_path()).expect("genesis secret");
    wait_caught_up(&net, &g).await;
    stop(&mut g).await;
    let mut g = net.agent_with("genesis", 1, &compose_good(), &[], &[(FP, fp)]);
    let k = 2;
    let mut n = net.agent(&format!("node-{fp}"), k, &compose_good(), &EXIT);
    crashed_at(&mut g, fp).await;
    if fp != "holder_after_seal" {
        // The delivery left before the crash; a holder reads on while receipts come, so at
        // `holder_before_checkpoint` it may still be in the node's pool, mined a block later.
        wait_until("the delivery sent before the crash mined", T, || async { net.status(1).await != 1 }).await;
    }
    let delivered = net.request_logs::<Op::SecretDelivered>(U256::from(1)).await.len();
    if fp == "holder_after_seal" {
        assert_eq!((net.status(1).await, delivered), (1, 0), "{fp}: sealed, nothing sent");
    } else {
        assert_eq!((net.status(1).await, delivered), (2, 1), "{fp}: the delivery was mined");
    }
    let mut g = net.agent("genesis", 1, &compose_good(), &[]);
    let s = n.exited(T).await;
    assert!(s.success(), "node after {fp}: {s:?}\n{}", n.log());
    assert_file(&n, &secret);
    assert_one_request_delivered_once(&net, key(k).address()).await;

    // The restarted holder keeps serving, and its state and endpoint are sound.
    assert_serves(&net, &mut g, 3, &secret).await;
    assert_eq!(net.request_count().await, 2);
}

/// A holder crashes during a rotation (PROTOCOL.md §5.4): after its proposal was mined but before it
/// recorded it, or after it installed the new epoch's files but before it stored the bundle.
/// Restarted, it ends up holding and serving the new epoch, the old secret in its keyring, the
/// installed files whole.
async fn rotation_crash(fp: &'static str) {
    let net = Net::start_pinned(&format!("faults-{fp}"), Net::dev_policy()).await;
    let mut g = net.genesis(1).await;
    let old = fs::read(g.secret_path()).expect("genesis secret");
    stop(&mut g).await;
    let mut g = net.agent_with("genesis", 1, &compose_good(), &[], &[(FP, fp)]);
    let c = net.owner.contract();
    net.owner.send(c.startRotation("crash test".into())).await.expect("start rotation");
    let proposals = |n: u64| async move { c.genesisCount().call().await.is_ok_and(|got| got == U256::from(n)) };
    if fp == "rotation_after_propose" {
        crashed_at(&mut g, fp).await;
        assert!(proposals(2).await, "{fp}: the proposal was mined before the crash");
        g = net.agent("genesis", 1, &compose_good(), &[]);
        // Not recorded, so proposed again, with the same next-epoch key: either can be approved.
        wait_until("the proposal made again", T, || proposals(3)).await;
        let first = c.genesisProposal(U256::from(2)).call().await.expect("proposal 2");
        let again = c.genesisProposal(U256::from(3)).call().await.expect("proposal 3");
        assert_eq!(first.cluster, again.cluster, "{fp}: the key made before the crash is kept");
    } else {
        wait_until("the proposal", T, || proposals(2)).await;
    }
    let id = c.genesisCount().call().await.expect("genesisCount");
    let v = Verifier::new(Box::new(NoCollateral)).dangerously_trust_simulated_quotes(simulated::anchor());
    let verified = admin::verify_rotation(&net.owner, &v, id).await.expect("verify the rotation");
    let approve = admin::call::approve_rotation(&verified.proposal, "crash test");
    net.owner.send(c.call_builder(&approve)).await.expect("approve the rotation");
    if fp == "rotation_after_install" {
        crashed_at(&mut g, fp).await;
        g = net.agent("genesis", 1, &compose_good(), &[]);
    }
    wait_until("the holder serving epoch 2", T, || async {
        g.status_json().await.is_some_and(|s| s["epoch"] == 2 && s["role"] == "holder")
    })
    .await;
    let new = fs::read(g.secret_path()).expect("epoch 2 secret");
    assert_ne!(new, old, "{fp}: a new secret");
    let keyring = fs::read(format!("{}.keyring", g.secret_path().display())).expect("keyring");
    let ring: serde_json::Value = serde_json::from_slice(&keyring).expect("keyring JSON");
    let hex_of = |i: usize| ring["secrets"][i]["secret_hex"].as_str().map(str::to_owned);
    assert_eq!((hex_of(0), hex_of(1)), (Some(hex::encode(&old)), Some(hex::encode(&new))), "{fp}: keyring");
    assert!(temp_files(&g).is_empty(), "{fp}: no temp file left");
    // It serves the new epoch: a new node gets the new secret.
    let mut n = net.agent(&format!("node-{fp}"), 2, &compose_good(), &EXIT);
    let s = n.exited(T).await;
    assert!(s.success(), "node after {fp}: {s:?}\n{}", n.log());
    assert_file(&n, &new);
}

// ------------------------------------------------------------------------------------------------
// 2. RPC outage, and a provider that limits eth_getLogs ranges
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn rpc_outage_30s() {
    const OUTAGE: Duration = Duration::from_secs(30);
    let net = Net::start_pinned("faults-outage", Net::dev_policy()).await;
    let mut g = net.genesis(1).await;
    let secret = fs::read(g.secret_path()).expect("genesis secret");
    stop(&mut g).await;
    let mut proxy = TcpProxy::start(net.anvil_addr()).await;
    let mut h = net.agent_via(&proxy.url(), "genesis", 1, &compose_good(), &[], &[]);
    wait_caught_up(&net, &h).await;

    proxy.stop().await;
    let (hpke, id) = post_request_directly(&net, 2).await;
    let start = Instant::now();
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
    assert_eq!(net.request_logs::<Op::SecretDelivered>(id).await.len(), 1, "delivered exactly once");
    assert_eq!(open_delivery(&net, &hpke, id).await, secret, "the delivery opens to the secret");
    wait_status(&h, "holder").await;
    assert_eq!(net.request_count().await, 1);
}

#[tokio::test]
async fn get_logs_range_limited() {
    const LIMIT: u64 = 5;
    let net = Net::start_pinned("faults-getlogs", Net::dev_policy()).await;
    net.mine(30).await;
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
        net.mine(8).await;
    }
    let h = net.agent_via(&rpc.url, "genesis", 1, &compose_good(), &[], &[]);
    for (hpke, id) in &posted {
        wait_until("every late request delivered", T, || async { net.status(id.to()).await == 2 }).await;
        assert_eq!(net.request_logs::<Op::SecretDelivered>(*id).await.len(), 1, "request {id} delivered once");
        assert_eq!(open_delivery(&net, hpke, *id).await, secret);
    }
    assert!(h.log().contains("halving range"), "the holder met the limit:\n{}", h.log());

    // A new node behind the same provider, crashed after posting: it adopts its request and must
    // find the answer from the deployment block on, in ranges the provider accepts.
    let fp = "requester_after_post";
    let mut n = net.agent_via(&rpc.url, "node-late", 3, &compose_good(), &EXIT, &[(FP, fp)]);
    crashed_at(&mut n, fp).await;
    net.mine(10).await;
    let mut n = net.agent_via(&rpc.url, "node-late", 3, &compose_good(), &EXIT, &[]);
    let s = n.exited(T).await;
    assert!(s.success(), "node behind a limited provider: {s:?}\n{}", n.log());
    assert_file(&n, &secret);
    assert_one_request_delivered_once(&net, key(3).address()).await;
    assert_eq!(net.request_count().await, 5, "no request lost or posted twice");
    let refused = rpc.refused.load(Ordering::SeqCst);
    assert!(refused > 0, "the provider refused no oversized query: its limit was not exercised");
    eprintln!("get_logs_range_limited: {refused} oversized eth_getLogs queries refused, 5 requests delivered once");
}

// ------------------------------------------------------------------------------------------------
// 3. Reorgs (see `Net::reorg`: anvil drops the replaced blocks' transactions for good).
// ------------------------------------------------------------------------------------------------

/// The delivery's block is dropped as soon as the holder has its receipt: usually still the head,
/// above the holder's checkpoint (so the follower's own reorg check cannot see it).
#[tokio::test]
async fn reorg_drops_delivery_above_checkpoint() {
    let net = Net::start_pinned("faults-reorg-above", Net::dev_policy()).await;
    let g = net.genesis(1).await;
    let secret = fs::read(g.secret_path()).expect("genesis secret");
    let mut n = net.agent("node", 2, &compose_good(), &EXIT);
    let id = U256::from(1);
    wait_until("the delivery", T, || async { g.log().contains("secret delivered") }).await;
    let first = net.request_logs::<Op::SecretDelivered>(id).await.pop().expect("delivery log");
    let (block, tx) = (first.block_number.expect("block"), first.transaction_hash.expect("tx"));
    let checkpoint = g.status_json().await.and_then(|s| s["checkpoint"].as_u64());
    let head = net.head().await;
    net.reorg(head - block + 1).await;
    eprintln!(
        "reorg above checkpoint: delivery in block {block}, head {head}, holder checkpoint {checkpoint:?}: dropped {} blocks",
        head - block + 1
    );
    assert_eq!(net.status(1).await, 1, "the delivery was dropped: pending again");
    assert!(net.request_logs::<Op::SecretDelivered>(id).await.is_empty());
    assert!(net.tx_is_gone(tx).await, "anvil_reorg drops the delivery transaction (not re-included)");

    wait_until("re-delivery after the reorg", T, || async { net.status(1).await == 2 }).await;
    let s = n.exited(T).await;
    assert!(s.success(), "node: {s:?}\n{}", n.log());
    assert_file(&n, &secret);
    assert_one_request_delivered_once(&net, key(2).address()).await;
    let again = net.request_logs::<Op::SecretDelivered>(id).await;
    assert_ne!(again[0].transaction_hash, Some(tx), "a new delivery, not the dropped one");
    assert!(g.log().contains("answering again") || g.log().contains("reorg detected"), "{}", g.log());
    assert_eq!(net.request_count().await, 1);
}

/// Once the holder's checkpoint passed the delivery, the delivery is dropped with the blocks
/// around it: the follower sees its checkpoint replaced, rewinds and answers again.
#[tokio::test]
async fn reorg_drops_delivery_below_checkpoint() {
    let net = Net::start_pinned("faults-reorg-below", Net::dev_policy()).await;
    let mut g = net.genesis(1).await;
    let secret = fs::read(g.secret_path()).expect("genesis secret");
    let mut n = net.agent("node", 2, &compose_good(), &EXIT);
    let id = U256::from(1);
    wait_until("the delivery", T, || async { net.status(1).await == 2 }).await;
    let request = requests_by(&net, key(2).address()).await.pop().expect("request log");
    let delivered = net.request_logs::<Op::SecretDelivered>(id).await.pop().expect("delivery log");
    let (block, tx) = (delivered.block_number.expect("block"), delivered.transaction_hash.expect("tx"));
    wait_until("the holder's checkpoint past the delivery", T, || async {
        g.status_json().await.and_then(|s| s["checkpoint"].as_u64()).is_some_and(|c| c > block)
    })
    .await;
    // From the block before the delivery, unless that one holds the request (it must survive).
    let from = if block - 1 > request.block_number.expect("block") { block - 1 } else { block };
    let head = net.head().await;
    net.reorg(head - from + 1).await;
    eprintln!("reorg below checkpoint: delivery in block {block}, head {head}: dropped {} blocks", head - from + 1);
    assert_eq!(net.status(1).await, 1, "the delivery was dropped: pending again");
    assert!(net.tx_is_gone(tx).await, "anvil_reorg drops the delivery transaction (not re-included)");

    wait_until("re-delivery after the deep reorg", T, || async { net.status(1).await == 2 }).await;
    assert!(g.log().contains("reorg detected"), "the follower rewound:\n{}", g.log());
    assert_one_request_delivered_once(&net, key(2).address()).await;
    let again = net.request_logs::<Op::SecretDelivered>(id).await;
    assert_ne!(again[0].transaction_hash, Some(tx), "a new delivery, not the dropped one");
    let s = n.exited(T).await;
    assert!(s.success(), "node: {s:?}\n{}", n.log());
    assert_file(&n, &secret);
    assert!(g.alive(), "holder:\n{}", g.log());
    wait_status(&g, "holder").await;
    stop(&mut g).await;
    assert_eq!(net.request_count().await, 1);
}

/// The new node's request is dropped: it notices and posts again, and is answered once.
#[tokio::test]
async fn reorg_drops_request() {
    let net = Net::start_pinned("faults-reorg-request", Net::dev_policy()).await;
    let g = net.genesis(1).await;
    let secret = fs::read(g.secret_path()).expect("genesis secret");
    let sender = key(3).address();
    let mut n = net.agent("node", 3, &compose_good(), &EXIT);
    wait_until("the request", T, || async { n.log().contains("request posted") }).await;
    let req = requests_by(&net, sender).await.pop().expect("request log");
    let (block, tx) = (req.block_number.expect("block"), req.transaction_hash.expect("tx"));
    let head = net.head().await;
    net.reorg(head - block + 1).await;
    assert!(requests_by(&net, sender).await.is_empty(), "the request was dropped");
    assert_eq!(net.request_count().await, 0);
    assert!(net.tx_is_gone(tx).await, "anvil_reorg drops the request transaction (not re-included)");

    let s = n.exited(T).await;
    assert!(s.success(), "node: {s:?}\n{}", n.log());
    assert!(n.log().contains("request no longer exists on chain (reorg)"), "the node re-posted:\n{}", n.log());
    eprintln!(
        "reorg request: request in block {block}, head {head}: dropped {} blocks; holder rewound: {}",
        head - block + 1,
        g.log().contains("reorg detected")
    );
    assert_file(&n, &secret);
    assert_one_request_delivered_once(&net, sender).await;
    assert_eq!(net.request_count().await, 1);
}

// ------------------------------------------------------------------------------------------------
// 4. Restart storm
// ------------------------------------------------------------------------------------------------

/// The holder is killed (-9) and restarted 20 times at random moments while new nodes arrive.
#[tokio::test]
async fn restart_storm() {
    const RESTARTS: u32 = 20;
    let net = Net::start_pinned("faults-storm", Net::dev_policy()).await;
    let mut g = net.genesis(1).await;
    let secret = fs::read(g.secret_path()).expect("genesis secret");
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    let mut nodes = Vec::new();
    for i in 0..RESTARTS {
        if i % 4 == 0 {
            let k = 2 + nodes.len();
            nodes.push((k, net.agent(&format!("node-{k}"), k, &compose_good(), &EXIT)));
        }
        // Each kill hits a started agent (its log says so), at a random moment after that: on a loaded
        // machine a debug build can take longer than the shortest delay to start, and a kill before the
        // start would be a restart the storm did not make.
        let before = i as usize; // starts logged before this incarnation's
        wait_until("the holder's start", T, || async { g.log().matches("agent starting").count() > before }).await;
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
    assert_eq!(nodes.len(), 5);
    assert_eq!(net.request_count().await, nodes.len() as u64, "no request lost or posted twice");
    assert!(g.alive(), "holder after the storm:\n{}", g.log());
    wait_status(&g, "holder").await;
    let log = g.log();
    let starts = log.matches("agent starting").count();
    assert!(starts > RESTARTS as usize, "{starts} starts for {RESTARTS} restarts");
    assert!(!log.contains("corrupt"), "state corrupted:\n{log}");
    eprintln!(
        "restart_storm: {starts} holder starts; deliverSecret sent {} times, confirmed {} times, lost races {}; {} deliveries on chain",
        log.matches("sent call=\"deliverSecret").count(),
        log.matches("secret delivered").count(),
        log.matches("lost race").count(),
        nodes.len()
    );
}

// ------------------------------------------------------------------------------------------------
// Checks
// ------------------------------------------------------------------------------------------------

/// A new node (anvil key `k`) gets the secret from holder `g` exactly once, and `g` stays a sound holder.
async fn assert_serves(net: &Net, g: &mut Proc, k: usize, secret: &[u8]) {
    let mut n = net.agent(&format!("node-{k}"), k, &compose_good(), &EXIT);
    let s = n.exited(T).await;
    assert!(s.success(), "node-{k} served by {}: {s:?}\n{}", g.name, n.log());
    assert_file(&n, secret);
    assert_one_request_delivered_once(net, key(k).address()).await;
    assert!(g.alive(), "holder died:\n{}", g.log());
    wait_status(g, "holder").await;
}

/// SIGTERM and wait for a clean exit (without blocking the runtime: proxies may run on it).
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

/// The node's file is `secret`, whole, mode 0600, with no temp file left beside it.
fn assert_file(p: &Proc, secret: &[u8]) {
    let got = fs::read(p.secret_path()).unwrap_or_else(|e| panic!("{}: no secret file ({e}):\n{}", p.name, p.log()));
    assert!(got == secret, "{}: file differs from the secret expected ({} bytes)", p.name, got.len());
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
    let head = net.head().await;
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
    let requester = net
        .request_logs::<Op::SecretRequested>(id)
        .await
        .last()
        .expect("request")
        .log_decode::<Op::SecretRequested>()
        .expect("decode")
        .inner
        .data
        .requester;
    let d = delivery::SignedDelivery::from(&ev);
    delivery::open(&net.owner.deployment(), hpke, requester, cluster, &d).expect("delivery opens").file().to_vec()
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
