//! `replicatoor admin rotate` on the command line against a real anvil and contract: the calldata a
//! multisig owner gets, and the refusals `rotate approve` makes before sending anything. The rotation
//! itself, end to end with holders, is tests/tests/rotation.rs.

use alloy::{
    primitives::{keccak256, Address, Bytes},
    providers::Provider,
    sol_types::SolCall,
};
use replicatoor_chain::UpgradeOperator as Op;
use replicatoor_tests::{key, Net, KEYS};
use serde_json::Value;
use std::process::{Command, Output, Stdio};

fn replicatoor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_replicatoor-dev"))
        .args(args)
        .env_remove("REPLICATOOR_SENDER_KEY")
        .env_remove("REPLICATOOR_RPC_URL")
        .env_remove("REPLICATOOR_CONTRACT")
        .stdin(Stdio::null())
        .output()
        .expect("run replicatoor")
}

fn ok(args: &[&str]) -> String {
    let out = replicatoor(args);
    assert!(
        out.status.success(),
        "replicatoor {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

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
