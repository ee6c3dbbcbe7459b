//! The audit report as plain data. Its serde form is the stable JSON of `audit --json`, schema
//! `replicatoor-audit/v3` (documented field by field in docs/audit.md): fields are only ever added
//! (v2 added what proposals publish: `references[].app` / `.os`, `attested_os` on accepted quotes,
//! `reference_described` timeline entries; v3 key rotation: `epochs`, `endorsed` on proposals, the
//! `rotation_*` / `cluster_rotated` timeline entries).
//! Addresses are checksummed hex, hashes and ids 0x-hex, times unix seconds, block ranges inclusive.

use alloy::primitives::{Address, B256};
use replicatoor_core::{attest::TcbStatus, protocol::Policy};
use serde::Serialize;

pub const SCHEMA: &str = "replicatoor-audit/v3";

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub chain_id: u64,
    pub contract: Address,
    pub from_block: u64,
    pub to_block: u64,
    /// Timestamp of `to_block`, the report's "now".
    pub to_time: u64,
    /// True when `audit --reverify` re-ran the holder pipeline on every accepted quote.
    pub reverified: bool,
    pub timeline: Vec<TimelineEntry>,
    pub references: Vec<ReferenceState>,
    pub policies: Vec<PolicySegment>,
    pub custody: Custody,
    /// Every epoch: how it began (genesis, re-bootstrap, rotation), its cluster, and who received it.
    pub epochs: Vec<EpochEntry>,
    pub findings: Vec<Finding>,
    pub summary: Summary,
    /// With `audit --deployment`: the current values and recent events proven against a trusted
    /// header, each compared with what the RPC said (`null` for an RPC-only audit).
    pub provenance: Option<Provenance>,
}

/// What `audit --deployment` proved, and at which header (PROTOCOL.md §5.1: the reads holders make).
#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    /// How the header was authenticated: the pin's trust mode (`beacon-light-client`, `beacon-custom`,
    /// `simulated-beacon`, `rpc-quorum`).
    pub trust_mode: String,
    /// The trusted header's execution block, hash and timestamp: every value below holds there.
    pub block: u64,
    pub block_hash: B256,
    pub time: u64,
    /// Beacon trust roots: sync-committee members who signed the header, of `committee_size`.
    pub signers: Option<u64>,
    pub committee_size: Option<u64>,
    /// Events from this block on are proven from receipts; older ones stay `rpc_read`.
    pub events_window_from: u64,
    /// Values and events whose RPC answer differs from the proof.
    pub mismatches: usize,
    pub values: Vec<ProvenValue>,
    pub events: Vec<EventProvenance>,
}

/// One current value: as the report derived it from the RPC, and as proven.
#[derive(Debug, Clone, Serialize)]
pub struct ProvenValue {
    pub name: String,
    pub rpc: String,
    pub proven: Option<String>,
    /// `proven` (equal), `mismatch` (the RPC's differs) or `unproven` (no valid proof: `detail`).
    pub status: &'static str,
    pub detail: Option<String>,
}

/// One event of the report: proven from its block's receipts, or read from the RPC only.
#[derive(Debug, Clone, Serialize)]
pub struct EventProvenance {
    pub block: u64,
    pub log_index: u64,
    pub event: String,
    /// `proven`, `mismatch` (the proven receipts differ, or hold a log the RPC left out),
    /// `unproven` (no valid proof: `detail`) or `rpc_read` (older than the linkable window).
    pub status: &'static str,
    pub detail: Option<String>,
}

/// A policy as the contract stores it, with the mask spelled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PolicyView {
    pub tcb_statuses: u16,
    pub tcb_status_names: TcbNames,
    pub allow_debug: bool,
    pub allow_simulated: bool,
    /// The oldest Intel TCB evaluation holders may judge with (0 = any).
    pub min_tcb_evaluation_data_number: u32,
}

/// The statuses a mask accepts, by name (serialized as a list of strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcbNames(pub u16);

impl TcbNames {
    /// The names of the statuses mask `self.0` accepts, in the contract's bit order.
    pub fn names(self) -> Vec<&'static str> {
        TcbStatus::ALL.into_iter().filter(|s| s.accepted_by(self.0)).map(TcbStatus::name).collect()
    }
}

