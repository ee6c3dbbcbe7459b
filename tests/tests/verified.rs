//! The operator-controlled RPC attack, with real agent processes on anvil. The machine's operator
//! sets the holder's RPC URL; here that RPC is a proxy that says every reference is allowed
//! (`isAllowed` → true). A holder that trusts its RPC serves an app the contract never approved
//! (the attack, reproduced); a holder with a pinned deployment decides on storage proven against
//! headers a (simulated) beacon sync committee signed, and refuses that app for its real reason.

use alloy::sol_types::SolCall;
use replicatoor_chain::bindings::UpgradeOperator as Op;
use replicatoor_core::refusal::Refusal;
use replicatoor_testkit::beacon::{self, Committee};
use replicatoor_tests::{
    compose_bad, compose_good, compose_hash,
    proxy::{Rewrite, RpcProxy},
    wait_for_file, wait_until, Net,
};
use serde_json::Value;
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

const T: Duration = Duration::from_secs(90);

/// The hex calldata (no 0x) of a JSON-RPC request: a call's `input` or `data`, or a raw transaction.
fn call_data(req: &Value) -> &str {
    let first = &req["params"][0];
    first["input"]
        .as_str()
        .or_else(|| first["data"].as_str())
        .or_else(|| first.as_str())
        .unwrap_or_default()
        .trim_start_matches("0x")
}

/// A log of the contract, as an RPC would serve it, placed in the block (and transaction) of
/// `req_log`: the block exists, but its receipts do not hold this log.
fn log_in_block(net: &Net, data: &alloy::primitives::LogData, req_log: &alloy::rpc::types::Log) -> Value {
    serde_json::json!({
        "address": net.contract,
        "topics": data.topics(),
        "data": data.data,
        "blockNumber": format!("{:#x}", req_log.block_number.unwrap()),
        "blockHash": req_log.block_hash.unwrap(),
        "transactionHash": req_log.transaction_hash.unwrap(),
        "transactionIndex": "0x0",
        "logIndex": "0x1",
        "removed": false,
    })
}

/// An RPC that keeps every `deliverSecret` it is handed (to estimate, call or send): what the
/// operator learns. With `lie`, it also answers every `isAllowed(id, kind)` call with `true`.
async fn keeping_rpc(upstream: &str, lie: bool) -> (RpcProxy, Arc<Mutex<Vec<String>>>) {
    let allowed = hex::encode(Op::isAllowedCall::SELECTOR);
    let deliver = hex::encode(Op::deliverSecretCall::SELECTOR);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    let rewrite: Rewrite = Arc::new(move |req: &Value, mut ans: Value| {
        let data = call_data(req);
        if lie && req["method"] == "eth_call" && data.starts_with(&allowed) {
            ans["result"] = Value::String(format!("0x{:064x}", 1));
        }
        // Calldata, or a signed transaction that carries it.
        if data.contains(&deliver) {
            kept.lock().unwrap().push(data.to_string());
        }
        ans
    });
    (RpcProxy::start(upstream, rewrite).await, seen)
}

/// An RPC that says every reference is allowed, and keeps every `deliverSecret` it is handed.
async fn everything_allowed(upstream: &str) -> (RpcProxy, Arc<Mutex<Vec<String>>>) {
    keeping_rpc(upstream, true).await
}

/// The deliveries for request `id` the RPC was handed (its id is the calldata's first word).
fn deliveries_for(seen: &Mutex<Vec<String>>, id: u64) -> usize {
    let word = format!("{}{id:064x}", hex::encode(Op::deliverSecretCall::SELECTOR));
    seen.lock().unwrap().iter().filter(|d| d.contains(&word)).count()
}

/// Without a pinned deployment, the lie works: the holder seals the secret to an unapproved app's
/// key and hands the sealed delivery to the operator's RPC. (The contract would revert it, since it
/// re-checks the references; too late: the ciphertext for the intruder's key has left the TD, and an
/// RPC that runs its own chain would just accept it.) This is the hole SECURITY.md describes; the
/// next test is the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_pinned_deployment_a_lying_rpc_gets_the_secret_sealed_to_an_unapproved_app() {
    let net = Net::start("lying-rpc-unverified", Net::dev_policy()).await;
    let (rpc, seen) = everything_allowed(&net.url).await;
    let holder = net.genesis_via(rpc.url(), 1, &[]).await;
    assert_ne!(compose_hash(&compose_bad()), compose_hash(&compose_good()));
    let _intruder = net.agent("intruder", 2, &compose_bad(), &[]);
    wait_until("the holder to hand over a sealed delivery", T, || async { deliveries_for(&seen, 1) > 0 }).await;
    assert!(holder.log().contains("request verified"), "{}", holder.log());
    assert_eq!(holder.status_json().await.expect("/status")["trust_mode"], "rpc-unverified");
}

