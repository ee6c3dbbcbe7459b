// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title UpgradeOperator
/// @notice Reference values (allowed TDX measurements, verification policy) and the message bus through which
///         confidential VMs hand a secret to each other. Quotes are verified off chain by holders; this contract
///         records what was asked, what was answered, under which reference values, signed by the cluster key.
/// @dev    See PROTOCOL.md for every encoding. Widening changes (new references, looser policy) take effect after
///         `wideningDelay`; narrowing changes (revocations, stricter policy) take effect at once.
contract UpgradeOperator is Ownable2Step, EIP712 {
    // ------------------------------------------------------------------ types

    /// @notice What a reference value measures. `Os` = MRTD‖RTMR0‖RTMR1‖RTMR2, `App` = Dstack compose-hash.
    enum RefKind {
        None,
        Os,
        App
    }

    /// @notice Lifecycle of a secret request. Only `Pending` requests can be answered, and only once.
    enum RequestStatus {
        None,
        Pending,
        Delivered,
        Refused
    }

    /// @dev One storage slot. `activatesAt` is when a proposed reference becomes usable; `expiresAt` (0 = never)
    ///      when a superseded one stops being usable, scheduled by the owner.
    struct Reference {
        RefKind kind;
        uint64 activatesAt;
        bool revoked;
        uint64 expiresAt;
    }

    /// @notice Verification policy holders apply off chain. `tcbStatuses` is a bitmask over TCB statuses
    ///         (bit 0 UpToDate, 1 SWHardeningNeeded, 2 ConfigurationNeeded, 3 ConfigurationAndSWHardeningNeeded,
    ///         4 OutOfDate, 5 OutOfDateConfigurationNeeded, 7 TDRelaunchAdvised, 8 TDRelaunchAdvisedConfigurationNeeded);
    ///         Revoked (bit 6) can never be accepted. `minTcbEvaluationDataNumber` is the oldest Intel TCB
    ///         evaluation (the collateral's `tcbEvaluationDataNumber`) holders may judge a quote with: raising it after
    ///         a TCB recovery keeps a stale or lying collateral source from passing a platform Intel has since
    ///         downgraded. Raising it narrows; lowering it widens.
    struct Policy {
        uint16 tcbStatuses;
        bool allowDebug;
        bool allowSimulated;
        uint32 minTcbEvaluationDataNumber;
    }

    /// @dev A request, in one storage slot keyed by keccak256(hpkePubKey ‖ requester): what a delivery or refusal
    ///      checks (the id it names and the status) is one cold read, and a new request fills one slot.
    struct Request {
        RequestStatus status;
        uint248 id;
    }

    /// @dev A genesis or rotation proposal waits for the owner's approval; it is valid for one epoch only.
    ///      `endorsed`: a rotation proposal, which the cluster it replaces signed (`proposeRotation`).
    struct GenesisProposal {
        address cluster;
        uint64 forEpoch;
        bool endorsed;
    }

    /// @dev A re-bootstrap the owner approved, waiting for `executableAt` (a widening: it hands custody to a new key).
    struct PendingBootstrap {
        uint256 proposalId;
        bytes32 osRef;
        bytes32 appRef;
        uint64 executableAt;
    }

    // ------------------------------------------------------------------ errors

    /// @notice A measurement argument does not have its fixed length.
    /// @param field 0 mrtd, 1 rtmr0, 2 rtmr1, 3 rtmr2; each must be 48 bytes.
    error BadMeasurementLength(uint8 field, uint256 length);
    /// @notice The reference is already proposed or active; revoke it first to re-propose.
    error ReferenceExists(bytes32 id);
    /// @notice No reference with this id was ever proposed.
    error UnknownReference(bytes32 id);
    /// @notice The reference was already revoked.
    error ReferenceAlreadyRevoked(bytes32 id);
    /// @notice An expiry may only be brought forward (a later one would widen): let it end, then propose it again.
    error ExpiryNotSooner(bytes32 id, uint64 current);
    /// @notice An expiry must not be in the past (revoke for "now").
    error ExpiryInPast(uint64 expiresAt);
    /// @notice The reference is not usable now for this kind (unknown, wrong kind, pending or revoked).
    error ReferenceNotAllowed(bytes32 id, RefKind kind);
    /// @notice A TCB status mask sets the Revoked bit or an unknown bit.
    error InvalidTcbStatuses(uint16 mask);
    /// @notice Ownership cannot be renounced: the reference values would be frozen forever.
    error RenounceDisabled();
    /// @notice An address argument was zero.
    error ZeroAddress();
    /// @notice A payload exceeds its size cap.
    /// @param field 0 quote, 1 eventLog, 2 ciphertext.
    error PayloadTooLarge(uint8 field, uint256 length, uint256 max);
    /// @notice The HPKE public key is zero.
    error InvalidPublicKey();
    /// @notice This requester already used this HPKE public key, in request `requestId`.
    error DuplicatePublicKey(bytes32 hpkePubKey, uint256 requestId);
    /// @notice The widening delay exceeds MAX_WIDENING_DELAY.
    error DelayTooLong(uint64 delay, uint64 max);
    /// @notice No cluster exists yet (genesis not approved).
    error NoCluster();
    /// @notice No genesis proposal with this id.
    error UnknownGenesis(uint256 proposalId);
    /// @notice The genesis proposal was made for another epoch than the next one.
    error StaleGenesis(uint256 proposalId, uint64 forEpoch, uint64 nextEpoch);
    /// @notice The request is unknown or already answered.
    error RequestNotPending(uint256 requestId, RequestStatus status);
    /// @notice The signature does not recover to the current cluster address.
    error BadClusterSignature(address recovered, address cluster);
    /// @notice The encapsulated HPKE key is not 32 bytes (X25519).
    error BadEncapsulatedKey(uint256 length);
    /// @notice The refusal reason code is outside 1..MAX_REASON.
    error InvalidReason(uint8 reason);
    /// @notice The genesis proposal is not the one the owner named (another cluster or epoch than it verified).
    error GenesisMismatch(uint256 proposalId, address cluster, uint64 forEpoch);
    /// @notice A re-bootstrap is already scheduled; cancel it first.
    error BootstrapPending(uint256 proposalId);
    /// @notice No re-bootstrap is scheduled.
    error NoPendingBootstrap();
    /// @notice The scheduled re-bootstrap may run only from `executableAt`.
    error BootstrapNotDue(uint64 executableAt);
    /// @notice The signed answer names another request than `requestId` is (`request` = keccak256(hpkePubKey ‖ requester)).
    error RequestMismatch(uint256 requestId, bytes32 request);
    /// @notice The delivery was decided under another policy than the one in force now.
    error PolicyChanged(bytes32 signed, bytes32 current);
    /// @notice No rotation to epoch `forEpoch` is under way (the owner starts one with `startRotation`), or the proposal
    ///         was made before the rotation under way started (a cancelled one's proposals stay cancelled).
    error NoRotation(uint64 forEpoch);
    /// @notice The proposal was not endorsed by the cluster it would replace (a genesis proposal, not a rotation).
    error NotEndorsed(uint256 proposalId);
    /// @notice A rotation must hand custody to a new key, not to the current cluster.
    error SameCluster(address cluster);

    // ------------------------------------------------------------------ events

    /// @notice The contract was deployed with this owner and this delay for widening changes (seconds).
    event Deployed(address indexed owner, uint64 wideningDelay);
    /// @notice A reference value was proposed; it is usable from `activatesAt` (unix seconds) unless revoked first.
    ///         `measurement` is the canonical encoding: keccak256(uint8(kind) ‖ measurement) == id.
    event ReferenceProposed(
        bytes32 indexed id, RefKind indexed kind, bytes measurement, uint64 activatesAt, string note
    );
    /// @notice The owner published what reference `id` stands for, in the transaction that proposed it (PROTOCOL.md
    ///         §4.5): for an app reference the full app-compose.json, for an OS reference a small JSON document
    ///         naming the OS image. The contract stores and checks nothing about it; auditors check it (an app's
    ///         description must hash to its compose hash). Not emitted when the description is empty.
    event ReferenceDescribed(bytes32 indexed id, RefKind indexed kind, bytes description);
    /// @notice A reference value was revoked, effective at once. Deliveries under it stop immediately.
    event ReferenceRevoked(bytes32 indexed id, RefKind indexed kind, string note);
    /// @notice Reference `id` stops being usable at `expiresAt` (a superseded version's grace period ends); brought
    ///         forward at once, never postponed.
    event ReferenceExpiryScheduled(bytes32 indexed id, RefKind indexed kind, uint64 expiresAt, string note);
    /// @notice A policy is in force from `effectiveAt`, unless another PolicySet is emitted before that time.
    ///         Emitted by the constructor ("initial policy") and by setPolicy: first the narrowed policy, in force at
    ///         once (effectiveAt = now); then, if the call widens anything, the requested policy with
    ///         effectiveAt = now + wideningDelay (PROTOCOL.md §4.4).
    event PolicySet(
        uint16 tcbStatuses,
        bool allowDebug,
        bool allowSimulated,
        uint32 minTcbEvaluationDataNumber,
        uint64 effectiveAt,
        string note
    );
    /// @notice A node proposes to found the cluster (epoch `epoch`) with this cluster address; its quote binds it.
    ///         Nothing is verified on chain; anyone may propose.
    event GenesisProposed(
        uint256 indexed proposalId,
        address indexed cluster,
        uint64 indexed epoch,
        address proposer,
        bytes quote,
        bytes eventLog
    );
    /// @notice The owner approved a genesis proposal: the cluster of `epoch` is `cluster`, bootstrapped under these references.
    event ClusterBootstrapped(
        uint64 indexed epoch, address indexed cluster, uint256 proposalId, bytes32 osRef, bytes32 appRef, string note
    );
    /// @notice Custody was broken: a new cluster replaced `previousCluster` (all holders lost, or a deliberate reset).
    event CustodyReset(uint64 indexed epoch, address indexed previousCluster, address indexed newCluster, string note);
    /// @notice The owner approved a re-bootstrap (a cluster already exists): anyone may execute it from `executableAt`,
    ///         the owner may cancel it until then. Watchers have `wideningDelay` to react.
    event BootstrapScheduled(
        uint256 indexed proposalId,
        uint64 indexed epoch,
        address indexed cluster,
        bytes32 osRef,
        bytes32 appRef,
        uint64 executableAt,
        string note
    );
    /// @notice The owner cancelled the scheduled re-bootstrap.
    event BootstrapCancelled(uint256 indexed proposalId, string note);
    /// @notice A node asks for the secret. The quote's report_data binds the chain id, this contract, `requester` and
    ///         `hpkePubKey` (PROTOCOL.md §3.1). Nothing is verified on chain.
    event SecretRequested(
        uint256 indexed requestId,
        bytes32 indexed hpkePubKey,
        address indexed requester,
        uint64 epoch,
        bytes quote,
        bytes eventLog
    );
    /// @notice The cluster delivered the secret, HPKE-sealed to the request's key, under these references (custody record).
    ///         `signature` is the cluster's EIP-712 `Delivery` signature, so anyone can re-check it from logs alone.
    event SecretDelivered(
        uint256 indexed requestId,
        uint64 indexed epoch,
        address indexed relayer,
        bytes32 osRef,
        bytes32 appRef,
        bytes32 policy,
        bytes encapsulatedKey,
        bytes ciphertext,
        bytes signature
    );
    /// @notice A holder committed to a batch of answers before sending them (PROTOCOL.md §5.3): `commitment` =
    ///         keccak256("replicatoor/commit/v1" ‖ nonce ‖ be256(requestId)…), the nonce drawn inside the holder's TD
    ///         after its decision. The holder sends a sealed delivery only once a trusted header at or after this
    ///         transaction's block proves `commitments(holder) == commitment` and the decision's state unchanged.
    event Committed(address indexed holder, bytes32 commitment);
    /// @notice The cluster refused the request for `reason` (see PROTOCOL.md, refusal codes), with its EIP-712 signature.
    event RequestRefused(
        uint256 indexed requestId, uint64 indexed epoch, address indexed relayer, uint8 reason, bytes signature
    );
    /// @notice The owner asked the cluster to rotate to epoch `epoch`: a new cluster key and a new secret (PROTOCOL.md §5.4).
    event RotationStarted(uint64 indexed epoch, string note);
    /// @notice The owner cancelled the rotation to epoch `epoch` before it was approved.
    event RotationCancelled(uint64 indexed epoch, string note);
    /// @notice A holder proposes `cluster` as the cluster of epoch `epoch`; its quote binds `cluster` as a genesis
    ///         quote does, and `signature` is the current cluster's EIP-712 `Rotation` endorsement (checked here).
    event RotationProposed(
        uint256 indexed proposalId,
        address indexed cluster,
        uint64 indexed epoch,
        address proposer,
        bytes quote,
        bytes eventLog,
        bytes signature
    );
    /// @notice Custody moved to a new key by rotation: endorsed by `previousCluster`, approved by the owner, in force at
    ///         once. Follows the ClusterBootstrapped event of the same epoch.
    event ClusterRotated(
        uint64 indexed epoch, address indexed previousCluster, address indexed newCluster, string note
    );

    // ------------------------------------------------------------------ constants

    /// @notice Bit of the Revoked TCB status; never accepted.
    uint16 public constant TCB_REVOKED_BIT = uint16(1) << 6;
    /// @notice Policy bits that may be set (0-5, 7, 8).
    uint16 public constant TCB_KNOWN_BITS = 0x1bf;
    /// @notice Highest refusal reason code (PROTOCOL.md §5.2).
    uint8 public constant MAX_REASON = 14;
    /// @notice Size cap of a quote, in bytes.
    uint256 public constant MAX_QUOTE_BYTES = 16 * 1024;
    /// @notice Size cap of a compact event log, in bytes.
    uint256 public constant MAX_EVENT_LOG_BYTES = 64 * 1024;
    /// @notice Size cap of a sealed bundle, in bytes.
    uint256 public constant MAX_CIPHERTEXT_BYTES = 128 * 1024;
    /// @notice Largest widening delay accepted at deployment.
    uint64 public constant MAX_WIDENING_DELAY = 365 days;
    /// @notice EIP-712 type hash the cluster key signs to deliver.
    bytes32 public constant DELIVERY_TYPEHASH = keccak256(
        "Delivery(uint256 requestId,bytes32 request,bytes32 policy,bytes32 osRef,bytes32 appRef,bytes encapsulatedKey,bytes ciphertext)"
    );
    /// @notice EIP-712 type hash the cluster key signs to refuse.
    bytes32 public constant REFUSAL_TYPEHASH = keccak256("Refusal(uint256 requestId,bytes32 request,uint8 reason)");
    /// @notice EIP-712 type hash the current cluster key signs to endorse `cluster` as the next epoch's cluster.
    bytes32 public constant ROTATION_TYPEHASH = keccak256("Rotation(uint64 epoch,address cluster)");

    /// @notice Seconds a widening change waits before it takes effect. Fixed at deployment.
    uint64 public immutable wideningDelay;

    // ------------------------------------------------------------------ storage

    mapping(bytes32 id => Reference) internal _refs;
    Policy internal _policy;
    Policy internal _pendingPolicy;

    /// @notice Address of the current cluster key; deliveries and refusals must be signed by it.
    address public cluster;
    /// @dev `cluster`, the epoch and when the pending policy applies share one slot: every delivery and refusal reads
    ///      all three, and each further cold slot would cost it 2,100 gas. 48 bits outlast any epoch count and time.
    uint48 internal _epoch;
    uint48 internal _pendingPolicyAt;
    /// @notice Number of requests so far; ids start at 1.
    uint256 public requestCount;
    /// @notice Number of genesis proposals so far; ids start at 1.
    uint256 public genesisCount;

    mapping(uint256 proposalId => GenesisProposal) internal _genesis;
    /// @dev Keyed by keccak256(hpkePubKey ‖ requester): a front-runner re-posting someone's key only burns its own slot.
    mapping(bytes32 request => Request) internal _requests;
    /// @notice The re-bootstrap waiting for its time (proposalId 0 = none).
    PendingBootstrap public pendingBootstrap;
    /// @notice Each holder account's latest commitment (PROTOCOL.md §5.3).
    /// @dev One slot per sender, overwritten by each batch: after the first, a commitment costs a warm-value rewrite
    ///      (~5k gas), and the newest one is all a holder proves.
    mapping(address holder => bytes32) public commitments;
    /// @notice The epoch a rotation the owner started would create (0, or any other value than `epoch() + 1`: none).
    uint64 public rotationFor;
    /// @notice Proposals up to this id were made before the rotation under way started: a cancelled rotation's
    ///         proposals stay cancelled when the owner starts another to the same epoch. Shares slot 17.
    uint192 public rotationAfter;

    // ------------------------------------------------------------------ constructor

    /// @param owner_ First owner (a multisig or timelock contract in production).
    /// @param wideningDelay_ Seconds before widening changes take effect (0 only for local development).
    /// @param initialPolicy Policy in force from deployment.
    constructor(address owner_, uint64 wideningDelay_, Policy memory initialPolicy)
        Ownable(owner_)
        EIP712("Replicatoor UpgradeOperator", "6")
    {
        _checkPolicy(initialPolicy);
        if (wideningDelay_ > MAX_WIDENING_DELAY) revert DelayTooLong(wideningDelay_, MAX_WIDENING_DELAY);
        wideningDelay = wideningDelay_;
        _policy = initialPolicy;
        emit Deployed(owner_, wideningDelay_);
        _emitPolicySet(initialPolicy, uint64(block.timestamp), "initial policy");
    }

    // ------------------------------------------------------------------ governance: references

    /// @notice Propose an OS reference (MRTD, RTMR0, RTMR1, RTMR2; 48 bytes each). Usable after `wideningDelay`.
    /// @param description Published in `ReferenceDescribed` if not empty (the OS image hash and release, PROTOCOL.md §4.5).
    function proposeOsReference(
        bytes calldata mrtd,
        bytes calldata rtmr0,
        bytes calldata rtmr1,
        bytes calldata rtmr2,
        string calldata note,
        bytes calldata description
    ) external onlyOwner returns (bytes32 id) {
        _check48(0, mrtd);
        _check48(1, rtmr0);
        _check48(2, rtmr1);
        _check48(3, rtmr2);
        return _propose(RefKind.Os, abi.encodePacked(mrtd, rtmr0, rtmr1, rtmr2), note, description);
    }

    /// @notice Propose an app reference (the Dstack compose-hash, sha256 of app-compose.json). Usable after `wideningDelay`.
    /// @param compose The app-compose.json itself, published in `ReferenceDescribed` if not empty. Not checked here:
    ///        auditors check that it hashes to `composeHash`.
    function proposeAppReference(bytes32 composeHash, string calldata note, bytes calldata compose)
        external
        onlyOwner
        returns (bytes32 id)
    {
        return _propose(RefKind.App, abi.encodePacked(composeHash), note, compose);
    }

    /// @notice Revoke a reference (pending or active), effective at once.
    function revokeReference(bytes32 id, string calldata note) external onlyOwner {
        Reference storage r = _refs[id];
        if (r.kind == RefKind.None) revert UnknownReference(id);
        if (r.revoked) revert ReferenceAlreadyRevoked(id);
        r.revoked = true;
        emit ReferenceRevoked(id, r.kind, note);
    }

    /// @notice Schedule reference `id` to stop being usable at `expiresAt` (unix seconds): a superseded version keeps
    ///         serving through a grace period, then holders stop and the contract refuses deliveries under it. A
    ///         narrowing, so it applies at once; it may be brought forward (again at once) but never postponed: to
    ///         extend a version, let it end and propose it again, which waits the widening delay.
    function scheduleExpiry(bytes32 id, uint64 expiresAt, string calldata note) external onlyOwner {
        Reference storage r = _refs[id];
        if (r.kind == RefKind.None) revert UnknownReference(id);
        if (r.revoked) revert ReferenceAlreadyRevoked(id);
        if (expiresAt < block.timestamp) revert ExpiryInPast(expiresAt);
        if (r.expiresAt != 0 && expiresAt >= r.expiresAt) revert ExpiryNotSooner(id, r.expiresAt);
        r.expiresAt = expiresAt;
        emit ReferenceExpiryScheduled(id, r.kind, expiresAt, note);
    }

    // ------------------------------------------------------------------ governance: policy

    /// @notice Set the policy. The part that narrows the policy in force applies at once; if `p` widens anything,
    ///         `p` itself takes effect after `wideningDelay`. Any policy still pending is cancelled.
    function setPolicy(Policy calldata p, string calldata note) external onlyOwner {
        _checkPolicy(p);
        Policy memory cur = policy();
        Policy memory narrowed = Policy({
            tcbStatuses: cur.tcbStatuses & p.tcbStatuses,
            allowDebug: cur.allowDebug && p.allowDebug,
            allowSimulated: cur.allowSimulated && p.allowSimulated,
            minTcbEvaluationDataNumber: cur.minTcbEvaluationDataNumber > p.minTcbEvaluationDataNumber
                ? cur.minTcbEvaluationDataNumber
                : p.minTcbEvaluationDataNumber
        });
        _policy = narrowed;
        delete _pendingPolicy;
        _pendingPolicyAt = 0;
        uint64 nowTs = uint64(block.timestamp);
        _emitPolicySet(narrowed, nowTs, note);
        bool widens = p.tcbStatuses != narrowed.tcbStatuses || p.allowDebug != narrowed.allowDebug
            || p.allowSimulated != narrowed.allowSimulated
            || p.minTcbEvaluationDataNumber != narrowed.minTcbEvaluationDataNumber;
        if (widens) {
            if (wideningDelay == 0) {
                _policy = p;
            } else {
                _pendingPolicy = p;
                _pendingPolicyAt = SafeCast.toUint48(nowTs + wideningDelay);
            }
            _emitPolicySet(p, nowTs + wideningDelay, note);
        }
    }

    /// @notice Ownership cannot be renounced (see RenounceDisabled).
    function renounceOwnership() public view override onlyOwner {
        revert RenounceDisabled();
    }

    // ------------------------------------------------------------------ genesis

    /// @notice Propose the cluster for the next epoch. Anyone may propose; only the owner's approval makes it real.
    /// @param clusterAddress Address of the new cluster key (bound in the quote's report_data, see PROTOCOL.md).
    function proposeGenesis(address clusterAddress, bytes calldata quote, bytes calldata eventLog)
        external
        returns (uint256 proposalId)
    {
        if (clusterAddress == address(0)) revert ZeroAddress();
        _checkAttestationSizes(quote, eventLog);
        uint64 forEpoch = _epoch + 1;
        proposalId = ++genesisCount;
        _genesis[proposalId] = GenesisProposal(clusterAddress, forEpoch, false);
        emit GenesisProposed(proposalId, clusterAddress, forEpoch, msg.sender, quote, eventLog);
    }

    /// @notice Approve a genesis proposal after verifying its quote off chain against these references. The first
    ///         genesis takes effect at once. A re-bootstrap (a cluster exists) hands custody to a new key, so it is a
    ///         widening: it is scheduled for `wideningDelay` later, then anyone may execute it (`executeBootstrap`)
    ///         and the owner may cancel it until then.
    /// @dev The quote is NOT verified on chain: the owner verifies it off chain (`replicatoor admin approve-genesis`).
    ///      `clusterAddress` and `forEpoch` name the proposal the owner verified, so a reorg or a lying RPC cannot get
    ///      another one approved under the same id.
    /// @param proposalId The GenesisProposed id.
    /// @param clusterAddress The proposal's cluster address, as the owner verified it.
    /// @param forEpoch The proposal's epoch, as the owner verified it (must be the next one).
    /// @param osRef OS reference the quote measured (must be allowed now, and again at execution).
    /// @param appRef App reference the quote measured (must be allowed now, and again at execution).
    /// @param note Free text recorded in the event.
    function approveGenesis(
        uint256 proposalId,
        address clusterAddress,
        uint64 forEpoch,
        bytes32 osRef,
        bytes32 appRef,
        string calldata note
    ) external onlyOwner {
        GenesisProposal memory g = _requireVerifiedGenesis(proposalId, clusterAddress, forEpoch);
        _requireAllowed(osRef, RefKind.Os);
        _requireAllowed(appRef, RefKind.App);
        if (cluster == address(0) || wideningDelay == 0) {
            _bootstrap(proposalId, g, osRef, appRef, note);
            return;
        }
        uint256 pending = pendingBootstrap.proposalId;
        if (pending != 0) revert BootstrapPending(pending);
        uint64 at = uint64(block.timestamp) + wideningDelay;
        pendingBootstrap = PendingBootstrap(proposalId, osRef, appRef, at);
        emit BootstrapScheduled(proposalId, g.forEpoch, g.cluster, osRef, appRef, at, note);
    }

    /// @notice Run the scheduled re-bootstrap once its time has come. Anyone may call it; the proposal must still be
    ///         for the next epoch and both references still allowed.
    function executeBootstrap() external {
        PendingBootstrap memory p = pendingBootstrap;
        if (p.proposalId == 0) revert NoPendingBootstrap();
        if (block.timestamp < p.executableAt) revert BootstrapNotDue(p.executableAt);
        GenesisProposal memory g = _requireNextGenesis(p.proposalId);
        _requireAllowed(p.osRef, RefKind.Os);
        _requireAllowed(p.appRef, RefKind.App);
        delete pendingBootstrap;
        _bootstrap(p.proposalId, g, p.osRef, p.appRef, "scheduled re-bootstrap");
    }

    /// @notice Cancel the scheduled re-bootstrap (narrowing: at once).
    function cancelBootstrap(string calldata note) external onlyOwner {
        uint256 id = pendingBootstrap.proposalId;
        if (id == 0) revert NoPendingBootstrap();
        delete pendingBootstrap;
        emit BootstrapCancelled(id, note);
    }

    // ------------------------------------------------------------------ rotation

    /// @notice Ask the cluster to rotate: a holder on a build allowed now makes a new cluster key and a new secret in
    ///         its TD and proposes them (`proposeRotation`); the owner approves one (`approveRotation`).
    function startRotation(string calldata note) external onlyOwner {
        if (cluster == address(0)) revert NoCluster();
        uint64 next = uint64(_epoch) + 1;
        rotationFor = next;
        rotationAfter = SafeCast.toUint192(genesisCount);
        emit RotationStarted(next, note);
    }

    /// @notice Cancel the rotation under way: proposals made for it can never be approved, even if the owner starts
    ///         another rotation to the same epoch.
    function cancelRotation(string calldata note) external onlyOwner {
        uint64 next = uint64(_epoch) + 1;
        if (rotationFor != next) revert NoRotation(next);
        rotationFor = 0;
        emit RotationCancelled(next, note);
    }

    /// @notice Propose the next epoch's cluster during a rotation. Anyone may send it; the current cluster key must
    ///         have signed the EIP-712 `Rotation(epoch, cluster)`, so a proposal no holder endorsed cannot be approved.
    /// @param clusterAddress The new cluster key's address, bound in the quote's report_data as for genesis (§3.1).
    /// @param signature 65-byte EIP-712 `Rotation` signature by the current cluster key.
    function proposeRotation(
        address clusterAddress,
        bytes calldata quote,
        bytes calldata eventLog,
        bytes calldata signature
    ) external returns (uint256 proposalId) {
        uint64 next = uint64(_epoch) + 1;
        if (rotationFor != next) revert NoRotation(next);
        if (clusterAddress == address(0)) revert ZeroAddress();
        if (clusterAddress == cluster) revert SameCluster(clusterAddress);
        _checkAttestationSizes(quote, eventLog);
        _requireClusterSignature(rotationDigest(next, clusterAddress), signature);
        proposalId = ++genesisCount;
        _genesis[proposalId] = GenesisProposal(clusterAddress, next, true);
        emit RotationProposed(proposalId, clusterAddress, next, msg.sender, quote, eventLog, signature);
    }

    /// @notice Approve a rotation proposal after verifying its quote off chain against these references
    ///         (`replicatoor admin rotate approve`). In force at once: the current cluster endorsed it, so neither the
    ///         owner alone nor the cluster key alone can move custody, and a delay would only leave a stolen key in
    ///         power longer. From here on only the new cluster's deliveries and refusals are accepted.
    /// @param proposalId The RotationProposed id.
    /// @param clusterAddress The proposal's cluster address, as the owner verified it.
    /// @param forEpoch The proposal's epoch, as the owner verified it (must be the next one).
    /// @param osRef OS reference the quote measured (must be allowed now).
    /// @param appRef App reference the quote measured (must be allowed now).
    function approveRotation(
        uint256 proposalId,
        address clusterAddress,
        uint64 forEpoch,
        bytes32 osRef,
        bytes32 appRef,
        string calldata note
    ) external onlyOwner {
        GenesisProposal memory g = _requireVerifiedGenesis(proposalId, clusterAddress, forEpoch);
        if (!g.endorsed) revert NotEndorsed(proposalId);
        if (rotationFor != forEpoch || proposalId <= rotationAfter) revert NoRotation(forEpoch);
        _requireAllowed(osRef, RefKind.Os);
        _requireAllowed(appRef, RefKind.App);
        rotationFor = 0;
        address previous = cluster;
        cluster = g.cluster;
        _epoch = SafeCast.toUint48(forEpoch);
        emit ClusterBootstrapped(forEpoch, g.cluster, proposalId, osRef, appRef, note);
        emit ClusterRotated(forEpoch, previous, g.cluster, note);
    }

    // ------------------------------------------------------------------ message bus

    /// @notice Ask the cluster for the secret. The quote binds the HPKE key and the sender (`msg.sender`), so a copied
    ///         request from another sender is refused, and a copied key cannot block the real requester.
    /// @param hpkePubKey X25519 public key the secret will be sealed to (fresh per requester).
    /// @param quote TDX quote whose report_data binds chain id, this contract, msg.sender and hpkePubKey (PROTOCOL.md).
    /// @param eventLog Compact Dstack runtime event log (RTMR3 events) for the app measurement.
    function requestSecret(bytes32 hpkePubKey, bytes calldata quote, bytes calldata eventLog)
        external
        returns (uint256 requestId)
    {
        uint64 e = _epoch;
        if (e == 0) revert NoCluster();
        if (hpkePubKey == bytes32(0)) revert InvalidPublicKey();
        bytes32 request = keccak256(abi.encodePacked(hpkePubKey, msg.sender));
        uint256 existing = _requests[request].id;
        if (existing != 0) revert DuplicatePublicKey(hpkePubKey, existing);
        _checkAttestationSizes(quote, eventLog);
        requestId = ++requestCount;
        // Ids count transactions: 2^248 of them cannot happen, so the narrowing cast is exact.
        _requests[request] = Request(RequestStatus.Pending, uint248(requestId));
        emit SecretRequested(requestId, hpkePubKey, msg.sender, e, quote, eventLog);
    }

    /// @notice Deliver the sealed secret. Anyone may relay; the EIP-712 `Delivery` must be signed by the cluster key,
    ///         name this very request and the policy in force now, and both references must be allowed now. The first
    ///         delivery wins.
    /// @param requestId The pending request.
    /// @param request keccak256(hpkePubKey ‖ requester) of that request (`requestIdOf`'s key): a delivery signed for
    ///        an id that a reorg gave to another request does not apply to it.
    /// @param policyHash keccak256(abi.encode(policy)) of the policy the holder applied; it must be in force now, so a
    ///        narrowing mined before the delivery stops it.
    /// @param osRef OS reference the request's quote measured.
    /// @param appRef App reference the request's event log measured.
    /// @param encapsulatedKey HPKE encapsulated key (32 bytes, X25519).
    /// @param ciphertext HPKE ciphertext of the bundle (PROTOCOL.md §3.4).
    /// @param signature 65-byte EIP-712 `Delivery` signature by the cluster key.
    function deliverSecret(
        uint256 requestId,
        bytes32 request,
        bytes32 policyHash,
        bytes32 osRef,
        bytes32 appRef,
        bytes calldata encapsulatedKey,
        bytes calldata ciphertext,
        bytes calldata signature
    ) external {
        // Marked first, with no local left holding the slot (this function's stack is full); any check below that
        // fails reverts the mark with everything else.
        _pendingRequest(requestId, request).status = RequestStatus.Delivered;
        if (encapsulatedKey.length != 32) revert BadEncapsulatedKey(encapsulatedKey.length);
        if (ciphertext.length > MAX_CIPHERTEXT_BYTES) {
            revert PayloadTooLarge(2, ciphertext.length, MAX_CIPHERTEXT_BYTES);
        }
        bytes32 current = policyHashOf(policy());
        if (policyHash != current) revert PolicyChanged(policyHash, current);
        _requireAllowed(osRef, RefKind.Os);
        _requireAllowed(appRef, RefKind.App);
        _requireClusterSignature(
            deliveryDigest(requestId, request, policyHash, osRef, appRef, encapsulatedKey, ciphertext), signature
        );
        emit SecretDelivered(
            requestId, _epoch, msg.sender, osRef, appRef, policyHash, encapsulatedKey, ciphertext, signature
        );
    }

    /// @notice Refuse a request with a reason code, so the requester and auditors see why. Signed like a delivery.
    /// @param requestId The pending request.
    /// @param request keccak256(hpkePubKey ‖ requester) of that request.
    /// @param reason 1..MAX_REASON (PROTOCOL.md §5.2).
    /// @param signature 65-byte EIP-712 `Refusal` signature by the cluster key.
    function refuseRequest(uint256 requestId, bytes32 request, uint8 reason, bytes calldata signature) external {
        _pendingRequest(requestId, request).status = RequestStatus.Refused;
        if (reason == 0 || reason > MAX_REASON) revert InvalidReason(reason);
        _requireClusterSignature(refusalDigest(requestId, request, reason), signature);
        emit RequestRefused(requestId, _epoch, msg.sender, reason, signature);
    }

    /// @notice Commit to a batch of answers before sending them (PROTOCOL.md §5.3). Anyone may commit into its own
    ///         slot; it grants nothing. A holder's TD draws the value at random after deciding, so the block that
    ///         includes it is provably later than the decision, and the TD releases its sealed deliveries only on
    ///         state proven at or after that block: an operator who froze the TD's view of the chain gets nothing.
    /// @param commitment keccak256("replicatoor/commit/v1" ‖ nonce ‖ be256(requestId)…) for the batch.
    function commit(bytes32 commitment) external {
        commitments[msg.sender] = commitment;
        emit Committed(msg.sender, commitment);
    }

    // ------------------------------------------------------------------ views

    /// @notice The policy in force now (a pending widening counts once its time has come).
    function policy() public view returns (Policy memory) {
        if (_pendingPolicyAt != 0 && block.timestamp >= _pendingPolicyAt) return _pendingPolicy;
        return _policy;
    }

    /// @notice The widening policy waiting for its time, if any (`activatesAt` 0 = none).
    function pendingPolicy() external view returns (Policy memory p, uint64 activatesAt) {
        if (_pendingPolicyAt == 0 || block.timestamp >= _pendingPolicyAt) return (p, 0);
        return (_pendingPolicy, _pendingPolicyAt);
    }

    /// @notice A reference's record (kind None = never proposed).
    function getReference(bytes32 id) external view returns (Reference memory) {
        return _refs[id];
    }

    /// @notice Whether reference `id` of `kind` may be used now: proposed, not revoked, timelock elapsed, not expired.
    function isAllowed(bytes32 id, RefKind kind) public view returns (bool) {
        Reference memory r = _refs[id];
        return kind != RefKind.None && r.kind == kind && !r.revoked && block.timestamp >= r.activatesAt && !_expired(r);
    }

    /// @notice Current epoch; 0 until genesis, +1 on each (re-)bootstrap.
    function epoch() external view returns (uint64) {
        return _epoch;
    }

    /// @notice Status of the request named `request` = keccak256(hpkePubKey ‖ requester), the `request` its delivery or
    ///         refusal signs (None: no such request).
    function requestStatus(bytes32 request) external view returns (RequestStatus) {
        return _requests[request].status;
    }

    /// @notice The request `requester` made with this HPKE key (0 = none).
    function requestIdOf(bytes32 hpkePubKey, address requester) external view returns (uint256) {
        return _requests[keccak256(abi.encodePacked(hpkePubKey, requester))].id;
    }

    /// @notice A genesis proposal's cluster address and target epoch.
    function genesisProposal(uint256 proposalId) external view returns (GenesisProposal memory) {
        return _genesis[proposalId];
    }

    /// @notice Id of an OS reference: keccak256(0x01 ‖ mrtd ‖ rtmr0 ‖ rtmr1 ‖ rtmr2).
    function osReferenceId(bytes calldata mrtd, bytes calldata rtmr0, bytes calldata rtmr1, bytes calldata rtmr2)
        external
        pure
        returns (bytes32)
    {
        _check48(0, mrtd);
        _check48(1, rtmr0);
        _check48(2, rtmr1);
        _check48(3, rtmr2);
        return keccak256(abi.encodePacked(uint8(RefKind.Os), mrtd, rtmr0, rtmr1, rtmr2));
    }

    /// @notice Id of an app reference: keccak256(0x02 ‖ composeHash).
    function appReferenceId(bytes32 composeHash) external pure returns (bytes32) {
        return keccak256(abi.encodePacked(uint8(RefKind.App), composeHash));
    }

    /// @notice EIP-712 digest the cluster key signs to deliver.
    function deliveryDigest(
        uint256 requestId,
        bytes32 request,
        bytes32 policyHash,
        bytes32 osRef,
        bytes32 appRef,
        bytes calldata encapsulatedKey,
        bytes calldata ciphertext
    ) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    DELIVERY_TYPEHASH,
                    requestId,
                    request,
                    policyHash,
                    osRef,
                    appRef,
                    keccak256(encapsulatedKey),
                    keccak256(ciphertext)
                )
            )
        );
    }

    /// @notice EIP-712 digest the current cluster key signs to endorse `clusterAddress` for epoch `forEpoch`.
    function rotationDigest(uint64 forEpoch, address clusterAddress) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(ROTATION_TYPEHASH, forEpoch, clusterAddress)));
    }

    /// @notice EIP-712 digest the cluster key signs to refuse.
    function refusalDigest(uint256 requestId, bytes32 request, uint8 reason) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(REFUSAL_TYPEHASH, requestId, request, reason)));
    }

    /// @notice The hash a delivery names its policy by:
    ///         keccak256(abi.encode(tcbStatuses, allowDebug, allowSimulated, minTcbEvaluationDataNumber)).
    function policyHashOf(Policy memory p) public pure returns (bytes32) {
        return keccak256(abi.encode(p.tcbStatuses, p.allowDebug, p.allowSimulated, p.minTcbEvaluationDataNumber));
    }

    // ------------------------------------------------------------------ internal

    function _propose(RefKind kind, bytes memory measurement, string calldata note, bytes calldata description)
        internal
        returns (bytes32 id)
    {
        id = keccak256(abi.encodePacked(uint8(kind), measurement));
        Reference storage r = _refs[id];
        if (r.kind != RefKind.None && !r.revoked && !_expired(r)) revert ReferenceExists(id);
        uint64 activatesAt = uint64(block.timestamp) + wideningDelay;
        _refs[id] = Reference(kind, activatesAt, false, 0);
        emit ReferenceProposed(id, kind, measurement, activatesAt, note);
        if (description.length != 0) emit ReferenceDescribed(id, kind, description);
    }

    function _expired(Reference memory r) internal view returns (bool) {
        return r.expiresAt != 0 && block.timestamp >= r.expiresAt;
    }

    function _requireAllowed(bytes32 id, RefKind kind) internal view {
        if (!isAllowed(id, kind)) revert ReferenceNotAllowed(id, kind);
    }

    /// @dev The request `request` names, which must have id `requestId` (else it is unknown here, or a reorg gave the id
    ///      to another request) and be pending.
    function _pendingRequest(uint256 requestId, bytes32 request) internal view returns (Request storage r) {
        r = _requests[request];
        if (r.id != requestId) revert RequestMismatch(requestId, request);
        if (r.status != RequestStatus.Pending) revert RequestNotPending(requestId, r.status);
    }

    function _requireNextGenesis(uint256 proposalId) internal view returns (GenesisProposal memory g) {
        g = _genesis[proposalId];
        if (g.cluster == address(0)) revert UnknownGenesis(proposalId);
        if (g.forEpoch != _epoch + 1) revert StaleGenesis(proposalId, g.forEpoch, _epoch + 1);
    }

    /// @dev The next epoch's proposal `proposalId`, which must be the one the owner verified (`clusterAddress`,
    ///      `forEpoch`): a reorg or a lying RPC cannot get another one approved under the same id.
    function _requireVerifiedGenesis(uint256 proposalId, address clusterAddress, uint64 forEpoch)
        internal
        view
        returns (GenesisProposal memory g)
    {
        g = _requireNextGenesis(proposalId);
        if (g.cluster != clusterAddress || g.forEpoch != forEpoch) {
            revert GenesisMismatch(proposalId, clusterAddress, forEpoch);
        }
    }

    function _bootstrap(uint256 proposalId, GenesisProposal memory g, bytes32 osRef, bytes32 appRef, string memory note)
        internal
    {
        address previous = cluster;
        cluster = g.cluster;
        _epoch = SafeCast.toUint48(g.forEpoch);
        emit ClusterBootstrapped(g.forEpoch, g.cluster, proposalId, osRef, appRef, note);
        if (previous != address(0)) emit CustodyReset(g.forEpoch, previous, g.cluster, note);
    }

    function _requireClusterSignature(bytes32 digest, bytes calldata signature) internal view {
        address recovered;
        ECDSA.RecoverError err = ECDSA.RecoverError.InvalidSignatureLength;
        if (signature.length == 65) {
            bytes32 r;
            bytes32 s;
            uint8 v;
            // r ‖ s ‖ v, read from calldata as ECDSA.tryRecover(bytes32, bytes memory) reads them from memory, without
            // first copying the signature to memory; the same checks then apply (low s, v 27 or 28, no zero address).
            assembly ("memory-safe") {
                r := calldataload(signature.offset)
                s := calldataload(add(signature.offset, 0x20))
                v := byte(0, calldataload(add(signature.offset, 0x40)))
            }
            (recovered, err,) = ECDSA.tryRecover(digest, v, r, s);
        }
        address c = cluster;
        if (err != ECDSA.RecoverError.NoError || recovered != c) revert BadClusterSignature(recovered, c);
    }

    function _emitPolicySet(Policy memory p, uint64 effectiveAt, string memory note) internal {
        emit PolicySet(p.tcbStatuses, p.allowDebug, p.allowSimulated, p.minTcbEvaluationDataNumber, effectiveAt, note);
    }

    function _checkPolicy(Policy memory p) internal pure {
        if (p.tcbStatuses & ~TCB_KNOWN_BITS != 0) revert InvalidTcbStatuses(p.tcbStatuses);
    }

    function _checkAttestationSizes(bytes calldata quote, bytes calldata eventLog) internal pure {
        if (quote.length > MAX_QUOTE_BYTES) revert PayloadTooLarge(0, quote.length, MAX_QUOTE_BYTES);
        if (eventLog.length > MAX_EVENT_LOG_BYTES) revert PayloadTooLarge(1, eventLog.length, MAX_EVENT_LOG_BYTES);
    }

    function _check48(uint8 field, bytes calldata m) internal pure {
        if (m.length != 48) revert BadMeasurementLength(field, m.length);
    }
}
