//! Byte-level encodings both sides must agree on (PROTOCOL.md is the normative text).
//!
//! Every quote binding and HPKE context starts with a domain tag, the chain id and the contract
//! address, so a quote or ciphertext made for one deployment is useless on any other.

use alloy::primitives::{keccak256, Address, B256, U256};
use sha2::{Digest, Sha256, Sha512};

/// Domain tag of a new node's request quote.
pub const TAG_REQUEST: &[u8] = b"replicatoor/request/v1";
/// Domain tag of a genesis node's quote.
pub const TAG_GENESIS: &[u8] = b"replicatoor/genesis/v1";
/// Domain tag of the HPKE `info` string.
pub const TAG_HPKE: &[u8] = b"replicatoor/hpke/v1";

/// The verification policy in force (the contract's `Policy`, PROTOCOL.md §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Policy {
    /// Accepted TCB statuses, one bit per [`crate::attest::TcbStatus`] (bit 0 UpToDate).
    pub tcb_statuses: u16,
    /// Accept TDs with the DEBUG attribute (gives up confidentiality).
    pub allow_debug: bool,
    /// Accept quotes from the simulated PKI (gives up every hardware guarantee).
    pub allow_simulated: bool,
    /// The oldest Intel TCB evaluation (the collateral's `tcbEvaluationDataNumber`) a quote may be
    /// judged with; 0 = any. Raised after a TCB recovery, so collateral from before it (a stale or
    /// lying source) cannot pass a platform the recovery downgraded.
    pub min_tcb_evaluation_data_number: u32,
}

impl Policy {
    /// The hash a delivery names the policy it was decided under by (PROTOCOL.md §3.6):
    /// `keccak256(abi.encode(tcbStatuses, allowDebug, allowSimulated, minTcbEvaluationDataNumber))`,
    /// the contract's `policyHashOf`.
    pub fn hash(&self) -> B256 {
        use alloy::sol_types::SolValue;
        keccak256(
            (self.tcb_statuses, self.allow_debug, self.allow_simulated, self.min_tcb_evaluation_data_number)
                .abi_encode(),
        )
    }
}

/// The `request` a v2 delivery or refusal names (PROTOCOL.md §3.6): `keccak256(hpkePubKey ‖ requester)`, the
/// key under which the contract keeps the request's id (`requestIdOf`). An answer signed for it applies to
/// that request only, whatever id a reorg gives it.
pub fn request_key(hpke_pub_key: &[u8; 32], requester: Address) -> B256 {
    keccak256([hpke_pub_key.as_slice(), requester.as_slice()].concat())
}

/// Tag of a holder's batch commitment (PROTOCOL.md §5.3).
pub const COMMIT_TAG: &[u8] = b"replicatoor/commit/v1";

/// A holder's commitment to a batch of answers (PROTOCOL.md §5.3):
/// `keccak256("replicatoor/commit/v1" ‖ nonce[32] ‖ be256(requestId)…)`, ids in the order the batch
/// holds them. The nonce is drawn inside the TD after the decision, so nobody can post the value
/// earlier; the ids let an auditor who learns the nonce link the commitment to the answers.
pub fn commitment(nonce: &[u8; 32], request_ids: &[U256]) -> B256 {
    let mut buf = [COMMIT_TAG, nonce].concat();
    request_ids.iter().for_each(|id| buf.extend_from_slice(&id.to_be_bytes::<32>()));
    keccak256(buf)
}

/// Where a deployment lives: the pair every binding includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    /// The EIP-155 chain id.
    pub chain_id: u64,
    /// The UpgradeOperator contract's address.
    pub contract: Address,
}

impl Deployment {
    /// `tag ‖ 0x00 ‖ be256(chainId) ‖ contract(20)`: the common prefix of every binding.
    fn prefix(&self, tag: &[u8]) -> Vec<u8> {
        [tag, &[0], &U256::from(self.chain_id).to_be_bytes::<32>(), self.contract.as_slice()].concat()
    }

    /// report_data of a request quote: `sha512(prefix(TAG_REQUEST) ‖ requester(20) ‖ hpkePubKey(32))`.
    /// Binding the sender means a copied request from another account is refused.
    pub fn request_report_data(&self, requester: Address, hpke_pub_key: &[u8; 32]) -> [u8; 64] {
        Sha512::digest([self.prefix(TAG_REQUEST).as_slice(), requester.as_slice(), hpke_pub_key].concat()).into()
    }