/// With a pinned deployment, the same lie changes nothing: the holder reads the reference from
/// proven storage and refuses the unapproved app (code 12), while still serving an approved one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_holder_decides_on_proven_state_and_the_lie_changes_nothing() {
    let net = Net::start("lying-rpc-verified", Net::dev_policy()).await;
    let b = beacon::serve(&net.url, "127.0.0.1:0".parse().unwrap(), Committee::Public).await.expect("simulated beacon");
    let (rpc, seen) = everything_allowed(&net.url).await;
    let pin = net.pin_for(&b);
    let mut holder = net.genesis_via(rpc.url(), 1, &["--deployment", &pin, "--beacon-url", b.url()]).await;
    assert!(holder.log().contains("chain view verified against the pinned trust root"), "{}", holder.log());
    let status = holder.status_json().await.expect("/status");
    assert_eq!(status["trust_mode"], "simulated-beacon");
    let (_, metrics) = holder.http_get("/metrics").await;
    assert!(metrics.contains(r#"replicatoor_trust_mode{mode="simulated-beacon"} 1"#), "{metrics}");

    let mut intruder = net.agent("intruder", 2, &compose_bad(), &[]);
    wait_until("the intruder's request answered", T, || async { net.status(1).await == 3 }).await;
    assert_eq!(net.refusal_reason(1).await, Some(Refusal::AppReferenceNotAllowed.code()));
    let code = intruder.exited(T).await;
    assert_eq!(code.code(), Some(3), "the intruder is told it was refused");
    assert!(!intruder.secret_path().exists(), "nothing installed");
    assert_eq!(deliveries_for(&seen, 1), 0, "no sealed delivery for the intruder ever left the holder");

    // The verified path serves what the chain really allows.
    let mut node = net.agent("node", 3, &compose_good(), &["--exit-after-install"]);
    wait_for_file(&mut node, T).await;
    assert_eq!(net.status(2).await, 2);
    assert_eq!(std::fs::read(node.secret_path()).unwrap(), std::fs::read(holder.secret_path()).unwrap());
    assert!(holder.alive(), "{}", holder.log());
}

/// A delivery the operator forged: the new node's own request sealed with a cluster key the operator
/// made, and an RPC that shows it as delivered, with the operator's key as `cluster`.
struct ForgedDelivery {
    log: Value,
    cluster: alloy::primitives::Address,
    secret: Vec<u8>,
}

async fn forge_delivery(net: &Net, request_id: u64) -> ForgedDelivery {
    use alloy::{primitives::LogData, signers::local::PrivateKeySigner, sol_types::SolEvent};
    use replicatoor_core::{crypto::SecretBundle, delivery};
    let (_, req_log, accepted) = net.accept_request(request_id).await;
    let secret = b"the operator's own secret".to_vec();
    let bundle = SecretBundle::new(
        zeroize::Zeroizing::new(PrivateKeySigner::random().to_bytes().0),
        1,
        zeroize::Zeroizing::new(secret.clone()),
    )
    .unwrap();
    let dep = net.owner.deployment();
    let d = delivery::seal(&dep, &accepted, &bundle).unwrap();
    let event = Op::SecretDelivered {
        requestId: d.request_id,
        epoch: 1,
        relayer: net.owner.sender().unwrap(),
        osRef: d.os_ref,
        appRef: d.app_ref,
        policy: d.policy,
        encapsulatedKey: d.encapsulated_key.clone().into(),
        ciphertext: d.ciphertext.clone().into(),
        signature: d.signature.clone().into(),
    };
    let data: LogData = event.encode_log_data();
    // Placed in the request's own block: the block exists, its receipts do not hold this log.
    let log = log_in_block(net, &data, &req_log);
    ForgedDelivery { log, cluster: bundle.cluster_address(), secret }
}

/// An RPC that shows `forged` as the answer to the node's request: status delivered, the forged log,
/// and the operator's key as the cluster.
async fn forging_rpc(upstream: &str, forged: &ForgedDelivery) -> RpcProxy {
    let status = hex::encode(Op::requestStatusCall::SELECTOR);
    let cluster = hex::encode(Op::clusterCall::SELECTOR);
    let delivered = format!("{:#x}", <Op::SecretDelivered as alloy::sol_types::SolEvent>::SIGNATURE_HASH);
    let (log, cluster_word) = (forged.log.clone(), format!("0x{:0>64}", hex::encode(forged.cluster)));
    let lie: Rewrite = Arc::new(move |req: &Value, mut ans: Value| {
        let call = &req["params"][0];
        let data = call_data(req);
        match req["method"].as_str() {
            Some("eth_call") if data.starts_with(&status) => ans["result"] = Value::String(format!("0x{:064x}", 2)),
            Some("eth_call") if data.starts_with(&cluster) => ans["result"] = Value::String(cluster_word.clone()),
            Some("eth_getLogs") if call["topics"][0].as_str() == Some(delivered.as_str()) => {
                ans["result"] = Value::Array(vec![log.clone()])
            }
            _ => {}
        }
        ans
    });
    RpcProxy::start(upstream, lie).await
}

/// Without a pin, a new node installs a secret the operator chose (its RPC forges the delivery and
/// the cluster); with a pin it installs nothing: the forged log is not in its block's proven receipts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_delivery_is_installed_only_by_an_unpinned_node() {
    let net = Net::start("forged-delivery", Net::dev_policy()).await;
    let b = beacon::serve(&net.url, "127.0.0.1:0".parse().unwrap(), Committee::Public).await.expect("simulated beacon");
    let genesis = net.genesis(1).await;
    drop(genesis); // no honest holder: the only answer a node sees is the forged one

    // Unpinned: request honestly, then the RPC forges the answer.
    let mut plain = net.agent("plain", 2, &compose_good(), &["--exit-after-install"]);
    wait_until("the first request", T, || async { net.request_count().await == 1 }).await;
    let forged = forge_delivery(&net, 1).await;
    let rpc = forging_rpc(&net.url, &forged).await;
    plain.terminate();
    let mut plain = net.agent_via(rpc.url(), "plain", 2, &compose_good(), &["--exit-after-install"], &[]);
    wait_for_file(&mut plain, T).await;
    assert_eq!(std::fs::read(plain.secret_path()).unwrap(), forged.secret, "the operator's secret was installed");

    // Pinned: the same lie installs nothing.
    let pin = net.pin_for(&b);
    let pinned_args = ["--deployment", pin.as_str(), "--beacon-url", b.url()];
    let mut node = net.agent("pinned", 3, &compose_good(), &pinned_args);
    wait_until("the second request", T, || async { net.request_count().await == 2 }).await;
    let forged = forge_delivery(&net, 2).await;
    let rpc = forging_rpc(&net.url, &forged).await;
    node.terminate();
    let mut node = net.agent_via(rpc.url(), "pinned", 3, &compose_good(), &pinned_args, &[]);
    // Its request's status comes from proven storage: still pending, whatever the RPC says.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!node.secret_path().exists(), "nothing installed");
    assert!(node.alive(), "it keeps waiting for a real delivery:\n{}", node.log());
    // Once a real holder delivers, the RPC still shows only its forged log: that is not in the block's
    // proven receipts either, so the node installs nothing (withholding the real one is all it can do).
    let holder = net.agent("genesis", 1, &compose_good(), &pinned_args); // the genesis node's state: a holder
    wait_until("the pinned node to reject the forged delivery", T, || async {
        node.log().contains("not in its block's proven receipts")
    })
    .await;
    assert!(!node.secret_path().exists(), "nothing installed");
    assert!(node.alive(), "it keeps waiting for a real delivery:\n{}", node.log());
    drop(holder);
}

