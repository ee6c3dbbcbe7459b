//! `replicatoor encode request`: the calldata a node would post for a genuine Dstack quote and event
//! log, reproduced without a node. It is byte for byte what the agent sends, and sent raw by an
//! independent client it makes the same request event for the same gas.

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Bytes, U256},
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    sol_types::{SolCall, SolEvent},
};
use replicatoor_chain::{Chain, UpgradeOperator as Op};
use replicatoor_core::attest::{eventlog::EventLog, quote::Measurements};
use replicatoor_tests::{key, root, Net};
use serde_json::Value;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encode_request_prints_what_the_agent_sends_and_an_independent_client_can_send_it() {
    let fixture = root().join("tests/fixtures/dstack/tdx-lite-getquote.json");
    let pk = [0x5au8; 32];
    let out = Command::new(env!("CARGO_BIN_EXE_replicatoor-dev"))
        .args(["encode", "request", "--quote"])
        .arg(&fixture)
        .arg("--event-log")
        .arg(&fixture)
        .args(["--pubkey", &hex::encode(pk)])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.lines().count(), 1, "one line");
    let calldata = hex::decode(text.trim().strip_prefix("0x").expect("0x-hex")).expect("hex");

    // What it carries: the GetQuote response's quote, the key, and its event log compacted, which
    // still replays to the quote's RTMR3.
    let resp: Value = serde_json::from_slice(&std::fs::read(&fixture).unwrap()).unwrap();
    let quote = hex::decode(resp["quote"].as_str().unwrap()).unwrap();
    let call = Op::requestSecretCall::abi_decode(&calldata).expect("requestSecret calldata");
    assert_eq!((call.hpkePubKey.0, call.quote.to_vec()), (pk, quote.clone()));
    let log = EventLog::from_compact(&call.eventLog).expect("compact event log");
    let (_, _, m) = Measurements::parse_unverified(&quote).unwrap();
    assert_eq!(log.replay_rtmr(3).unwrap(), m.unwrap().rtmr[3], "replays to the quote's RTMR3");

    // The agent's own encoding (its Dstack provider compacts the log the same way) is the same bytes.
    let compact = EventLog::from_dstack_json(resp["event_log"].as_str().unwrap()).unwrap().to_compact().unwrap();
    assert_eq!(Op::requestSecretCall::new(pk, quote.clone(), compact.clone()).abi_encode(), calldata);

    // On chain: the agent's send, and the printed calldata sent raw by another client.
    let net = Net::start("encode-request", Net::dev_policy()).await;
    drop(net.genesis(1).await); // requests need a cluster; none is answered here
    let chain = Chain::connect(&net.url, net.contract, Some(key(4))).await.unwrap();
    let agent =
        chain.send(chain.contract().call_builder(&Op::requestSecretCall::new(pk, quote, compact))).await.unwrap();
    let raw = ProviderBuilder::new().wallet(EthereumWallet::from(key(5))).connect_http(net.url.parse().unwrap());
    let tx = TransactionRequest::default().with_to(net.contract).with_input(Bytes::from(calldata));
    let receipt = raw.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.gas_used, agent.gas_used, "same gas");
    let event = |logs: &[alloy::rpc::types::Log]| {
        let log = logs.iter().find(|l| l.topic0() == Some(&Op::SecretRequested::SIGNATURE_HASH)).unwrap();
        log.log_decode::<Op::SecretRequested>().unwrap().inner.data
    };
    let (a, b) = (event(agent.receipt.inner.logs()), event(receipt.inner.logs()));
    assert_eq!((a.requestId, b.requestId), (U256::from(1), U256::from(2)));
    assert_eq!((a.hpkePubKey, &a.quote, &a.eventLog), (b.hpkePubKey, &b.quote, &b.eventLog), "same request");
    eprintln!(
        "requestSecret for the genuine Dstack quote ({} B calldata): {} gas",
        text.trim().len() / 2 - 1,
        receipt.gas_used
    );
}
