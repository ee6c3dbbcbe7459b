//! Proven reads on a real chain: every value the agent decides on, read once through the contract's
//! views (`eth_call`) and once from `eth_getProof` checked against the block's state root, must
//! agree at the same block; a receipt set must rebuild the block's receipts root; a header must hash
//! to its block hash. Then the lies an RPC could tell (one storage value, a proof node, a log, a
//! dropped receipt, a header field) are each caught for their own reason.

use alloy::{
    consensus::Header,
    eips::BlockId,
    primitives::{Address, Bytes, B256, U256},
    providers::Provider,
};
use replicatoor::admin;
use replicatoor_chain::{
    layout::{Reads, Views},
    proof::{verify_header, verify_receipts, ProofError, ProvenStorage, TrustedHeader},
    Chain,
};
use replicatoor_core::{
    crypto::HpkeKeypair,
    protocol::{app_reference_id, os_reference_id, request_key, Policy, RefKind, RequestStatus},
};
use replicatoor_testkit::simulated::SimulatedTd;
use replicatoor_tests::{compose_good, compose_hash, key, Net};

/// A header fetched over RPC, checked against its own hash (the trust anchor comes from the light
/// client in production; here the test is about the proofs).
async fn header_at(chain: &Chain, number: u64) -> (Header, TrustedHeader) {
    let block = chain.provider().get_block_by_number(number.into()).await.expect("block").expect("exists");
    let hash = block.header.hash;
    let header = block.header.inner.clone();
    let trusted = verify_header(&header, hash).expect("anvil's header hashes to its hash");
    (header, trusted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proven_reads_equal_the_views_and_lies_are_caught() {
    let net = Net::start("proofs", Net::dev_policy()).await;
    let genesis = net.genesis(1).await; // a cluster, so requests are taken (and `cluster` is not zero)
    let td = SimulatedTd::new(compose_hash(&compose_good()));
    let os_id = os_reference_id(&td.mr_td, &td.rtmr0, &td.rtmr1, &td.rtmr2);
    let app_id = app_reference_id(&compose_hash(&compose_good()));
    let revoked_id = app_reference_id(&[7; 32]);
    admin::propose_app(&net.owner, [7; 32], "to be revoked", &[]).await.expect("propose");
    admin::revoke(&net.owner, revoked_id, "revoked").await.expect("revoke");
    // A version whose grace period ends before the block the reads are made at.
    let expired_id = app_reference_id(&[8; 32]);
    admin::propose_app(&net.owner, [8; 32], "superseded", &[]).await.expect("propose");
    let now = net.owner.block(net.head().await).await.expect("head").timestamp;
    admin::schedule_expiry(&net.owner, expired_id, now + 1, "grace ends").await.expect("expiry");
    let wider =
        Policy { tcb_statuses: 0x13, allow_debug: true, allow_simulated: true, min_tcb_evaluation_data_number: 0 };
    admin::set_policy(&net.owner, wider, "wider").await.expect("policy");

    // One request from another account, so a request status and a SecretRequested log exist.
    let sender = key(4);
    let requester = sender.address();
    let hpke = HpkeKeypair::generate();
    let (quote, log) = td.attest(net.owner.deployment().request_report_data(sender.address(), &hpke.public())).unwrap();
    let chain = Chain::connect(&net.url, net.contract, Some(sender)).await.unwrap();
    let sent = chain
        .send(chain.contract().requestSecret(B256::from(hpke.public()), quote.into(), log.into()))
        .await
        .expect("request");
    let (header, trusted) = header_at(&chain, sent.block).await;

    // ---- the request a key and requester made (how a new node knows the id it follows is its own)
    let pk = B256::from(hpke.public());
    let request = request_key(&hpke.public(), requester);
    let other = request_key(&hpke.public(), Address::repeat_byte(5));
    let by_key = Reads::default().request(request).request(other);
    let answer =
        chain.provider().get_proof(net.contract, by_key.slots().to_vec()).block_id(sent.block.into()).await.unwrap();
    let proven = ProvenStorage::verify(&trusted, net.contract, &answer).expect("anvil's proof verifies");
    let view_id = chain.contract().requestIdOf(pk, requester).block(sent.block.into()).call().await.unwrap();
    assert_eq!(Views(&proven).request_id(request).unwrap(), view_id);
    assert_eq!(view_id, U256::from(1));
    assert_eq!(Views(&proven).request_id(other).unwrap(), U256::ZERO, "another requester");

    // ---- a holder's commitment (protocol v5): the slot under its sender, proven == the view
    let committed = B256::repeat_byte(0xc5);
    let c = chain.send(chain.contract().commit(committed)).await.expect("commit");
    let (_, at_commit) = header_at(&chain, c.block).await;
    let reads = Reads::default().commitment(requester).commitment(Address::repeat_byte(5));
    let answer =
        chain.provider().get_proof(net.contract, reads.slots().to_vec()).block_id(c.block.into()).await.unwrap();
    let proven = ProvenStorage::verify(&at_commit, net.contract, &answer).expect("anvil's proof verifies");
    let view = chain.contract().commitments(requester).block(c.block.into()).call().await.unwrap();
    assert_eq!(Views(&proven).commitment(requester).unwrap(), view);
    assert_eq!(view, committed);
    assert_eq!(Views(&proven).commitment(Address::repeat_byte(5)).unwrap(), B256::ZERO, "another sender's slot");

    // ---- storage: proven == view, at the same block
    let reads =
        Reads::state().reference(os_id).reference(app_id).reference(revoked_id).reference(expired_id).request(request);
    let answer =
        chain.provider().get_proof(net.contract, reads.slots().to_vec()).block_id(sent.block.into()).await.unwrap();
    let proven = ProvenStorage::verify(&trusted, net.contract, &answer).expect("anvil's proof verifies");
    let views = Views(&proven);
    let at = BlockId::number(sent.block);
    assert_eq!(views.policy().unwrap(), chain.policy_at(at).await.unwrap());
    assert_eq!(views.policy().unwrap(), wider);
    let (cluster, epoch) = chain.cluster_at(at).await.unwrap();
    assert_eq!((views.cluster().unwrap(), views.epoch().unwrap()), (cluster, epoch));
    assert!(cluster != Address::ZERO && epoch == 1);
    for (id, kind, expected) in [
        (os_id, RefKind::Os, true),
        (app_id, RefKind::App, true),
        (revoked_id, RefKind::App, false),
        (app_id, RefKind::Os, false),
        (expired_id, RefKind::App, false),
    ] {
        assert_eq!(views.is_allowed(id, kind).unwrap(), chain.is_allowed_at(id, kind, at).await.unwrap());
        assert_eq!(views.is_allowed(id, kind).unwrap(), expected, "{id} as {kind:?}");
    }
    assert_eq!(views.expires_at(expired_id).unwrap(), Some(now + 1), "expiresAt at byte 10 of the record");
    assert_eq!(views.expires_at(app_id).unwrap(), None);
    assert_eq!(views.request_status(request).unwrap(), chain.request_status(request, at).await.unwrap());
    assert_eq!(views.request_status(request).unwrap(), RequestStatus::Pending);
    assert_eq!(views.request_id(request).unwrap(), U256::from(1), "the id shares the status's slot");
    assert_eq!(views.request_count().unwrap(), U256::from(1));
    // Another request's slot was not proven.
    let state_slots = Reads::state().slots().len();
    assert_eq!(
        views.request_status(other),
        Err(ProofError::MissingSlot(Reads::state().request(other).slots()[state_slots]))
    );
    assert_eq!(views.rotation_for().unwrap(), 0, "no rotation under way yet");

    // ---- a rotation under way (protocol v6): rotationFor and rotationAfter share slot 17, proven == the views
    let started = net.owner.send(net.owner.contract().startRotation("proofs".into())).await.expect("start rotation");
    let (_, at_start) = header_at(&chain, started.block).await;
    let rotating = chain
        .provider()
        .get_proof(net.contract, Reads::state().slots().to_vec())
        .block_id(started.block.into())
        .await
        .unwrap();
    let proven = ProvenStorage::verify(&at_start, net.contract, &rotating).expect("anvil's proof verifies");
    let at = BlockId::number(started.block);
    let c = net.owner.contract();
    assert_eq!(Views(&proven).rotation_for().unwrap(), c.rotationFor().block(at).call().await.unwrap());
    assert_eq!(Views(&proven).rotation_for().unwrap(), 2, "a rotation to epoch 2");
    let after = U256::from(c.rotationAfter().block(at).call().await.unwrap());
    assert_eq!(Views(&proven).rotation_after().unwrap(), after);
    assert_eq!(after, U256::from(1), "the genesis proposal came before the rotation");

    // ---- an RPC that lies about one storage value
    let mut lie = answer.clone();
    let i = lie.storage_proof.len() - 1;
    lie.storage_proof[i].value = U256::from(2); // the request: "delivered" (and id 0)
    assert!(matches!(ProvenStorage::verify(&trusted, net.contract, &lie), Err(ProofError::Storage { .. })));
    // ... claims a set slot is empty
    let mut lie = answer.clone();
    lie.storage_proof[0].value = U256::ZERO;
    assert!(matches!(ProvenStorage::verify(&trusted, net.contract, &lie), Err(ProofError::Storage { .. })));
    // ... alters a node of the account proof
    let mut lie = answer.clone();
    let mut node = lie.account_proof[0].to_vec();
    let last = node.len() - 1;
    node[last] ^= 1;
    lie.account_proof[0] = Bytes::from(node);
    assert!(matches!(ProvenStorage::verify(&trusted, net.contract, &lie), Err(ProofError::Account { .. })));
    // ... swaps in another storage root (another contract's storage)
    let mut lie = answer.clone();
    lie.storage_hash = B256::repeat_byte(1);
    assert!(matches!(ProvenStorage::verify(&trusted, net.contract, &lie), Err(ProofError::Account { .. })));
    // ... answers for another account
    assert!(matches!(
        ProvenStorage::verify(&trusted, Address::repeat_byte(9), &answer),
        Err(ProofError::WrongAccount { .. })
    ));
    // ... or proves against a state root the TD does not trust (another chain's)
    let other_chain = TrustedHeader { state_root: B256::repeat_byte(2), ..trusted };
    assert!(matches!(ProvenStorage::verify(&other_chain, net.contract, &answer), Err(ProofError::Account { .. })));

    // ---- receipts: the block's logs, complete and unaltered
    let receipts = chain.provider().get_block_receipts(sent.block.into()).await.unwrap().expect("receipts");
    assert!(receipts.iter().any(|r| r.transaction_hash == sent.tx_hash));
    verify_receipts(&trusted, &receipts).expect("anvil's receipts rebuild the receipts root");
    let dropped: Vec<_> = receipts.iter().filter(|r| r.transaction_hash != sent.tx_hash).cloned().collect();
    assert!(matches!(verify_receipts(&trusted, &dropped), Err(ProofError::ReceiptsRoot { .. })), "a dropped log");
    let mut inserted = receipts.clone();
    inserted.push(receipts[0].clone());
    assert!(matches!(verify_receipts(&trusted, &inserted), Err(ProofError::ReceiptsRoot { .. })), "an inserted log");
    let mut altered = receipts.clone();
    let r = altered.iter_mut().find(|r| r.transaction_hash == sent.tx_hash).unwrap();
    let logs = r.inner.as_receipt_with_bloom_mut().expect("typed receipt").receipt.logs.as_mut_slice();
    let data = logs[0].inner.data.data.to_vec();
    let mut forged = data.clone();
    forged[0] ^= 1;
    logs[0].inner.data = alloy::primitives::LogData::new_unchecked(logs[0].inner.data.topics().to_vec(), forged.into());
    assert!(matches!(verify_receipts(&trusted, &altered), Err(ProofError::ReceiptsRoot { .. })), "an altered log");
    let mut elsewhere = receipts.clone();
    elsewhere[0].block_hash = Some(B256::repeat_byte(3));
    assert!(matches!(verify_receipts(&trusted, &elsewhere), Err(ProofError::ReceiptBlock { .. })));

    // ---- headers: a header is what its hash says
    let mut forged = header.clone();
    forged.receipts_root = B256::repeat_byte(4);
    assert!(matches!(verify_header(&forged, trusted.hash), Err(ProofError::HeaderHash { .. })));
    let (parent, _) = header_at(&chain, sent.block - 1).await;
    assert_eq!(verify_header(&parent, header.parent_hash).unwrap().number, sent.block - 1, "parent link");
    drop(genesis);
}

fn now() -> u64 {
    // anvil stamps blocks with the wall clock, so freshness is judged against it here.
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// The verified view over a quorum of RPCs: a fresh trusted header, proven storage and a proven
/// request event; then an RPC that alters the event, serves a forged header, or a quorum member
/// that disagrees, each stops the read with its own error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_view_proves_events_and_refuses_lying_rpcs() {
    use replicatoor_chain::{
        bindings::UpgradeOperator as Op,
        verified::{QuorumSource, VerifiedView, ViewError},
    };
    use replicatoor_tests::proxy::RpcProxy;
    use serde_json::Value;
    use std::sync::Arc;

    let net = Net::start("verified-view", Net::dev_policy()).await;
    let genesis = net.genesis(1).await;
    let td = SimulatedTd::new(compose_hash(&compose_good()));
    let sender = key(4);
    let hpke = HpkeKeypair::generate();
    let (quote, log) = td.attest(net.owner.deployment().request_report_data(sender.address(), &hpke.public())).unwrap();
    let chain = Chain::connect(&net.url, net.contract, Some(sender.clone())).await.unwrap();
    let sent = chain
        .send(chain.contract().requestSecret(B256::from(hpke.public()), quote.clone().into(), log.into()))
        .await
        .expect("request");
    let rpcs = || async {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(Chain::connect(&net.url, net.contract, None).await.unwrap());
        }
        v
    };
    let view = VerifiedView::new(chain.clone(), QuorumSource::new(rpcs().await, 2, 0), 60);

    let h = view.decision_header(now(), sent.block).await.expect("a fresh header covering the request");
    assert!(h.number >= sent.block);
    assert!(matches!(view.decision_header(now() + 3_600, sent.block).await, Err(ViewError::Stale { .. })));
    assert!(matches!(view.decision_header(now(), h.number + 100).await, Err(ViewError::NotYet { .. })));

    let events = view.events_in_block::<Op::SecretRequested>(&h, sent.block).await.expect("proven event");
    assert_eq!(events.len(), 1);
    let ev = &events[0];
    assert_eq!((ev.requester, ev.hpkePubKey), (sender.address(), B256::from(hpke.public())));
    assert_eq!(ev.quote.to_vec(), quote);
    let block = view.header_of(&h, sent.block).await.unwrap();
    assert_eq!(block.number, sent.block);
    let request = request_key(&ev.hpkePubKey.0, ev.requester);
    let storage = view.storage(&h, &Reads::state().request(request)).await.expect("proven storage");
    assert_eq!(Views(&storage).request_status(request).unwrap(), RequestStatus::Pending);

    // Linked over a distance: mine a few blocks, decide later, still find the same event.
    let _: Value = net.owner.provider().raw_request("anvil_mine".into(), ("0x5",)).await.unwrap();
    let later = view.decision_header(now(), sent.block + 5).await.unwrap();
    let linked = view.header_of(&later, sent.block).await.unwrap();
    assert_eq!(linked.hash, block.hash);

    // An RPC that alters one byte of the request's quote in the receipts it serves.
    let alter: replicatoor_tests::proxy::Rewrite = Arc::new(|req: &Value, mut ans: Value| {
        if req["method"] == "eth_getBlockReceipts" {
            if let Some(data) = ans["result"][0]["logs"][0]["data"].as_str().map(str::to_string) {
                let last = if data.ends_with('0') { "1" } else { "0" };
                ans["result"][0]["logs"][0]["data"] = Value::String(format!("{}{last}", &data[..data.len() - 1]));
            }
        }
        ans
    });
    let proxy = RpcProxy::start(&net.url, alter).await;
    let lying = Chain::connect(proxy.url(), net.contract, None).await.unwrap();
    let lied = VerifiedView::new(lying, QuorumSource::new(rpcs().await, 2, 0), 60);
    let h2 = lied.decision_header(now(), sent.block).await.unwrap();
    let err = lied.events_in_block::<Op::SecretRequested>(&h2, sent.block).await.unwrap_err();
    assert!(matches!(err, ViewError::Proof(ProofError::ReceiptsRoot { .. })), "{err}");

    // An RPC that serves another header for a block (a chain it runs itself).
    let forge: replicatoor_tests::proxy::Rewrite = Arc::new(|req: &Value, mut ans: Value| {
        if req["method"] == "eth_getBlockByHash" {
            ans["result"]["stateRoot"] = Value::String(format!("0x{}", "11".repeat(32)));
        }
        ans
    });
    let proxy = RpcProxy::start(&net.url, forge).await;
    let lying = Chain::connect(proxy.url(), net.contract, None).await.unwrap();
    let lied = VerifiedView::new(lying, QuorumSource::new(rpcs().await, 2, 0), 60);
    let h3 = lied.decision_header(now(), sent.block).await.unwrap();
    let err = lied.header_of(&h3, sent.block.saturating_sub(1)).await.unwrap_err();
    assert!(matches!(err, ViewError::Proof(ProofError::HeaderHash { .. })), "{err}");

    // A quorum member that shows another block: 2 of 3 still agree; all 3 required does not.
    let forge_head: replicatoor_tests::proxy::Rewrite = Arc::new(|req: &Value, mut ans: Value| {
        if req["method"] == "eth_getBlockByNumber" {
            ans["result"]["receiptsRoot"] = Value::String(format!("0x{}", "22".repeat(32)));
        }
        ans
    });
    let proxy = RpcProxy::start(&net.url, forge_head).await;
    let mut members = rpcs().await;
    members[2] = Chain::connect(proxy.url(), net.contract, None).await.unwrap();
    let two_of_three = VerifiedView::new(chain.clone(), QuorumSource::new(members, 2, 1), 60);
    two_of_three.decision_header(now(), sent.block).await.expect("two honest members agree");
    let mut members = rpcs().await;
    members[2] = Chain::connect(proxy.url(), net.contract, None).await.unwrap();
    let all = VerifiedView::new(chain.clone(), QuorumSource::new(members, 3, 1), 60);
    assert!(matches!(all.decision_header(now(), sent.block).await, Err(ViewError::NoHeader(_))));
    drop(genesis);
}

/// A block more than a few below the trusted header is linked by the EIP-2935 history contract,
/// proven in the header's state: further than parent hashes are walked (300 blocks), with one lie in
/// the history slot caught, a broken history proof falling back to walking where that reaches, and
/// a block beyond the contract's window refused outright.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_contract_links_blocks_beyond_the_parent_walk() {
    use alloy::eips::eip2935::HISTORY_STORAGE_ADDRESS;
    use replicatoor_chain::verified::{QuorumSource, VerifiedView, ViewError, HISTORY_WINDOW, MAX_WALK_DISTANCE};
    use replicatoor_tests::proxy::{Rewrite, RpcProxy};
    use serde_json::Value;
    use std::sync::Arc;

    let net = Net::start("history-link", Net::dev_policy()).await;
    let chain = Chain::connect(&net.url, net.contract, None).await.unwrap();
    let old = chain.head().await.unwrap();
    let (_, old_trusted) = header_at(&chain, old).await;
    let _: Value = net.owner.provider().raw_request("anvil_mine".into(), ("0x12c",)).await.unwrap();
    let quorum =
        || async { QuorumSource::new(vec![Chain::connect(&net.url, net.contract, None).await.unwrap()], 1, 0) };
    let view = VerifiedView::new(chain.clone(), quorum().await, 3_600);
    let at = view.decision_header(now(), old + 300).await.unwrap();
    assert!(at.number - old > MAX_WALK_DISTANCE, "the block is beyond the parent walk");
    assert_eq!(view.header_of(&at, old).await.expect("linked by the history contract"), old_trusted);
    // Beyond the window: refused before any RPC call.
    let far = TrustedHeader { number: old + HISTORY_WINDOW + 1, ..at };
    assert!(matches!(view.header_of(&far, old).await, Err(ViewError::TooFar { max: HISTORY_WINDOW, .. })));

    // An RPC that names another hash in the history slot (the proof no longer verifies).
    let lie: Rewrite = Arc::new(|req: &Value, mut ans: Value| {
        if req["method"] == "eth_getProof"
            && req["params"][0].as_str().is_some_and(|a| a.eq_ignore_ascii_case(&HISTORY_STORAGE_ADDRESS.to_string()))
        {
            ans["result"]["storageProof"][0]["value"] = Value::String(format!("0x{}", "ab".repeat(32)));
        }
        ans
    });
    let proxy = RpcProxy::start(&net.url, lie).await;
    let lied = VerifiedView::new(Chain::connect(proxy.url(), net.contract, None).await.unwrap(), quorum().await, 3_600);
    let err = lied.header_of(&at, old).await.unwrap_err();
    // Beyond the parent walk the block cannot be linked: the lie is named, and callers fall back.
    assert!(matches!(err, ViewError::NoHistory(_)) && err.to_string().contains("storage proof for slot"), "{err}");
    // Within the parent walk, the same lie only costs more calls: the block is still linked.
    assert_eq!(lied.header_of(&at, at.number - 20).await.unwrap(), header_at(&chain, at.number - 20).await.1);
}