impl Serialize for TcbNames {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

impl From<Policy> for PolicyView {
    fn from(p: Policy) -> Self {
        PolicyView {
            tcb_statuses: p.tcb_statuses,
            tcb_status_names: TcbNames(p.tcb_statuses),
            allow_debug: p.allow_debug,
            allow_simulated: p.allow_simulated,
            min_tcb_evaluation_data_number: p.min_tcb_evaluation_data_number,
        }
    }
}

impl PolicyView {
    pub fn policy(&self) -> Policy {
        Policy {
            tcb_statuses: self.tcb_statuses,
            allow_debug: self.allow_debug,
            allow_simulated: self.allow_simulated,
            min_tcb_evaluation_data_number: self.min_tcb_evaluation_data_number,
        }
    }
}

/// One governance event.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub block: u64,
    pub log_index: u64,
    pub time: u64,
    pub tx: B256,
    /// The transaction's sender (`eth_getTransactionByHash`); for a multisig or timelock owner this is
    /// the account that executed it. `null` when the node could not return the transaction.
    pub actor: Option<Address>,
    /// The on-chain note (attacker-controlled text; "" when the event has none).
    pub note: String,
    #[serde(flatten)]
    pub event: GovernanceEvent,
}

/// What happened, tagged by `kind`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GovernanceEvent {
    Deployed {
        owner: Address,
        widening_delay: u64,
    },
    ReferenceProposed {
        id: B256,
        ref_kind: RefKindName,
        /// MRTD‖RTMR0‖RTMR1‖RTMR2 (192 bytes) or the compose hash (32 bytes), hex.
        measurement: String,
        activates_at: u64,
        /// `activates_at` ≤ the proposal's block time: usable at once.
        immediate: bool,
        /// keccak256(kind ‖ measurement) == id (PROTOCOL.md §3.2).
        id_matches_measurement: bool,
    },
    ReferenceRevoked {
        id: B256,
        ref_kind: RefKindName,
    },
    /// The proposal published the reference's description (PROTOCOL.md §4.5); the bytes are in
    /// `references[].app.compose` / `references[].os`.
    ReferenceDescribed {
        id: B256,
        ref_kind: RefKindName,
        bytes: usize,
    },
    PolicySet {
        policy: PolicyView,
        effective_at: u64,
        /// A later PolicySet came before `effective_at`: this one never took effect.
        cancelled: bool,
    },
    OwnershipTransferStarted {
        previous_owner: Address,
        new_owner: Address,
    },
    OwnershipTransferred {
        previous_owner: Address,
        new_owner: Address,
    },
    ClusterBootstrapped {
        epoch: u64,
        cluster: Address,
        proposal_id: u64,
        os_ref: B256,
        app_ref: B256,
    },
    CustodyReset {
        epoch: u64,
        previous_cluster: Address,
        new_cluster: Address,
    },
    /// The owner scheduled reference `id` to end at `expires_at` (protocol v2).
    ReferenceExpiryScheduled {
        id: B256,
        ref_kind: RefKindName,
        expires_at: u64,
    },
    /// The owner approved a re-bootstrap; custody moves at `executable_at` unless cancelled (protocol v2).
    BootstrapScheduled {
        epoch: u64,
        cluster: Address,
        proposal_id: u64,
        executable_at: u64,
    },
    BootstrapCancelled {
        proposal_id: u64,
    },
    /// The owner asked the cluster to rotate to `epoch` (protocol v6).
    RotationStarted {
        epoch: u64,
    },
    /// The owner cancelled the rotation to `epoch` (protocol v6).
    RotationCancelled {
        epoch: u64,
    },
    /// Custody moved to `new_cluster` by a rotation `previous_cluster` endorsed (protocol v6).
    ClusterRotated {
        epoch: u64,
        previous_cluster: Address,
        new_cluster: Address,
    },
}

impl GovernanceEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            GovernanceEvent::Deployed { .. } => "deployed",
            GovernanceEvent::ReferenceProposed { .. } => "reference_proposed",
            GovernanceEvent::ReferenceRevoked { .. } => "reference_revoked",
            GovernanceEvent::ReferenceDescribed { .. } => "reference_described",
            GovernanceEvent::PolicySet { .. } => "policy_set",
            GovernanceEvent::OwnershipTransferStarted { .. } => "ownership_transfer_started",
            GovernanceEvent::OwnershipTransferred { .. } => "ownership_transferred",
            GovernanceEvent::ClusterBootstrapped { .. } => "cluster_bootstrapped",
            GovernanceEvent::CustodyReset { .. } => "custody_reset",
            GovernanceEvent::BootstrapScheduled { .. } => "bootstrap_scheduled",
            GovernanceEvent::ReferenceExpiryScheduled { .. } => "reference_expiry_scheduled",
            GovernanceEvent::BootstrapCancelled { .. } => "bootstrap_cancelled",
            GovernanceEvent::RotationStarted { .. } => "rotation_started",
            GovernanceEvent::RotationCancelled { .. } => "rotation_cancelled",
            GovernanceEvent::ClusterRotated { .. } => "cluster_rotated",
        }
    }
}