/// An RPC that, as soon as it has seen a genesis proposal go by, says that proposal's cluster is
/// the contract's `cluster` (an approval the owner never gave).
async fn approving_rpc(upstream: &str) -> RpcProxy {
    let propose = hex::encode(Op::proposeGenesisCall::SELECTOR);
    let cluster = hex::encode(Op::clusterCall::SELECTOR);
    let seen: Arc<Mutex<Option<String>>> = Arc::default();
    let lie: Rewrite = Arc::new(move |req: &Value, mut ans: Value| {
        let data = call_data(req);
        if let Some(args) = data.strip_prefix(propose.as_str()) {
            // proposeGenesis(address cluster, …): the first word is the cluster.
            *seen.lock().unwrap() = Some(format!("0x{}", &args[..64]));
        }
        if req["method"] == "eth_call" && data.starts_with(&cluster) {
            if let Some(word) = seen.lock().unwrap().clone() {
                ans["result"] = Value::String(word);
            }
        }
        ans
    });
    RpcProxy::start(upstream, lie).await
}

/// A genesis node shown an approval that never happened: unpinned, it installs its secret and serves
/// as the cluster; pinned, it keeps waiting for a proven approval, and installs once the owner
/// really approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_genesis_approval_fools_only_an_unpinned_node() {
    let net = Net::start("forged-approval", Net::dev_policy()).await;
    let b = beacon::serve(&net.url, "127.0.0.1:0".parse().unwrap(), Committee::Public).await.expect("simulated beacon");
    let rpc = approving_rpc(&net.url).await;

    let mut plain =
        net.agent_via(rpc.url(), "plain", 1, &compose_good(), &["--genesis", "--generate-secret", "64"], &[]);
    wait_for_file(&mut plain, T).await;
    assert_eq!(net.owner.contract().genesisCount().call().await.unwrap(), alloy::primitives::U256::from(1));
    assert_eq!(net.owner.cluster_at(alloy::eips::BlockId::latest()).await.unwrap().1, 0, "never approved on chain");
    plain.terminate();

    let pin = net.pin_for(&b);
    let args = ["--genesis", "--generate-secret", "64", "--deployment", pin.as_str(), "--beacon-url", b.url()];
    let mut node = net.agent_via(rpc.url(), "pinned", 2, &compose_good(), &args, &[]);
    wait_until("the pinned node's proposal", T, || async {
        net.owner.contract().genesisCount().call().await.is_ok_and(|n| n == alloy::primitives::U256::from(2))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!node.secret_path().exists(), "no install on a forged approval:\n{}", node.log());
    assert!(node.alive(), "{}", node.log());

    // The owner approves for real: the proven cluster now matches and the node installs.
    let v = replicatoor_core::attest::Verifier::new(Box::new(replicatoor_core::attest::collateral::NoCollateral))
        .dangerously_trust_simulated_quotes(replicatoor_testkit::simulated::anchor());
    replicatoor::admin::approve_genesis(&net.owner, &v, alloy::primitives::U256::from(2), "real approval")
        .await
        .unwrap();
    wait_for_file(&mut node, T).await;
}

