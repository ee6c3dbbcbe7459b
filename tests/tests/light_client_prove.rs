//! `replicatoor light-client prove` on real mainnet data (tests/fixtures/mainnet-proofs, README there for
//! origins): real `eth_getProof` answers of USDC, its implementation and two externally owned accounts,
//! against the execution state roots of headers the light client verifies from a checkpoint (real
//! sync-committee signatures). The values must equal what the chain held (checked against independent
//! recordings: eth_call, eth_getStorageAt, eth_getBalance, eth_getTransactionCount, eth_getCode), and a
//! proof with any node changed, or a claimed value changed, is refused.

use alloy::primitives::{keccak256, Address, B256, U256};
use replicatoor_tests::root;
use serde_json::Value;
use std::{path::PathBuf, process::Command};

/// Bootstrap of period 1421 and the 1421 update (whose next committee signs period 1422), shared with
/// the light-client suites (agent/beacon/tests/fixtures).
const CHECKPOINT: &str = "0xd9717ecc253684291f828688f311ba74d05af74c31654f6e14077669fca62f6a";
const ELECTRA: &str = "agent/beacon/tests/fixtures/mainnet-deneb-electra-boundary/eth_call_electra";
const USDC: &str = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48";

fn path(rel: &str) -> String {
    root().join(rel).display().to_string()
}

fn fixture(name: &str) -> String {
    path(&format!("tests/fixtures/mainnet-proofs/{name}"))
}

fn prove(optimistic: &str, proof: &str, json: bool) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_replicatoor-dev"));
    cmd.args(["light-client", "prove", "--network", "mainnet", "--checkpoint", CHECKPOINT])
        .args([
            "--bootstrap",
            &path(&format!(
                "{ELECTRA}/eth_v1_beacon_light_client_bootstrap_0xd9717ecc253684291f828688f311ba74d05af74c31654f6e14077669fca62.ssz"
            )),
        ])
        .args(["--updates", &path(&format!("{ELECTRA}/eth_v1_beacon_light_client_updates_start_period_1421_count_1.ssz"))])
        .args(["--optimistic-update", optimistic, "--proof", proof]);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("run replicatoor");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn proven(block: u64, proof: &str) -> Value {
    let (code, out, err) = prove(&fixture(&format!("optimistic_{block}.json")), &fixture(proof), true);
    assert_eq!(code, 0, "{proof}: {err}");
    let r: Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(r["execution_block_number"], block, "{proof}");
    assert_eq!(r["trusted_block_root"], CHECKPOINT);
    assert_eq!(r["header"], "optimistic", "{proof}: proven at the newest verified header");
    r
}

fn slot(r: &Value, key: B256) -> B256 {
    let entry = r["storage"]
        .as_array()
        .expect("storage list")
        .iter()
        .find(|s| s["key"] == key.to_string())
        .unwrap_or_else(|| panic!("slot {key} proven"));
    entry["value"].as_str().expect("hex value").parse().expect("32-byte value")
}

fn word(hex: &str) -> B256 {
    B256::from(U256::from_str_radix(hex.trim_start_matches("0x"), 16).expect("hex quantity"))
}

