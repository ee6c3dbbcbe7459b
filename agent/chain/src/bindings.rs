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

/// Events of earlier protocol versions whose signature has changed since, so that `audit` reads a
/// deployment of any version (PROTOCOL.md §7). Each decodes into today's event.
mod earlier {
    alloy::sol! {
        /// Versions 1 and 2: the policy had no TCB evaluation floor.
        event PolicySet(uint16 tcbStatuses, bool allowDebug, bool allowSimulated, uint64 effectiveAt, string note);
    }
}

impl UpgradeOperator::UpgradeOperatorEvents {
    /// Decode a log of this contract, of today's version or an earlier one (an event whose
    /// fields changed comes back as today's, with the new fields at their neutral value).
    pub fn decode_any_version(log: &alloy::primitives::Log) -> Result<Self, alloy::sol_types::Error> {
        use alloy::sol_types::{SolEvent, SolEventInterface};
        match Self::decode_log(log) {
            Ok(ev) => Ok(ev.data),
            Err(e) => match log.topics().first() {
                Some(t) if *t == earlier::PolicySet::SIGNATURE_HASH => {
                    let p = earlier::PolicySet::decode_log(log)?.data;
                    Ok(Self::PolicySet(UpgradeOperator::PolicySet {
                        tcbStatuses: p.tcbStatuses,
                        allowDebug: p.allowDebug,
                        allowSimulated: p.allowSimulated,
                        minTcbEvaluationDataNumber: 0,
                        effectiveAt: p.effectiveAt,
                        note: p.note,
                    }))
                }
                _ => Err(e),
            },
        }
    }
}

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
        Policy {
            tcb_statuses: p.tcbStatuses,
            allow_debug: p.allowDebug,
            allow_simulated: p.allowSimulated,
            min_tcb_evaluation_data_number: p.minTcbEvaluationDataNumber,
        }
    }
}

impl UpgradeOperator::PolicySet {
    /// The policy this event sets (in force from `effectiveAt` unless a later event cancels it).
    pub fn policy(&self) -> Policy {
        Policy {
            tcb_statuses: self.tcbStatuses,
            allow_debug: self.allowDebug,
            allow_simulated: self.allowSimulated,
            min_tcb_evaluation_data_number: self.minTcbEvaluationDataNumber,
        }
    }
}

impl From<Policy> for UpgradeOperator::Policy {
    fn from(p: Policy) -> Self {
        UpgradeOperator::Policy {
            tcbStatuses: p.tcb_statuses,
            allowDebug: p.allow_debug,
            allowSimulated: p.allow_simulated,
            minTcbEvaluationDataNumber: p.min_tcb_evaluation_data_number,
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