/// The same lie against a holder pinned to an RPC quorum (chains without a light client): two of
/// three pinned RPCs must agree on the decision header, and the state is proven against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_pinned_holder_decides_on_proven_state_too() {
    let net = Net::start("lying-rpc-quorum", Net::dev_policy()).await;
    let honest: Rewrite = Arc::new(|_: &Value, ans: Value| ans);
    let (a, b) = (RpcProxy::start(&net.url, honest.clone()).await, RpcProxy::start(&net.url, honest).await);
    let pin = format!(
        "chain_id = 31337\ncontract = \"{}\"\nstart_block = {}\n[trust]\nmode = \"quorum\"\n\
         rpcs = [\"{}\", \"{}\", \"{}\"]\nquorum = 2\nmax_age_secs = 60\n",
        net.contract,
        net.start,
        net.url,
        a.url(),
        b.url()
    );
    let (rpc, seen) = everything_allowed(&net.url).await;
    let holder = net.genesis_via(rpc.url(), 1, &["--deployment", &pin]).await;
    assert_eq!(holder.status_json().await.expect("/status")["trust_mode"], "rpc-quorum");

    let mut intruder = net.agent("intruder", 2, &compose_bad(), &[]);
    wait_until("the intruder's request answered", T, || async { net.status(1).await == 3 }).await;
    assert_eq!(net.refusal_reason(1).await, Some(Refusal::AppReferenceNotAllowed.code()));
    assert_eq!(intruder.exited(T).await.code(), Some(3));
    assert_eq!(deliveries_for(&seen, 1), 0, "no sealed delivery for the intruder ever left the holder");

    let mut node = net.agent("node", 3, &compose_good(), &["--exit-after-install"]);
    wait_for_file(&mut node, T).await;
    assert_eq!(net.status(2).await, 2);
}

