//! `replicatoor audit` and `replicatoor admin` against real histories on anvil: the real binary,
//! its JSON report (findings, custody tree, re-verification), the HTML report rendered by headless
//! Chromium, and a 100,000-block scan.

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use replicatoor::admin;
use replicatoor_chain::{
    deployment::{PinnedDeployment, TrustRoot},
    Chain, UpgradeOperator as Op,
};
use replicatoor_core::{
    crypto::{eip712, HpkeKeypair, SecretBundle},
    protocol::{app_reference_id, os_reference_id, Policy},
    refusal::Refusal,
};
use replicatoor_testkit::simulated::SimulatedTd;
use replicatoor_tests::{
    cli as replicatoor, cli_ok as ok, compose_bad, compose_good, compose_hash, key,
    proxy::{LimitedRpc, RpcProxy},
    wait_for_file, Net,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};
use zeroize::Zeroizing;

const T: Duration = Duration::from_secs(90);
/// Notes are attacker-controlled: every report must show this text, never run it.
const HOSTILE: &str = "<script>alert('xss')</script><img src=x onerror=alert(1)> \"quoted\" & \u{1b}[31mred";

fn audit_json(net: &Net, extra: &[&str]) -> Value {
    let contract = net.contract.to_string();
    let mut args = vec!["audit", "--rpc-url", &net.url, "--contract", &contract, "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(&args)).expect("audit --json is JSON")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn addr(v: &Value) -> Address {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not an address: {v}"))
}

fn range(from: u64, to: u64) -> Value {
    serde_json::json!({ "from": from, "to": to, "open": false })
}

fn at(b: u64) -> Value {
    range(b, b)
}

/// The findings of a report as (kind, severity, blocks), in report order.
fn findings_of<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["findings"].as_array().expect("findings").iter().filter(|f| f["kind"] == kind).collect()
}

async fn chain_for(net: &Net, i: usize) -> Chain {
    Chain::connect(&net.url, net.contract, Some(key(i))).await.expect("client")
}

/// Block of the (last) log of event `E` with topic1 `t1`.
async fn log_block<E: SolEvent>(net: &Net, t1: Option<B256>) -> u64 {
    let mut f = alloy::rpc::types::Filter::new().address(net.contract).event_signature(E::SIGNATURE_HASH).from_block(0);
    if let Some(t) = t1 {
        f = f.topic1(t);
    }
    let logs = net.owner.provider().get_logs(&f).await.expect("logs");
    logs.last().and_then(|l| l.block_number).expect("a log")
}

/// Post a request from `who` with a simulated quote of the app `compose`; returns (request id, block).
async fn post_request(who: &Chain, compose: &Path) -> (u64, u64) {
    post_request_as(who, &SimulatedTd::new(compose_hash(compose))).await
}

/// Post a request from `who` with a quote and event log of the simulated TD `td`.
async fn post_request_as(who: &Chain, td: &SimulatedTd) -> (u64, u64) {
    let dep = who.deployment();
    let hpke = HpkeKeypair::generate();
    let (quote, log) =
        td.attest(dep.request_report_data(who.sender().expect("sender"), &hpke.public())).expect("quote");
    let o = who
        .send(who.contract().requestSecret(B256::from(hpke.public()), quote.into(), log.into()))
        .await
        .expect("request");
    let id = who.contract().requestCount().call().await.expect("requestCount").to::<u64>();
    (id, o.block)
}

/// Post a request whose quote is garbage (no holder would ever deliver it).
async fn post_junk_request(who: &Chain) -> (u64, u64) {
    let o = who
        .send(who.contract().requestSecret(B256::repeat_byte(9), b"not a quote".to_vec().into(), vec![].into()))
        .await
        .expect("junk request");
    (who.contract().requestCount().call().await.expect("requestCount").to::<u64>(), o.block)
}

/// Refuse request `id` for `reason`, signed by the cluster, sent from `relayer`.
async fn refuse(net: &Net, relayer: &Chain, bundle: &SecretBundle, id: u64, reason: Refusal) -> u64 {
    let request = net.request_key(id).await;
    let record = eip712::Refusal { requestId: U256::from(id), request, reason: reason.code() };
    let sig = eip712::sign(&net.owner.deployment(), &record, bundle.cluster_signer()).expect("sign");
    let call = relayer.contract().refuseRequest(U256::from(id), request, reason.code(), sig.to_vec().into());
    relayer.send(call).await.expect("refuse").block
}

/// The dev policy's floor: only what the history is about changes.
fn policy(tcb_statuses: u16, allow_simulated: bool) -> Policy {
    Policy { tcb_statuses, allow_simulated, ..Net::dev_policy() }
}