/// `os`, `app`, or `unknown(N)` for a kind byte the contract never emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefKindName(pub u8);

impl RefKindName {
    pub fn as_str(&self) -> String {
        match self.0 {
            1 => "os".into(),
            2 => "app".into(),
            n => format!("unknown({n})"),
        }
    }
}

impl Serialize for RefKindName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

/// A reference id's state at the end of the audited range (its latest proposal).
#[derive(Debug, Clone, Serialize)]
pub struct ReferenceState {
    pub id: B256,
    pub ref_kind: RefKindName,
    pub measurement: String,
    /// `active`, `pending` (not yet at `activates_at`), `expired` (past `expires_at`) or `revoked`.
    pub status: &'static str,
    pub proposed_block: u64,
    pub activates_at: u64,
    pub note: String,
    pub revoked_block: Option<u64>,
    pub revoke_note: Option<String>,
    /// When the owner scheduled it to end (a superseded version's grace period), unix seconds.
    pub expires_at: Option<u64>,
    /// How many times this id was proposed (a revoked id may be proposed again).
    pub proposals: usize,
    /// App references: what the latest proposal published about the app (`null` for OS references).
    pub app: Option<AppApproval>,
    /// OS references: the OS description the latest proposal published (`null` for app references).
    pub os: Option<OsApproval>,
}

/// What an app reference's proposal published: the app-compose.json, checked against the compose
/// hash, and what it measures (the trust mode its nodes run in, settings the operator still chooses).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AppApproval {
    /// False for proposals that did not publish the compose (all of them before schema v2's contract).
    pub compose_published: bool,
    /// The published app-compose.json as text (owner-supplied; invalid UTF-8 replaced).
    pub compose: Option<String>,
    /// sha256 of the published bytes, hex.
    pub compose_sha256: Option<String>,
    /// sha256(compose) == the reference's compose hash. False is a finding: what was published is not
    /// what was approved.
    pub compose_hash_matches: Option<bool>,
    /// Why the compose could not be analysed (not JSON, YAML errors).
    pub analysis_error: Option<String>,
    /// `beacon-light-client`, `beacon-custom` (a beacon network the pin spells out), `rpc-quorum`,
    /// `simulated-beacon`, or `rpc-unverified` (nothing pinned literally: NOT PINNED); `null` when no
    /// compose was published.
    pub trust_mode: Option<&'static str>,
    /// The deployment the compose pins literally (REPLICATOOR_DEPLOYMENT).
    pub pinned_deployment: Option<PinView>,
    /// Pinned chain id and contract equal the audited deployment's.
    pub pin_matches_deployment: Option<bool>,
    /// Security settings the machine's operator can choose without changing the compose hash.
    pub unmeasured: Vec<crate::compose::Unmeasured>,
    /// `service: image` for images referenced by tag.
    pub images_by_tag: Vec<String>,
    /// Services that run the replicatoor agent.
    pub agent_services: Vec<String>,
    /// Whether its nodes check their settings against this compose (the `dstack` quote provider);
    /// `null` when no agent service was found.
    pub self_measured: Option<bool>,
}

/// A pinned deployment, as the audit shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PinView {
    pub chain_id: u64,
    pub contract: Address,
    pub start_block: u64,
    /// The trust root, in words (network and checkpoint, quorum size, or SIMULATED beacon).
    pub trust: String,
    /// The trust root is a simulated network: `simulated-beacon`, or a custom network with the
    /// simulated network's identity (its fork versions or genesis validators root) under another name.
    pub simulated: bool,
}

/// What an OS reference's proposal published.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OsApproval {
    pub description_published: bool,
    /// Dstack's OS image hash (hex), as the owner published it.
    pub os_image_hash: Option<String>,
    /// Release note or URL.
    pub release: Option<String>,
    /// Why the published description could not be read.
    pub error: Option<String>,
}