/// An RPC that says the node's request `id` was refused (status 3, and a `RequestRefused` log with
/// code 12 in the request's own block): a refusal the cluster never signed.
async fn refusing_rpc(net: &Net, id: u64) -> RpcProxy {
    use alloy::{
        primitives::{Bytes, U256},
        sol_types::SolEvent,
    };
    let (_, req_log, _) = net.accept_request(id).await;
    let event = Op::RequestRefused {
        requestId: U256::from(id),
        epoch: 1,
        relayer: net.owner.sender().unwrap(),
        reason: Refusal::AppReferenceNotAllowed.code(),
        signature: Bytes::from(vec![0u8; 65]),
    };
    let data = event.encode_log_data();
    let log = log_in_block(net, &data, &req_log);
    let status = hex::encode(Op::requestStatusCall::SELECTOR);
    let refused = format!("{:#x}", Op::RequestRefused::SIGNATURE_HASH);
    let lie: Rewrite = Arc::new(move |req: &Value, mut ans: Value| {
        let data = call_data(req);
        match req["method"].as_str() {
            Some("eth_call") if data.starts_with(&status) => ans["result"] = Value::String(format!("0x{:064x}", 3)),
            Some("eth_getLogs") if req["params"][0]["topics"][0].as_str() == Some(refused.as_str()) => {
                ans["result"] = Value::Array(vec![log.clone()])
            }
            _ => {}
        }
        ans
    });
    RpcProxy::start(&net.url, lie).await
}

/// A refusal the operator's RPC made up: an unpinned new node believes it and exits as refused (it
/// would never get the secret); a pinned node reads its own request's status from proven storage,
/// keeps waiting, and installs the secret once a real holder serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_refusal_stops_only_an_unpinned_node() {
    let net = Net::start("forged-refusal", Net::dev_policy()).await;
    let b = beacon::serve(&net.url, "127.0.0.1:0".parse().unwrap(), Committee::Public).await.expect("simulated beacon");
    let genesis = net.genesis(1).await;
    drop(genesis); // no holder yet: the requests stay pending

    let mut plain = net.agent("plain", 2, &compose_good(), &[]);
    wait_until("the first request", T, || async { net.request_count().await == 1 }).await;
    let rpc = refusing_rpc(&net, 1).await;
    plain.terminate();
    let mut plain = net.agent_via(rpc.url(), "plain", 2, &compose_good(), &[], &[]);
    let status = plain.exited(T).await;
    assert_eq!(status.code(), Some(3), "the unpinned node gave up on a refusal that never happened");
    assert!(plain.log().contains("app_reference_not_allowed"), "{}", plain.log());

    let pin = net.pin_for(&b);
    let pinned_args = ["--deployment", pin.as_str(), "--beacon-url", b.url()];
    let mut node = net.agent("pinned", 3, &compose_good(), &pinned_args);
    wait_until("the second request", T, || async { net.request_count().await == 2 }).await;
    let rpc = refusing_rpc(&net, 2).await;
    node.terminate();
    let mut node = net.agent_via(rpc.url(), "pinned", 3, &compose_good(), &pinned_args, &[]);
    // The lie is in front of it for a while; then a real holder serves it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(node.alive(), "the pinned node must not act on an unproven refusal:\n{}", node.log());
    let holder = net.agent("genesis", 1, &compose_good(), &pinned_args); // the genesis node's state: a holder
    wait_for_file(&mut node, T).await;
    assert!(!node.log().contains("REFUSED"), "{}", node.log());
    drop(holder);
}

