//! Contract bindings generated from the forge artifact (`agent/chain/abi/`, synced by `script/sync-abi.sh`),
//! so the contract is the single source of the ABI.

alloy::sol!(
    #[sol(rpc)]
    #[allow(clippy::too_many_arguments)]
    #[derive(Debug, PartialEq, Eq)]
    UpgradeOperator,
    "abi/UpgradeOperator.json"
);

use replicatoor_core::{delivery::SignedDelivery, protocol::Policy};

impl From<&UpgradeOperator::SecretDelivered> for SignedDelivery {
    /// The delivery exactly as the contract logged it, ready for `delivery::open`.
    fn from(ev: &UpgradeOperator::SecretDelivered) -> Self {
        SignedDelivery {
            request_id: ev.requestId,
            // Not logged: `delivery::open` recomputes it from the opener's own key and account.
            request: alloy::primitives::B256::ZERO,
            policy: ev.policy,
            os_ref: ev.osRef,
            app_ref: ev.appRef,
            encapsulated_key: ev.encapsulatedKey.to_vec(),
            ciphertext: ev.ciphertext.to_vec(),
            signature: ev.signature.to_vec(),
        }
    }
}

impl From<UpgradeOperator::Policy> for Policy {
    fn from(p: UpgradeOperator::Policy) -> Self {
        Policy { tcb_statuses: p.tcbStatuses, allow_debug: p.allowDebug, allow_simulated: p.allowSimulated }
    }
}

impl From<Policy> for UpgradeOperator::Policy {
    fn from(p: Policy) -> Self {
        UpgradeOperator::Policy {
            tcbStatuses: p.tcb_statuses,
            allowDebug: p.allow_debug,
            allowSimulated: p.allow_simulated,
        }
    }
}

impl UpgradeOperator::requestSecretCall {
    /// The request a new node posts: its HPKE public key, its quote and its compact event log
    /// (PROTOCOL.md §3). The agent sends exactly this call, and `replicatoor encode request` prints
    /// its calldata, so anyone can reproduce and price a node's request.
    pub fn new(hpke_pub_key: [u8; 32], quote: Vec<u8>, compact_event_log: Vec<u8>) -> Self {
        UpgradeOperator::requestSecretCall {
            hpkePubKey: hpke_pub_key.into(),
            quote: quote.into(),
            eventLog: compact_event_log.into(),
        }
    }
}
