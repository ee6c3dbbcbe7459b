//! Rotation after a bad build (PROTOCOL.md §5.4), end to end: real anvil, the real contract, real
//! `replicatoor` processes deciding on proven state, simulated quotes.
//!
//! v1 holds the secret, v2 is approved and joins, v1 is found bad and revoked, the owner starts a
//! rotation: a v2 holder proposes the next epoch, the owner approves it, every v2 node ends up with
//! epoch 2 and epoch 1 in its keyring, while the v1 holder stops serving, is refused the new epoch and
//! keeps only the past; the epoch-1 cluster key it leaked signs nothing the contract takes.

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
};
use replicatoor::admin;
use replicatoor_chain::{Chain, ChainError, UpgradeOperator as Op, UpgradeOperator::UpgradeOperatorErrors};
use replicatoor_core::{
    attest::{collateral::NoCollateral, Verifier},
    crypto::eip712,
    protocol::{app_reference_id, os_reference_id},
    refusal::Refusal,
};
use replicatoor_testkit::simulated::{self, SimulatedTd};
use replicatoor_tests::{compose_good, compose_hash, key, wait_for_file, wait_until, Net, Proc};
use std::{fs, path::Path, time::Duration};

const T: Duration = Duration::from_secs(120);

fn verifier() -> Verifier {
    Verifier::new(Box::new(NoCollateral)).dangerously_trust_simulated_quotes(simulated::anchor())
}

/// The contract error a reverted call carries (panics on anything else).
fn revert_of<T: std::fmt::Debug>(r: Result<T, ChainError>) -> UpgradeOperatorErrors {
    match r {
        Err(ChainError::Reverted(e)) => *e,
        other => panic!("expected a revert, got {other:?}"),
    }
}

/// The installed keyring (`<secret_file>.keyring`): its epoch and each epoch's secret, oldest first.
fn keyring(p: &Proc) -> (u64, Vec<(u64, Vec<u8>)>) {
    let path = format!("{}.keyring", p.secret_path().display());
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&path).expect("keyring file")).expect("keyring JSON");
    assert_eq!(v["version"], 1);
    let secrets = v["secrets"].as_array().expect("secrets").iter().map(|s| {
        let epoch = s["epoch"].as_u64().expect("epoch");
        (epoch, hex::decode(s["secret_hex"].as_str().expect("secret_hex")).expect("hex"))
    });
    (v["epoch"].as_u64().expect("epoch"), secrets.collect())
}