/// An RPC that will not prove the EIP-2935 history contract (an error for every `eth_getProof` of
/// it): blocks more than 256 below a trusted header can then not be linked at all.
async fn no_history_rpc(upstream: &str) -> RpcProxy {
    let history = alloy::eips::eip2935::HISTORY_STORAGE_ADDRESS.to_string().to_lowercase();
    let refuse: Rewrite = Arc::new(move |req: &Value, ans: Value| {
        let asks_history =
            req["method"] == "eth_getProof" && req["params"][0].as_str().is_some_and(|a| a.to_lowercase() == history);
        if asks_history {
            return serde_json::json!({
                "jsonrpc": "2.0", "id": ans["id"], "error": { "code": -32000, "message": "not served" }
            });
        }
        ans
    });
    RpcProxy::start(upstream, refuse).await
}

/// A request answered long after it was posted, and a node that comes back long after its delivery,
/// where the block cannot be linked to the trusted header (300 blocks, and no history contract
/// proofs): the holder binds the request through `requestIdOf` in proven storage and serves it, the
/// new node checks the delivery against the cluster proven now and installs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_deliveries_beyond_the_link_range_are_proven_through_storage() {
    let net = Net::start_pinned("beyond-link", Net::dev_policy()).await;
    let genesis = net.genesis(1).await;
    let secret = std::fs::read(genesis.secret_path()).unwrap();
    drop(genesis);
    let mut node = net.agent("late", 2, &compose_good(), &["--exit-after-install"]);
    wait_until("the request", T, || async { net.request_count().await == 1 }).await;
    node.terminate();
    let provider = net.owner.provider().clone();
    let mine = |n: u64| {
        let p = provider.clone();
        async move {
            let _: Value = alloy::providers::Provider::raw_request(&p, "anvil_mine".into(), (n,)).await.unwrap();
        }
    };
    mine(300).await;
    let rpc = no_history_rpc(&net.url).await;
    let holder = net.agent_via(rpc.url(), "genesis", 1, &compose_good(), &[], &[]);
    wait_until("the old request to be served", T, || async { net.status(1).await == 2 }).await;
    drop(holder);
    mine(300).await;
    let mut node = net.agent_via(rpc.url(), "late", 2, &compose_good(), &["--exit-after-install"], &[]);
    wait_for_file(&mut node, T).await;
    assert_eq!(std::fs::read(node.secret_path()).unwrap(), secret);
}

/// RPC calls (by method) a proxy counts, and the holder process's CPU time.
#[derive(Clone, Default)]
struct Tally(Arc<Mutex<std::collections::BTreeMap<String, u64>>>);

impl Tally {
    fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        self.0.lock().unwrap().clone()
    }
}

async fn counting_rpc(upstream: &str, tally: &Tally) -> RpcProxy {
    let t = tally.clone();
    let count: Rewrite = Arc::new(move |req: &Value, ans: Value| {
        if let Some(m) = req["method"].as_str() {
            *t.0.lock().unwrap().entry(m.to_string()).or_default() += 1;
        }
        ans
    });
    RpcProxy::start(upstream, count).await
}

/// User plus system CPU of a process, in milliseconds (Linux `/proc/PID/stat`, 100 ticks a second).
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after "pid (comm) ".
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) * 10.0
}

/// One holder's RPC calls and CPU for `n` requests, beyond what it spends idling over the same blocks.
async fn cost_per_request(pinned: bool, n: usize) -> (std::collections::BTreeMap<String, f64>, f64) {
    let name = if pinned { "cost-pinned" } else { "cost-unpinned" };
    let net = if pinned {
        Net::start_pinned(name, Net::dev_policy()).await
    } else {
        Net::start(name, Net::dev_policy()).await
    };
    drop(net.genesis(1).await);
    let tally = Tally::default();
    let rpc = counting_rpc(&net.url, &tally).await;
    let holder = net.agent_via(rpc.url(), "genesis", 1, &compose_good(), &[], &[]);
    let pid = holder.child.id();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (c0, cpu0, b0) = (tally.snapshot(), cpu_ms(pid), net.head().await);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (c1, cpu1, b1) = (tally.snapshot(), cpu_ms(pid), net.head().await);
    let mut nodes: Vec<_> =
        (0..n).map(|i| net.agent(&format!("n{i}"), 2 + i, &compose_good(), &["--exit-after-install"])).collect();
    for node in &mut nodes {
        wait_for_file(node, T).await;
    }
    let (c2, cpu2, b2) = (tally.snapshot(), cpu_ms(pid), net.head().await);
    drop(holder);
    let idle_blocks = (b1 - b0).max(1) as f64;
    let busy_blocks = (b2 - b1) as f64;
    let delta = |a: &std::collections::BTreeMap<String, u64>, b: &std::collections::BTreeMap<String, u64>, m: &str| {
        (b.get(m).copied().unwrap_or(0) - a.get(m).copied().unwrap_or(0)) as f64
    };
    let methods: std::collections::BTreeSet<String> = c2.keys().cloned().collect();
    let per_request = methods
        .into_iter()
        .map(|m| {
            let idle = delta(&c0, &c1, &m) / idle_blocks;
            let extra = (delta(&c1, &c2, &m) - idle * busy_blocks).max(0.0) / n as f64;
            (m, (extra * 10.0).round() / 10.0)
        })
        .collect();
    let cpu = ((cpu2 - cpu1) - (cpu1 - cpu0) / idle_blocks * busy_blocks).max(0.0) / n as f64;
    (per_request, cpu)
}

