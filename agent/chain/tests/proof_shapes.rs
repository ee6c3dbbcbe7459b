//! Trie shapes the real mainnet proofs at hand do not contain (tests/fixtures/mainnet-proofs has deep
//! branch paths and 70-byte account leaves, but no extension node): tries built here with alloy-trie's
//! `HashBuilder`, whose keys are chosen so the root of both the account and the storage trie is an
//! extension node. The proofs go through the holder's code (`ProvenAccount::verify`), and an absent
//! account is proven by exclusion.

use alloy::{
    primitives::{keccak256, Address, Bytes, B256, U256},
    rlp::Decodable,
    rpc::types::{EIP1186AccountProofResponse, EIP1186StorageProof},
    trie::{nodes::TrieNode, proof::ProofRetainer, HashBuilder, Nibbles, TrieAccount, EMPTY_ROOT_HASH, KECCAK_EMPTY},
};
use replicatoor_chain::proof::{ProofError, ProvenAccount, TrustedHeader};

/// The first `n` values of `make(i)` (i = 0, 1, …) whose keccak hashes share their first two nibbles
/// with the first one: under them, the trie's root is an extension node of two nibbles.
fn sharing_prefix<T: AsRef<[u8]> + Copy>(make: impl Fn(u64) -> T, n: usize) -> Vec<T> {
    let first = make(0);
    let prefix = keccak256(first)[0];
    let mut out = vec![first];
    let mut i = 1;
    while out.len() < n {
        let v = make(i);
        if keccak256(v)[0] == prefix {
            out.push(v);
        }
        i += 1;
    }
    out
}

/// Root and per-target proofs of the trie holding `leaves` (hashed keys → RLP values).
fn build(mut leaves: Vec<(B256, Vec<u8>)>, targets: &[B256]) -> (B256, Vec<Vec<Bytes>>) {
    leaves.sort_by_key(|(k, _)| *k);
    let nibbles: Vec<Nibbles> = targets.iter().map(|t| Nibbles::unpack(t)).collect();
    let mut hb = HashBuilder::default().with_proof_retainer(ProofRetainer::new(nibbles.clone()));
    for (k, v) in &leaves {
        hb.add_leaf(Nibbles::unpack(k), v);
    }
    let root = hb.root();
    let nodes = hb.take_proof_nodes();
    let proofs = nibbles.iter().map(|t| nodes.matching_nodes_sorted(t).into_iter().map(|(_, n)| n).collect()).collect();
    (root, proofs)
}

fn is_extension(node: &Bytes) -> bool {
    matches!(TrieNode::decode(&mut node.as_ref()), Ok(TrieNode::Extension(_)))
}

fn header(state_root: B256) -> TrustedHeader {
    TrustedHeader { number: 1, hash: B256::repeat_byte(1), state_root, receipts_root: B256::ZERO, timestamp: 0 }
}