/// The history of the issue, built with real agents: genesis, deliveries to two nodes, a node
/// refused for an unapproved app, the app reference revoked after the deliveries, a policy
/// loosened (OutOfDate) then tightened, a re-bootstrap, simulated quotes switched off, a request
/// nobody answers, and an ownership transfer. Then: the exact findings and custody tree, and
/// re-verification with and without trusting simulated quotes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_reports_exact_findings_custody_and_reverification() {
    let net = Net::start("audit-history", Net::dev_policy()).await;
    let app_id = app_reference_id(&compose_hash(&compose_good()));
    let td = SimulatedTd::new([0; 32]);
    let os_id = replicatoor_core::protocol::os_reference_id(&td.mr_td, &td.rtmr0, &td.rtmr1, &td.rtmr2);
    let os_block = log_block::<Op::ReferenceProposed>(&net, Some(os_id)).await;
    let app_block = log_block::<Op::ReferenceProposed>(&net, Some(app_id)).await;
    let mut genesis = net.genesis(1).await;
    let e1_block = log_block::<Op::ClusterBootstrapped>(&net, None).await;
    let mut a = net.agent("node-a", 2, &compose_good(), &[]);
    wait_for_file(&mut a, T).await;
    let mut b = net.agent("node-b", 3, &compose_good(), &[]);
    wait_for_file(&mut b, T).await;
    let mut c = net.agent("node-c", 4, &compose_bad(), &["--exit-after-install"]);
    assert_eq!(c.wait_exit(T).code(), Some(3), "node C is refused:\n{}", c.log());
    let d1 = log_block::<Op::SecretDelivered>(&net, Some(B256::from(U256::from(1)))).await;
    let d2 = log_block::<Op::SecretDelivered>(&net, Some(B256::from(U256::from(2)))).await;

    let revoked = admin::revoke(&net.owner, app_id, HOSTILE).await.expect("revoke").block;
    let loosened =
        admin::set_policy(&net.owner, policy(0x11, true), "accept OutOfDate for a while").await.unwrap().block;
    let tightened = admin::set_policy(&net.owner, policy(0x1, true), "UpToDate only again").await.unwrap().block;
    for p in [&mut genesis, &mut a, &mut b] {
        assert!(p.terminate().is_some(), "{} did not stop", p.name);
    }
    // Re-bootstrap: the app is proposed again, a new genesis (proposed by key 6) replaces the cluster.
    let reproposed =
        admin::propose_app(&net.owner, compose_hash(&compose_good()), "app again", &[]).await.unwrap().1.block;
    let proposer = chain_for(&net, 6).await;
    let (_, e2) = net.found_cluster(&proposer, 2, b"audit test secret", "re-bootstrap after losing every holder").await;
    let strict =
        admin::set_policy(&net.owner, policy(0x1, false), "production: no simulated quotes").await.unwrap().block;
    let (pending_id, pending_block) = post_junk_request(&chain_for(&net, 5).await).await;
    assert_eq!(pending_id, 4);
    let new_owner = key(9).address();
    net.owner.send(net.owner.contract().transferOwnership(new_owner)).await.expect("transfer");
    let owner9 = chain_for(&net, 9).await;
    let accepted = owner9.send(owner9.contract().acceptOwnership()).await.expect("accept").block;

    let r = audit_json(&net, &[]);
    assert_eq!(r["schema"], "replicatoor-audit/v3");
    assert_eq!(u(&r["from_block"]), net.start, "the deployment block is found without --from-block");
    assert!(!r["reverified"].as_bool().unwrap());

    // Findings: exactly these kinds, severities and blocks.
    let kinds: Vec<(String, String)> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["kind"].as_str().unwrap().to_string(), f["severity"].as_str().unwrap().to_string()))
        .collect();
    let expected: Vec<(String, String)> = [
        ("simulated_quotes_allowed", "critical"),
        ("delivery_under_revoked_reference", "high"),
        ("out_of_date_tcb_accepted", "high"),
        ("zero_widening_delay", "medium"),
        ("immediate_activation", "medium"),
        ("immediate_activation", "medium"),
        ("immediate_activation", "medium"),
        ("immediate_activation", "medium"),
        ("custody_reset", "medium"),
        ("owner_changed", "medium"),
        ("unanswered_request", "low"),
        // Proposed with its hash only (as every reference before composes were published): said, not failed.
        ("compose_not_published", "info"),
    ]
    .iter()
    .map(|(k, s)| (k.to_string(), s.to_string()))
    .collect();
    let mut sorted = kinds.clone();
    sorted.sort_by_key(|(k, s)| (["critical", "high", "medium", "low", "info"].iter().position(|x| x == s), k.clone()));
    let mut want = expected.clone();
    want.sort_by_key(|(k, s)| (["critical", "high", "medium", "low", "info"].iter().position(|x| x == s), k.clone()));
    assert_eq!(sorted, want, "findings: {kinds:?}");

    let f = findings_of(&r, "simulated_quotes_allowed");
    assert_eq!(f[0]["blocks"], serde_json::json!([range(net.start, strict)]));
    let f = findings_of(&r, "out_of_date_tcb_accepted");
    assert_eq!(f[0]["blocks"], serde_json::json!([range(loosened, tightened)]));
    assert!(f[0]["detail"].as_str().unwrap().contains("OutOfDate"));
    let f = findings_of(&r, "delivery_under_revoked_reference");
    assert_eq!(f[0]["request_ids"], serde_json::json!([1, 2]));
    assert_eq!(f[0]["epochs"], serde_json::json!([1]));
    assert_eq!(f[0]["references"], serde_json::json!([app_id.to_string()]));
    let mut blocks = vec![e1_block, d1, d2, revoked];
    blocks.sort();
    assert_eq!(f[0]["blocks"], Value::Array(blocks.into_iter().map(at).collect()));
    let holders: Vec<Address> = f[0]["accounts"].as_array().unwrap().iter().map(addr).collect();
    assert_eq!(holders, vec![key(1).address(), key(2).address(), key(3).address()], "genesis node, node A, node B");
    assert_eq!(findings_of(&r, "zero_widening_delay")[0]["blocks"], serde_json::json!([at(net.start)]));
    let immediate: Vec<Value> =
        findings_of(&r, "immediate_activation").iter().map(|f| f["blocks"][0]["from"].clone()).collect();
    assert_eq!(
        immediate,
        vec![os_block, app_block, loosened, reproposed].into_iter().map(Value::from).collect::<Vec<_>>()
    );
    let f = findings_of(&r, "custody_reset");
    assert_eq!(
        (f[0]["epochs"].clone(), f[0]["blocks"].clone()),
        (serde_json::json!([2]), serde_json::json!([at(e2.block)]))
    );
    let f = findings_of(&r, "owner_changed");
    assert_eq!(f[0]["blocks"], serde_json::json!([at(accepted)]));
    assert_eq!(f[0]["accounts"], serde_json::json!([key(0).address(), new_owner]));
    let f = findings_of(&r, "unanswered_request");
    assert_eq!(
        (f[0]["request_ids"].clone(), f[0]["blocks"].clone()),
        (serde_json::json!([4]), serde_json::json!([at(pending_block)]))
    );

    // Custody tree: epochs, deliveries, refusals with reasons, the unanswered request.
    let epochs = r["custody"]["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    let (ep1, ep2) = (&epochs[0], &epochs[1]);
    assert_eq!(
        (u(&ep1["epoch"]), addr(&ep1["proposer"]), ep1["previous_cluster"].clone()),
        (1, key(1).address(), Value::Null)
    );
    let deliveries: Vec<(u64, Address)> =
        ep1["deliveries"].as_array().unwrap().iter().map(|d| (u(&d["request_id"]), addr(&d["requester"]))).collect();
    assert_eq!(deliveries, vec![(1, key(2).address()), (2, key(3).address())]);
    for d in ep1["deliveries"].as_array().unwrap() {
        assert_eq!(d["app_ref"], app_id.to_string());
        assert_eq!(d["served_by"], d["relayer"], "agents relay their own deliveries");
        assert!([key(1).address(), key(2).address()].contains(&addr(&d["relayer"])));
    }
    assert_eq!(addr(&ep1["deliveries"][0]["served_by"]), key(1).address(), "node A was served by the genesis node");
    let refusals = ep1["refusals"].as_array().unwrap();
    assert_eq!(refusals.len(), 1);
    assert_eq!((u(&refusals[0]["request_id"]), addr(&refusals[0]["requester"])), (3, key(4).address()));
    assert_eq!((refusals[0]["reason"].as_str().unwrap(), u(&refusals[0]["code"])), ("app_reference_not_allowed", 12));
    assert_eq!((u(&ep2["epoch"]), addr(&ep2["proposer"])), (2, key(6).address()));
    assert_eq!(ep2["previous_cluster"], ep1["cluster"]);
    assert_eq!(ep2["deliveries"], serde_json::json!([]));
    assert_eq!(r["custody"]["unanswered"], serde_json::json!([4]));
    let s = &r["summary"];
    assert_eq!((u(&s["requests"]), u(&s["delivered"]), u(&s["refused"]), u(&s["pending"])), (4, 2, 1, 1));
    let forms: Vec<&str> =
        r["custody"]["requests"].as_array().unwrap().iter().map(|q| q["quote_form"].as_str().unwrap()).collect();
    assert_eq!(forms, ["compact", "compact", "compact", "raw"], "agents post compact quotes (PROTOCOL.md §3.9)");
    assert_eq!(addr(&s["owner"]), new_owner);
    assert_eq!(s["policy"]["allow_simulated"], false);

    // Timeline: actors, notes verbatim (the hostile one too), kinds in order.
    let tl = r["timeline"].as_array().unwrap();
    let tl_kinds: Vec<&str> = tl.iter().map(|t| t["kind"].as_str().unwrap()).collect();
    assert_eq!(
        tl_kinds,
        [
            "ownership_transferred", // OpenZeppelin's constructor event, from 0x0
            "deployed",
            "policy_set",
            "reference_proposed",
            "reference_proposed",
            "cluster_bootstrapped",
            "reference_revoked",
            "policy_set", // narrowed part of the loosening (same transaction)
            "policy_set",
            "policy_set",
            "reference_proposed",
            "cluster_bootstrapped",
            "custody_reset",
            "policy_set",
            "ownership_transfer_started",
            "ownership_transferred",
        ]
    );
    let revoke = tl.iter().find(|t| t["kind"] == "reference_revoked").unwrap();
    assert_eq!((revoke["note"].as_str().unwrap(), u(&revoke["block"])), (HOSTILE, revoked));
    for t in &tl[..tl.len() - 1] {
        assert_eq!(addr(&t["actor"]), key(0).address(), "governance sent by the owner: {t}");
    }
    assert_eq!(addr(&tl[tl.len() - 1]["actor"]), new_owner);
    let refs = r["references"].as_array().unwrap();
    assert!(refs.iter().all(|x| x["status"] == "active"), "both references active again: {refs:?}");
    assert_eq!(refs.iter().find(|x| x["id"] == app_id.to_string()).unwrap()["proposals"], 2);

    // --reverify trusting simulated quotes: every delivery and genesis re-verifies.
    let rv = audit_json(&net, &["--reverify", "--allow-simulated-quotes"]);
    assert!(rv["reverified"].as_bool().unwrap());
    let verdicts = |r: &Value| -> Vec<(String, String)> {
        let mut out = Vec::new();
        for ep in r["custody"]["epochs"].as_array().unwrap() {
            out.push((format!("genesis {}", ep["epoch"]), ep["reverify"]["verdict"].as_str().unwrap().to_string()));
            for d in ep["deliveries"].as_array().unwrap() {
                out.push((
                    format!("request {}", d["request_id"]),
                    d["reverify"]["verdict"].as_str().unwrap().to_string(),
                ));
            }
        }
        out
    };
    assert_eq!(
        verdicts(&rv),
        [("genesis 1", "accepted"), ("request 1", "accepted"), ("request 2", "accepted"), ("genesis 2", "accepted")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert!(findings_of(&rv, "reverify_rejected").is_empty());
    assert_eq!(rv["custody"]["epochs"][0]["deliveries"][0]["reverify"]["simulated"], true);
    // …without it, each is flagged.
    let rv = audit_json(&net, &["--reverify"]);
    assert!(verdicts(&rv).iter().all(|(_, v)| v == "rejected"), "{:?}", verdicts(&rv));
    let flagged = findings_of(&rv, "reverify_rejected");
    assert_eq!(flagged.len(), 4);
    assert!(flagged.iter().all(|f| f["severity"] == "high"));
    let ids: Vec<Value> = flagged.iter().flat_map(|f| f["request_ids"].as_array().unwrap().clone()).collect();
    assert_eq!(ids, vec![Value::from(1), Value::from(2)]);
    assert_eq!(rv["custody"]["epochs"][0]["deliveries"][0]["reverify"]["reason"], "simulated_quote_not_trusted");

    // The text report says the same, and cannot be restyled by a note (escape sequences are quoted).
    let contract = net.contract.to_string();
    let text = ok(&["audit", "--rpc-url", &net.url, "--contract", &contract]);
    assert!(text.contains("[CRITICAL] simulated_quotes_allowed"), "{text}");
    assert!(text.contains("refused: app_reference_not_allowed (code 12)"), "{text}");
    assert!(text.contains("request 4 by") && text.contains("never answered"), "{text}");
    assert!(text.contains("raw quote, 11 B)"), "the pending request's quote form: {text}");
    assert!(!text.contains('\u{1b}'), "a note's terminal escape reached the terminal");
}

/// A rich history built from the test itself (fast, no agent processes): two epochs, a delivery
/// tree three levels deep, a refusal, a revoked reference, policy changes, an unanswered request,
/// and hostile notes.
async fn quick_history(net: &Net) {
    let mut c = Vec::new();
    for i in 1..=9 {
        c.push(chain_for(net, i).await);
    }
    let (bundle, _) = net.found_cluster(&c[0], 1, b"audit test secret", HOSTILE).await;
    let (r1, _) = post_request(&c[1], &compose_good()).await;
    net.deliver(&c[0], &bundle, r1).await;
    let (r2, _) = post_request(&c[2], &compose_good()).await;
    net.deliver(&c[1], &bundle, r2).await;
    let (r3, _) = post_request(&c[3], &compose_good()).await;
    net.deliver(&c[1], &bundle, r3).await;
    let (r4, _) = post_request(&c[4], &compose_good()).await;
    net.deliver(&c[2], &bundle, r4).await;
    let (r5, _) = post_request(&c[5], &compose_bad()).await;
    refuse(net, &c[0], &bundle, r5, Refusal::AppReferenceNotAllowed).await;
    let app_id = app_reference_id(&compose_hash(&compose_good()));
    admin::revoke(&net.owner, app_id, HOSTILE).await.expect("revoke");
    admin::set_policy(&net.owner, policy(0x31, true), "accept OutOfDate for a while").await.expect("loosen");
    admin::set_policy(&net.owner, policy(0x1, true), "UpToDate only").await.expect("tighten");
    admin::propose_app(&net.owner, compose_hash(&compose_good()), "app again", &[]).await.expect("re-propose");
    let (bundle2, _) = net.found_cluster(&c[6], 2, b"audit test secret", "re-bootstrap").await;
    let (r6, _) = post_request(&c[7], &compose_good()).await;
    net.deliver(&c[6], &bundle2, r6).await;
    admin::set_policy(&net.owner, policy(0x1, false), "no simulated quotes").await.expect("strict");
    post_junk_request(&c[8]).await;
}

/// `audit --deployment` on the e2e chain under a simulated beacon: every current value and every
/// event is proven at the light client's header and equals what the RPC said; then an RPC that hides
/// the refusal from `eth_getLogs` and rewrites a policy change is caught on both counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_with_a_deployment_proves_what_the_rpc_says_and_flags_a_lying_rpc() {
    let net = Net::start_pinned("audit-proven", Net::dev_policy()).await;
    quick_history(&net).await;
    let (beacon, pin) = net.pin.as_ref().expect("a pinned net");
    let audit = |rpc: &str| -> Value {
        serde_json::from_str(&ok(&[
            "audit",
            "--rpc-url",
            rpc,
            "--deployment",
            pin,
            "--beacon-url",
            beacon.url(),
            "--json",
        ]))
        .expect("audit --json is JSON")
    };

    let r = audit(&net.url);
    let p = &r["provenance"];
    assert_eq!(p["trust_mode"], "simulated-beacon");
    assert_eq!(p["mismatches"], 0, "{p:#}");
    assert_eq!(u(&p["block"]), u(&r["to_block"]), "the RPC-read history ends at the proven header");
    assert!(u(&p["signers"]) * 3 > u(&p["committee_size"]) * 2, "a sync-committee supermajority signed it: {p}");
    let values = p["values"].as_array().expect("values");
    let value = |name: &str| -> &Value {
        values
            .iter()
            .find(|v| v["name"].as_str().is_some_and(|n| n.starts_with(name)))
            .unwrap_or_else(|| panic!("{name}"))
    };
    for v in values {
        assert_eq!(v["status"], "proven", "{v}");
        assert_eq!(v["rpc"], v["proven"], "{v}");
    }
    assert_eq!(value("epoch()")["proven"], "2");
    assert_eq!(value("requestCount")["proven"], "7");
    assert_eq!(
        value("cluster")["proven"].as_str().map(str::to_lowercase),
        r["custody"]["epochs"][1]["cluster"].as_str().map(str::to_lowercase)
    );
    assert!(value("policy()")["proven"].as_str().unwrap().contains("allow_simulated false"), "{p}");
    // Seven requests (delivered, refused, pending) and both references, each proven.
    let statuses: Vec<&str> = values
        .iter()
        .filter(|v| v["name"].as_str().unwrap().starts_with("requestStatus"))
        .map(|v| v["proven"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["delivered", "delivered", "delivered", "delivered", "refused", "delivered", "pending"]);
    assert_eq!(values.iter().filter(|v| v["name"].as_str().unwrap().starts_with("isAllowed")).count(), 2);
    // The chain is younger than 8,191 blocks: every event is proven from its block's receipts.
    let events = p["events"].as_array().expect("events");
    assert!(events.len() > 20, "{}", events.len());
    assert!(events.iter().all(|e| e["status"] == "proven"), "{p:#}");
    assert!(findings_of(&r, "rpc_contradicts_proof").is_empty());

    // A scan that starts late has incomplete logs: its current values are compared with the contract's
    // views called through the RPC instead, so the incompleteness is not taken for a lie.
    let from = (u(&r["to_block"]) - 3).to_string();
    let late: Value = serde_json::from_str(&ok(&[
        "audit",
        "--rpc-url",
        &net.url,
        "--deployment",
        pin,
        "--beacon-url",
        beacon.url(),
        "--from-block",
        &from,
        "--json",
    ]))
    .expect("JSON");
    assert_eq!(late["provenance"]["mismatches"], 0, "{:#}", late["provenance"]);
    let late_values = late["provenance"]["values"].as_array().unwrap();
    assert!(late_values.iter().any(|v| v["name"] == "epoch()" && v["rpc"] == "2" && v["status"] == "proven"));

    // An RPC that hides every RequestRefused log and rewrites the data of every PolicySet log.
    let refused = format!("{}", Op::RequestRefused::SIGNATURE_HASH);
    let policy_set = format!("{}", Op::PolicySet::SIGNATURE_HASH);
    let lie: replicatoor_tests::proxy::Rewrite = Arc::new(move |req: &Value, mut ans: Value| {
        if req["method"] == "eth_getLogs" {
            if let Some(logs) = ans["result"].as_array_mut() {
                logs.retain(|l| l["topics"][0] != refused.as_str());
                for l in logs.iter_mut().filter(|l| l["topics"][0] == policy_set.as_str()) {
                    // The first word is tcbStatuses: claim every status is accepted.
                    let data = l["data"].as_str().unwrap_or_default().to_string();
                    l["data"] = Value::String(format!("0x{:064x}{}", 0x1bf, &data[66..]));
                }
            }
        }
        ans
    });
    let proxy = RpcProxy::start(&net.url, lie).await;
    let r = audit(proxy.url());
    let p = &r["provenance"];
    assert!(u(&p["mismatches"]) >= 3, "{p:#}");
    let mismatch = |name: &str| -> Value {
        p["values"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"].as_str().is_some_and(|n| n.starts_with(name)) && v["status"] == "mismatch")
            .cloned()
            .unwrap_or_else(|| panic!("no mismatch for {name}: {p:#}"))
    };
    let refusal = mismatch("requestStatus of request 5");
    assert_eq!((refusal["rpc"].as_str(), refusal["proven"].as_str()), (Some("pending"), Some("refused")));
    let pol = mismatch("policy()");
    assert!(
        pol["rpc"].as_str().unwrap().contains("0x1bf") && pol["proven"].as_str().unwrap().contains("0x1,"),
        "{pol}"
    );
    let events = p["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["event"] == "RequestRefused"
            && e["status"] == "mismatch"
            && e["detail"].as_str().unwrap().contains("missing from the RPC")),
        "{p:#}"
    );
    assert!(events.iter().any(|e| e["event"] == "PolicySet" && e["status"] == "mismatch"), "{p:#}");
    let f = findings_of(&r, "rpc_contradicts_proof");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["severity"], "critical");

    // The text report says what was proven and at which header.
    let contract = net.contract.to_string();
    let text = ok(&["audit", "--rpc-url", proxy.url(), "--deployment", pin, "--beacon-url", beacon.url()]);
    assert!(text.contains("PROVEN at block") && text.contains("sync-committee members"), "{text}");
    assert!(text.contains("MISMATCH  requestStatus of request 5: RPC says pending, proof refused"), "{text}");
    // So does the HTML report, with the contradiction marked.
    let html = net.scratch.0.join("proven.html");
    let html_arg = html.to_str().expect("utf-8 path");
    ok(&["audit", "--rpc-url", proxy.url(), "--deployment", pin, "--beacon-url", beacon.url(), "--html", html_arg]);
    let page = std::fs::read_to_string(&html).expect("html written");
    assert!(page.contains("Proven or RPC-read") && page.contains("sync-committee members"), "no provenance section");
    assert!(
        page.contains("requestStatus of request 5") && page.contains("class=\"bad\">mismatch"),
        "mismatch not marked"
    );
    // Without a deployment nothing is proven, and the report says so.
    let plain = ok(&["audit", "--rpc-url", &net.url, "--contract", &contract]);
    assert!(plain.contains("RPC-read (no --deployment"), "{plain}");
}

/// Run headless Chromium with the flags that keep it off the network; panics on failure or timeout.
fn chromium(scratch: &Path, args: &[&str]) -> Output {
    let profile = tempdir(scratch, "chromium-profile");
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start chromium ({e}): install it with `apt-get install -y chromium` (script/test.sh does)")
        });
    let start = Instant::now();
    while child.try_wait().expect("chromium status").is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("chromium output");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn tempdir(scratch: &Path, name: &str) -> PathBuf {
    let p = scratch.join(name);
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("temp dir");
    p
}