    /// report_data of a genesis quote: `sha512(prefix(TAG_GENESIS) ‖ cluster(20) ‖ be64(epoch))`.
    pub fn genesis_report_data(&self, cluster: Address, epoch: u64) -> [u8; 64] {
        Sha512::digest([self.prefix(TAG_GENESIS).as_slice(), cluster.as_slice(), &epoch.to_be_bytes()].concat()).into()
    }

    /// HPKE `info` for a delivery: `TAG_HPKE ‖ sha256(be256(chainId) ‖ contract(20) ‖ be256(requestId))`,
    /// 51 bytes: within RFC 9180's recommended 64-byte limit, so any conforming library opens it.
    pub fn hpke_info(&self, request_id: U256) -> Vec<u8> {
        let chain_id = U256::from(self.chain_id).to_be_bytes::<32>();
        let digest = Sha256::digest([&chain_id, self.contract.as_slice(), &request_id.to_be_bytes::<32>()].concat());
        [TAG_HPKE, &digest].concat()
    }
}

/// HPKE `aad` for a delivery: `osRef ‖ appRef`, so a ciphertext cannot be re-posted under other references.
pub fn hpke_aad(os_ref: B256, app_ref: B256) -> [u8; 64] {
    os_ref.concat_const(app_ref).0
}

/// Reference kinds, numbered as the contract's `RefKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[repr(u8)]
pub enum RefKind {
    /// MRTD ‖ RTMR0 ‖ RTMR1 ‖ RTMR2: firmware, kernel, initrd and command line.
    Os = 1,
    /// The Dstack compose hash: the app's containers and configuration.
    App = 2,
}

/// A request's lifecycle, numbered as the contract's `RequestStatus` (PROTOCOL.md §4.1). Only a
/// `Pending` request may be answered, and only once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[repr(u8)]
pub enum RequestStatus {
    /// No such request.
    None = 0,
    /// Posted and not answered yet.
    Pending = 1,
    /// A holder delivered the sealed bundle.
    Delivered = 2,
    /// A holder refused it (with a reason code).
    Refused = 3,
}

/// A status number the contract never returns (a faulty or lying RPC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown request status {0}")]
pub struct UnknownRequestStatus(pub u8);

impl TryFrom<u8> for RequestStatus {
    type Error = UnknownRequestStatus;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        Ok(match v {
            0 => RequestStatus::None,
            1 => RequestStatus::Pending,
            2 => RequestStatus::Delivered,
            3 => RequestStatus::Refused,
            other => return Err(UnknownRequestStatus(other)),
        })
    }
}

/// OS reference id: `keccak256(0x01 ‖ mrtd ‖ rtmr0 ‖ rtmr1 ‖ rtmr2)` (48 bytes each).
pub fn os_reference_id(mrtd: &[u8; 48], rtmr0: &[u8; 48], rtmr1: &[u8; 48], rtmr2: &[u8; 48]) -> B256 {
    keccak256([&[RefKind::Os as u8], &mrtd[..], rtmr0, rtmr1, rtmr2].concat())
}

