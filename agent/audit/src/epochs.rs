//! Epochs and key rotation (protocol v6, PROTOCOL.md §5.4): how each epoch began (genesis,
//! re-bootstrap, rotation), who received its secret, and two rules only rotation needs:
//! `rotation_endorsement_invalid` (a rotation proposal the cluster in force did not sign: the contract
//! refuses those, so the address does not run the contract it claims) and `old_epoch_key_used` (after
//! a rotation, a transaction signed with an earlier epoch's cluster key: someone still holds it).

use super::{
    collect::History,
    model::{BlockRange, Custody, EpochEntry, EpochRecipient, Finding, Severity},
    AuditError,
};
use alloy::{
    consensus::Transaction as _,
    network::TransactionResponse as _,
    primitives::{Address, Bytes, B256, U256},
    providers::Provider,
    sol_types::SolCall,
};
use replicatoor_chain::{
    bindings::UpgradeOperator::{self as Op, UpgradeOperatorEvents as Ev},
    Chain,
};
use replicatoor_core::{
    crypto::eip712::{self, Delivery, Refusal, Rotation},
    protocol::Deployment,
};
use std::collections::{BTreeMap, HashMap};

/// One entry per epoch of `custody`, marked by how it began.
pub fn build(h: &History, custody: &Custody) -> Vec<EpochEntry> {
    let mut resets = HashMap::new();
    let mut rotations = HashMap::new();
    for e in &h.entries {
        match &e.event {
            Ev::CustodyReset(r) => {
                resets.insert(r.epoch, r.previousCluster);
            }
            Ev::ClusterRotated(r) => {
                rotations.insert(r.epoch, r.previousCluster);
            }
            _ => {}
        }
    }
    custody
        .epochs
        .iter()
        .map(|ep| {
            let (kind, previous_cluster) = match (rotations.get(&ep.epoch), resets.get(&ep.epoch)) {
                (Some(prev), _) => ("rotation", Some(*prev)),
                (None, Some(prev)) => ("re_bootstrap", Some(*prev)),
                (None, None) => ("genesis", None),
            };
            EpochEntry {
                epoch: ep.epoch,
                cluster: ep.cluster,
                kind,
                previous_cluster,
                proposal_id: ep.proposal_id,
                proposer: ep.proposer,
                block: ep.block,
                time: ep.time,
                tx: ep.tx,
                recipients: ep
                    .deliveries
                    .iter()
                    .map(|d| EpochRecipient { request_id: d.request_id, requester: d.requester, block: d.block })
                    .collect(),
            }
        })
        .collect()
}

/// A transaction sent straight to the contract (`to` = the contract), at its place in its block.
#[derive(Debug, Clone)]
pub struct ContractCall {
    pub block: u64,
    /// Its index in the block.
    pub index: u64,
    pub tx: B256,
    pub from: Address,
    pub input: Bytes,
}

/// What [`scan_calls`] read: the calls, and where in their blocks the cluster changed hands.
#[derive(Debug, Default)]
pub struct Calls {
    pub calls: Vec<ContractCall>,
    /// Index in its block of each scanned transaction that emitted a ClusterBootstrapped.
    pub switch_index: HashMap<B256, u64>,
}

/// Every transaction sent to the contract from the block of the first `ClusterRotated` on (mined,
/// reverted or not: a reverted call leaves no log, so only the blocks themselves show it).
///
/// Bounded on purpose: nothing is read unless a rotation happened, and then only the blocks after the
/// first one (one `eth_getBlockByNumber` with transactions each, [`BLOCKS_IN_FLIGHT`] at a time, in
/// order), since before it there is no earlier epoch's key that a rotation should have retired. Calls
/// made through another contract (a relayer's multicall) are not seen: their `to` is that contract.
pub async fn scan_calls(chain: &Chain, h: &History) -> Result<Calls, AuditError> {
    use futures::{StreamExt as _, TryStreamExt as _};
    let mut out = Calls::default();
    let Some(first) = h.entries.iter().find(|e| matches!(e.event, Ev::ClusterRotated(_))).map(|e| e.pos.block) else {
        return Ok(out);
    };
    let bootstraps: Vec<B256> =
        h.entries.iter().filter(|e| matches!(e.event, Ev::ClusterBootstrapped(_))).map(|e| e.pos.tx).collect();
    let contract = h.deployment.contract;
    let fetch = |n: u64| async move {
        let block = chain
            .provider()
            .get_block_by_number(n.into())
            .full()
            .await
            .map_err(|e| AuditError::Rpc(format!("block {n} with its transactions: {e}")))?
            .ok_or_else(|| AuditError::Rpc(format!("block {n} not found")))?;
        Ok::<_, AuditError>((n, block))
    };
    let mut blocks = futures::stream::iter(first..=h.to_block).map(fetch).buffered(BLOCKS_IN_FLIGHT);
    while let Some((n, block)) = blocks.try_next().await? {
        for (index, tx) in block.transactions.txns().enumerate() {
            let (hash, index) = (tx.tx_hash(), index as u64);
            if bootstraps.contains(&hash) {
                out.switch_index.insert(hash, index);
            }
            if tx.to() == Some(contract) {
                out.calls.push(ContractCall { block: n, index, tx: hash, from: tx.from(), input: tx.input().clone() });
            }
        }
    }
    Ok(out)
}