/// A file in this test's own scratch directory (tests run in parallel threads).
fn scratch(test: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("replicatoor-prove-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

#[test]
fn usdc_proxy_storage_is_proven_and_equals_what_the_chain_held() {
    let r = proven(22432262, "proof_usdc_22432262.json");
    assert_eq!(r["address"].as_str().map(str::to_lowercase), Some(USDC.to_string()));
    assert_eq!(r["state_root"], "0x18e0b800cc49a10672e0c1cb7ec1dcd6ce882993640e2584bc8e05a41158b77e");
    assert_eq!(r["exists"], true);
    assert_eq!(r["nonce"], 1);
    assert_eq!(r["balance"], "0");
    // The code hash proven is the hash of the proxy code the chain served (eth_getCode recording).
    let code: Value = serde_json::from_str(&std::fs::read_to_string(fixture("code_usdc.json")).unwrap()).unwrap();
    let code = hex::decode(code["result"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    assert_eq!(r["code_hash"], keccak256(&code).to_string());
    // The slots, derived here rather than copied: ZeppelinOS proxy admin and implementation slots, and the
    // `balances` mapping (slot 9 of FiatToken) entry of the holder the recorded eth_call asked about.
    let admin = keccak256("org.zeppelinos.proxy.admin");
    let implementation = keccak256("org.zeppelinos.proxy.implementation");
    let holder: Address = "0x37305b1cd40574e4c5ce33f8e8306be057fd7341".parse().unwrap();
    let mut preimage = [0u8; 64];
    preimage[12..32].copy_from_slice(holder.as_slice());
    preimage[63] = 9;
    let balance_slot = keccak256(preimage);
    assert_eq!(slot(&r, admin), word("0x807a96288a1a408dbc13de2b1d087d10356395d2"));
    // The implementation is the account proven in the next test.
    assert_eq!(slot(&r, implementation), word("0x43506849d7c04f9138d1a2050bbf3a0c054402dd"));
    // eth_call balanceOf(holder) at that block returned 0x…0c35a80ffaf35c (colibri's test.json).
    assert_eq!(slot(&r, balance_slot), word("0x000c35a80ffaf35c"));
    assert_eq!(r["storage"].as_array().unwrap().len(), 3);

    // The same answer without its JSON-RPC envelope proves the same.
    let enveloped: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("proof_usdc_22432262.json")).unwrap()).unwrap();
    let bare = scratch("usdc", "bare.json");
    std::fs::write(&bare, enveloped["result"].to_string()).unwrap();
    let (code, out, err) = prove(&fixture("optimistic_22432262.json"), bare.to_str().unwrap(), true);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), r);

    // The text report names the block and each slot.
    let (code, out, _) = prove(&fixture("optimistic_22432262.json"), &fixture("proof_usdc_22432262.json"), false);
    assert_eq!(code, 0);
    assert!(out.starts_with("PROVEN at execution block 22432262"), "{out}");
    assert!(out.contains(&format!("{balance_slot} = ")), "{out}");
    let _ = std::fs::remove_dir_all(bare.parent().unwrap());
}

#[test]
fn other_real_accounts_are_proven_at_their_blocks() {
    let r = proven(22432262, "proof_fiattoken_impl_22432262.json");
    assert_eq!(
        r["address"].as_str().map(str::to_lowercase).as_deref(),
        Some("0x43506849d7c04f9138d1a2050bbf3a0c054402dd")
    );
    assert_eq!(r["exists"], true);
    assert_ne!(r["code_hash"], keccak256([]).to_string(), "a contract");

    // eth_getStorageAt(USDC, implementation slot) at that block (colibri's test.json expected_result).
    let r = proven(22432097, "proof_usdc_22432097.json");
    assert_eq!(
        slot(&r, keccak256("org.zeppelinos.proxy.implementation")),
        word("0x43506849d7c04f9138d1a2050bbf3a0c054402dd")
    );

    // eth_getBalance: 0x111310f9e55ed8646 wei, printed in decimal.
    let r = proven(22432278, "proof_eoa_balance_22432278.json");
    let expected = U256::from_str_radix("111310f9e55ed8646", 16).unwrap();
    assert_eq!(r["balance"], expected.to_string());
    assert_eq!(r["code_hash"], keccak256([]).to_string(), "an externally owned account");

    // eth_getTransactionCount: 0x64b2.
    let r = proven(22432086, "proof_eoa_nonce_22432086.json");
    assert_eq!(r["nonce"], 0x64b2);
}