#[test]
fn extension_nodes_and_32_byte_values_verify_and_any_change_is_refused() {
    // Storage: three slots under one 2-nibble extension; one holds a full 32-byte word.
    let slots: Vec<B256> = sharing_prefix(|i| B256::from(U256::from(i)), 3);
    let values = [U256::MAX - U256::from(7), U256::from(0x0501), U256::from(1)];
    let storage_leaves = slots.iter().zip(values).map(|(s, v)| (keccak256(s), alloy::rlp::encode(v))).collect();
    let (storage_root, storage_proofs) = build(storage_leaves, &slots.iter().map(keccak256).collect::<Vec<_>>());
    assert!(is_extension(&storage_proofs[0][0]), "the storage root is an extension node");

    // Accounts: ours and two neighbours sharing its hashed-address prefix, so the state root is an extension too.
    let addresses: Vec<Address> = sharing_prefix(|i| Address::from_word(B256::from(U256::from(i + 1))), 3);
    let ours = TrieAccount {
        nonce: 7,
        balance: U256::from(10).pow(U256::from(21)),
        storage_root,
        code_hash: keccak256(b"code"),
    };
    let other = TrieAccount { nonce: 1, ..TrieAccount::default() };
    let account_leaves = addresses
        .iter()
        .enumerate()
        .map(|(i, a)| (keccak256(a), alloy::rlp::encode(if i == 0 { ours } else { other })))
        .collect();
    let (state_root, account_proofs) = build(account_leaves, &[keccak256(addresses[0])]);
    assert!(is_extension(&account_proofs[0][0]), "the state root is an extension node");

    let answer = EIP1186AccountProofResponse {
        address: addresses[0],
        balance: ours.balance,
        code_hash: ours.code_hash,
        nonce: ours.nonce,
        storage_hash: storage_root,
        account_proof: account_proofs[0].clone(),
        storage_proof: slots
            .iter()
            .zip(values)
            .zip(&storage_proofs)
            .map(|((s, v), p)| EIP1186StorageProof { key: (*s).into(), value: v, proof: p.clone() })
            .collect(),
    };
    let proven = ProvenAccount::verify(&header(state_root), addresses[0], &answer).expect("verifies");
    assert!(proven.exists);
    assert_eq!(proven.account, ours);
    assert_eq!(proven.storage, slots.iter().copied().zip(values).collect::<Vec<_>>());

    // Any node changed (the extension nodes included), or any claimed value, is refused.
    for i in 0..answer.account_proof.len() {
        let mut bad = answer.clone();
        let mut node = bad.account_proof[i].to_vec();
        *node.last_mut().expect("non-empty node") ^= 1;
        bad.account_proof[i] = node.into();
        assert!(matches!(
            ProvenAccount::verify(&header(state_root), addresses[0], &bad),
            Err(ProofError::Account { .. })
        ));
    }
    for s in 0..answer.storage_proof.len() {
        for i in 0..answer.storage_proof[s].proof.len() {
            let mut bad = answer.clone();
            let mut node = bad.storage_proof[s].proof[i].to_vec();
            *node.last_mut().expect("non-empty node") ^= 1;
            bad.storage_proof[s].proof[i] = node.into();
            assert!(matches!(
                ProvenAccount::verify(&header(state_root), addresses[0], &bad),
                Err(ProofError::Storage { .. })
            ));
        }
        let mut bad = answer.clone();
        bad.storage_proof[s].value += U256::from(1);
        assert!(matches!(
            ProvenAccount::verify(&header(state_root), addresses[0], &bad),
            Err(ProofError::Storage { .. })
        ));
    }
    let mut bad = answer.clone();
    bad.nonce += 1;
    assert!(matches!(ProvenAccount::verify(&header(state_root), addresses[0], &bad), Err(ProofError::Account { .. })));

    // An address that is not in the trie: its path ends in the extension's branch, proving absence,
    // which counts only for the empty account's fields.
    let absent: Address = Address::repeat_byte(0xee);
    let (_, absent_proofs) = build(
        addresses
            .iter()
            .enumerate()
            .map(|(i, a)| (keccak256(a), alloy::rlp::encode(if i == 0 { ours } else { other })))
            .collect(),
        &[keccak256(absent)],
    );
    let empty = EIP1186AccountProofResponse {
        address: absent,
        balance: U256::ZERO,
        code_hash: KECCAK_EMPTY,
        nonce: 0,
        storage_hash: EMPTY_ROOT_HASH,
        account_proof: absent_proofs[0].clone(),
        storage_proof: vec![],
    };
    let proven = ProvenAccount::verify(&header(state_root), absent, &empty).expect("absence proven");
    assert!(!proven.exists);
    // A slot of an account with empty storage: zero, proven by an empty proof against the empty root
    // (what clients answer for an externally owned or absent account).
    let mut slot_of_empty = empty.clone();
    slot_of_empty.storage_proof =
        vec![EIP1186StorageProof { key: B256::ZERO.into(), value: U256::ZERO, proof: vec![] }];
    let proven = ProvenAccount::verify(&header(state_root), absent, &slot_of_empty).expect("empty storage");
    assert_eq!(proven.storage, vec![(B256::ZERO, U256::ZERO)]);
    slot_of_empty.storage_proof[0].value = U256::from(1);
    assert!(ProvenAccount::verify(&header(state_root), absent, &slot_of_empty).is_err(), "no value in an empty trie");
    let mut rich = empty.clone();
    rich.balance = U256::from(1);
    assert!(ProvenAccount::verify(&header(state_root), absent, &rich).is_err(), "a non-empty claim needs a leaf");
}