/// `storage_near`: when the RPC cannot prove the reads at the trusted header (anvil, for a moment
/// after a block), they are proven at its parent, linked by hash, but only while the parent still
/// covers the block the decision needs; a parent the RPC cannot prove either leaves the first error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_near_falls_back_to_the_parent_only_while_it_covers_the_need() {
    use replicatoor_chain::verified::{QuorumSource, VerifiedView, ViewError};
    use replicatoor_tests::proxy::{Rewrite, RpcProxy};
    use serde_json::Value;
    use std::sync::{Arc, Mutex};

    let net = Net::start("storage-near", Net::dev_policy()).await;
    let chain = Chain::connect(&net.url, net.contract, None).await.unwrap();
    let _: Value = net.owner.provider().raw_request("anvil_mine".into(), ("0x3",)).await.unwrap();
    // The RPC answers a storage proof of other state at the blocks (by hash, as the view asks) named here.
    let broken: Arc<Mutex<Vec<B256>>> = Arc::default();
    let b = broken.clone();
    let lie: Rewrite = Arc::new(move |req: &Value, mut ans: Value| {
        let at = &req["params"][2];
        let at = at["blockHash"].as_str().or(at.as_str()).and_then(|h| h.parse::<B256>().ok());
        if req["method"] == "eth_getProof" && at.is_some_and(|h| b.lock().unwrap().contains(&h)) {
            ans["result"]["storageProof"][0]["value"] = Value::String("0x2a".into());
        }
        ans
    });
    let proxy = RpcProxy::start(&net.url, lie).await;
    let quorum = QuorumSource::new(vec![Chain::connect(&net.url, net.contract, None).await.unwrap()], 1, 0);
    let view = VerifiedView::new(Chain::connect(proxy.url(), net.contract, None).await.unwrap(), quorum, 3_600);
    let head = view.decision_header(now(), 1).await.unwrap();
    let reads = Reads::state();
    let want = Views(&view.storage(&head, &reads).await.unwrap()).cluster().unwrap();

    // Served at the header: proven there.
    let s = view.storage_near(&head, head.number, &reads).await.unwrap();
    assert_eq!((*s.header(), Views(&s).cluster().unwrap()), (head, want));

    // Not served at the header: proven at its parent, which the header's hash links.
    broken.lock().unwrap().push(head.hash);
    assert!(matches!(view.storage(&head, &reads).await, Err(ViewError::Proof(ProofError::Storage { .. }))));
    let parent = header_at(&chain, head.number - 1).await.1;
    let s = view.storage_near(&head, head.number - 1, &reads).await.unwrap();
    assert_eq!(*s.header(), parent, "the parent");
    assert_eq!(Views(&s).cluster().unwrap(), want);
    // ... but never below the block the decision needs.
    let err = view.storage_near(&head, head.number, &reads).await.unwrap_err();
    assert!(matches!(err, ViewError::Proof(ProofError::Storage { .. })), "{err}");
    // Neither served: the header's own error.
    broken.lock().unwrap().push(parent.hash);
    let err = view.storage_near(&head, head.number - 1, &reads).await.unwrap_err();
    assert!(matches!(err, ViewError::Proof(ProofError::Storage { .. })), "{err}");
}