/// Blocks [`scan_calls`] reads at once: one request each, so an audit of a long history after a
/// rotation is not one round trip per block in a row.
const BLOCKS_IN_FLIGHT: usize = 16;

/// The clusters in chain order: from each position (block, index in block) on, `epoch` is `cluster`.
fn switches(h: &History, switch_index: &HashMap<B256, u64>) -> Vec<((u64, u64), u64, Address)> {
    h.entries
        .iter()
        .filter_map(|e| match &e.event {
            // Outside the scanned blocks the index does not matter: every call scanned is later.
            Ev::ClusterBootstrapped(b) => {
                Some(((e.pos.block, switch_index.get(&e.pos.tx).copied().unwrap_or(0)), b.epoch, b.cluster))
            }
            _ => None,
        })
        .collect()
}

/// What a call's signature signs, for the three calls a cluster key signs (`None` for any other call,
/// or calldata that does not decode). `next_epoch`: the epoch a rotation proposal made then is for.
fn signed_by(dep: &Deployment, input: &[u8], next_epoch: u64) -> Option<(&'static str, Option<U256>, Address)> {
    let selector: [u8; 4] = input.get(..4)?.try_into().ok()?;
    let (what, request, recovered) = match selector {
        Op::deliverSecretCall::SELECTOR => {
            let c = Op::deliverSecretCall::abi_decode(input).ok()?;
            let d = Delivery {
                requestId: c.requestId,
                request: c.request,
                policy: c.policyHash,
                osRef: c.osRef,
                appRef: c.appRef,
                encapsulatedKey: c.encapsulatedKey,
                ciphertext: c.ciphertext,
            };
            ("deliverSecret", Some(c.requestId), eip712::recover(dep, &d, &c.signature))
        }
        Op::refuseRequestCall::SELECTOR => {
            let c = Op::refuseRequestCall::abi_decode(input).ok()?;
            let r = Refusal { requestId: c.requestId, request: c.request, reason: c.reason };
            ("refuseRequest", Some(c.requestId), eip712::recover(dep, &r, &c.signature))
        }
        Op::proposeRotationCall::SELECTOR => {
            let c = Op::proposeRotationCall::abi_decode(input).ok()?;
            let r = Rotation { epoch: next_epoch, cluster: c.clusterAddress };
            ("proposeRotation", None, eip712::recover(dep, &r, &c.signature))
        }
        _ => return None,
    };
    Some((what, request, recovered.ok()?))
}

/// A call an old cluster key signed, with the epoch in force when it ran.
struct OldKeyUse<'a> {
    call: &'a ContractCall,
    what: &'static str,
    request: Option<U256>,
    epoch: u64,
}