/// Width, height and a crude "not blank" measure of a PNG, read by hand (no image crate in the tree):
/// a one-colour 1400×2000 screenshot compresses to a few kilobytes.
fn png_info(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

/// The HTML report in headless Chromium: the findings are in the rendered DOM, hostile notes are
/// text (never markup), links go to the explorer only, and a screenshot is a real picture.
/// Set REPLICATOOR_UPDATE_DOCS=1 to refresh docs/audit-report.png from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_renders_in_headless_chromium() {
    let net = Net::start("audit-html", Net::dev_policy()).await;
    quick_history(&net).await;
    // A published compose is owner-supplied text too: it must render as text in its section.
    let hostile = agent_compose(
        &format!("reg/replicatoor@sha256:{}", "cd".repeat(32)),
        &["EVIL: \"<script>alert('compose')</script>\"".into()],
        &[],
    );
    admin::propose_app(&net.owner, Sha256::digest(&hostile).into(), "published compose", &hostile)
        .await
        .expect("propose with compose");
    let html = net.scratch.0.join("report.html");
    let contract = net.contract.to_string();
    let html_s = html.display().to_string();
    ok(&[
        "audit",
        "--rpc-url",
        &net.url,
        "--contract",
        &contract,
        "--reverify",
        "--allow-simulated-quotes",
        "--html",
        &html_s,
        "--explorer-url",
        "https://explorer.invalid",
    ]);
    let page = std::fs::read_to_string(&html).expect("html written");
    assert!(page.contains("Content-Security-Policy"), "a CSP forbids every fetch");
    assert!(!page.to_lowercase().contains("<script"), "no script at all, hostile notes escaped");
    assert!(!page.contains("<img"), "the hostile note's <img> is text");
    assert!(page.contains("&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;"));
    for url in page.split("href=\"").skip(1) {
        assert!(url.starts_with("https://explorer.invalid/"), "only explorer links: {}", &url[..60.min(url.len())]);
    }
    assert!(!page.contains("src=\""), "nothing is loaded");

    let file_url = format!("file://{}", html.display());
    let dom = String::from_utf8(chromium(&net.scratch.0, &["--dump-dom", &file_url]).stdout).expect("utf-8 DOM");
    for text in [
        "The policy allowed SIMULATED quotes",
        "The secret went to an app build that was later revoked",
        "The TCB policy accepted out-of-date TCB statuses",
        "Custody reset at epoch 2",
        "1 request(s) never answered",
        "app_reference_not_allowed",
    ] {
        assert!(dom.contains(text), "rendered DOM lacks {text:?}");
    }
    assert!(dom.contains("&lt;script&gt;alert("), "the hostile note is rendered as text");
    // The approvals section: the trust mode, the compose as text, and each delivery's OS image.
    assert!(dom.contains("id=\"approvals\"") && dom.contains("What was approved"), "approvals section rendered");
    assert!(dom.contains("trust mode: rpc-unverified (NOT PINNED)"), "the published compose's trust mode");
    assert!(dom.contains("compose: not published (proposed with its hash only)"), "the demo app's compose");
    assert!(dom.contains("&lt;script&gt;alert('compose')&lt;/script&gt;"), "the compose is rendered as text");
    let image = hex::encode(SimulatedTd::new([0; 32]).os_image_hash);
    assert_eq!(
        dom.matches(&format!("os image {image} (none published for its OS reference)")).count(),
        5 + 2,
        "every delivery and both genesis quotes show the OS image their log names"
    );
    assert!(!dom.contains("<script>alert("), "the hostile note did not become a script element");
    assert!(dom.matches("class=\"node delivered\"").count() == 5, "five deliveries drawn in the custody graph");
    assert!(dom.contains("href=\"https://explorer.invalid/tx/0x"));

    let shot = net.scratch.0.join("report.png");
    chromium(&net.scratch.0, &[&format!("--screenshot={}", shot.display()), "--window-size=1400,2000", &file_url]);
    let png = std::fs::read(&shot).expect("screenshot written");
    let (w, h) = png_info(&png);
    assert_eq!((w, h), (1400, 2000));
    assert!(png.len() > 40_000, "screenshot is {} bytes: blank?", png.len());
    if std::env::var_os("REPLICATOOR_UPDATE_DOCS").is_some() {
        std::fs::copy(&shot, replicatoor_tests::root().join("docs/audit-report.png")).expect("update docs screenshot");
    }
}

