//! `replicatoor encode request`: the calldata a node would post for a genuine Dstack quote and event
//! log, reproduced without a node. It is byte for byte what the agent sends (the quote in compact
//! form, PROTOCOL.md §3.9), and sent raw by an independent client it makes the same request event
//! for the same gas. A client that posts the raw quote still makes a request, for more gas.

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Bytes, U256},
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    sol_types::{SolCall, SolEvent},
};
use replicatoor_chain::{Chain, UpgradeOperator as Op};
use replicatoor_compact_quote as compact;
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

    // What it carries: the GetQuote response's quote in compact form (which rebuilds it byte for
    // byte), the key, and its event log compacted, which still replays to the quote's RTMR3.
    let resp: Value = serde_json::from_slice(&std::fs::read(&fixture).unwrap()).unwrap();
    let raw_quote = hex::decode(resp["quote"].as_str().unwrap()).unwrap();
    let call = Op::requestSecretCall::abi_decode(&calldata).expect("requestSecret calldata");
    let quote = call.quote.to_vec();
    assert_eq!((call.hpkePubKey.0, compact::QuoteForm::of(&quote)), (pk, compact::QuoteForm::Compact));
    assert_eq!((quote.len(), raw_quote.len()), (2523, 5006), "PROTOCOL.md §3.9 vector");
    assert_eq!(compact::decode(&quote).unwrap(), raw_quote);
    let log = EventLog::from_compact(&call.eventLog).expect("compact event log");
    let (_, _, m) = Measurements::parse_unverified(&quote).unwrap();
    assert_eq!(log.replay_rtmr3(), m.unwrap().rtmr[3], "replays to the quote's RTMR3");

    // The agent's own encoding (its Dstack provider compacts the log the same way) is the same bytes.
    let log = replicatoor_encode::eventlog::from_dstack_json(resp["event_log"].as_str().unwrap()).unwrap().runtime;
    let compact = replicatoor_encode::eventlog::to_compact(&log).unwrap();
    let att = replicatoor::provider::Attestation { quote: raw_quote.clone(), event_log: compact.clone() };
    assert_eq!(att.request_call(pk).abi_encode(), calldata);

    // On chain: the agent's send, and the printed calldata sent raw by another client.
    let net = Net::start("encode-request", Net::dev_policy()).await;
    drop(net.genesis(1).await); // requests need a cluster; none is answered here
    let chain = Chain::connect(&net.url, net.contract, Some(key(4))).await.unwrap();
    // The deployment's first request also pays for `requestCount` leaving zero (~17k gas more);
    // compare two requests that both find it set, as every request after the first does.
    chain.send(chain.contract().call_builder(&att.request_call([0x59; 32]))).await.unwrap();
    let agent = chain.send(chain.contract().call_builder(&att.request_call(pk))).await.unwrap();
    let raw = ProviderBuilder::new().wallet(EthereumWallet::from(key(5))).connect_http(net.url.parse().unwrap());
    let tx = TransactionRequest::default().with_to(net.contract).with_input(Bytes::from(calldata.clone()));
    let receipt = raw.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.gas_used, agent.gas_used, "same gas");
    let event = |logs: &[alloy::rpc::types::Log]| {
        let log = logs.iter().find(|l| l.topic0() == Some(&Op::SecretRequested::SIGNATURE_HASH)).unwrap();
        log.log_decode::<Op::SecretRequested>().unwrap().inner.data
    };
    let (a, b) = (event(agent.receipt.inner.logs()), event(receipt.inner.logs()));
    assert_eq!((a.requestId, b.requestId), (U256::from(2), U256::from(3)));
    assert_eq!((a.hpkePubKey, &a.quote, &a.eventLog), (b.hpkePubKey, &b.quote, &b.eventLog), "same request");

    // An independent client that posts the raw quote (as before version 3) still makes its request.
    let raw_call = Op::requestSecretCall::new([0x5b; 32], raw_quote.clone(), compact.clone()).abi_encode();
    let tx = TransactionRequest::default().with_to(net.contract).with_input(Bytes::from(raw_call.clone()));
    let raw_receipt = raw.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    assert!(raw_receipt.status());
    let c = event(raw_receipt.inner.logs());
    assert_eq!((c.requestId, c.quote.to_vec(), &c.eventLog), (U256::from(4), raw_quote, &a.eventLog));
    eprintln!(
        "requestSecret for the genuine Dstack quote: compact {} B calldata, {} gas; raw {} B calldata, {} gas",
        calldata.len(),
        receipt.gas_used,
        raw_call.len(),
        raw_receipt.gas_used
    );
    // The goal of issue #15: at most 150,000 gas per request (225,280 with the raw quote before).
    assert!(receipt.gas_used <= 150_000, "compact request costs {} gas", receipt.gas_used);
    assert!(raw_receipt.gas_used > receipt.gas_used + 60_000, "raw {} gas", raw_receipt.gas_used);
}