/// What an accepted quote's own event log says about its OS (the log replays to the quote's RTMR3
/// for every quote a holder accepted), next to what the owner published for its OS reference.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AttestedOs {
    /// Payload of the log's `os-image-hash` event (hex); `null` when not logged.
    pub os_image_hash: Option<String>,
    /// Payload of the log's `key-provider` event (text); `null` when not logged.
    pub key_provider: Option<String>,
    /// The OS image hash published for the OS reference the answer names.
    pub approved_os_image_hash: Option<String>,
    /// Both known and equal / different; `null` when either is unknown.
    pub matches: Option<bool>,
    /// Why the log could not be read (it is in the request; the holder read it too).
    pub error: Option<String>,
    /// The TD's launch configuration as its quote reports it (unverified parse; `--reverify`
    /// verifies the quote). `null` when the quote does not parse as a TD quote.
    pub td: Option<TdConfig>,
}

/// The parts of a TD report that the launcher chooses and the OS reference does not measure
/// (SECURITY.md, "What a quote's TD configuration means"), shown for every accepted quote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TdConfig {
    /// TD attributes (hex, as in the report) and the names of the bits set.
    pub td_attributes: String,
    pub td_attribute_names: Vec<String>,
    /// XFAM: the CPU extended features the TD may use (hex).
    pub xfam: String,
    /// MRCONFIGID, MROWNER, MROWNERCONFIG (hex; zero unless the launcher set them).
    pub mr_config_id: String,
    pub mr_owner: String,
    pub mr_owner_config: String,
}

/// The policy in force over a block range (PROTOCOL.md §4.4 reconstruction).
#[derive(Debug, Clone, Serialize)]
pub struct PolicySegment {
    pub from_block: u64,
    /// Last block in which this policy was (at least partly) in force.
    pub to_block: u64,
    /// Still in force at `to_block` of the audit.
    pub open: bool,
    pub policy: PolicyView,
    /// Block of the PolicySet event that defined it.
    pub set_in_block: u64,
}

/// The custody record: who got the secret, from which cluster, under which references.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Custody {
    pub epochs: Vec<EpochRecord>,
    pub genesis_proposals: Vec<GenesisProposal>,
    pub requests: Vec<RequestRecord>,
    /// Request ids still pending at `to_block`.
    pub unanswered: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GenesisProposal {
    pub proposal_id: u64,
    pub cluster: Address,
    pub epoch: u64,
    pub proposer: Address,
    pub block: u64,
    pub tx: B256,
    /// The epoch it founded, if the owner approved it.
    pub approved: bool,
    /// A rotation proposal (`RotationProposed`), endorsed by the cluster it replaces (protocol v6).
    pub endorsed: bool,
}

/// One epoch of the deployment, as it began and who received its secret.
#[derive(Debug, Clone, Serialize)]
pub struct EpochEntry {
    pub epoch: u64,
    pub cluster: Address,
    /// `genesis` (the first cluster), `re_bootstrap` (a new genesis replaced a live cluster:
    /// CustodyReset) or `rotation` (the previous cluster endorsed it: ClusterRotated).
    pub kind: &'static str,
    /// The cluster it replaced (re-bootstrap or rotation).
    pub previous_cluster: Option<Address>,
    /// The approved proposal (GenesisProposed or RotationProposed) and who posted it.
    pub proposal_id: u64,
    pub proposer: Option<Address>,
    /// The ClusterBootstrapped event's block and transaction.
    pub block: u64,
    pub time: u64,
    pub tx: B256,
    /// Requesters that received this epoch's secret (SecretDelivered with this `epoch`), in chain order.
    pub recipients: Vec<EpochRecipient>,
}

/// A delivery of an epoch's secret.
#[derive(Debug, Clone, Serialize)]
pub struct EpochRecipient {
    pub request_id: u64,
    pub requester: Address,
    pub block: u64,
}

