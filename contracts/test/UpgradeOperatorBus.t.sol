// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Vm} from "./Vm.sol";
import {UpgradeOperatorBase} from "./UpgradeOperatorBase.sol";
import {UpgradeOperator} from "../src/UpgradeOperator.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @notice Genesis, requestSecret, deliverSecret and refuseRequest.
contract UpgradeOperatorBusTest is UpgradeOperatorBase {
    UpgradeOperator.RequestStatus internal constant NONE = UpgradeOperator.RequestStatus.None;
    UpgradeOperator.RequestStatus internal constant PENDING = UpgradeOperator.RequestStatus.Pending;
    UpgradeOperator.RequestStatus internal constant DELIVERED = UpgradeOperator.RequestStatus.Delivered;
    UpgradeOperator.RequestStatus internal constant REFUSED = UpgradeOperator.RequestStatus.Refused;
    UpgradeOperator.RefKind internal constant OS = UpgradeOperator.RefKind.Os;
    UpgradeOperator.RefKind internal constant APP = UpgradeOperator.RefKind.App;

    // ================================================================== genesis: propose

    function test_proposeGenesis_storesAndEmits() public {
        vm.expectEmit(address(op));
        emit UpgradeOperator.GenesisProposed(1, clusterAddr, 1, stranger, QUOTE, EVENT_LOG);
        vm.prank(stranger);
        uint256 id = op.proposeGenesis(clusterAddr, QUOTE, EVENT_LOG);
        assertEq(id, 1, "proposal id");
        assertEq(op.genesisCount(), 1, "genesisCount");
        UpgradeOperator.GenesisProposal memory g = op.genesisProposal(1);
        assertEq(g.cluster, clusterAddr, "cluster");
        assertEq(uint256(g.forEpoch), 1, "forEpoch");
        assertEq(_proposeGenesis(cluster2Addr), 2, "second proposal id");
        // Proposing changes nothing until approved.
        assertEq(op.cluster(), address(0), "no cluster yet");
        assertEq(uint256(op.epoch()), 0, "epoch");
    }

    function test_proposeGenesis_revertsOnZeroAddress() public {
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ZeroAddress.selector));
        op.proposeGenesis(address(0), QUOTE, EVENT_LOG);
    }

    function test_proposeGenesis_sizeCaps() public {
        bytes memory bigQuote = randomBytes(1, 16 * 1024 + 1);
        bytes memory bigLog = randomBytes(2, 64 * 1024 + 1);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.PayloadTooLarge.selector, uint8(0), 16385, 16384));
        op.proposeGenesis(clusterAddr, bigQuote, EVENT_LOG);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.PayloadTooLarge.selector, uint8(1), 65537, 65536));
        op.proposeGenesis(clusterAddr, QUOTE, bigLog);
        // Exactly at the caps is fine.
        op.proposeGenesis(clusterAddr, randomBytes(3, 16 * 1024), randomBytes(4, 64 * 1024));
    }

    // ================================================================== genesis: approve

    function test_approveGenesis_bootstraps() public {
        (bytes32 osRef, bytes32 appRef) = _activeRefs();
        uint256 gid = _proposeGenesis(clusterAddr);
        vm.expectEmit(address(op));
        emit UpgradeOperator.ClusterBootstrapped(1, clusterAddr, gid, osRef, appRef, "go");
        vm.recordLogs();
        vm.prank(owner);
        op.approveGenesis(gid, _gc(gid), _ge(gid), osRef, appRef, "go");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(_count(logs, UpgradeOperator.CustodyReset.selector), 0, "no CustodyReset at first genesis");
        assertEq(op.cluster(), clusterAddr, "cluster");
        assertEq(uint256(op.epoch()), 1, "epoch");
    }

    function test_approveGenesis_revertsForNonOwner() public {
        (bytes32 osRef, bytes32 appRef) = _activeRefs();
        uint256 gid = _proposeGenesis(clusterAddr);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        op.approveGenesis(gid, _gc(gid), _ge(gid), osRef, appRef, "");
    }

    function test_approveGenesis_revertsOnUnknownProposal() public {
        (bytes32 osRef, bytes32 appRef) = _activeRefs();
        _proposeGenesis(clusterAddr);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.UnknownGenesis.selector, 2));
        op.approveGenesis(2, _gc(2), _ge(2), osRef, appRef, "");
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.UnknownGenesis.selector, 0));
        op.approveGenesis(0, _gc(0), _ge(0), osRef, appRef, "");
    }

    function test_approveGenesis_revertsWhenStale() public {
        (bytes32 osRef, bytes32 appRef) = _activeRefs();
        uint256 g1 = _proposeGenesis(clusterAddr);
        uint256 g2 = _proposeGenesis(cluster2Addr);
        _approveGenesis(g1, osRef, appRef);
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.StaleGenesis.selector, g2, uint64(1), uint64(2)));
        op.approveGenesis(g2, _gc(g2), _ge(g2), osRef, appRef, "");
        // Approving the same proposal twice is stale too.
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.StaleGenesis.selector, g1, uint64(1), uint64(2)));
        op.approveGenesis(g1, _gc(g1), _ge(g1), osRef, appRef, "");
        vm.stopPrank();
    }

    function test_approveGenesis_revertsOnDisallowedReferences() public {
        bytes32 osRef = _proposeOs(op, 1);
        bytes32 appRef = _proposeApp(op, COMPOSE_HASH);
        uint256 gid = _proposeGenesis(clusterAddr);
        vm.startPrank(owner);
        // Pending (timelock not elapsed).
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceNotAllowed.selector, osRef, OS));
        op.approveGenesis(gid, _gc(gid), _ge(gid), osRef, appRef, "");
        vm.warp(T0 + DELAY);
        // Unknown.
        bytes32 unknown = _osId(9);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceNotAllowed.selector, unknown, OS));
        op.approveGenesis(gid, _gc(gid), _ge(gid), unknown, appRef, "");
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceNotAllowed.selector, unknown, APP));
        op.approveGenesis(gid, _gc(gid), _ge(gid), osRef, unknown, "");
        // Wrong kind (swapped).
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceNotAllowed.selector, appRef, OS));
        op.approveGenesis(gid, _gc(gid), _ge(gid), appRef, osRef, "");
        // Revoked.
        op.revokeReference(appRef, "");
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceNotAllowed.selector, appRef, APP));
        op.approveGenesis(gid, _gc(gid), _ge(gid), osRef, appRef, "");
        vm.stopPrank();
        assertEq(uint256(op.epoch()), 0, "epoch unchanged");
    }

    /// @dev A second genesis while a cluster exists hands custody to a new key: a widening, so it waits the delay.
    function _scheduleRebootstrap(bytes32 osRef, bytes32 appRef) internal returns (uint256 g2) {
        vm.prank(stranger);
        g2 = op.proposeGenesis(cluster2Addr, QUOTE, EVENT_LOG);
        assertEq(uint256(op.genesisProposal(g2).forEpoch), 2, "forEpoch");
        vm.expectEmit(address(op));
        emit UpgradeOperator.BootstrapScheduled(
            g2, 2, cluster2Addr, osRef, appRef, uint64(block.timestamp) + DELAY, "reset"
        );
        vm.prank(owner);
        op.approveGenesis(g2, cluster2Addr, 2, osRef, appRef, "reset");
    }

    function test_approveGenesis_rebootstrapWaitsTheDelayThenResetsCustody() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 pendingBefore = _request(HPKE_KEY);
        uint256 g2 = _scheduleRebootstrap(osRef, appRef);
        // Nothing changed yet: the old cluster still answers, the swap cannot run early.
        assertEq(op.cluster(), clusterAddr, "cluster unchanged while scheduled");
        assertEq(uint256(op.epoch()), 1, "epoch unchanged while scheduled");
        uint64 due = uint64(block.timestamp) + DELAY;
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BootstrapNotDue.selector, due));
        op.executeBootstrap();
        vm.warp(due);

        vm.expectEmit(address(op));
        emit UpgradeOperator.ClusterBootstrapped(2, cluster2Addr, g2, osRef, appRef, "scheduled re-bootstrap");
        vm.expectEmit(address(op));
        emit UpgradeOperator.CustodyReset(2, clusterAddr, cluster2Addr, "scheduled re-bootstrap");
        vm.prank(stranger); // anyone may execute it once due
        op.executeBootstrap();
        assertEq(op.cluster(), cluster2Addr, "cluster");
        assertEq(uint256(op.epoch()), 2, "epoch");
        (uint256 pendingId,,,) = op.pendingBootstrap();
        assertEq(pendingId, 0, "no longer pending");

        // The old cluster key can no longer answer; the new one can, and events carry the new epoch.
        bytes memory ek = _ek();
        bytes memory ct = _ct();
        bytes memory oldSig = _signDelivery(CLUSTER_PK, pendingBefore, osRef, appRef, ek, ct);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, clusterAddr, cluster2Addr));
        op.deliverSecret(pendingBefore, _rq(pendingBefore), _polHash(), osRef, appRef, ek, ct, oldSig);

        vm.expectEmit(address(op));
        emit UpgradeOperator.SecretRequested(2, keccak256("k2"), stranger, 2, QUOTE, EVENT_LOG);
        uint256 r2 = _request(keccak256("k2"));
        bytes memory newSig = _signDelivery(CLUSTER2_PK, r2, osRef, appRef, ek, ct);
        vm.expectEmit(address(op));
        emit UpgradeOperator.SecretDelivered(r2, 2, relayer, osRef, appRef, _polHash(), ek, ct, newSig);
        vm.prank(relayer);
        op.deliverSecret(r2, _rq(r2), _polHash(), osRef, appRef, ek, ct, newSig);
    }

    function test_rebootstrap_ownerCancelsAndCanScheduleOnlyOne() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 g2 = _scheduleRebootstrap(osRef, appRef);
        vm.prank(stranger);
        uint256 g3 = op.proposeGenesis(rogueAddr, QUOTE, EVENT_LOG);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BootstrapPending.selector, g2));
        vm.prank(owner);
        op.approveGenesis(g3, rogueAddr, 2, osRef, appRef, "");
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        op.cancelBootstrap("no");
        vm.expectEmit(address(op));
        emit UpgradeOperator.BootstrapCancelled(g2, "changed my mind");
        vm.prank(owner);
        op.cancelBootstrap("changed my mind");
        vm.warp(block.timestamp + DELAY);
        vm.expectRevert(UpgradeOperator.NoPendingBootstrap.selector);
        op.executeBootstrap();
        vm.expectRevert(UpgradeOperator.NoPendingBootstrap.selector);
        vm.prank(owner);
        op.cancelBootstrap("again");
        assertEq(op.cluster(), clusterAddr, "custody never moved");
    }

    function test_rebootstrap_executionRechecksTheReferences() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        _scheduleRebootstrap(osRef, appRef);
        _revoke(op, appRef);
        vm.warp(block.timestamp + DELAY);
        vm.expectRevert(
            abi.encodeWithSelector(UpgradeOperator.ReferenceNotAllowed.selector, appRef, UpgradeOperator.RefKind.App)
        );
        op.executeBootstrap();
        assertEq(op.cluster(), clusterAddr, "custody never moved");
    }

    function test_rebootstrap_isImmediateWithoutADelay() public {
        op = _deploy(0, _pol(1, false, false));
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        vm.prank(stranger);
        uint256 g2 = op.proposeGenesis(cluster2Addr, QUOTE, EVENT_LOG);
        vm.prank(owner);
        op.approveGenesis(g2, cluster2Addr, 2, osRef, appRef, "dev chain");
        assertEq(op.cluster(), cluster2Addr, "a dev deployment (delay 0) swaps at once");
    }

    function test_approveGenesis_namesTheProposalTheOwnerVerified() public {
        (bytes32 osRef, bytes32 appRef) = _activeRefs();
        uint256 gid = _proposeGenesis(clusterAddr);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.GenesisMismatch.selector, gid, rogueAddr, uint64(1)));
        vm.prank(owner);
        op.approveGenesis(gid, rogueAddr, 1, osRef, appRef, "");
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.GenesisMismatch.selector, gid, clusterAddr, uint64(2)));
        vm.prank(owner);
        op.approveGenesis(gid, clusterAddr, 2, osRef, appRef, "");
        vm.prank(owner);
        op.approveGenesis(gid, clusterAddr, 1, osRef, appRef, "");
        assertEq(op.cluster(), clusterAddr, "the first genesis is immediate");
    }

    // ================================================================== requestSecret

    function test_requestSecret_revertsBeforeGenesis() public {
        _activeRefs();
        _proposeGenesis(clusterAddr); // proposed, not approved
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.NoCluster.selector));
        op.requestSecret(HPKE_KEY, QUOTE, EVENT_LOG);
    }

    function test_requestSecret_revertsOnZeroKey() public {
        _bootstrap();
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.InvalidPublicKey.selector));
        op.requestSecret(bytes32(0), QUOTE, EVENT_LOG);
    }

    function test_requestSecret_revertsOnDuplicateKey() public {
        _bootstrap();
        _request(keccak256("other"));
        uint256 id = _request(HPKE_KEY);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.DuplicatePublicKey.selector, HPKE_KEY, id));
        op.requestSecret(HPKE_KEY, hex"", hex"");
    }

    function test_requestSecret_keyStaysBurntAfterAnswer() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(HPKE_KEY);
        op.refuseRequest(id, _rq(id), 1, _signRefusal(CLUSTER_PK, id, 1));
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.DuplicatePublicKey.selector, HPKE_KEY, id));
        op.requestSecret(HPKE_KEY, QUOTE, EVENT_LOG);
        uint256 id2 = _request(keccak256("k2"));
        op.deliverSecret(
            id2,
            _rq(id2),
            _polHash(),
            osRef,
            appRef,
            _ek(),
            _ct(),
            _signDelivery(CLUSTER_PK, id2, osRef, appRef, _ek(), _ct())
        );
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.DuplicatePublicKey.selector, keccak256("k2"), id2));
        op.requestSecret(keccak256("k2"), QUOTE, EVENT_LOG);
    }

    /// @dev A front-runner re-posting someone's HPKE key (with a junk or copied quote) only burns its own slot:
    ///      uniqueness is per (key, requester), and the quote binds the requester, so the copy is refused off chain.
    function test_requestSecret_frontRunnerCannotSquatKey() public {
        _bootstrap();
        vm.prank(stranger);
        uint256 squatted = op.requestSecret(HPKE_KEY, hex"6a756e6b", hex"");
        vm.prank(relayer);
        uint256 real = op.requestSecret(HPKE_KEY, QUOTE, EVENT_LOG);
        assertEq(real, squatted + 1, "real request accepted");
        assertEq(op.requestIdOf(HPKE_KEY, stranger), squatted, "squatter slot");
        assertEq(op.requestIdOf(HPKE_KEY, relayer), real, "real slot");
        vm.prank(relayer);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.DuplicatePublicKey.selector, HPKE_KEY, real));
        op.requestSecret(HPKE_KEY, QUOTE, EVENT_LOG);
    }

    function test_requestSecret_sizeCaps() public {
        _bootstrap();
        bytes memory bigQuote = randomBytes(1, 16 * 1024 + 1);
        bytes memory bigLog = randomBytes(2, 64 * 1024 + 1);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.PayloadTooLarge.selector, uint8(0), 16385, 16384));
        op.requestSecret(HPKE_KEY, bigQuote, EVENT_LOG);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.PayloadTooLarge.selector, uint8(1), 65537, 65536));
        op.requestSecret(HPKE_KEY, QUOTE, bigLog);
        op.requestSecret(HPKE_KEY, randomBytes(3, 16 * 1024), randomBytes(4, 64 * 1024));
    }

    function test_requestSecret_idsIncrementAndEmit() public {
        _bootstrap();
        for (uint256 i = 1; i <= 3; i++) {
            bytes32 key = keccak256(abi.encode("key", i));
            bytes memory quote = randomBytes(i, 100 * i);
            vm.expectEmit(address(op));
            emit UpgradeOperator.SecretRequested(i, key, stranger, 1, quote, EVENT_LOG);
            vm.prank(stranger);
            assertEq(op.requestSecret(key, quote, EVENT_LOG), i, "request id");
            assertEq(op.requestCount(), i, "requestCount");
            assertEq(op.requestIdOf(key, stranger), i, "requestIdOf");
            bytes32 request = keccak256(abi.encodePacked(key, stranger));
            assertEq(uint256(op.requestStatus(request)), uint256(PENDING), "status");
        }
        assertEq(uint256(op.requestStatus(keccak256(abi.encodePacked(keccak256("never"), stranger)))), 0, "no request");
        assertEq(op.requestIdOf(keccak256("never"), stranger), 0, "unused key");
    }

    function testFuzz_requestSecret_anyKey(bytes32 key, address requester, bytes calldata quote) public {
        vm.assume(key != bytes32(0));
        vm.assume(quote.length <= 16 * 1024);
        _bootstrap();
        vm.expectEmit(address(op));
        emit UpgradeOperator.SecretRequested(1, key, requester, 1, quote, EVENT_LOG);
        vm.prank(requester);
        assertEq(op.requestSecret(key, quote, EVENT_LOG), 1, "id");
        assertEq(op.requestIdOf(key, requester), 1, "requestIdOf");
    }

    // ================================================================== deliverSecret

    function test_deliverSecret_happyPath() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(HPKE_KEY);
        bytes memory ek = _ek();
        bytes memory ct = _ct();
        bytes32 digest = op.deliveryDigest(id, _rq(id), _polHash(), osRef, appRef, ek, ct);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(CLUSTER_PK, digest);
        bytes memory sig = abi.encodePacked(r, s, v);

        vm.expectEmit(address(op));
        emit UpgradeOperator.SecretDelivered(id, 1, relayer, osRef, appRef, _polHash(), ek, ct, sig);
        vm.prank(relayer);
        op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, ek, ct, sig);
        _assertStatus(id, DELIVERED);
    }

    /// @dev The custody record is self-contained: the logged signature recovers to the cluster of the logged epoch.
    function test_deliverSecret_loggedSignatureIsCheckable() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(HPKE_KEY);
        vm.recordLogs();
        _deliver(id, osRef, appRef, _ek(), _ct(), _signDelivery(CLUSTER_PK, id, osRef, appRef, _ek(), _ct()));
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "one log");
        assertEq(logs[0].topics[0], UpgradeOperator.SecretDelivered.selector, "topic0");
        assertEq(uint256(logs[0].topics[1]), id, "requestId topic");
        (bytes32 lOs, bytes32 lApp, bytes32 lPolicy, bytes memory lEk, bytes memory lCt, bytes memory lSig) =
            abi.decode(logs[0].data, (bytes32, bytes32, bytes32, bytes, bytes, bytes));
        assertEq(lPolicy, _polHash(), "logged policy");
        assertEq(
            _ecrecover(op.deliveryDigest(id, _rq(id), lPolicy, lOs, lApp, lEk, lCt), lSig),
            op.cluster(),
            "logged signer"
        );
    }

    function test_deliverSecret_maxCiphertext() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(HPKE_KEY);
        bytes memory ct = randomBytes(7, 128 * 1024);
        op.deliverSecret(
            id, _rq(id), _polHash(), osRef, appRef, _ek(), ct, _signDelivery(CLUSTER_PK, id, osRef, appRef, _ek(), ct)
        );
        _assertStatus(id, DELIVERED);
    }

    function test_deliverSecret_revertsWhenSignerNotCluster() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(HPKE_KEY);
        bytes memory sig = _signDelivery(ROGUE_PK, id, osRef, appRef, _ek(), _ct());
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, rogueAddr, clusterAddr));
        op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, _ek(), _ct(), sig);
        _assertStatus(id, PENDING);
    }

    function test_deliverSecret_revertsOnReplay() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(HPKE_KEY);
        bytes memory sig = _signDelivery(CLUSTER_PK, id, osRef, appRef, _ek(), _ct());
        op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, _ek(), _ct(), sig);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.RequestNotPending.selector, id, DELIVERED));
        op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, _ek(), _ct(), sig);
    }

    function test_deliverSecret_revertsOnUnknownRequest() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        _request(HPKE_KEY);
        bytes memory sig = _signDelivery(CLUSTER_PK, 2, osRef, appRef, _ek(), _ct());
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.RequestMismatch.selector, 2, _rq(2)));
        op.deliverSecret(2, _rq(2), _polHash(), osRef, appRef, _ek(), _ct(), sig);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.RequestNotPending.selector, 0, NONE));
        op.deliverSecret(0, _rq(0), _polHash(), osRef, appRef, _ek(), _ct(), sig);
    }

    function test_deliverSecret_revertsAfterRefusal() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(HPKE_KEY);
        op.refuseRequest(id, _rq(id), 3, _signRefusal(CLUSTER_PK, id, 3));
        bytes memory sig = _signDelivery(CLUSTER_PK, id, osRef, appRef, _ek(), _ct());
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.RequestNotPending.selector, id, REFUSED));
        op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, _ek(), _ct(), sig);
    }

    /// @dev Delivery correctly signed by the cluster, but under a reference that is not allowed now.
    function _expectDeliverRefNotAllowed(
        uint256 id,
        bytes32 osRef,
        bytes32 appRef,
        bytes32 badId,
        UpgradeOperator.RefKind kind
    ) internal {
        bytes memory sig = _signDelivery(CLUSTER_PK, id, osRef, appRef, _ek(), _ct());
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceNotAllowed.selector, badId, kind));
        op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, _ek(), _ct(), sig);
    }

    function test_deliverSecret_revertsOnDisallowedReferences() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(HPKE_KEY);
        bytes32 unknownOs = _osId(9);
        bytes32 unknownApp = _appId(keccak256("unknown compose"));
        _expectDeliverRefNotAllowed(id, unknownOs, appRef, unknownOs, OS);
        _expectDeliverRefNotAllowed(id, osRef, unknownApp, unknownApp, APP);
        // Wrong kind: the app id passed as osRef, the OS id as appRef.
        _expectDeliverRefNotAllowed(id, appRef, appRef, appRef, OS);
        _expectDeliverRefNotAllowed(id, osRef, osRef, osRef, APP);
        // Pending (proposed, timelock running).
        bytes32 pendingOs = _proposeOs(op, 2);
        _expectDeliverRefNotAllowed(id, pendingOs, appRef, pendingOs, OS);
        bytes32 pendingApp = _proposeApp(op, keccak256("compose v2"));
        _expectDeliverRefNotAllowed(id, osRef, pendingApp, pendingApp, APP);
        _assertStatus(id, PENDING);
    }

    function test_deliverSecret_revertsAfterRevocation() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(HPKE_KEY);
        bytes memory sig = _signDelivery(CLUSTER_PK, id, osRef, appRef, _ek(), _ct());
        _revoke(op, osRef);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceNotAllowed.selector, osRef, OS));
        op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, _ek(), _ct(), sig);

        uint256 id2 = _request(keccak256("k2"));
        bytes32 os2 = _proposeOs(op, 2);
        vm.warp(block.timestamp + DELAY);
        sig = _signDelivery(CLUSTER_PK, id2, os2, appRef, _ek(), _ct());
        _revoke(op, appRef);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceNotAllowed.selector, appRef, APP));
        op.deliverSecret(id2, _rq(id2), _polHash(), os2, appRef, _ek(), _ct(), sig);
    }

    function test_deliverSecret_revertsOnBadEncapsulatedKey() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(HPKE_KEY);
        uint256[4] memory lens = [uint256(0), 31, 33, 65];
        for (uint256 i = 0; i < lens.length; i++) {
            bytes memory ek = randomBytes(i, lens[i]);
            bytes memory sig = _signDelivery(CLUSTER_PK, id, osRef, appRef, ek, _ct());
            vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadEncapsulatedKey.selector, lens[i]));
            op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, ek, _ct(), sig);
        }
    }

    function test_deliverSecret_revertsOnTooLargeCiphertext() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(HPKE_KEY);
        bytes memory ct = randomBytes(8, 128 * 1024 + 1);
        bytes memory sig = _signDelivery(CLUSTER_PK, id, osRef, appRef, _ek(), ct);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.PayloadTooLarge.selector, uint8(2), 131073, 131072));
        op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, _ek(), ct, sig);
    }

    function test_deliverSecret_revertsWhenSignedOverOtherContent() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(HPKE_KEY);
        uint256 id2 = _request(keccak256("k2"));
        bytes32 os2 = _proposeOs(op, 2);
        bytes32 app2 = _proposeApp(op, keccak256("compose v2"));
        vm.warp(block.timestamp + DELAY);
        bytes memory ek = _ek();
        bytes memory ct = _ct();
        bytes memory sig = _signDelivery(CLUSTER_PK, id, osRef, appRef, ek, ct);

        // Each field of the Delivery is covered by the signature.
        _deliverExpectingBadSig(id, osRef, appRef, ek, abi.encodePacked(ct, hex"00"), sig);
        _deliverExpectingBadSig(id, osRef, appRef, abi.encodePacked(keccak256("other ek")), ct, sig);
        _deliverExpectingBadSig(id, os2, appRef, ek, ct, sig);
        _deliverExpectingBadSig(id, osRef, app2, ek, ct, sig);
        _deliverExpectingBadSig(id2, osRef, appRef, ek, ct, sig);
        // A refusal signature is no delivery signature.
        _deliverExpectingBadSig(id, osRef, appRef, ek, ct, _signRefusal(CLUSTER_PK, id, 1));

        _deliver(id, osRef, appRef, ek, ct, sig);
        _assertStatus(id, DELIVERED);
        _assertStatus(id2, PENDING);
    }

    /// @dev The policy hash the contract names is the one the tests recompute from storage.
    function test_policyHash_matchesContract() public {
        assertEq(_polHash(), op.policyHashOf(op.policy()), "initial");
        vm.prank(owner);
        op.setPolicy(_pol(0x13, true, true), "wider");
        assertEq(_polHash(), op.policyHashOf(op.policy()), "narrowed part in force, widening pending");
        vm.warp(block.timestamp + DELAY);
        assertEq(_polHash(), op.policyHashOf(op.policy()), "widening in force");
        assertEq(
            op.policyHashOf(_pol(1, false, false)),
            keccak256(abi.encode(uint16(1), false, false, uint32(0))),
            "encoding"
        );
        vm.prank(owner);
        op.setPolicy(_polMin(1, false, false, 17), "floor");
        assertEq(_polHash(), op.policyHashOf(op.policy()), "with a TCB evaluation floor");
    }

    /// @dev The attack: a holder decided under the old policy; the owner narrows it in an emergency before the
    ///      delivery is mined. The signed delivery names the old policy and no longer applies.
    function test_deliverSecret_revertsAfterANarrowingMinedFirst() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        vm.prank(owner);
        op.setPolicy(_pol(0x13, true, false), "wider");
        vm.warp(block.timestamp + DELAY);
        uint256 id = _request(HPKE_KEY);
        bytes32 decidedUnder = _polHash();
        bytes memory sig = _signDelivery(CLUSTER_PK, id, osRef, appRef, _ek(), _ct());
        vm.prank(owner);
        op.setPolicy(_pol(1, false, false), "emergency: debug off, OutOfDate dropped");
        bytes32 now_ = _polHash();
        assertTrue(now_ != decidedUnder);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.PolicyChanged.selector, decidedUnder, now_));
        op.deliverSecret(id, _rq(id), decidedUnder, osRef, appRef, _ek(), _ct(), sig);
        _assertStatus(id, PENDING);
    }

    /// @dev The attack: after a reorg renumbers requests, a delivery the cluster signed for request A under id 1 is
    ///      relayed onto request B, which now has id 1. It names A's key and requester, so it does not apply.
    function test_deliverSecretAndRefusal_bindTheRequestNotOnlyItsId() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(keccak256("B")); // B got id 1 on this fork
        bytes32 requestA = keccak256(abi.encodePacked(keccak256("A"), stranger));
        bytes memory sig = _sig(CLUSTER_PK, op.deliveryDigest(id, requestA, _polHash(), osRef, appRef, _ek(), _ct()));
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.RequestMismatch.selector, id, requestA));
        op.deliverSecret(id, requestA, _polHash(), osRef, appRef, _ek(), _ct(), sig);
        bytes memory refusal = _sig(CLUSTER_PK, op.refusalDigest(id, requestA, 1));
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.RequestMismatch.selector, id, requestA));
        op.refuseRequest(id, requestA, 1, refusal);
        // Nor can a relayer swap in B's request hash: the signature covers it.
        _deliverExpectingBadSig(id, osRef, appRef, _ek(), _ct(), sig);
        _assertStatus(id, PENDING);
    }

    function _deliver(uint256 id, bytes32 osRef, bytes32 appRef, bytes memory ek, bytes memory ct, bytes memory sig)
        internal
    {
        op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, ek, ct, sig);
    }

    /// @dev Relay a delivery whose signature must fail: BadClusterSignature naming whom it recovers to.
    function _deliverExpectingBadSig(
        uint256 id,
        bytes32 osRef,
        bytes32 appRef,
        bytes memory ek,
        bytes memory ct,
        bytes memory sig
    ) internal {
        _expectBadSig(op.deliveryDigest(id, _rq(id), _polHash(), osRef, appRef, ek, ct), sig);
        op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, ek, ct, sig);
    }

    /// @dev Expect BadClusterSignature(ecrecover(digest, sig), cluster).
    function _expectBadSig(bytes32 digest, bytes memory sig) internal {
        address recovered = _ecrecover(digest, sig);
        assertTrue(recovered != address(0) && recovered != clusterAddr, "recovers to a stranger");
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, recovered, clusterAddr));
    }

    function test_deliverSecret_revertsOnMalformedSignature() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(HPKE_KEY);
        bytes32 digest = op.deliveryDigest(id, _rq(id), _polHash(), osRef, appRef, _ek(), _ct());
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(CLUSTER_PK, digest);
        bytes memory badSig =
            abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, address(0), clusterAddr);

        bytes[5] memory sigs = [
            abi.encodePacked(r, s), // 64 bytes
            abi.encodePacked(r, s, v, uint8(0)), // 66 bytes
            abi.encodePacked(r, s, v - 27), // v in {0,1}
            abi.encodePacked(bytes32(0), s, v), // r = 0
            bytes("")
        ];
        for (uint256 i = 0; i < sigs.length; i++) {
            vm.expectRevert(badSig);
            op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, _ek(), _ct(), sigs[i]);
        }
        // EIP-2098 compact form (r ‖ yParity·2^255 | s) is not accepted either.
        bytes32 vs = bytes32(uint256(s) | (uint256(v - 27) << 255));
        vm.expectRevert(badSig);
        op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, _ek(), _ct(), abi.encodePacked(r, vs));
        _assertStatus(id, PENDING);
    }

    function test_deliverSecret_rejectsHighS() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(HPKE_KEY);
        bytes32 digest = op.deliveryDigest(id, _rq(id), _polHash(), osRef, appRef, _ek(), _ct());
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(CLUSTER_PK, digest);
        bytes32 highS = bytes32(SECP256K1_N - uint256(s));
        uint8 flippedV = v == 27 ? 28 : 27;
        // The malleated signature is valid for the raw precompile ...
        assertEq(ecrecover(digest, flippedV, r, highS), clusterAddr, "malleated signature recovers");
        // ... but the contract rejects high-s.
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, address(0), clusterAddr));
        op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, _ek(), _ct(), abi.encodePacked(r, highS, flippedV));
        op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, _ek(), _ct(), abi.encodePacked(r, s, v));
        _assertStatus(id, DELIVERED);
    }

    function test_deliverSecret_revertsBeforeGenesisRequestExists() public {
        // No cluster, no request: the request check comes first (no request 1 under that key).
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.RequestMismatch.selector, 1, _rq(1)));
        op.deliverSecret(1, _rq(1), _polHash(), bytes32(0), bytes32(0), _ek(), _ct(), hex"");
    }

    function testFuzz_deliverSecret_anyRelayerAnyPayload(address relayer_, bytes calldata ct, bytes32 ekWord) public {
        vm.assume(ct.length <= 4096);
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(HPKE_KEY);
        bytes memory ek = abi.encodePacked(ekWord);
        bytes memory sig = _signDelivery(CLUSTER_PK, id, osRef, appRef, ek, ct);
        vm.expectEmit(address(op));
        emit UpgradeOperator.SecretDelivered(id, 1, relayer_, osRef, appRef, _polHash(), ek, ct, sig);
        vm.prank(relayer_);
        op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, ek, ct, sig);
        _assertStatus(id, DELIVERED);
    }

    function testFuzz_deliverSecret_rejectsOtherSigners(uint256 pk) public {
        pk = bound(pk, 1, SECP256K1_N - 1);
        vm.assume(pk != CLUSTER_PK);
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(HPKE_KEY);
        bytes memory sig = _signDelivery(pk, id, osRef, appRef, _ek(), _ct());
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, vm.addr(pk), clusterAddr));
        op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, _ek(), _ct(), sig);
    }

    // ================================================================== refuseRequest

    /// @dev Each request keeps its status in its own slot (keyed by `request`): answering one leaves the others as
    ///      they were, and each is answered exactly once.
    function test_requestStatus_perRequest() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        for (uint256 i = 1; i <= 4; i++) {
            assertEq(_request(keccak256(abi.encode("per request", i))), i, "sequential ids");
        }
        bytes memory ek = _ek();
        bytes memory ct = _ct();
        op.deliverSecret(
            2, _rq(2), _polHash(), osRef, appRef, ek, ct, _signDelivery(CLUSTER_PK, 2, osRef, appRef, ek, ct)
        );
        op.refuseRequest(1, _rq(1), 2, _signRefusal(CLUSTER_PK, 1, 2));
        _assertStatus(1, REFUSED);
        _assertStatus(2, DELIVERED);
        _assertStatus(3, PENDING);
        _assertStatus(4, PENDING);
        assertEq(uint256(op.requestStatus(keccak256("no such request"))), uint256(NONE), "unknown request");
        bytes memory again = _signRefusal(CLUSTER_PK, 2, 3);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.RequestNotPending.selector, 2, DELIVERED));
        op.refuseRequest(2, _rq(2), 3, again);
        op.refuseRequest(3, _rq(3), 3, _signRefusal(CLUSTER_PK, 3, 3));
        _assertStatus(2, DELIVERED);
        _assertStatus(3, REFUSED);
        _assertStatus(4, PENDING);
    }

    function test_refuseRequest_happyPath() public {
        _bootstrap();
        uint256 id1 = _request(HPKE_KEY);
        uint256 id2 = _request(keccak256("k2"));
        bytes memory sig1 = _signRefusal(CLUSTER_PK, id1, 1);
        bytes memory sig2 = _signRefusal(CLUSTER_PK, id2, 14);
        vm.expectEmit(address(op));
        emit UpgradeOperator.RequestRefused(id1, 1, relayer, 1, sig1);
        vm.prank(relayer);
        op.refuseRequest(id1, _rq(id1), 1, sig1);
        _assertStatus(id1, REFUSED);

        vm.expectEmit(address(op));
        emit UpgradeOperator.RequestRefused(id2, 1, stranger, 14, sig2);
        vm.prank(stranger);
        op.refuseRequest(id2, _rq(id2), 14, sig2);
        _assertStatus(id2, REFUSED);
    }

    function test_refuseRequest_revertsOnInvalidReason() public {
        _bootstrap();
        uint256 id = _request(HPKE_KEY);
        bytes memory sig0 = _signRefusal(CLUSTER_PK, id, 0);
        bytes memory sig15 = _signRefusal(CLUSTER_PK, id, 15);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.InvalidReason.selector, uint8(0)));
        op.refuseRequest(id, _rq(id), 0, sig0);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.InvalidReason.selector, uint8(15)));
        op.refuseRequest(id, _rq(id), 15, sig15);
    }

    function testFuzz_refuseRequest_reasonRange(uint8 reason) public {
        _bootstrap();
        uint256 id = _request(HPKE_KEY);
        bytes memory sig = _signRefusal(CLUSTER_PK, id, reason);
        if (reason == 0 || reason > 14) {
            vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.InvalidReason.selector, reason));
            op.refuseRequest(id, _rq(id), reason, sig);
            _assertStatus(id, PENDING);
        } else {
            op.refuseRequest(id, _rq(id), reason, sig);
            _assertStatus(id, REFUSED);
        }
    }

    function test_refuseRequest_revertsWhenSignerNotCluster() public {
        _bootstrap();
        uint256 id = _request(HPKE_KEY);
        bytes memory rogueSig = _signRefusal(ROGUE_PK, id, 2);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, rogueAddr, clusterAddr));
        op.refuseRequest(id, _rq(id), 2, rogueSig);
        // A signature for another reason does not carry over.
        bytes memory sig = _signRefusal(CLUSTER_PK, id, 2);
        address recovered = _ecrecover(op.refusalDigest(id, _rq(id), 3), sig);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, recovered, clusterAddr));
        op.refuseRequest(id, _rq(id), 3, sig);
        // Malformed.
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, address(0), clusterAddr));
        op.refuseRequest(id, _rq(id), 2, hex"");
        _assertStatus(id, PENDING);
    }

    function test_refuseRequest_revertsWhenNotPending() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id1 = _request(HPKE_KEY);
        uint256 id2 = _request(keccak256("k2"));
        op.deliverSecret(
            id1,
            _rq(id1),
            _polHash(),
            osRef,
            appRef,
            _ek(),
            _ct(),
            _signDelivery(CLUSTER_PK, id1, osRef, appRef, _ek(), _ct())
        );
        bytes memory sig1 = _signRefusal(CLUSTER_PK, id1, 1);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.RequestNotPending.selector, id1, DELIVERED));
        op.refuseRequest(id1, _rq(id1), 1, sig1);

        bytes memory sig2 = _signRefusal(CLUSTER_PK, id2, 1);
        op.refuseRequest(id2, _rq(id2), 1, sig2);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.RequestNotPending.selector, id2, REFUSED));
        op.refuseRequest(id2, _rq(id2), 1, sig2);

        bytes memory sig3 = _signRefusal(CLUSTER_PK, 3, 1);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.RequestMismatch.selector, 3, _rq(3)));
        op.refuseRequest(3, _rq(3), 1, sig3);
    }

    // ------------------------------------------------------------------ commit (PROTOCOL.md §5.3)

    function test_commit_storesPerSenderAndEmits() public {
        bytes32 c1 = keccak256("batch 1");
        vm.expectEmit(address(op));
        emit UpgradeOperator.Committed(relayer, c1);
        vm.prank(relayer);
        op.commit(c1);
        assert(op.commitments(relayer) == c1);
        assert(op.commitments(stranger) == bytes32(0));

        // Another sender's commitment lands in its own slot and leaves this one alone.
        vm.prank(stranger);
        op.commit(keccak256("theirs"));
        assert(op.commitments(relayer) == c1);
        assert(op.commitments(stranger) == keccak256("theirs"));
    }

    function test_commit_overwritesTheSendersSlotCheaply() public {
        vm.prank(relayer);
        op.commit(keccak256("batch 1"));
        bytes32 c2 = keccak256("batch 2");
        vm.prank(relayer);
        uint256 before = gasleft();
        op.commit(c2);
        uint256 used = before - gasleft();
        assert(op.commitments(relayer) == c2);
        // A non-zero to non-zero rewrite of a cold slot (2,100 + 2,900) plus the log: no fresh slot (20,000).
        assert(used < 10_000);
    }
}