/// App reference id: `keccak256(0x02 ‖ composeHash)`.
pub fn app_reference_id(compose_hash: &[u8; 32]) -> B256 {
    keccak256([&[RefKind::App as u8], &compose_hash[..]].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(chain_id: u64, last: u8) -> Deployment {
        let mut a = [0u8; 20];
        a[19] = last;
        Deployment { chain_id, contract: Address::from(a) }
    }

    #[test]
    fn bindings_differ_per_chain_contract_and_key() {
        let k = [7u8; 32];
        let me = Address::repeat_byte(3);
        let base = dep(1, 1).request_report_data(me, &k);
        assert_ne!(base, dep(2, 1).request_report_data(me, &k));
        assert_ne!(base, dep(1, 2).request_report_data(me, &k));
        assert_ne!(base, dep(1, 1).request_report_data(me, &[8u8; 32]));
        assert_ne!(base, dep(1, 1).request_report_data(Address::repeat_byte(4), &k));
        assert_eq!(base, dep(1, 1).request_report_data(me, &k));
    }

    #[test]
    fn request_and_genesis_tags_never_collide() {
        // Same trailing bytes under both tags must still give different report_data.
        let d = dep(1, 1);
        let cluster = Address::from([7u8; 20]);
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&0u64.to_be_bytes());
        assert_ne!(d.request_report_data(cluster, &[0u8; 32]), d.genesis_report_data(cluster, 0));
        assert_ne!(d.genesis_report_data(cluster, 1), d.genesis_report_data(cluster, 2));
    }

    #[test]
    fn request_report_data_matches_spec_layout() {
        let d = dep(31337, 9);
        let k = [0xabu8; 32];
        let me = Address::repeat_byte(0xcd);
        let mut m = b"replicatoor/request/v1\0".to_vec();
        let mut chain = [0u8; 32];
        chain[24..].copy_from_slice(&31337u64.to_be_bytes());
        m.extend_from_slice(&chain);
        m.extend_from_slice(d.contract.as_slice());
        m.extend_from_slice(me.as_slice());
        m.extend_from_slice(&k);
        let want: [u8; 64] = Sha512::digest(&m).into();
        assert_eq!(d.request_report_data(me, &k), want);
    }

    #[test]
    fn hpke_info_is_short_and_binds_everything() {
        let d = dep(1, 1);
        let info = d.hpke_info(U256::from(5));
        assert_eq!(info.len(), 51);
        assert!(info.starts_with(b"replicatoor/hpke/v1"));
        assert_ne!(info, d.hpke_info(U256::from(6)));
        assert_ne!(info, dep(2, 1).hpke_info(U256::from(5)));
        assert_ne!(info, dep(1, 2).hpke_info(U256::from(5)));
    }

    #[test]
    fn commitment_matches_the_spec_vector() {
        // PROTOCOL.md §3.8, computed there with `cast keccak` over the spelled-out preimage.
        let c = commitment(&[0x11; 32], &[U256::from(1), U256::from(2)]);
        assert_eq!(c.to_string(), "0x162ce957a7228f19e1a9fcc0bd33353ea5e1a3613ea8ea2e94575ac6eb52b8e3");
        // The ids and their order are bound; an empty batch is the tag and nonce alone.
        assert_ne!(c, commitment(&[0x11; 32], &[U256::from(2), U256::from(1)]));
        assert_ne!(c, commitment(&[0x12; 32], &[U256::from(1), U256::from(2)]));
        let empty = commitment(&[0x11; 32], &[]);
        assert_eq!(empty.to_string(), "0x446572521066de810afc98e062dd6b16118775e708caa9cc2400c6228a2b5a8b");
    }

    #[test]
    fn request_key_and_policy_hash_match_the_spec_vectors() {
        // PROTOCOL.md §3.8 (computed there with `cast keccak` / `cast abi-encode`, independently of this code).
        let key = request_key(&[0xab; 32], Address::repeat_byte(0xcd));
        assert_eq!(key.to_string(), "0x30cef5949424e316d0559205d3a304192426cf253d12542a6afb1b53f81a54ae");
        let p =
            Policy { tcb_statuses: 1, allow_debug: false, allow_simulated: false, min_tcb_evaluation_data_number: 0 };
        assert_eq!(p.hash().to_string(), "0x28eff85df1273b90d594dd4725c22b6e8b1a718f829e3c7f98c821679623c33d");
        let floor = Policy { min_tcb_evaluation_data_number: 17, ..p };
        assert_eq!(floor.hash().to_string(), "0xd9d3d5a55e6d8ba4bc591323f1021da0a5ecc98b6481a16b22bb777a85715c44");
        assert_ne!(Policy { allow_debug: true, ..p }.hash(), p.hash());
    }

    #[test]
    fn request_status_numbers_match_the_contract() {
        for (n, s) in [
            (0u8, RequestStatus::None),
            (1, RequestStatus::Pending),
            (2, RequestStatus::Delivered),
            (3, RequestStatus::Refused),
        ] {
            assert_eq!(RequestStatus::try_from(n), Ok(s));
            assert_eq!(s as u8, n);
        }
        assert_eq!(RequestStatus::try_from(4), Err(UnknownRequestStatus(4)));
        assert_eq!(RequestStatus::try_from(u8::MAX), Err(UnknownRequestStatus(u8::MAX)));
    }

    #[test]
    fn reference_ids_prefix_kind_byte() {
        let z = [0u8; 48];
        let mut m = vec![1u8];
        m.extend_from_slice(&[0u8; 192]);
        assert_eq!(os_reference_id(&z, &z, &z, &z), keccak256(&m));
        let mut a = vec![2u8];
        a.extend_from_slice(&[5u8; 32]);
        assert_eq!(app_reference_id(&[5u8; 32]), keccak256(&a));
    }
}
