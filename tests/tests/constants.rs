//! Rust and Solidity agree on every constant both sides rely on: refusal codes, size caps, TCB
//! policy bits, reference kinds and ids, and the EIP-712 type hashes and digests.
//!
//! The contract's side is read from the contract the agents deploy (the committed artifact, which
//! `script/sync-abi.sh --check` keeps equal to a fresh forge build), through its public getters on
//! anvil, and where a constant is enforced, by what the contract accepts and reverts (`eth_call`,
//! nothing sent). The EVM then evaluates `16 * 1024`, `uint16(1) << 6` or `keccak256("…")` exactly as
//! on chain; reading the source text would mean re-implementing Solidity's constant folding, and
//! would miss a constant that is declared right but enforced wrong.

use alloy::{
    eips::BlockId,
    primitives::{Address, Bytes, B256, U256},
    signers::local::PrivateKeySigner,
    sol_types::SolStruct,
};
use replicatoor_chain::{Chain, UpgradeOperator as Op, UpgradeOperator::UpgradeOperatorErrors};
use replicatoor_core::{
    attest::{
        collateral::NoCollateral,
        eventlog::COMPACT_MAX_LEN,
        pipeline::{self, Context, Decision},
        verifier::MAX_QUOTE_LEN,
        RequestBinding, TcbStatus, Verifier,
    },
    crypto::{bundle::MAX_SECRET_FILE, eip712, BundleError, HpkeKeypair, SecretBundle},
    delivery,
    protocol::{app_reference_id, os_reference_id, RefKind},
    refusal::Refusal,
};
use replicatoor_testkit::{
    doubles::AllowList,
    simulated::{self, SimulatedTd},
};
use replicatoor_tests::{compose_good, compose_hash, key, Net};
use zeroize::Zeroizing;

/// The contract's custom error, if `r` is an `eth_call` that reverted with one.
fn revert<T: std::fmt::Debug>(r: Result<T, alloy::contract::Error>) -> Option<UpgradeOperatorErrors> {
    match r {
        Ok(_) => None,
        Err(e) => Some(
            e.as_decoded_interface_error::<UpgradeOperatorErrors>()
                .unwrap_or_else(|| panic!("not a contract revert: {e}")),
        ),
    }
}