/// 100,000 empty blocks between requests: the scan finds everything, and reports its time.
/// Ignored by default: anvil mines ~200-400 empty blocks per second on a 2-core machine, so making
/// the history takes minutes (the audit itself does not); run with `--ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "mining 100,000 blocks on anvil takes minutes"]
async fn audit_scans_100k_blocks() {
    let net = Net::start("audit-100k", Net::dev_policy()).await;
    let (c1, c2, c3, c4, c5) = (
        chain_for(&net, 1).await,
        chain_for(&net, 2).await,
        chain_for(&net, 3).await,
        chain_for(&net, 4).await,
        chain_for(&net, 5).await,
    );
    let (bundle, _) = net.found_cluster(&c1, 1, b"audit test secret", "genesis").await;
    let (r1, b1) = post_request(&c2, &compose_good()).await;
    net.deliver(&c1, &bundle, r1).await;
    let (_, b2) = post_request(&c3, &compose_good()).await;
    let before = net.owner.head().await.unwrap();
    let mining = Instant::now();
    net.mine(100_000).await;
    let after = net.owner.head().await.unwrap();
    assert!(after >= before + 100_000, "mined {} blocks", after - before);
    eprintln!("anvil mined {} blocks in {:.1?}", after - before, mining.elapsed());
    let (r3, b3) = post_request(&c4, &compose_good()).await;
    net.deliver(&c2, &bundle, r3).await;
    let (_, b4) = post_request(&c5, &compose_good()).await;

    let start = Instant::now();
    let r = audit_json(&net, &[]);
    let took = start.elapsed();
    eprintln!(
        "audit over {} blocks ({}..{}) took {took:.2?}",
        u(&r["to_block"]) - u(&r["from_block"]) + 1,
        r["from_block"],
        r["to_block"]
    );
    let reqs: Vec<(u64, u64, String)> = r["custody"]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (u(&q["request_id"]), u(&q["block"]), q["status"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        reqs,
        vec![
            (1, b1, "delivered".to_string()),
            (2, b2, "pending".to_string()),
            (3, b3, "delivered".to_string()),
            (4, b4, "pending".to_string())
        ]
    );
    assert_eq!(r["custody"]["unanswered"], serde_json::json!([2, 4]));
    assert!(u(&r["to_block"]) >= b4);
    // Served by node 1 (key 2) after the gap: the custody tree links it.
    assert_eq!(addr(&r["custody"]["epochs"][0]["deliveries"][1]["served_by"]), key(2).address());
}

/// `admin list|propose-app|revoke|set-policy|policy|propose-os`, with and without `--calldata-only`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_list_propose_revoke_policy_and_calldata() {
    let net = Net::start("audit-reference", Net::dev_policy()).await;
    let contract = net.contract.to_string();
    let list = |net: &Net| -> Value {
        serde_json::from_str(&ok(&["admin", "list", "--rpc-url", &net.url, "--contract", &contract, "--json"]))
            .expect("list JSON")
    };
    let l = list(&net);
    assert_eq!(l["references"].as_array().unwrap().len(), 2);
    assert!(l["references"].as_array().unwrap().iter().all(|r| r["status"] == "active"));
    assert_eq!(l["policy"]["allow_simulated"], true);
    assert_eq!(l["pending_policy"], Value::Null);

    // Calldata for a multisig: no RPC, no key. Sending it as-is proposes the reference.
    let bad_hash = hex::encode(compose_hash(&compose_bad()));
    let out: Value = serde_json::from_str(&ok(&[
        "admin",
        "propose-app",
        "--contract",
        &contract,
        "--compose-hash",
        &bad_hash,
        "--note",
        "via multisig",
        "--calldata-only",
        "--json",
    ]))
    .unwrap();
    assert_eq!(addr(&out["to"]), net.contract);
    let id = app_reference_id(&compose_hash(&compose_bad()));
    assert_eq!(out["id"], id.to_string());
    let data = hex::decode(out["calldata"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let tx = TransactionRequest::default().to(net.contract).input(data.into());
    let receipt = net.owner.provider().send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
    let l = list(&net);
    let added = l["references"].as_array().unwrap().iter().find(|r| r["id"] == id.to_string()).expect("listed");
    assert_eq!(
        (added["status"].as_str(), added["note"].as_str(), added["ref_kind"].as_str()),
        (Some("active"), Some("via multisig"), Some("app"))
    );

    // Revoke with the owner key.
    let id_s = id.to_string();
    ok(&[
        "admin",
        "revoke",
        "--rpc-url",
        &net.url,
        "--contract",
        &contract,
        "--sender-key",
        replicatoor_tests::KEYS[0],
        "--id",
        &id_s,
        "--note",
        "bad build",
    ]);
    let l = list(&net);
    let r = l["references"].as_array().unwrap().iter().find(|r| r["id"] == id_s).unwrap();
    assert_eq!((r["status"].as_str(), r["revoke_note"].as_str()), (Some("revoked"), Some("bad build")));
    let text = ok(&["admin", "list", "--rpc-url", &net.url, "--contract", &contract]);
    assert!(text.contains("revoked (1):") && text.contains("active (2):"), "{text}");

    // Policy: set (narrowing, immediate), show; calldata for setPolicy starts with its selector.
    let send = ["--rpc-url", &net.url, "--contract", &contract, "--sender-key", replicatoor_tests::KEYS[0]];
    // (17: the simulated PKI's collateral evaluation, so the genesis approval below still verifies.)
    let floor = ["--min-tcb-evaluation-data-number", "17"];
    ok(&[&["admin", "set-policy", "--tcb-statuses", "0x1"][..], &floor, &send, &["--note", "recovery 17"]].concat());
    ok(&[&["admin", "set-policy", "--tcb-statuses", "0x1"][..], &send, &["--note", "no simulated"]].concat());
    let p: Value =
        serde_json::from_str(&ok(&["admin", "policy", "--rpc-url", &net.url, "--contract", &contract, "--json"]))
            .unwrap();
    assert_eq!((p["policy"]["allow_simulated"].as_bool(), u(&p["widening_delay"])), (Some(false), 0));
    // Leaving the floor out keeps it (lowering it would be a widening nobody asked for).
    assert_eq!(u(&p["policy"]["min_tcb_evaluation_data_number"]), 17, "{p}");
    // Calldata without an RPC cannot read the floor in force: the flag must then be given.
    let out = replicatoor(&["admin", "set-policy", "--allow-simulated", "--contract", &contract, "--calldata-only"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--min-tcb-evaluation-data-number"), "{out:?}");
    let cd =
        ok(&[&["admin", "set-policy", "--allow-simulated", "--contract", &contract, "--calldata-only"][..], &floor]
            .concat());
    let selector = hex::encode(&alloy::primitives::keccak256("setPolicy((uint16,bool,bool,uint32),string)")[..4]);
    assert!(cd.contains(&format!("calldata: 0x{selector}")), "{cd}");
    // A state change without a key (and without --calldata-only) is refused with a clear message.
    let out = replicatoor(&["admin", "revoke", "--rpc-url", &net.url, "--contract", &contract, "--id", &id_s]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sender-key is required"));
    // An OS reference from hex measurements.
    ok(&[
        "admin",
        "propose-os",
        "--rpc-url",
        &net.url,
        "--contract",
        &contract,
        "--sender-key",
        replicatoor_tests::KEYS[0],
        "--mrtd",
        &"11".repeat(48),
        "--rtmr0",
        &"22".repeat(48),
        "--rtmr1",
        &"33".repeat(48),
        "--rtmr2",
        &"44".repeat(48),
    ]);
    assert_eq!(list(&net)["references"].as_array().unwrap().len(), 4);
    // Calldata only, in text: the id of the simulated OS reference (already approved at start).
    let td = SimulatedTd::new([0; 32]);
    let os_id = os_reference_id(&td.mr_td, &td.rtmr0, &td.rtmr1, &td.rtmr2);
    let text = ok(&["admin", "propose-os", "--simulated", "--contract", &contract, "--calldata-only"]);
    assert!(text.contains(&format!("id:       {os_id}")) && text.contains("to:       "), "{text}");

    // Genesis for a multisig owner: the proposal is verified here (RPC, no key) and the printed call approves it.
    // (With --rpc-url the floor in force, 17, is read and kept.)
    let widen: Value = serde_json::from_str(&ok(&[
        "admin",
        "set-policy",
        "--allow-simulated",
        "--contract",
        &contract,
        "--calldata-only",
        "--rpc-url",
        &net.url,
        "--json",
    ]))
    .unwrap();
    submit_as_owner(&net, &widen).await;
    let proposer = chain_for(&net, 3).await;
    let k = Zeroizing::new(PrivateKeySigner::random().to_bytes().0);
    let bundle = SecretBundle::new(k, 1, Zeroizing::new(b"admin test secret".to_vec())).expect("bundle");
    let (quote, log) = SimulatedTd::new(compose_hash(&compose_good()))
        .attest(net.owner.deployment().genesis_report_data(bundle.cluster_address(), 1))
        .expect("quote");
    let c = proposer.contract();
    proposer.send(c.proposeGenesis(bundle.cluster_address(), quote.into(), log.into())).await.expect("propose");
    let approve = ["admin", "approve-genesis", "--proposal", "1", "--contract", &contract, "--calldata-only"];
    let out = replicatoor(&approve);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--rpc-url is required"));
    let with_rpc = [&approve[..], &["--rpc-url", &net.url, "--json", "--note", "multisig genesis"]].concat();
    let out = replicatoor(&with_rpc);
    assert!(!out.status.success(), "a simulated quote is not approved without --allow-simulated-quotes");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot verify genesis proposal 1") && out.stdout.is_empty(), "{err}");
    let g: Value = serde_json::from_str(&ok(&[&with_rpc[..], &["--allow-simulated-quotes"]].concat())).unwrap();
    assert_eq!(g["os_reference_id"], os_id.to_string());
    assert_eq!(g["app_reference_id"], app_reference_id(&compose_hash(&compose_good())).to_string());
    assert_eq!(net.owner.contract().epoch().call().await.unwrap(), 0, "nothing sent");
    submit_as_owner(&net, &g).await;
    assert_eq!(net.owner.contract().epoch().call().await.unwrap(), 1, "the printed call approved genesis");
}

/// Submit `--calldata-only --json` output as the owner would through a multisig.
async fn submit_as_owner(net: &Net, printed: &Value) {
    assert_eq!((addr(&printed["to"]), printed["value"].as_str()), (net.contract, Some("0")));
    let data = hex::decode(printed["calldata"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let tx = TransactionRequest::default().to(net.contract).input(data.into());
    let receipt = net.owner.provider().send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status(), "{printed}");
}

/// Against a provider that limits `eth_getLogs` to 200 blocks, the scan shrinks its range once and
/// still finds requests on both sides of a 1,500-block gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_adapts_to_a_provider_range_limit() {
    let net = Net::start("audit-limited", Net::dev_policy()).await;
    let (c1, c2, c3) = (chain_for(&net, 1).await, chain_for(&net, 2).await, chain_for(&net, 3).await);
    let (bundle, _) = net.found_cluster(&c1, 1, b"audit test secret", "genesis").await;
    let (r1, b1) = post_request(&c2, &compose_good()).await;
    net.deliver(&c1, &bundle, r1).await;
    net.mine(1_500).await;
    let (r2, b2) = post_request(&c3, &compose_good()).await;
    let rpc = LimitedRpc::start(net.url.clone(), 200).await;
    let proxy = rpc.url.clone();
    let contract = net.contract.to_string();
    let out = tokio::task::spawn_blocking(move || {
        ok(&["audit", "--rpc-url", &proxy, "--contract", &contract, "--json", "--from-block", "0"])
    })
    .await
    .expect("audit");
    let r: Value = serde_json::from_str(&out).expect("JSON");
    let reqs: Vec<(u64, u64, &str)> = r["custody"]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (u(&q["request_id"]), u(&q["block"]), q["status"].as_str().unwrap()))
        .collect();
    assert_eq!(reqs, vec![(r1, b1, "delivered"), (r2, b2, "pending")]);
    assert_eq!(r["custody"]["epochs"].as_array().unwrap().len(), 1);
    let n = rpc.refused.load(Ordering::SeqCst);
    assert!((1..=8).contains(&n), "the limit is learned once ({n} refused calls)");
}

/// An app-compose.json whose agent service carries `env` (YAML lines under `environment:`).
fn agent_compose(image: &str, env: &[String], allowed_envs: &[&str]) -> Vec<u8> {
    let mut yaml = format!("services:\n  agent:\n    image: {image}\n    command: [\"run\"]\n    environment:\n");
    for e in env {
        yaml.push_str(&format!("      {e}\n"));
    }
    serde_json::to_vec_pretty(&serde_json::json!({
        "manifest_version": 2,
        "name": "replicatoor-audit-test",
        "runner": "docker-compose",
        "docker_compose_file": yaml,
        "allowed_envs": allowed_envs,
    }))
    .expect("compose JSON")
}

/// `REPLICATOOR_DEPLOYMENT: |` with `pin` as a literal block (measured into the compose hash).
fn literal_pin(pin: &PinnedDeployment) -> String {
    let body: Vec<String> = pin.to_toml().lines().map(|l| format!("        {l}")).collect();
    format!("REPLICATOOR_DEPLOYMENT: |\n{}", body.join("\n"))
}

fn beacon_pin(chain_id: u64, contract: Address) -> PinnedDeployment {
    PinnedDeployment {
        chain_id,
        contract,
        start_block: 1,
        trust: TrustRoot::Beacon {
            network: Some("mainnet".into()),
            custom_network: None,
            checkpoint: B256::repeat_byte(0x5a),
            max_age_secs: 300,
            reveal_within_secs: replicatoor_chain::deployment::DEFAULT_REVEAL_WITHIN_SECS,
        },
    }
}

/// What a proposal publishes, end to end: app composes published with `admin propose-app --compose`
/// (sent, and as multisig calldata), analysed by `audit` for the trust mode their nodes run in, the
/// pin, settings the operator still chooses and tags; a published compose that is not the approved
/// one; an OS reference published with its OS image hash (`propose-os --os-image-hash --release`);
/// and, for each accepted quote, the OS image its own event log names against the approved one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_shows_what_was_approved_trust_modes_and_os_images() {
    let net = Net::start("audit-approvals", Net::dev_policy()).await;
    let contract = net.contract.to_string();
    let owner_key = replicatoor_tests::KEYS[0];
    let digest = format!("reg/replicatoor@sha256:{}", "ab".repeat(32));
    let write = |name: &str, bytes: &[u8]| -> String {
        let p = net.scratch.0.join(name);
        std::fs::write(&p, bytes).expect("write compose");
        p.display().to_string()
    };
    // 1. Pinned to this deployment by a beacon light client; only transport comes from the operator.
    let good = agent_compose(
        &digest,
        &["REPLICATOOR_RPC_URL: ${RPC}".into(), literal_pin(&beacon_pin(31337, net.contract))],
        &["REPLICATOOR_RPC_URL", "REPLICATOOR_BEACON_URL"],
    );
    // 2. A simulated beacon (dev only), proposed through the multisig path.
    let sim = PinnedDeployment {
        trust: TrustRoot::SimulatedBeacon {
            genesis_validators_root: B256::repeat_byte(1),
            genesis_time: 1,
            seconds_per_slot: 12,
            checkpoint: B256::repeat_byte(2),
            max_age_secs: 60,
            reveal_within_secs: replicatoor_chain::deployment::DEFAULT_REVEAL_WITHIN_SECS,
        },
        ..beacon_pin(31337, net.contract)
    };
    let simulated = agent_compose(&digest, &[literal_pin(&sim)], &[]);
    // 3. Another chain's deployment, the simulated switch left to the operator, an image by tag.
    let other = agent_compose(
        "reg/replicatoor:latest",
        &[literal_pin(&beacon_pin(1, Address::repeat_byte(0x11)))],
        &["REPLICATOOR_ALLOW_SIMULATED_QUOTES"],
    );
    // 4. No pin at all (the contract comes from the operator's environment too).
    let unpinned = agent_compose(&digest, &["REPLICATOOR_CONTRACT: ${C}".into()], &[]);
    let id_of = |bytes: &[u8]| app_reference_id(&Sha256::digest(bytes).into());
    for (name, bytes) in [("good", &good), ("other", &other), ("unpinned", &unpinned)] {
        let path = write(&format!("{name}.json"), bytes);
        let out = replicatoor(&[
            "admin",
            "propose-app",
            "--rpc-url",
            &net.url,
            "--contract",
            &contract,
            "--sender-key",
            owner_key,
            "--compose",
            &path,
            "--note",
            name,
            "--json",
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(printed["compose_published_bytes"], bytes.len());
        if name == "unpinned" {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("rpc-unverified") && err.contains("REPLICATOOR_CONTRACT"), "owner warned: {err}");
        }
    }
    let sim_path = write("simulated.json", &simulated);
    let printed: Value = serde_json::from_str(&ok(&[
        "admin",
        "propose-app",
        "--contract",
        &contract,
        "--compose",
        &sim_path,
        "--calldata-only",
        "--json",
    ]))
    .unwrap();
    submit_as_owner(&net, &printed).await;
    // 5. Published bytes that are not the approved compose (the contract checks nothing).
    let claimed: [u8; 32] = Sha256::digest(b"what the nodes really run").into();
    let mismatch = app_reference_id(&claimed);
    admin::propose_app(&net.owner, claimed, "decoy", &good).await.expect("propose with a decoy compose");

    // The simulated OS, re-proposed with its OS image named; a request whose log names another image.
    let td = SimulatedTd::new(compose_hash(&compose_good()));
    let os_id = os_reference_id(&td.mr_td, &td.rtmr0, &td.rtmr1, &td.rtmr2);
    admin::revoke(&net.owner, os_id, "re-propose with its image").await.expect("revoke os");
    let image = hex::encode(td.os_image_hash);
    ok(&[
        "admin",
        "propose-os",
        "--simulated",
        "--rpc-url",
        &net.url,
        "--contract",
        &contract,
        "--sender-key",
        owner_key,
        "--os-image-hash",
        &format!("0x{}", image.to_uppercase()),
        "--release",
        "https://example.invalid/os/v1",
    ]);
    let (c1, c2, c3) = (chain_for(&net, 1).await, chain_for(&net, 2).await, chain_for(&net, 3).await);
    let (bundle, _) = net.found_cluster(&c1, 1, b"audit test secret", "genesis").await;
    let (r1, _) = post_request_as(&c2, &td).await;
    net.deliver(&c1, &bundle, r1).await;
    let odd = SimulatedTd { os_image_hash: [0xee; 32], ..td.clone() };
    let (r2, _) = post_request_as(&c3, &odd).await;
    let d2 = net.deliver(&c1, &bundle, r2).await;

    let r = audit_json(&net, &[]);
    let reference = |id: B256| -> &Value {
        r["references"].as_array().unwrap().iter().find(|x| x["id"] == id.to_string()).expect("reference listed")
    };
    let app = |id: B256| &reference(id)["app"];
    let g = app(id_of(&good));
    assert_eq!((g["compose_published"].as_bool(), g["compose_hash_matches"].as_bool()), (Some(true), Some(true)));
    assert_eq!(g["compose"].as_str().unwrap().as_bytes(), &good[..], "the exact bytes approved");
    assert_eq!(
        (g["trust_mode"].as_str(), g["pin_matches_deployment"].as_bool()),
        (Some("beacon-light-client"), Some(true))
    );
    assert_eq!(u(&g["pinned_deployment"]["chain_id"]), 31337);
    assert_eq!(g["unmeasured"], serde_json::json!([]), "RPC and beacon URLs may come from the operator");
    assert_eq!(app(id_of(&simulated))["trust_mode"], "simulated-beacon");
    assert_eq!(
        (app(id_of(&other))["trust_mode"].as_str(), app(id_of(&other))["pin_matches_deployment"].as_bool()),
        (Some("beacon-light-client"), Some(false))
    );
    assert_eq!(app(id_of(&unpinned))["trust_mode"], "rpc-unverified");
    assert_eq!(app(mismatch)["compose_hash_matches"], false);
    let demo = app(app_reference_id(&compose_hash(&compose_good())));
    assert_eq!((demo["compose_published"].as_bool(), &demo["trust_mode"]), (Some(false), &Value::Null));
    let os = &reference(os_id)["os"];
    assert_eq!(
        (os["os_image_hash"].as_str(), os["release"].as_str()),
        (Some(&image[..]), Some("https://example.invalid/os/v1"))
    );

    // Findings: one per problem, naming its reference (the good compose has none).
    let refs_of = |kind: &str| -> Vec<Value> {
        findings_of(&r, kind).iter().flat_map(|f| f["references"].as_array().unwrap().clone()).collect()
    };
    let one = |id: B256| vec![Value::from(id.to_string())];
    assert_eq!(refs_of("simulated_beacon_approved"), one(id_of(&simulated)));
    assert_eq!(findings_of(&r, "simulated_beacon_approved")[0]["severity"], "critical");
    assert_eq!(refs_of("app_not_pinned"), one(id_of(&unpinned)));
    assert_eq!(refs_of("pin_other_deployment"), one(id_of(&other)));
    assert_eq!(refs_of("compose_hash_mismatch"), one(mismatch));
    assert_eq!(refs_of("image_by_tag"), one(id_of(&other)));
    let mut unmeasured = refs_of("unmeasured_security_setting");
    unmeasured.sort_by_key(|v| v.to_string());
    let mut want = vec![Value::from(id_of(&other).to_string()), Value::from(id_of(&unpinned).to_string())];
    want.sort_by_key(|v| v.to_string());
    assert_eq!(unmeasured, want);
    let details: String =
        findings_of(&r, "unmeasured_security_setting").iter().map(|f| f["detail"].as_str().unwrap()).collect();
    assert!(details.contains("REPLICATOOR_ALLOW_SIMULATED_QUOTES") && details.contains("REPLICATOOR_CONTRACT"));
    assert!(!details.contains("REPLICATOOR_RPC_URL"), "transport is not a security setting: {details}");
    assert_eq!(refs_of("compose_not_published"), one(app_reference_id(&compose_hash(&compose_good()))));
    // (Every proposal here is usable at once: the test contract has no widening delay.)
    for f in r["findings"].as_array().unwrap().iter().filter(|f| f["kind"] != "immediate_activation") {
        assert!(!f["references"].as_array().unwrap().contains(&Value::from(id_of(&good).to_string())), "{f}");
    }

    // Every accepted quote: the OS image its own log names, against the approved one.
    let ep = &r["custody"]["epochs"][0];
    assert_eq!(
        (ep["attested_os"]["os_image_hash"].as_str(), ep["attested_os"]["matches"].as_bool()),
        (Some(&image[..]), Some(true))
    );
    let ds = ep["deliveries"].as_array().unwrap();
    assert_eq!(
        (ds[0]["attested_os"]["matches"].as_bool(), ds[1]["attested_os"]["matches"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(ds[1]["attested_os"]["os_image_hash"], "ee".repeat(32));
    assert!(ds[0]["attested_os"]["key_provider"].as_str().unwrap().contains("replicatoor-simulated"));
    // …and its TD launch configuration (the simulated TD's: SEPT_VE_DISABLE only, the usual XFAM).
    let td = &ds[0]["attested_os"]["td"];
    assert_eq!(td["td_attribute_names"], serde_json::json!(["SEPT_VE_DISABLE"]), "{td}");
    assert_eq!((td["xfam"].as_str(), td["mr_owner"].as_str()), (Some("e702060000000000"), Some(&"00".repeat(48)[..])));
    let f = findings_of(&r, "os_image_mismatch");
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0]["request_ids"].clone(), f[0]["blocks"].clone()),
        (serde_json::json!([r2]), serde_json::json!([at(d2)]))
    );
    let described = r["timeline"].as_array().unwrap().iter().filter(|t| t["kind"] == "reference_described").count();
    assert_eq!(described, 6, "four composes, the decoy and the OS description");

    let text = ok(&["audit", "--rpc-url", &net.url, "--contract", &contract]);
    for line in [
        "trust mode: beacon-light-client: pins chain 31337",
        "trust mode: simulated-beacon",
        "trust mode: rpc-unverified (NOT PINNED)",
        "NOT THIS DEPLOYMENT",
        "DOES NOT MATCH the approved compose hash",
        "compose: not published",
        "published compose:",
        &format!("OS image hash {image}, release https://example.invalid/os/v1"),
        &format!("os image {} DIFFERS from the approved {image}", "ee".repeat(32)),
        "td attributes 0000001000000000 [SEPT_VE_DISABLE], xfam e702060000000000",
    ] {
        assert!(text.contains(line), "text report lacks {line:?}:\n{text}");
    }
    // `admin list` says the same in one line per reference.
    let list = ok(&["admin", "list", "--rpc-url", &net.url, "--contract", &contract]);
    assert!(
        list.contains("trust mode: simulated-beacon") && list.contains("trust mode: unknown: no compose published")
    );
    assert!(list.contains(&format!("OS image hash {image}, release https://example.invalid/os/v1")), "{list}");
}

alloy::sol! {
    /// The proposal functions of contracts deployed before reference descriptions (PROTOCOL.md §4.5).
    interface V1 {
        function proposeOsReference(bytes mrtd, bytes rtmr0, bytes rtmr1, bytes rtmr2, string note) external returns (bytes32);
        function proposeAppReference(bytes32 composeHash, string note) external returns (bytes32);
    }
}

/// A deployment of the contract as it was before proposals could publish descriptions (its real
/// bytecode, tests/fixtures/upgrade-operator-v1): the audit reads it with schema v2, decodes every
/// log, and says for each app reference that its compose was not published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_reads_a_deployment_from_before_descriptions() {
    use alloy::{
        network::TransactionBuilder,
        sol_types::{SolCall, SolValue},
    };
    let net = Net::instant("audit-v1", Net::dev_policy()).await;
    let hex_code =
        std::fs::read_to_string(replicatoor_tests::root().join("tests/fixtures/upgrade-operator-v1/bytecode.hex"))
            .expect("v1 bytecode fixture");
    let mut code = hex::decode(hex_code.trim().trim_start_matches("0x")).expect("hex bytecode");
    code.extend((key(0).address(), 0u64, (1u16, false, true)).abi_encode_params());
    let p = net.owner.provider();
    let deploy = TransactionRequest::default().with_deploy_code(code);
    let receipt = p.send_transaction(deploy).await.unwrap().get_receipt().await.unwrap();
    let v1 = receipt.contract_address.expect("v1 deployed");
    let send = |data: Vec<u8>| async move {
        let tx = TransactionRequest::default().to(v1).input(data.into());
        let r = p.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
        assert!(r.status(), "v1 call reverted");
    };
    let td = SimulatedTd::new([0; 32]);
    let [mrtd, rtmr0, rtmr1, rtmr2] = [td.mr_td, td.rtmr0, td.rtmr1, td.rtmr2].map(|m| m.to_vec().into());
    send(V1::proposeOsReferenceCall { mrtd, rtmr0, rtmr1, rtmr2, note: "os v1".into() }.abi_encode()).await;
    let h = compose_hash(&compose_good());
    send(V1::proposeAppReferenceCall { composeHash: h.into(), note: "app v1".into() }.abi_encode()).await;
    // The new proposal ABI is not this contract's: the call reverts rather than half-working.
    let new_call = replicatoor::admin::call::propose_app(&[9; 32], "", b"{}").abi_encode();
    let tx = TransactionRequest::default().to(v1).input(new_call.into());
    assert!(p.call(tx).await.is_err(), "a v1 contract has no proposeAppReference(bytes32,string,bytes)");

    let v1_s = v1.to_string();
    let r: Value =
        serde_json::from_str(&ok(&["audit", "--rpc-url", &net.url, "--contract", &v1_s, "--json"])).expect("JSON");
    assert_eq!(r["schema"], "replicatoor-audit/v3");
    assert!(findings_of(&r, "undecoded_logs").is_empty() && findings_of(&r, "history_incomplete").is_empty());
    let refs = r["references"].as_array().unwrap();
    assert_eq!(refs.len(), 2);
    let app = refs.iter().find(|x| x["id"] == app_reference_id(&h).to_string()).expect("app reference");
    assert_eq!((app["note"].as_str(), app["app"]["compose_published"].as_bool()), (Some("app v1"), Some(false)));
    let os = refs.iter().find(|x| x["ref_kind"] == "os").expect("os reference");
    assert_eq!(os["os"]["description_published"], false);
    assert_eq!(findings_of(&r, "compose_not_published").len(), 1);
    assert!(r["timeline"].as_array().unwrap().iter().all(|t| t["kind"] != "reference_described"));
    let text = ok(&["audit", "--rpc-url", &net.url, "--contract", &v1_s]);
    assert!(text.contains("compose: not published") && text.contains("OS image: not published"), "{text}");
    // Its PolicySet events (three policy fields) are read as today's, with no TCB evaluation floor,
    // which is a finding: from its first block on, any collateral passed.
    assert!(text.contains("collateral of any TCB evaluation"), "{text}");
    let f = findings_of(&r, "no_tcb_evaluation_floor");
    assert_eq!((f.len(), f[0]["severity"].as_str()), (1, Some("medium")), "{f:?}");
    assert_eq!(f[0]["blocks"][0]["from"], receipt.block_number.unwrap(), "{f:?}");

    // An agent of this version refuses to run against it, and says why: every answer it signed would
    // revert (the EIP-712 domain version is part of each signature).
    let dir = std::env::temp_dir().join(format!("replicatoor-v1-agent-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_replicatoor-dev"))
        .args(["run", "--dangerously-trust-rpc", "--rpc-url", &net.url, "--contract", &v1_s])
        .args(["--quote-provider", "simulated", "--app-compose"])
        .arg(replicatoor_tests::root().join("examples/app-compose.json"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--secret-file")
        .arg(dir.join("secret.bin"))
        .env("REPLICATOOR_SENDER_KEY", replicatoor_tests::KEYS[1])
        .env_remove("REPLICATOOR_RPC_URL")
        .env_remove("REPLICATOOR_CONTRACT")
        .stdin(Stdio::null())
        .output()
        .expect("run replicatoor");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started against a version-1 contract:\n{err}");
    let ours = format!("this agent speaks version {}", replicatoor_core::crypto::eip712::DOMAIN_VERSION);
    assert!(err.contains("speaks protocol version 1") && err.contains(&ours), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