/// `examples/keyring-app/app.py` run against node `p`'s installed files: whether it succeeded, and
/// what it printed (stdout, then stderr).
fn app(p: &Proc, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("python3")
        .arg(replicatoor_tests::root().join("examples/keyring-app/app.py"))
        .arg("--secret-file")
        .arg(p.secret_path())
        .args(args)
        .output()
        .expect("run python3 examples/keyring-app/app.py");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

async fn status_epoch(p: &Proc) -> Option<u64> {
    p.status_json().await.and_then(|s| s["epoch"].as_u64())
}

async fn holding(p: &Proc) -> bool {
    p.status_json().await.is_some_and(|s| s["role"] == "holder")
}

/// A v2 app: the demo compose under another name (another compose hash, so another app reference).
fn write_v2_compose(dir: &Path) -> std::path::PathBuf {
    let mut compose: serde_json::Value =
        serde_json::from_slice(&fs::read(compose_good()).expect("compose")).expect("compose JSON");
    compose["name"] = "replicatoor-demo-app-v2".into();
    let path = dir.join("app-compose-v2.json");
    fs::write(&path, serde_json::to_vec_pretty(&compose).expect("JSON")).expect("write v2 compose");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_leaves_a_revoked_build_only_the_past() {
    let net = Net::start_pinned("rotation", Net::dev_policy()).await;
    let dep = net.owner.deployment();
    let c = net.owner.contract();
    let v2 = write_v2_compose(&net.scratch.0);
    let (v1_app, v2_app) = (app_reference_id(&compose_hash(&compose_good())), app_reference_id(&compose_hash(&v2)));
    admin::propose_app(&net.owner, compose_hash(&v2), "v2", &[]).await.expect("propose v2");

    // Epoch 1, founded from the test: it holds exactly what the v1 build will leak (the cluster key
    // and the secret), and hands it to a real v1 node, which then serves as a holder.
    let epoch1_secret = b"epoch 1 secret: what the broken build read".to_vec();
    let (epoch1, _) = net.found_cluster(&net.owner, 1, &epoch1_secret, "epoch 1").await;
    let mut v1 = net.agent("v1", 1, &compose_good(), &[]);
    wait_until("the v1 node's request", T, || async { net.request_count().await == 1 }).await;
    net.deliver(&net.owner, &epoch1, 1).await;
    wait_until("the v1 node to hold epoch 1", T, || holding(&v1)).await;

    // Two v2 nodes join, served by the v1 holder.
    let mut a = net.agent("v2-a", 2, &v2, &[]);
    wait_for_file(&mut a, T).await;
    let mut b = net.agent("v2-b", 3, &v2, &[]);
    wait_for_file(&mut b, T).await;
    for p in [&a, &b] {
        wait_until("a v2 node to hold epoch 1", T, || holding(p)).await;
        assert_eq!(fs::read(p.secret_path()).expect("secret"), epoch1_secret);
        assert_eq!(keyring(p), (1, vec![(1, epoch1_secret.clone())]), "the keyring beside the secret, from epoch 1");
    }

    // The example app on a v2 node keeps a record under epoch 1's secret.
    let store = a.dir.join("records.jsonl");
    let store = store.to_str().expect("a UTF-8 path");
    let (ok, out) = app(&a, &["write", "--store", store, "--id", "before", "--data", "written under epoch 1"]);
    assert!(ok && out.contains("under epoch 1"), "{out}");

    // v1 is found bad: revoked.
    admin::revoke(&net.owner, v1_app, "v1 is vulnerable").await.expect("revoke v1");
    net.owner.send(c.startRotation("after the v1 advisory".into())).await.expect("start rotation");
    assert_eq!(c.rotationFor().call().await.expect("rotationFor"), 2);

    // Only the owner: a plain genesis proposal for epoch 2 (no cluster endorsed it) is not a rotation.
    let rogue = PrivateKeySigner::random();
    let td = SimulatedTd::new(compose_hash(&v2));
    let (quote, log) = td.attest(dep.genesis_report_data(rogue.address(), 2)).expect("quote");
    let posted = net
        .owner
        .send(c.proposeGenesis(rogue.address(), quote.clone().into(), log.clone().into()))
        .await
        .expect("a genesis proposal anyone may post");
    // From its receipt: the holders' own proposals are being posted meanwhile.
    let plain = posted.event::<Op::GenesisProposed>().expect("GenesisProposed").proposalId;
    let os = os_reference_id(&td.mr_td, &td.rtmr0, &td.rtmr1, &td.rtmr2);
    let only_owner =
        net.owner.send(c.approveRotation(plain, rogue.address(), 2, os, v2_app, "custody swap".into())).await;
    let why = revert_of(only_owner);
    assert!(
        matches!(&why, UpgradeOperatorErrors::NotEndorsed(e) if e.proposalId == plain),
        "the owner alone cannot rotate: {why:?}"
    );
    assert!(admin::verify_rotation(&net.owner, &verifier(), plain).await.is_err(), "nor does `admin rotate approve`");

    // Only the old cluster: whoever holds the leaked epoch-1 key endorses a key of its own (its quote
    // from the revoked v1 build). The contract takes the proposal (the endorsement is valid), and
    // nothing changes: the owner's check refuses it and the contract would too.
    let thief = PrivateKeySigner::random();
    let (quote, log) = SimulatedTd::new(compose_hash(&compose_good()))
        .attest(dep.genesis_report_data(thief.address(), 2))
        .expect("quote");
    let endorsement = eip712::Rotation { epoch: 2, cluster: thief.address() };
    let sig = eip712::sign(&dep, &endorsement, epoch1.cluster_signer()).expect("sign");
    let proposed = net
        .owner
        .send(c.proposeRotation(thief.address(), quote.clone().into(), log.clone().into(), sig.to_vec().into()))
        .await
        .expect("an endorsed proposal is recorded");
    let stolen = proposed.event::<Op::RotationProposed>().expect("RotationProposed").proposalId;
    let refused = admin::verify_rotation(&net.owner, &verifier(), stolen).await.expect_err("a revoked build's quote");
    assert!(format!("{refused:#}").contains("not allowed"), "{refused:#}");
    let approved = net.owner.send(c.approveRotation(stolen, thief.address(), 2, os, v1_app, "".into())).await;
    assert!(matches!(revert_of(approved), UpgradeOperatorErrors::ReferenceNotAllowed(_)));
    // An endorsement by any key but the cluster's is refused outright.
    let forged = eip712::sign(&dep, &endorsement, &thief).expect("sign");
    let r = net.owner.send(c.proposeRotation(thief.address(), quote.into(), log.into(), forged.to_vec().into())).await;
    assert!(matches!(revert_of(r), UpgradeOperatorErrors::BadClusterSignature(_)));
    assert_eq!(c.epoch().call().await.expect("epoch"), 1, "no rotation yet");

    // A v2 holder proposes (the v1 holder, on a revoked build, does not); the owner verifies and
    // approves the first such proposal.
    let honest = wait_for_honest_proposal(&net, &[key(2).address(), key(3).address()], stolen).await;
    let verified = admin::verify_rotation(&net.owner, &verifier(), honest.proposalId).await.expect("verify");
    assert_eq!((verified.proposal.app_ref, verified.previous_cluster), (v2_app, epoch1.cluster_address()));
    let approve = admin::call::approve_rotation(&verified.proposal, "rotate away from v1");
    net.owner.send(c.call_builder(&approve)).await.expect("approve the rotation");
    assert_eq!(c.cluster().call().await.expect("cluster"), honest.cluster);
    assert!(!v1.log().contains("rotation proposed"), "the revoked build made no proposal:\n{}", v1.log());

    // Both v2 nodes hold epoch 2: the proposer switches, the other requests it like a new node and is
    // served by the proposer. Epoch 1's secret is in both keyrings.
    let (proposer, other) = if honest.proposer == key(2).address() { (&a, &b) } else { (&b, &a) };
    for p in [proposer, other] {
        wait_until("a v2 node to hold epoch 2", T, || async { status_epoch(p).await == Some(2) }).await;
    }
    let epoch2_secret = fs::read(proposer.secret_path()).expect("epoch 2 secret");
    assert_ne!(epoch2_secret, epoch1_secret, "a new secret");
    assert_eq!(epoch2_secret.len(), epoch1_secret.len(), "as long as the one before");
    for p in [proposer, other] {
        assert_eq!(fs::read(p.secret_path()).expect("secret"), epoch2_secret);
        assert_eq!(keyring(p), (2, vec![(1, epoch1_secret.clone()), (2, epoch2_secret.clone())]));
    }
    assert!(other.log().contains("requests the new epoch like a new node"), "{}", other.log());
    // The app reads what it wrote before the rotation with epoch 1's secret and writes under epoch 2's.
    let (ok, out) = app(&a, &["write", "--store", store, "--id", "after", "--data", "written under epoch 2"]);
    assert!(ok && out.contains("under epoch 2"), "{out}");
    let (ok, out) = app(&a, &["read", "--store", store]);
    assert!(ok && out.contains("before\tepoch 1\twritten under epoch 1"), "{out}");
    assert!(out.contains("after\tepoch 2\twritten under epoch 2"), "{out}");

    // The v1 holder stops serving, requests epoch 2, is refused (its build is revoked) and keeps only
    // the past.
    let status = v1.exited(T).await;
    assert_eq!(status.code(), Some(3), "refused:\n{}", v1.log());
    assert!(v1.log().contains("app_reference_not_allowed"), "{}", v1.log());
    assert_eq!(fs::read(v1.secret_path()).expect("v1 secret"), epoch1_secret);
    assert_eq!(keyring(&v1), (1, vec![(1, epoch1_secret.clone())]), "epoch 2 never reached the v1 node");
    assert_eq!(delivered_to(&net, key(1).address(), 2).await, 0, "no epoch-2 delivery to the v1 node");
    // With what the v1 node holds, the app's record from before the rotation checks, the one after does not.
    let (ok, out) = app(&v1, &["read", "--store", store]);
    assert!(!ok && out.contains("epoch 2"), "the v1 node cannot check data written under epoch 2: {out}");

    // The leaked epoch-1 key signs nothing the contract takes any more: a delivery and a refusal for a
    // pending request both revert (the holders are stopped first, so the request stays pending).
    a.terminate();
    b.terminate();
    let requester = Chain::connect(&net.url, net.contract, Some(key(5))).await.expect("client");
    let pk = B256::repeat_byte(0x42);
    let (quote, log) = td.attest(dep.request_report_data(key(5).address(), &pk.0)).expect("quote");
    let posted =
        requester.send(requester.contract().requestSecret(pk, quote.into(), log.into())).await.expect("request");
    let id: u64 = posted.event::<Op::SecretRequested>().expect("SecretRequested").requestId.to();
    let request = net.request_key(id).await;
    let msg = eip712::Refusal { requestId: U256::from(id), request, reason: Refusal::AppReferenceNotAllowed.code() };
    let sig = eip712::sign(&dep, &msg, epoch1.cluster_signer()).expect("sign");
    let r = net.owner.send(c.refuseRequest(U256::from(id), request, msg.reason, sig.to_vec().into())).await;
    assert!(matches!(revert_of(r), UpgradeOperatorErrors::BadClusterSignature(e) if e.cluster == honest.cluster));
    let r = net.try_deliver(&net.owner, &epoch1, id).await;
    assert!(
        matches!(revert_of(r), UpgradeOperatorErrors::BadClusterSignature(e) if e.recovered == epoch1.cluster_address())
    );
    assert_eq!(net.status(id).await, 1, "still pending");
}

/// The first `RotationProposed` sent by one of `proposers` (not proposal `except`).
async fn wait_for_honest_proposal(net: &Net, proposers: &[Address], except: U256) -> Op::RotationProposed {
    let c = net.owner.contract();
    let mut found = None;
    let start = std::time::Instant::now();
    while found.is_none() {
        assert!(start.elapsed() < T, "no v2 holder proposed a rotation");
        let events = c.RotationProposed_filter().from_block(net.start).query().await.unwrap_or_default();
        found = events.into_iter().map(|(e, _)| e).find(|e| e.proposalId != except && proposers.contains(&e.proposer));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    found.expect("a proposal")
}

/// Deliveries of epoch `epoch` to requests `requester` made.
async fn delivered_to(net: &Net, requester: Address, epoch: u64) -> usize {
    let c = net.owner.contract();
    let requests = c.SecretRequested_filter().from_block(net.start).query().await.expect("requests");
    let theirs: Vec<U256> =
        requests.into_iter().filter(|(e, _)| e.requester == requester).map(|(e, _)| e.requestId).collect();
    let deliveries = c.SecretDelivered_filter().from_block(net.start).query().await.expect("deliveries");
    deliveries.into_iter().filter(|(e, _)| e.epoch == epoch && theirs.contains(&e.requestId)).count()
}

/// A custody reset (a re-bootstrap) is not a rotation: its secret has no link to the old one. A holder
/// of the old epoch stops serving and keeps its secret; it does not ask for the new cluster's, which
/// would leave its app unable to read what it wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custody_reset_leaves_a_holder_its_secret() {
    let net = Net::start_pinned("reset", Net::dev_policy()).await;
    let mut holder = net.genesis(1).await;
    let secret = fs::read(holder.secret_path()).expect("the genesis secret");
    // The owner re-bootstraps (no widening delay on this net: at once) with a cluster of the test's.
    net.found_cluster(&net.owner, 2, b"an unrelated secret", "custody reset").await;
    assert_eq!(net.owner.contract().epoch().call().await.expect("epoch"), 2);
    wait_until("the holder to see the reset", T, || async { holder.log().contains("began with a custody reset") })
        .await;
    assert!(holder.alive(), "it stays up, serving nothing:\n{}", holder.log());
    let status = holder.status_json().await.expect("its /status");
    assert_eq!(status["role"], "stopped", "it does not claim to hold the epoch: {status}");
    assert!(status["stopped"].as_str().is_some_and(|why| why.contains("custody reset")), "{status}");
    assert_eq!(fs::read(holder.secret_path()).expect("secret"), secret, "its secret is untouched");
    assert_eq!(net.request_count().await, 0, "no request for the new epoch");
}

/// A superseded holder whose RPC invents the rotation (a `ClusterRotated` log for what was a custody
/// reset) requests the new epoch, and is delivered the reset's secret, which has no link to its own:
/// it installs nothing, keeps its secret and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_installs_a_new_epoch_only_if_it_descends_from_its_own() {
    let net = Net::start_pinned("descent", Net::dev_policy()).await;
    let mut genesis = net.genesis(1).await;
    let secret = fs::read(genesis.secret_path()).expect("the genesis secret");
    genesis.terminate();
    // The holder's RPC answers every search for a ClusterRotated log with one.
    let rotated = format!("{:#x}", <Op::ClusterRotated as alloy::sol_types::SolEvent>::SIGNATURE_HASH);
    let contract = net.contract;
    let lie: replicatoor_tests::proxy::Rewrite = std::sync::Arc::new(move |req: &serde_json::Value, mut ans| {
        let topic = req["params"][0]["topics"][0].as_str().map(str::to_owned);
        if req["method"] == "eth_getLogs" && topic.as_deref() == Some(rotated.as_str()) {
            let log = serde_json::json!({
                "address": contract, "topics": [rotated, format!("0x{:064x}", 2)], "data": "0x",
                "blockNumber": "0x1", "blockHash": format!("0x{:064x}", 1), "transactionHash": format!("0x{:064x}", 1),
                "transactionIndex": "0x0", "logIndex": "0x0", "removed": false,
            });
            ans["result"] = serde_json::Value::Array(vec![log]);
        }
        ans
    });
    let rpc = replicatoor_tests::proxy::RpcProxy::start(&net.url, lie).await;
    let mut holder = net.agent_via(rpc.url(), "genesis", 1, &compose_good(), &[], &[]);
    wait_until("the holder serving again", T, || holding(&holder)).await;
    // A custody reset to a cluster of the test's, whose secret has no link to the holder's.
    let (reset, _) = net.found_cluster(&net.owner, 2, b"an unrelated secret", "custody reset").await;
    wait_until("the holder's request for epoch 2", T, || async { net.request_count().await == 1 }).await;
    net.deliver(&net.owner, &reset, 1).await;
    let status = holder.exited(T).await;
    assert!(!status.success(), "it fails on that delivery:\n{}", holder.log());
    assert!(holder.log().contains("does not carry this node's epoch-1 secret"), "{}", holder.log());
    assert_eq!(fs::read(holder.secret_path()).expect("secret"), secret, "its secret is untouched");
    assert_eq!(keyring(&holder), (1, vec![(1, secret.clone())]), "and its keyring");
}
