//! `replicatoor admin rotate` on the command line against a real anvil and contract: the calldata a
//! multisig owner gets, and the refusals `rotate approve` makes before sending anything; and what the
//! audit reports of a rotation (its epochs, a retired key still signing). The rotation itself, end to
//! end with holders, is tests/tests/rotation.rs.

use alloy::{
    eips::BlockId,
    primitives::{keccak256, Address, Bytes, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use replicatoor_audit::collect::ScanOptions;
use replicatoor_chain::{Chain, UpgradeOperator as Op};
use replicatoor_core::{
    crypto::eip712::{self, Refusal, Rotation},
    protocol::{app_reference_id, os_reference_id, request_key},
};
use replicatoor_testkit::simulated::SimulatedTd;
use replicatoor_tests::{cli as replicatoor, cli_ok as ok, compose_good, compose_hash, key, Net, KEYS};
use serde_json::Value;

/// Fails, and says so on stderr.
fn refused(args: &[&str]) -> String {
    let out = replicatoor(args);
    assert!(!out.status.success(), "replicatoor {args:?} succeeded:\n{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn selector(signature: &str) -> String {
    hex::encode(&keccak256(signature)[..4])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_calldata_and_refusals_before_anything_is_sent() {
    let net = Net::instant("admin-rotate", Net::dev_policy()).await;
    let contract = net.contract.to_string();

    // `start` for a multisig: neither RPC nor key; the calldata is startRotation(note).
    let out: Value = serde_json::from_str(&ok(&[
        "admin",
        "rotate",
        "start",
        "--contract",
        &contract,
        "--note",
        "quarterly",
        "--calldata-only",
        "--json",
    ]))
    .expect("JSON");
    assert_eq!(out["to"].as_str().and_then(|a| a.parse::<Address>().ok()), Some(net.contract));
    let data = hex::decode(out["calldata"].as_str().expect("calldata").trim_start_matches("0x")).expect("hex");
    assert_eq!(hex::encode(&data[..4]), selector("startRotation(string)"));
    assert_eq!(Op::startRotationCall::abi_decode(&data).expect("decodes").note, "quarterly");
    let text = ok(&["admin", "rotate", "cancel", "--contract", &contract, "--calldata-only"]);
    assert!(text.contains(&format!("calldata: 0x{}", selector("cancelRotation(string)"))), "{text}");

    // Sent with the owner's key before any genesis: the contract's refusal, by name.
    let send = ["--rpc-url", &net.url, "--contract", &contract, "--sender-key", KEYS[0]];
    let err = refused(&[&["admin", "rotate", "start"][..], &send].concat());
    assert!(err.contains("NoCluster"), "{err}");

    // A plain genesis proposal (nothing is checked on chain when it is posted) is not a rotation:
    // `rotate approve` says so and sends nothing.
    let propose = Op::proposeGenesisCall {
        clusterAddress: key(5).address(),
        quote: Bytes::from(vec![1; 64]),
        eventLog: Bytes::new(),
    };
    net.owner.send(net.owner.contract().call_builder(&propose)).await.expect("propose genesis");
    let owner = key(0).address();
    let (head, nonce) = (net.head().await, net.owner.provider().get_transaction_count(owner).await.expect("nonce"));
    let approve =
        |id: &'static str| [&["admin", "rotate", "approve", id, "--allow-simulated-quotes"][..], &send].concat();
    let err = refused(&approve("1"));
    assert!(err.contains("not endorsed") && err.contains("approve-genesis"), "{err}");
    // The same with --calldata-only: no calldata for a proposal that fails.
    let err = refused(&[&approve("1")[..], &["--calldata-only"]].concat());
    assert!(err.contains("not endorsed"), "{err}");
    let err = refused(&approve("9"));
    assert!(err.contains("does not exist"), "{err}");
    assert_eq!(net.head().await, head, "no block: nothing was sent");
    assert_eq!(net.owner.provider().get_transaction_count(owner).await.expect("nonce"), nonce);
}

/// A rotation driven by hand with cluster keys the test holds (the contract checks no quote; the owner
/// is trusted to): the audit lists both epochs and who received the new one, and flags a refusal the
/// retired key signed afterwards, mined and reverted, so seen only in its block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_lists_each_epoch_and_flags_a_retired_key_still_signing() {
    let net = Net::instant("audit-rotation", Net::dev_policy()).await;
    let owner = &net.owner;
    let td = SimulatedTd::new([0; 32]);
    let (os, app) =
        (os_reference_id(&td.mr_td, &td.rtmr0, &td.rtmr1, &td.rtmr2), app_reference_id(&compose_hash(&compose_good())));
    let (k1, k2) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let send = |call| async move { owner.send(owner.contract().call_builder(&call)).await };
    let junk = || Bytes::from(vec![1; 64]);
    send(Op::proposeGenesisCall { clusterAddress: k1.address(), quote: junk(), eventLog: Bytes::new() })
        .await
        .expect("propose genesis");
    let approve = Op::approveGenesisCall {
        proposalId: U256::from(1),
        clusterAddress: k1.address(),
        forEpoch: 1,
        osRef: os,
        appRef: app,
        note: "genesis".into(),
    };
    owner.send(owner.contract().call_builder(&approve)).await.expect("approve genesis");
    owner.send(owner.contract().call_builder(&Op::startRotationCall { note: "rotate".into() })).await.expect("start");
    let dep = owner.deployment();
    let endorsement = eip712::sign(&dep, &Rotation { epoch: 2, cluster: k2.address() }, &k1).expect("sign");
    let propose = Op::proposeRotationCall {
        clusterAddress: k2.address(),
        quote: junk(),
        eventLog: Bytes::new(),
        signature: endorsement.to_vec().into(),
    };
    owner.send(owner.contract().call_builder(&propose)).await.expect("propose rotation");
    let approve = Op::approveRotationCall {
        proposalId: U256::from(2),
        clusterAddress: k2.address(),
        forEpoch: 2,
        osRef: os,
        appRef: app,
        note: "rotated".into(),
    };
    owner.send(owner.contract().call_builder(&approve)).await.expect("approve rotation");

    // A request, delivered under the new cluster key.
    let requester = Chain::connect(&net.url, net.contract, Some(key(3))).await.expect("requester");
    let pk = [7; 32];
    let request = Op::requestSecretCall::new(pk, vec![1; 64], vec![]);
    requester.send(requester.contract().call_builder(&request)).await.expect("request");
    let rk = request_key(&pk, key(3).address());
    let policy = owner.policy_at(BlockId::latest()).await.expect("policy").hash();
    let d = replicatoor_testkit::delivery_record(U256::from(1), rk, policy, os, app, &[4; 32], &[5; 16]);
    let sig = eip712::sign(&dep, &d, &k2).expect("sign");
    let deliver = Op::deliverSecretCall {
        requestId: d.requestId,
        request: rk,
        policyHash: policy,
        osRef: os,
        appRef: app,
        encapsulatedKey: d.encapsulatedKey.clone(),
        ciphertext: d.ciphertext.clone(),
        signature: sig.to_vec().into(),
    };
    owner.send(owner.contract().call_builder(&deliver)).await.expect("deliver");

    // The retired key refuses it: reverted (the request is answered, and k1 is no longer the cluster),
    // mined with a fixed gas limit, so only its block shows it.
    let refusal = Refusal { requestId: U256::from(1), request: rk, reason: 3 };
    let sig = eip712::sign(&dep, &refusal, &k1).expect("sign");
    let refuse =
        Op::refuseRequestCall { requestId: U256::from(1), request: rk, reason: 3, signature: sig.to_vec().into() };
    let tx = TransactionRequest::default().to(net.contract).input(refuse.abi_encode().into()).gas_limit(300_000);
    let receipt = owner.provider().send_transaction(tx).await.expect("send").get_receipt().await.expect("receipt");
    assert!(!receipt.status(), "the contract refuses the retired key");

    let scan = ScanOptions { from_block: None, to_block: None, progress: false };
    let report = replicatoor_audit::audit(owner, scan, None).await.expect("audit");
    let r = serde_json::to_value(&report).expect("JSON");
    assert_eq!(r["schema"], "replicatoor-audit/v3");
    let e = r["epochs"].as_array().expect("epochs");
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!((e[0]["kind"].as_str(), addr(&e[0]["cluster"])), (Some("genesis"), Some(k1.address())));
    assert_eq!(
        (e[1]["kind"].as_str(), addr(&e[1]["cluster"]), addr(&e[1]["previous_cluster"]), e[1]["proposal_id"].as_u64()),
        (Some("rotation"), Some(k2.address()), Some(k1.address()), Some(2))
    );
    assert_eq!(addr(&e[1]["proposer"]), Some(key(0).address()));
    let got = &e[1]["recipients"][0];
    assert_eq!((got["request_id"].as_u64(), addr(&got["requester"])), (Some(1), Some(key(3).address())));
    assert_eq!(e[0]["recipients"], serde_json::json!([]));
    let kinds: Vec<_> = report.findings.iter().map(|f| f.kind).collect();
    assert!(!kinds.contains(&"rotation_endorsement_invalid"), "{kinds:?}");
    let old = report.findings.iter().find(|f| f.kind == "old_epoch_key_used").expect("old_epoch_key_used");
    assert_eq!((old.epochs.clone(), old.request_ids.clone(), old.accounts[0]), (vec![1], vec![1], k1.address()));
    assert_eq!(old.blocks[0].from, receipt.block_number.expect("block"));
    let text = replicatoor_audit::render_text::render(&report);
    assert!(text.contains("EPOCHS") && text.contains("ROTATION from"), "{text}");
    assert!(text.contains("KEY ROTATED at epoch 2"), "the timeline: {text}");
}

/// `rotate approve` with real (simulated) quotes: a proposal whose quote binds another cluster is
/// refused as a bad quote; an honest one is printed for a multisig, refused while no rotation is under
/// way (cancelled), then approved: custody moves at once, and the approved proposal is stale after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_approve_verifies_the_quote_then_custody_moves() {
    let net = Net::instant("admin-rotate-approve", Net::dev_policy()).await;
    let (owner, contract) = (&net.owner, net.contract.to_string());
    let dep = owner.deployment();
    let sim = SimulatedTd::new(compose_hash(&compose_good()));
    let quote = |cluster: Address, epoch: u64| sim.attest(dep.genesis_report_data(cluster, epoch)).expect("quote");
    let (os, app) = (
        os_reference_id(&sim.mr_td, &sim.rtmr0, &sim.rtmr1, &sim.rtmr2),
        app_reference_id(&compose_hash(&compose_good())),
    );
    let (k1, k2) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let (q, log) = quote(k1.address(), 1);
    owner.send(owner.contract().proposeGenesis(k1.address(), q.into(), log.into())).await.expect("propose genesis");
    let genesis = Op::approveGenesisCall {
        proposalId: U256::from(1),
        clusterAddress: k1.address(),
        forEpoch: 1,
        osRef: os,
        appRef: app,
        note: String::new(),
    };
    owner.send(owner.contract().call_builder(&genesis)).await.expect("approve genesis");

    let send = ["--rpc-url", &net.url, "--contract", &contract, "--sender-key", KEYS[0]];
    let started: Value =
        serde_json::from_str(&ok(&[&["admin", "rotate", "start", "--json"][..], &send].concat())).expect("JSON");
    assert_eq!(started["epoch"], 2);
    // Endorsed by k1, each for k2: the first with a quote that binds another cluster.
    let propose = |quoted: Address| {
        let (q, log) = quote(quoted, 2);
        let sig = eip712::sign(&dep, &Rotation { epoch: 2, cluster: k2.address() }, &k1).expect("sign");
        Op::proposeRotationCall {
            clusterAddress: k2.address(),
            quote: q.into(),
            eventLog: log.into(),
            signature: sig.to_vec().into(),
        }
    };
    owner.send(owner.contract().call_builder(&propose(Address::repeat_byte(3)))).await.expect("propose 2");
    let approve =
        |id: &'static str| [&["admin", "rotate", "approve", id, "--allow-simulated-quotes"][..], &send].concat();
    let err = refused(&approve("2"));
    assert!(err.contains("bad quote"), "{err}");
    owner.send(owner.contract().call_builder(&propose(k2.address()))).await.expect("propose 3");
    let printed: Value =
        serde_json::from_str(&ok(&[&approve("3")[..], &["--calldata-only", "--json"]].concat())).expect("JSON");
    assert_eq!(
        (addr(&printed["cluster"]), printed["epoch"].as_u64(), addr(&printed["previous_cluster"])),
        (Some(k2.address()), Some(2), Some(k1.address()))
    );
    assert_eq!(
        (printed["os_reference_id"].as_str(), printed["app_reference_id"].as_str()),
        (Some(os.to_string().as_str()), Some(app.to_string().as_str()))
    );
    let data = hex::decode(printed["calldata"].as_str().expect("calldata").trim_start_matches("0x")).expect("hex");
    assert_eq!(hex::encode(&data[..4]), selector("approveRotation(uint256,address,uint64,bytes32,bytes32,string)"));
    assert_eq!(owner.contract().epoch().call().await.expect("epoch"), 1, "nothing sent");

    // Cancelled: nothing to approve.
    ok(&[&["admin", "rotate", "cancel"][..], &send].concat());
    let err = refused(&approve("3"));
    assert!(err.contains("no rotation to epoch 2 is under way"), "{err}");

    // Started again, a fresh proposal, approved with the owner's key: in force at once.
    ok(&[&["admin", "rotate", "start"][..], &send].concat());
    owner.send(owner.contract().call_builder(&propose(k2.address()))).await.expect("propose 4");
    let text = ok(&approve("4"));
    assert!(text.contains(&format!("verified and approved: epoch 2 is cluster {}", k2.address())), "{text}");
    assert_eq!(owner.cluster_at(BlockId::latest()).await.expect("cluster"), (k2.address(), 2));
    let err = refused(&approve("4"));
    assert!(err.contains("stale"), "{err}");
}

fn addr(v: &Value) -> Option<Address> {
    v.as_str().and_then(|a| a.parse().ok())
}
