//! The operator-controlled RPC attack, with real agent processes on anvil. The machine's operator
//! sets the holder's RPC URL; here that RPC is a proxy that says every reference is allowed
//! (`isAllowed` → true). A holder that trusts its RPC serves an app the contract never approved
//! (the attack, reproduced); a holder with a pinned deployment decides on storage proven against
//! headers a (simulated) beacon sync committee signed, and refuses that app for its real reason.

use alloy::sol_types::SolCall;
use replicatoor_chain::bindings::UpgradeOperator as Op;
use replicatoor_core::refusal::Refusal;
use replicatoor_testkit::beacon::{self, Committee, SimBeacon};
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

/// An RPC that answers every `isAllowed(id, kind)` call with `true`, and keeps every
/// `deliverSecret` it is handed (to estimate, call or send): what the operator learns.
async fn everything_allowed(upstream: &str) -> (RpcProxy, Arc<Mutex<Vec<String>>>) {
    let allowed = hex::encode(Op::isAllowedCall::SELECTOR);
    let deliver = hex::encode(Op::deliverSecretCall::SELECTOR);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    let lie: Rewrite = Arc::new(move |req: &Value, mut ans: Value| {
        let call = &req["params"][0];
        let data =
            call["input"].as_str().or_else(|| call["data"].as_str()).or_else(|| call.as_str()).unwrap_or_default();
        if req["method"] == "eth_call" && data.trim_start_matches("0x").starts_with(&allowed) {
            ans["result"] = Value::String(format!("0x{:064x}", 1));
        }
        // Calldata, or a signed transaction that carries it.
        if data.contains(&deliver) {
            kept.lock().unwrap().push(data.to_string());
        }
        ans
    });
    (RpcProxy::start(upstream, lie).await, seen)
}

/// The deliveries for request `id` the RPC was handed (its id is the calldata's first word).
fn deliveries_for(seen: &Mutex<Vec<String>>, id: u64) -> usize {
    let word = format!("{}{id:064x}", hex::encode(Op::deliverSecretCall::SELECTOR));
    seen.lock().unwrap().iter().filter(|d| d.contains(&word)).count()
}

/// The deployment pin for `net` under the simulated beacon `b` (what a compose would carry literally).
fn pinned(net: &Net, b: &SimBeacon) -> String {
    let n = b.network();
    format!(
        "chain_id = 31337\ncontract = \"{}\"\nstart_block = {}\n[trust]\nmode = \"simulated-beacon\"\n\
         genesis_validators_root = \"{}\"\ngenesis_time = {}\nseconds_per_slot = {}\ncheckpoint = \"{}\"\nmax_age_secs = 60\n",
        net.contract, net.start, n.genesis_validators_root, n.genesis_time, n.seconds_per_slot, b.checkpoint().block_root
    )
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
}

/// With a pinned deployment, the same lie changes nothing: the holder reads the reference from
/// proven storage and refuses the unapproved app (code 12), while still serving an approved one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_holder_decides_on_proven_state_and_the_lie_changes_nothing() {
    let net = Net::start("lying-rpc-verified", Net::dev_policy()).await;
    let b = beacon::serve(&net.url, "127.0.0.1:0".parse().unwrap(), Committee::Public).await.expect("simulated beacon");
    let (rpc, seen) = everything_allowed(&net.url).await;
    let pin = pinned(&net, &b);
    let mut holder = net.genesis_via(rpc.url(), 1, &["--deployment", &pin, "--beacon-url", b.url()]).await;
    assert!(holder.log().contains("chain view verified against the pinned trust root"), "{}", holder.log());

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