/// One cluster: its genesis and everything its key signed.
#[derive(Debug, Clone, Serialize)]
pub struct EpochRecord {
    pub epoch: u64,
    pub cluster: Address,
    pub proposal_id: u64,
    /// Account that posted the approved genesis proposal (the genesis node's sender).
    pub proposer: Option<Address>,
    pub os_ref: B256,
    pub app_ref: B256,
    pub block: u64,
    pub time: u64,
    pub tx: B256,
    pub note: String,
    /// Set when this epoch replaced an existing cluster (CustodyReset).
    pub previous_cluster: Option<Address>,
    pub reverify: Option<Reverification>,
    /// What the genesis quote's event log says about its OS.
    pub attested_os: Option<AttestedOs>,
    pub deliveries: Vec<DeliveryRecord>,
    pub refusals: Vec<RefusalRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    pub request_id: u64,
    pub requester: Address,
    pub os_ref: B256,
    pub app_ref: B256,
    /// The account that sent `deliverSecret` (anyone may relay; agents relay their own).
    pub relayer: Address,
    /// The holder this delivery descends from: the relayer when it is the epoch's genesis proposer
    /// or an earlier recipient in this epoch, else `null` (the cluster key, relayed by a stranger).
    pub served_by: Option<Address>,
    pub request_block: u64,
    pub block: u64,
    pub time: u64,
    pub tx: B256,
    pub reverify: Option<Reverification>,
    /// What the request's event log says about its OS.
    pub attested_os: Option<AttestedOs>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RefusalRecord {
    pub request_id: u64,
    pub requester: Address,
    /// Refusal name (`app_reference_not_allowed`, …) or `unknown`.
    pub reason: &'static str,
    pub code: u8,
    pub relayer: Address,
    pub block: u64,
    pub time: u64,
    pub tx: B256,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub request_id: u64,
    pub requester: Address,
    pub hpke_pub_key: B256,
    /// The epoch when it was posted.
    pub epoch: u64,
    pub block: u64,
    pub time: u64,
    pub tx: B256,
    pub quote_bytes: usize,
    /// The form of the posted quote: `raw` or `compact` (PROTOCOL.md §3.9).
    pub quote_form: replicatoor_compact_quote::QuoteForm,
    pub event_log_bytes: usize,
    /// `pending`, `delivered` or `refused`.
    pub status: &'static str,
    pub answered_block: Option<u64>,
}

/// The outcome of re-running the holder pipeline offline on an accepted quote.
#[derive(Debug, Clone, Serialize)]
pub struct Reverification {
    /// `accepted` (would be accepted, same references), `rejected` (would not be), or
    /// `inconclusive` (a local problem, e.g. no collateral for a genuine quote).
    pub verdict: &'static str,
    /// The refusal name for `rejected` (or `reference_mismatch`, `simulated_quote_not_trusted`).
    pub reason: Option<String>,
    pub detail: String,
    pub tcb_status: Option<String>,
    pub simulated: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Info,
}

impl Severity {
    pub const ALL: [Severity; 5] =
        [Severity::Critical, Severity::High, Severity::Medium, Severity::Low, Severity::Info];
    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }
}

/// An inclusive block range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BlockRange {
    pub from: u64,
    pub to: u64,
    /// Still true at the audit's last block.
    pub open: bool,
}

impl BlockRange {
    pub fn at(block: u64) -> Self {
        BlockRange { from: block, to: block, open: false }
    }
}

/// Something an auditor should look at.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable identifier of the rule (docs/audit.md lists them).
    pub kind: &'static str,
    pub severity: Severity,
    pub title: String,
    pub detail: String,
    pub blocks: Vec<BlockRange>,
    pub request_ids: Vec<u64>,
    pub accounts: Vec<Address>,
    pub references: Vec<B256>,
    pub epochs: Vec<u64>,
}

impl Finding {
    pub fn new(kind: &'static str, severity: Severity, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Finding {
            kind,
            severity,
            title: title.into(),
            detail: detail.into(),
            blocks: vec![],
            request_ids: vec![],
            accounts: vec![],
            references: vec![],
            epochs: vec![],
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
    pub info: usize,
    pub events: usize,
    pub epochs: usize,
    pub requests: usize,
    pub delivered: usize,
    pub refused: usize,
    pub pending: usize,
    pub owner: Option<Address>,
    pub pending_owner: Option<Address>,
    pub widening_delay: Option<u64>,
    /// The policy in force at `to_block`, and one still waiting for its `effective_at`.
    pub policy: Option<PolicyView>,
    pub pending_policy: Option<PendingPolicy>,
    pub reverify_rejected: usize,
    pub reverify_inconclusive: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PendingPolicy {
    pub policy: PolicyView,
    pub effective_at: u64,
}