fn trusting_verifier() -> Verifier {
    Verifier::new(Box::new(NoCollateral)).dangerously_trust_simulated_quotes(simulated::anchor())
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// A cluster founded from the test (genesis proposed and approved) whose secret file is `file`,
/// and a pending request from anvil key 2 with a fresh HPKE key: (bundle, request id, requester's key).
async fn cluster_with_a_request(net: &Net, file: Vec<u8>) -> (SecretBundle, U256, HpkeKeypair) {
    let cluster_key = Zeroizing::new(PrivateKeySigner::random().to_bytes().0);
    let bundle = SecretBundle::new(cluster_key, 1, Zeroizing::new(file)).expect("bundle");
    let dep = net.owner.deployment();
    let td = SimulatedTd::new(compose_hash(&compose_good()));
    let (quote, log) = td.attest(dep.genesis_report_data(bundle.cluster_address(), 1)).expect("genesis quote");
    let propose = net.owner.contract().proposeGenesis(bundle.cluster_address(), quote.into(), log.into());
    net.owner.send(propose).await.expect("propose genesis");
    replicatoor::admin::approve_genesis(&net.owner, &trusting_verifier(), U256::from(1), "constants test")
        .await
        .expect("approve genesis");

    let requester = Chain::connect(&net.url, net.contract, Some(key(2))).await.expect("requester client");
    let hpke = HpkeKeypair::generate();
    let (quote, log) = td.attest(dep.request_report_data(key(2).address(), &hpke.public())).expect("request quote");
    let call = requester.contract().requestSecret(B256::from(hpke.public()), quote.into(), log.into());
    let id =
        requester.send(call).await.expect("requestSecret").event::<Op::SecretRequested>().expect("event").requestId;
    (bundle, id, hpke)
}

/// The contract takes exactly the reason codes Rust has, 1..=MAX_REASON.
#[tokio::test]
async fn refusal_codes_are_the_contracts_reason_range() {
    let net = Net::instant("constants-refusals", Net::dev_policy()).await;
    let c = net.owner.contract();
    let max = c.MAX_REASON().call().await.expect("MAX_REASON");
    let codes: Vec<u8> = Refusal::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(codes, (1..=max).collect::<Vec<u8>>(), "Rust's codes are 1..=MAX_REASON ({max}), dense");

    let (bundle, id, _) = cluster_with_a_request(&net, b"constants".to_vec()).await;
    let dep = net.owner.deployment();
    let request = net.request_key(id.to()).await;
    for reason in (0..=max.saturating_add(2)).chain([u8::MAX]) {
        let record = eip712::Refusal { requestId: id, request, reason };
        let signature = eip712::sign(&dep, &record, bundle.cluster_signer()).expect("sign");
        let call = c.refuseRequest(id, request, reason, Bytes::copy_from_slice(&signature));
        match (Refusal::from_code(reason), revert(call.call().await)) {
            (Some(_), None) => {}
            (None, Some(UpgradeOperatorErrors::InvalidReason(e))) => assert_eq!(e.reason, reason),
            (known, outcome) => panic!("reason {reason}: Rust knows it as {known:?}, the contract says {outcome:?}"),
        }
    }
}

#[tokio::test]
async fn size_caps_agree() {
    let net = Net::instant("constants-sizes", Net::dev_policy()).await;
    let c = net.owner.contract();
    let quote_cap = c.MAX_QUOTE_BYTES().call().await.expect("MAX_QUOTE_BYTES");
    let log_cap = c.MAX_EVENT_LOG_BYTES().call().await.expect("MAX_EVENT_LOG_BYTES");
    assert_eq!(quote_cap, U256::from(MAX_QUOTE_LEN), "quote size cap: contract vs verifier::MAX_QUOTE_LEN");
    assert_eq!(log_cap, U256::from(COMPACT_MAX_LEN), "event log size cap: contract vs eventlog::COMPACT_MAX_LEN");
}

/// The largest secret file a bundle may carry, sealed, fits the contract's ciphertext cap: it is
/// delivered on chain. One byte more is refused by the bundle itself.
#[tokio::test]
async fn largest_secret_bundle_is_deliverable() {
    let net = Net::instant("constants-bundle", Net::dev_policy()).await;
    let cap = net.owner.contract().MAX_CIPHERTEXT_BYTES().call().await.expect("MAX_CIPHERTEXT_BYTES");
    let too_big = SecretBundle::new(Zeroizing::new([7; 32]), 1, Zeroizing::new(vec![0; MAX_SECRET_FILE + 1]));
    assert!(matches!(too_big, Err(BundleError::TooLarge { .. })), "a bundle over MAX_SECRET_FILE is refused");

    let (bundle, id, hpke) = cluster_with_a_request(&net, vec![0x5a; MAX_SECRET_FILE]).await;
    let dep = net.owner.deployment();
    let request = net.request_logs::<Op::SecretRequested>(id).await;
    let ev = request[0].log_decode::<Op::SecretRequested>().expect("decode").inner.data;
    let binding = RequestBinding { request_id: id, requester: ev.requester, hpke_pub_key: hpke.public() };
    let verifier = trusting_verifier();
    let refs = AllowList::allow_all();
    let ctx =
        Context { deployment: dep, verifier: &verifier, policy: Net::dev_policy(), references: &refs, now: now() };
    let accepted = match pipeline::evaluate(&ctx, binding, &ev.quote, &ev.eventLog).await {
        Decision::Accept(a) => a,
        other => panic!("request not accepted: {other:?}"),
    };
    let d = delivery::seal(&dep, &accepted, &bundle).expect("seal the largest bundle");
    assert!(
        U256::from(d.ciphertext.len()) <= cap,
        "{} byte ciphertext over the contract's cap {cap}",
        d.ciphertext.len()
    );

    let call = net.owner.contract().deliverSecret(
        id,
        d.request,
        d.policy,
        d.os_ref,
        d.app_ref,
        d.encapsulated_key.clone().into(),
        d.ciphertext.clone().into(),
        d.signature.clone().into(),
    );
    net.owner.send(call).await.expect("deliverSecret of the largest bundle");
    assert_eq!(net.status(id.to()).await, 2, "delivered");
    let opened = delivery::open(&dep, &hpke, ev.requester, bundle.cluster_address(), &d).expect("opens");
    assert_eq!(opened.file().len(), MAX_SECRET_FILE);
}

/// TCB status bit positions: the getters, and which bits `setPolicy` takes.
#[tokio::test]
async fn tcb_policy_bits_agree() {
    let net = Net::instant("constants-tcb", Net::dev_policy()).await;
    let c = net.owner.contract();
    let revoked = c.TCB_REVOKED_BIT().call().await.expect("TCB_REVOKED_BIT");
    let known = c.TCB_KNOWN_BITS().call().await.expect("TCB_KNOWN_BITS");
    assert_eq!(revoked, TcbStatus::Revoked.bit(), "Revoked's bit");
    let acceptable = TcbStatus::ALL.iter().filter(|s| **s != TcbStatus::Revoked).fold(0u16, |m, s| m | s.bit());
    assert_eq!(known, acceptable, "the bits a policy may set are Rust's statuses but Revoked");

    for bit in 0..16 {
        let mask = 1u16 << bit;
        let status = TcbStatus::ALL.into_iter().find(|s| s.bit() == mask);
        let policy =
            Op::Policy { tcbStatuses: mask, allowDebug: false, allowSimulated: true, minTcbEvaluationDataNumber: 0 };
        let call = c.setPolicy(policy, "constants test".into()).from(key(0).address());
        let outcome = revert(call.call().await);
        match status {
            Some(s) if s.accepted_by(mask) => assert!(outcome.is_none(), "bit {bit} ({s}) refused: {outcome:?}"),
            _ => assert!(
                matches!(outcome, Some(UpgradeOperatorErrors::InvalidTcbStatuses(_))),
                "bit {bit} ({status:?}, never acceptable in Rust) taken by setPolicy: {outcome:?}"
            ),
        }
    }
}

/// Reference ids are computed alike, and the kinds are numbered alike.
#[tokio::test]
async fn reference_kinds_and_ids_agree() {
    let net = Net::instant("constants-refs", Net::dev_policy()).await;
    let c = net.owner.contract();
    let td = SimulatedTd::new([0; 32]);
    let [mrtd, r0, r1, r2] = [td.mr_td, td.rtmr0, td.rtmr1, td.rtmr2];
    let bytes = |m: [u8; 48]| Bytes::copy_from_slice(&m);
    let os = c.osReferenceId(bytes(mrtd), bytes(r0), bytes(r1), bytes(r2)).call().await.expect("osReferenceId");
    assert_eq!(os, os_reference_id(&mrtd, &r0, &r1, &r2), "OS reference id");
    let compose = compose_hash(&compose_good());
    let app = c.appReferenceId(compose.into()).call().await.expect("appReferenceId");
    assert_eq!(app, app_reference_id(&compose), "app reference id");

    // Net proposed both (delay 0): the contract records them under Rust's kind numbers.
    for (id, kind, other) in [(os, RefKind::Os, RefKind::App), (app, RefKind::App, RefKind::Os)] {
        let r = c.getReference(id).call().await.expect("getReference");
        assert_eq!(r.kind, kind as u8, "{kind:?}'s number");
        assert!(net.owner.is_allowed_at(id, kind, BlockId::latest()).await.expect("isAllowed"), "{kind:?} allowed");
        assert!(!net.owner.is_allowed_at(id, other, BlockId::latest()).await.expect("isAllowed"), "not as {other:?}");
    }
}

/// The EIP-712 type hashes, and whole digests under the deployment's domain.
#[tokio::test]
async fn eip712_type_hashes_and_digests_agree() {
    let net = Net::instant("constants-eip712", Net::dev_policy()).await;
    let c = net.owner.contract();
    let dep = net.owner.deployment();
    let (id, os, app) = (U256::from(0x1234_5678u64), B256::repeat_byte(0x0a), B256::repeat_byte(0x0b));
    let (enc, ct) = ([0x0c; 32], vec![0x0d; 100]);
    let (request, policy) = (B256::repeat_byte(0x0e), Net::dev_policy().hash());
    let delivery = replicatoor_testkit::delivery_record(id, request, policy, os, app, &enc, &ct);
    let refusal = eip712::Refusal { requestId: id, request, reason: Refusal::Rtmr3Mismatch.code() };

    assert_eq!(c.DELIVERY_TYPEHASH().call().await.expect("DELIVERY_TYPEHASH"), delivery.eip712_type_hash());
    assert_eq!(c.REFUSAL_TYPEHASH().call().await.expect("REFUSAL_TYPEHASH"), refusal.eip712_type_hash());
    let digest = c
        .deliveryDigest(id, request, policy, os, app, Bytes::copy_from_slice(&enc), ct.clone().into())
        .call()
        .await
        .expect("deliveryDigest");
    assert_eq!(digest, eip712::digest(&dep, &delivery), "Delivery digest");
    // The policy hash is the contract's: the policy in force on this deployment hashes the same both ways.
    let in_force = c.policy().call().await.expect("policy");
    assert_eq!(c.policyHashOf(in_force).call().await.expect("policyHashOf"), policy, "Policy::hash");
    // The request key is the contract's requestIdOf key (checked through a real request in proofs.rs).
    let digest = c.refusalDigest(id, request, refusal.reason).call().await.expect("refusalDigest");
    assert_eq!(digest, eip712::digest(&dep, &refusal), "Refusal digest");
    // A different deployment must not share the digest (the domain binds chain and contract).
    let elsewhere = replicatoor_core::protocol::Deployment { contract: Address::with_last_byte(1), ..dep };
    assert_ne!(digest, eip712::digest(&elsewhere, &refusal));
    // The rotation endorsement (protocol v6).
    let rotation = eip712::Rotation { epoch: 7, cluster: Address::repeat_byte(0xcd) };
    assert_eq!(c.ROTATION_TYPEHASH().call().await.expect("ROTATION_TYPEHASH"), rotation.eip712_type_hash());
    let digest = c.rotationDigest(rotation.epoch, rotation.cluster).call().await.expect("rotationDigest");
    assert_eq!(digest, eip712::digest(&dep, &rotation), "Rotation digest");
}