/// Flip the last byte of one node's hex in the answer (node `index` of the account proof, or of storage
/// proof `storage`), write it, and return the path.
fn tampered(proof: &Value, storage: Option<usize>, index: usize, name: &str) -> PathBuf {
    let mut p = proof.clone();
    let nodes = match storage {
        None => &mut p["result"]["accountProof"],
        Some(s) => &mut p["result"]["storageProof"][s]["proof"],
    };
    let node = nodes[index].as_str().expect("hex node").to_string();
    let (head, last) = node.split_at(node.len() - 2);
    let flipped = u8::from_str_radix(last, 16).expect("hex") ^ 0x01;
    nodes[index] = Value::String(format!("{head}{flipped:02x}"));
    let out = scratch("tamper", name);
    std::fs::write(&out, p.to_string()).expect("write tampered proof");
    out
}

#[test]
fn a_proof_with_any_node_or_value_changed_is_refused() {
    let optimistic = fixture("optimistic_22432262.json");
    let proof: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("proof_usdc_22432262.json")).unwrap()).unwrap();
    let refused = |file: &PathBuf, what: &str| {
        let (code, out, err) = prove(&optimistic, file.to_str().unwrap(), false);
        assert_eq!(code, 4, "{what}: {out}{err}");
        assert!(err.contains("NOT proven") && out.is_empty(), "{what}: {err}");
        err
    };
    let account_nodes = proof["result"]["accountProof"].as_array().unwrap().len();
    assert_eq!(account_nodes, 9, "a deep mainnet account path: 8 branch nodes and a leaf");
    for i in 0..account_nodes {
        let err = refused(&tampered(&proof, None, i, "acct.json"), &format!("account node {i}"));
        assert!(err.contains("account proof"), "{err}");
    }
    for s in 0..3 {
        let nodes = proof["result"]["storageProof"][s]["proof"].as_array().unwrap().len();
        for i in 0..nodes {
            let err = refused(&tampered(&proof, Some(s), i, "slot.json"), &format!("storage {s} node {i}"));
            assert!(err.contains("storage proof"), "{err}");
        }
    }

    // Claimed values that differ from the proven ones: a balance, a slot value, a slot value of zero.
    let claim = |edit: &dyn Fn(&mut Value), what: &str| {
        let mut p = proof.clone();
        edit(&mut p["result"]);
        let f = scratch("tamper", "claim.json");
        std::fs::write(&f, p.to_string()).unwrap();
        refused(&f, what)
    };
    claim(&|r| r["balance"] = Value::from("0x1"), "balance");
    claim(&|r| r["nonce"] = Value::from("0x2"), "nonce");
    let err = claim(&|r| r["storageProof"][2]["value"] = Value::from("0xc35a80ffaf35d"), "slot value");
    assert!(err.contains("storage proof"), "{err}");
    claim(&|r| r["storageProof"][2]["value"] = Value::from("0x0"), "slot value zero");
    claim(&|r| r["address"] = Value::from("0x43506849d7c04f9138d1a2050bbf3a0c054402dd"), "another address");

    // A genuine proof, but of another block than the newest verified header.
    // Neither verified header (the optimistic one at 22432262, the finalized one of period 1421) holds it.
    let err = refused(&PathBuf::from(fixture("proof_usdc_22432097.json")), "other block");
    assert!(err.contains("22432262") && err.contains("the finalized header"), "{err}");

    // The RPC's error answer is refused, not printed as a proof.
    let f = scratch("tamper", "error.json");
    std::fs::write(&f, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"missing trie node"}}"#).unwrap();
    let err = refused(&f, "rpc error");
    assert!(err.contains("missing trie node"), "{err}");

    // A forged header: the light client refuses it before any proof is looked at.
    let mut forged: Value = serde_json::from_str(&std::fs::read_to_string(&optimistic).unwrap()).unwrap();
    forged["data"]["attested_header"]["execution"]["state_root"] =
        Value::from("0x0000000000000000000000000000000000000000000000000000000000000001");
    let f = scratch("tamper", "forged-optimistic.json");
    std::fs::write(&f, forged.to_string()).unwrap();
    let (code, _, err) = prove(f.to_str().unwrap(), &fixture("proof_usdc_22432262.json"), false);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("light-client data not verified"), "{err}");
    let _ = std::fs::remove_dir_all(f.parent().unwrap());
}