/// The verified view's price per decision, pinned against unpinned on the same scenario (a holder
/// serving four new nodes): printed as a figure, and bounded so a regression that multiplies the
/// proofs a decision needs fails here. An unpinned holder asks for no proof at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_calls_per_decision_pinned_and_unpinned() {
    let n = 4;
    let (pinned, pinned_cpu) = cost_per_request(true, n).await;
    let (unpinned, unpinned_cpu) = cost_per_request(false, n).await;
    let total = |m: &std::collections::BTreeMap<String, f64>| m.values().sum::<f64>();
    eprintln!("RPC calls per request beyond idling, pinned holder:   {pinned:?} (total {:.1})", total(&pinned));
    eprintln!("RPC calls per request beyond idling, unpinned holder: {unpinned:?} (total {:.1})", total(&unpinned));
    eprintln!(
        "holder CPU per request beyond idling: pinned {pinned_cpu:.0} ms, unpinned {unpinned_cpu:.0} ms (debug build)"
    );
    let get = |m: &std::collections::BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    assert_eq!(get(&unpinned, "eth_getProof"), 0.0);
    assert!(get(&pinned, "eth_getProof") >= 1.0, "a pinned decision reads proven storage: {pinned:?}");
    assert!(get(&pinned, "eth_getProof") <= 6.0, "proofs per decision: {pinned:?}");
    assert!(get(&pinned, "eth_getBlockReceipts") <= 3.0, "receipts per decision: {pinned:?}");
    assert!(total(&pinned) <= total(&unpinned) + 15.0, "extra calls per decision: {pinned:?} vs {unpinned:?}");
}

/// A revocation mined between a holder's decision and its send (here: during its jitter, made long):
/// the holder proves the state again at the newest header before the sealed delivery goes anywhere,
/// so the operator's RPC never sees the ciphertext for the app that is no longer approved, and the
/// request is then refused for its real reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_during_the_jitter_keeps_the_sealed_delivery_in_the_holder() {
    let net = Net::start_pinned("revoked-in-jitter", Net::dev_policy()).await;
    drop(net.genesis(1).await);
    // A jitter bound under which the holder waits at least 6 s before sending request 1.
    let holder_address = replicatoor_tests::key(1).address();
    let jitter = |b: u64| replicatoor::roles::holder::jitter_delay(alloy::primitives::U256::from(1), holder_address, b);
    let bound = (12_000..20_000u64).find(|b| jitter(*b) >= Duration::from_secs(6)).expect("a long jitter");
    let (rpc, seen) = keeping_rpc(&net.url, false).await;
    let bound = bound.to_string();
    let holder = net.agent_via(rpc.url(), "genesis", 1, &compose_good(), &["--jitter-ms", bound.as_str()], &[]);
    let _node = net.agent("new", 2, &compose_good(), &[]);
    wait_until("the holder's decision", T, || async { holder.log().contains("request verified") }).await;
    let app = replicatoor_core::protocol::app_reference_id(&compose_hash(&compose_good()));
    replicatoor::admin::revoke(&net.owner, app, "revoked while a delivery waits").await.expect("revoke");
    wait_until("the refusal", T, || async { net.status(1).await == 3 }).await;
    assert_eq!(deliveries_for(&seen, 1), 0, "the sealed delivery never reached the RPC:\n{}", holder.log());
    assert!(holder.log().contains("the app reference changed since the decision"), "{}", holder.log());
}