/// `old_epoch_key_used`: calls after a rotation whose cluster signature recovers to the cluster of an
/// earlier epoch than the one in force at that call (the contract reverts them; the key should be gone).
pub fn old_key_findings(h: &History, calls: &Calls, out: &mut Vec<Finding>) {
    let switches = switches(h, &calls.switch_index);
    let Some(first_rotation) = h.entries.iter().find(|e| matches!(e.event, Ev::ClusterRotated(_))) else { return };
    let first_rotation = first_rotation.pos.block;
    // Per earlier epoch whose key was used: its cluster and the calls.
    let mut used: BTreeMap<u64, (Address, Vec<OldKeyUse>)> = BTreeMap::new();
    for c in calls.calls.iter().filter(|c| c.block >= first_rotation) {
        let at = (c.block, c.index);
        // The epoch in force when the call ran: the last switch before it (a switch in the same
        // transaction is not: the call's signature was checked against the state it found).
        let in_force: Vec<_> = switches.iter().filter(|(pos, _, _)| *pos < at).collect();
        let Some(&&(_, epoch, cluster)) = in_force.last() else { continue };
        let Some((what, request, signer)) = signed_by(&h.deployment, &c.input, epoch + 1) else { continue };
        if signer == cluster {
            continue;
        }
        let earlier = in_force.iter().rev().find(|(_, e, old)| *e < epoch && *old == signer);
        if let Some(&&(_, old_epoch, old_cluster)) = earlier {
            used.entry(old_epoch).or_insert((old_cluster, Vec::new())).1.push(OldKeyUse {
                call: c,
                what,
                request,
                epoch,
            });
        }
    }
    for (old_epoch, (old_cluster, uses)) in used {
        let mut f = Finding::new(
            "old_epoch_key_used",
            Severity::High,
            format!("The cluster key of epoch {old_epoch} signed calls after it was rotated out"),
            String::new(),
        );
        let mut lines = Vec::new();
        for OldKeyUse { call: c, what, request, epoch } in &uses {
            f.blocks.push(BlockRange::at(c.block));
            f.request_ids.extend(request.map(|r| r.try_into().unwrap_or(u64::MAX)));
            if !f.accounts.contains(&c.from) {
                f.accounts.push(c.from);
            }
            lines
                .push(format!("{what} in tx {} (block {}, sent by {}, epoch {epoch} in force)", c.tx, c.block, c.from));
        }
        f.accounts.insert(0, old_cluster);
        f.epochs.push(old_epoch);
        f.detail = format!(
            "Cluster {old_cluster} (epoch {old_epoch}) signed these after a later cluster took custody: {}. The \
             contract refuses them, but the key that signed them was meant to be gone: some build still holds an \
             old cluster key (and with it that epoch's secret). Find which build and revoke it.",
            lines.join("; ")
        );
        out.push(f);
    }
}

/// `rotation_endorsement_invalid`: a RotationProposed whose signature does not recover to the cluster
/// in force at its log. The contract checks exactly this before emitting it.
pub fn endorsement_findings(h: &History, out: &mut Vec<Finding>) {
    let mut cluster = None;
    for e in &h.entries {
        match &e.event {
            Ev::ClusterBootstrapped(b) => cluster = Some(b.cluster),
            Ev::RotationProposed(r) => {
                let endorsement = Rotation { epoch: r.epoch, cluster: r.cluster };
                let signer = eip712::recover(&h.deployment, &endorsement, &r.signature).ok();
                if cluster.is_some() && signer == cluster {
                    continue;
                }
                let mut f = Finding::new(
                    "rotation_endorsement_invalid",
                    Severity::Critical,
                    format!("Rotation proposal {} is not endorsed by the cluster in force", r.proposalId),
                    format!(
                        "RotationProposed {} (cluster {} for epoch {}, block {}) carries a signature that recovers \
                         to {}, not to the cluster in force ({}). The v6 contract refuses such a proposal: the \
                         contract at this address is not the one it claims to be, or is broken.",
                        r.proposalId,
                        r.cluster,
                        r.epoch,
                        e.pos.block,
                        signer.map_or("nobody (malformed)".into(), |s| s.to_string()),
                        cluster.map_or("none: no cluster yet".into(), |c| c.to_string())
                    ),
                );
                f.blocks.push(BlockRange::at(e.pos.block));
                f.accounts.push(r.proposer);
                f.epochs.push(r.epoch);
                out.push(f);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::{Entry, Pos};
    use alloy::signers::local::PrivateKeySigner;

    const DEP: Deployment = Deployment { chain_id: 31337, contract: Address::repeat_byte(0xcc) };

    fn at(block: u64, log_index: u64, tx: u8, event: Ev) -> Entry {
        Entry { pos: Pos { block, log_index, time: block * 12, tx: B256::repeat_byte(tx) }, event }
    }

    fn bootstrapped(epoch: u64, cluster: Address, proposal: u64) -> Ev {
        Ev::ClusterBootstrapped(Op::ClusterBootstrapped {
            epoch,
            cluster,
            proposalId: U256::from(proposal),
            osRef: B256::ZERO,
            appRef: B256::ZERO,
            note: String::new(),
        })
    }

    fn proposed(proposal: u64, cluster: Address, epoch: u64, signer: &PrivateKeySigner) -> Ev {
        let sig = eip712::sign(&DEP, &Rotation { epoch, cluster }, signer).expect("signs");
        Ev::RotationProposed(Op::RotationProposed {
            proposalId: U256::from(proposal),
            cluster,
            epoch,
            proposer: Address::repeat_byte(0xa2),
            quote: Bytes::new(),
            eventLog: Bytes::new(),
            signature: Bytes::copy_from_slice(&sig),
        })
    }

    fn history(entries: Vec<Entry>) -> History {
        History {
            deployment: DEP,
            from_block: 1,
            to_block: 100,
            to_time: 1200,
            entries,
            undecoded: 0,
            actors: HashMap::new(),
        }
    }

    /// Epoch 1 by genesis (key `k1`), epoch 2 by a rotation `k1` endorsed, approved in block 20 (tx 0x20,
    /// second in its block).
    fn rotated(k1: &PrivateKeySigner, k2: &PrivateKeySigner, endorser: &PrivateKeySigner) -> History {
        let requester = Address::repeat_byte(0xb0);
        history(vec![
            at(
                2,
                0,
                2,
                Ev::GenesisProposed(Op::GenesisProposed {
                    proposalId: U256::from(1),
                    cluster: k1.address(),
                    epoch: 1,
                    proposer: Address::repeat_byte(0xa1),
                    quote: Bytes::new(),
                    eventLog: Bytes::new(),
                }),
            ),
            at(3, 0, 3, bootstrapped(1, k1.address(), 1)),
            at(10, 0, 10, proposed(2, k2.address(), 2, endorser)),
            at(20, 0, 0x20, bootstrapped(2, k2.address(), 2)),
            at(
                20,
                1,
                0x20,
                Ev::ClusterRotated(Op::ClusterRotated {
                    epoch: 2,
                    previousCluster: k1.address(),
                    newCluster: k2.address(),
                    note: String::new(),
                }),
            ),
            at(
                30,
                0,
                0x30,
                Ev::SecretRequested(Op::SecretRequested {
                    requestId: U256::from(5),
                    hpkePubKey: B256::repeat_byte(5),
                    requester,
                    epoch: 2,
                    quote: Bytes::new(),
                    eventLog: Bytes::new(),
                }),
            ),
            at(
                31,
                0,
                0x31,
                Ev::SecretDelivered(Op::SecretDelivered {
                    requestId: U256::from(5),
                    epoch: 2,
                    relayer: Address::repeat_byte(0xa2),
                    osRef: B256::ZERO,
                    appRef: B256::ZERO,
                    policy: B256::ZERO,
                    encapsulatedKey: Bytes::new(),
                    ciphertext: Bytes::new(),
                    signature: Bytes::new(),
                }),
            ),
        ])
    }

    #[test]
    fn each_epoch_says_how_it_began_who_proposed_it_and_who_received_it() {
        let (k1, k2) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let h = rotated(&k1, &k2, &k1);
        let e = build(&h, &crate::custody::build(&h));
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].kind, e[0].proposer, e[0].previous_cluster),
            ("genesis", Some(Address::repeat_byte(0xa1)), None)
        );
        assert_eq!(
            (e[1].kind, e[1].cluster, e[1].proposal_id, e[1].proposer, e[1].previous_cluster, e[1].block),
            ("rotation", k2.address(), 2, Some(Address::repeat_byte(0xa2)), Some(k1.address()), 20)
        );
        assert!(e[0].recipients.is_empty());
        let r = &e[1].recipients;
        assert_eq!((r.len(), r[0].request_id, r[0].requester, r[0].block), (1, 5, Address::repeat_byte(0xb0), 31));
    }

    #[test]
    fn a_rotation_proposal_the_cluster_in_force_did_not_sign_is_critical() {
        let (k1, k2) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let mut out = Vec::new();
        endorsement_findings(&rotated(&k1, &k2, &k1), &mut out);
        assert!(out.is_empty(), "{out:?}");
        // Signed by the new key itself: the contract would have refused it.
        endorsement_findings(&rotated(&k1, &k2, &k2), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!((out[0].kind, out[0].severity), ("rotation_endorsement_invalid", Severity::Critical));
        assert_eq!((out[0].blocks[0].from, out[0].epochs.clone()), (10, vec![2]));
    }

    fn call(block: u64, index: u64, input: Vec<u8>) -> ContractCall {
        ContractCall {
            block,
            index,
            tx: B256::repeat_byte(block as u8 + index as u8),
            from: Address::repeat_byte(0xee),
            input: input.into(),
        }
    }

    fn deliver(key: &PrivateKeySigner, id: u64) -> Vec<u8> {
        let d = Delivery {
            requestId: U256::from(id),
            request: B256::repeat_byte(1),
            policy: B256::ZERO,
            osRef: B256::ZERO,
            appRef: B256::ZERO,
            encapsulatedKey: vec![2; 32].into(),
            ciphertext: vec![3; 8].into(),
        };
        let sig = eip712::sign(&DEP, &d, key).expect("signs");
        Op::deliverSecretCall {
            requestId: d.requestId,
            request: d.request,
            policyHash: d.policy,
            osRef: d.osRef,
            appRef: d.appRef,
            encapsulatedKey: d.encapsulatedKey,
            ciphertext: d.ciphertext,
            signature: sig.to_vec().into(),
        }
        .abi_encode()
    }

    fn refuse(key: &PrivateKeySigner, id: u64) -> Vec<u8> {
        let r = Refusal { requestId: U256::from(id), request: B256::repeat_byte(1), reason: 3 };
        let sig = eip712::sign(&DEP, &r, key).expect("signs");
        Op::refuseRequestCall { requestId: r.requestId, request: r.request, reason: 3, signature: sig.to_vec().into() }
            .abi_encode()
    }

    fn propose(key: &PrivateKeySigner, cluster: Address, epoch: u64) -> Vec<u8> {
        let sig = eip712::sign(&DEP, &Rotation { epoch, cluster }, key).expect("signs");
        Op::proposeRotationCall {
            clusterAddress: cluster,
            quote: Bytes::new(),
            eventLog: Bytes::new(),
            signature: sig.to_vec().into(),
        }
        .abi_encode()
    }

    #[test]
    fn calls_signed_by_a_rotated_out_key_are_flagged_and_nothing_else() {
        let (k1, k2) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let h = rotated(&k1, &k2, &k1);
        // The rotation is the second transaction of block 20.
        let switch_index = HashMap::from([(B256::repeat_byte(0x20), 1)]);
        let calls = vec![
            // Before the switch in the same block: k1 was still the cluster.
            call(20, 0, deliver(&k1, 1)),
            // After it: k1 is an old key. Delivery, refusal and rotation proposal alike.
            call(20, 2, deliver(&k1, 2)),
            call(40, 0, refuse(&k1, 3)),
            call(41, 0, propose(&k1, Address::repeat_byte(7), 3)),
            // The new cluster's own answers, another call, and garbage.
            call(42, 0, deliver(&k2, 4)),
            call(43, 0, propose(&k2, Address::repeat_byte(7), 3)),
            call(44, 0, Op::commitCall { commitment: B256::ZERO }.abi_encode()),
            call(45, 0, vec![1, 2, 3]),
        ];
        let mut out = Vec::new();
        old_key_findings(&h, &Calls { calls, switch_index }, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let f = &out[0];
        assert_eq!((f.kind, f.severity, f.epochs.clone()), ("old_epoch_key_used", Severity::High, vec![1]));
        assert_eq!(f.blocks.iter().map(|b| b.from).collect::<Vec<_>>(), vec![20, 40, 41]);
        assert_eq!(f.request_ids, vec![2, 3]);
        assert_eq!(f.accounts[0], k1.address());
        // No rotation, nothing to look for.
        let genesis_only = history(h.entries[..2].to_vec());
        let mut out = Vec::new();
        old_key_findings(
            &genesis_only,
            &Calls { calls: vec![call(50, 0, deliver(&k1, 9))], ..Calls::default() },
            &mut out,
        );
        assert!(out.is_empty());
    }
}
