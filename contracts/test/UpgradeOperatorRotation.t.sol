// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Vm} from "./Vm.sol";
import {UpgradeOperatorBase} from "./UpgradeOperatorBase.sol";
import {UpgradeOperator} from "../src/UpgradeOperator.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @notice Rotation (PROTOCOL.md §5.4): the owner starts it, a holder proposes a new cluster key endorsed by the
///         current one, the owner approves it and it is in force at once; the old key then signs nothing the contract
///         accepts.
contract UpgradeOperatorRotationTest is UpgradeOperatorBase {
    UpgradeOperator.RefKind internal constant OS = UpgradeOperator.RefKind.Os;
    UpgradeOperator.RefKind internal constant APP = UpgradeOperator.RefKind.App;

    string internal constant ROTATION_TYPE = "Rotation(uint64 epoch,address cluster)";
    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    /// @dev The slot `rotationFor` lives in (PROTOCOL.md §4.1).
    uint256 internal constant ROTATION_SLOT = 17;

    // ------------------------------------------------------------------ helpers

    function _start() internal {
        vm.prank(owner);
        op.startRotation("rotate");
    }

    /// @dev The current cluster key `pk` endorses `c` for epoch `e`.
    function _endorse(uint256 pk, uint64 e, address c) internal view returns (bytes memory) {
        return _sig(pk, op.rotationDigest(e, c));
    }

    /// @dev `cluster2Addr` proposed for epoch 2, endorsed by the epoch-1 cluster key.
    function _proposeRotation() internal returns (uint256 id) {
        bytes memory sig = _endorse(CLUSTER_PK, 2, cluster2Addr);
        vm.prank(stranger);
        id = op.proposeRotation(cluster2Addr, QUOTE, EVENT_LOG, sig);
    }

    function _approveRotation(uint256 id, bytes32 osRef, bytes32 appRef) internal {
        address c = _gc(id);
        uint64 e = _ge(id);
        vm.prank(owner);
        op.approveRotation(id, c, e, osRef, appRef, "rotated");
    }

    /// @dev Genesis (epoch 1, `clusterAddr`), then a rotation to `cluster2Addr` (epoch 2).
    function _rotated() internal returns (bytes32 osRef, bytes32 appRef, uint256 id) {
        (osRef, appRef) = _bootstrap();
        _start();
        id = _proposeRotation();
        _approveRotation(id, osRef, appRef);
    }

    function _rotationFromStorage() internal view returns (uint64) {
        return uint64(uint256(vm.load(address(op), bytes32(ROTATION_SLOT))));
    }

    function _digest(uint256 chainId, address verifyingContract, uint64 e, address c) internal pure returns (bytes32) {
        bytes32 domain = keccak256(
            abi.encode(
                DOMAIN_TYPEHASH, keccak256("Replicatoor UpgradeOperator"), keccak256("6"), chainId, verifyingContract
            )
        );
        bytes32 structHash = keccak256(abi.encode(keccak256(bytes(ROTATION_TYPE)), uint256(e), c));
        return keccak256(abi.encodePacked(hex"1901", domain, structHash));
    }

    // ================================================================== start / cancel

    function test_startRotation_ownerOnlyNeedsAClusterAndEmits() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        op.startRotation("no");
        vm.prank(owner);
        vm.expectRevert(UpgradeOperator.NoCluster.selector);
        op.startRotation("nothing to rotate before genesis");

        _bootstrap();
        vm.expectEmit(address(op));
        emit UpgradeOperator.RotationStarted(2, "bad build 1.2");
        vm.prank(owner);
        op.startRotation("bad build 1.2");
        assertEq(uint256(op.rotationFor()), 2, "rotationFor = epoch + 1");
        assertEq(uint256(_rotationFromStorage()), 2, "rotationFor in slot 17");
        // Starting again re-emits and changes nothing else.
        vm.expectEmit(address(op));
        emit UpgradeOperator.RotationStarted(2, "again");
        vm.prank(owner);
        op.startRotation("again");
        assertEq(uint256(op.rotationFor()), 2, "rotationFor");
        assertEq(op.cluster(), clusterAddr, "starting moves no custody");
        assertEq(uint256(op.epoch()), 1, "epoch");
    }

    function test_cancelRotation_ownerOnlyNeedsARotationAndEmits() public {
        _bootstrap();
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.NoRotation.selector, uint64(2)));
        op.cancelRotation("none under way");
        _start();
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        op.cancelRotation("no");
        vm.expectEmit(address(op));
        emit UpgradeOperator.RotationCancelled(2, "false alarm");
        vm.prank(owner);
        op.cancelRotation("false alarm");
        assertEq(uint256(op.rotationFor()), 0, "cleared");
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.NoRotation.selector, uint64(2)));
        op.cancelRotation("twice");
    }

    // ================================================================== propose

    function test_proposeRotation_storesAndEmits() public {
        _bootstrap();
        _start();
        bytes memory sig = _endorse(CLUSTER_PK, 2, cluster2Addr);
        vm.expectEmit(address(op));
        emit UpgradeOperator.RotationProposed(2, cluster2Addr, 2, stranger, QUOTE, EVENT_LOG, sig);
        vm.prank(stranger); // anyone may send it: the endorsement is what counts
        uint256 id = op.proposeRotation(cluster2Addr, QUOTE, EVENT_LOG, sig);
        assertEq(id, 2, "shares the genesis ids");
        assertEq(op.genesisCount(), 2, "genesisCount");
        UpgradeOperator.GenesisProposal memory g = op.genesisProposal(id);
        assertEq(g.cluster, cluster2Addr, "cluster");
        assertEq(uint256(g.forEpoch), 2, "forEpoch");
        assertTrue(g.endorsed, "endorsed");
        assertFalse(op.genesisProposal(1).endorsed, "the genesis proposal is not endorsed");
        // PROTOCOL.md §4.1: cluster at byte 0, forEpoch at 20, endorsed at 28 of keccak256(id . 10).
        uint256 word = uint256(vm.load(address(op), keccak256(abi.encode(id, uint256(10)))));
        assertEq(address(uint160(word)), cluster2Addr, "slot: cluster at 0");
        assertEq(uint64(word >> 160), 2, "slot: forEpoch at 20");
        assertEq((word >> 224) & 0xff, 1, "slot: endorsed at 28");
        assertEq(word >> 232, 0, "slot: nothing above");
        // Proposing moves nothing.
        assertEq(op.cluster(), clusterAddr, "cluster");
        assertEq(uint256(op.epoch()), 1, "epoch");
    }

    function test_proposeRotation_revertsWithoutARotation() public {
        bytes memory sig = _endorse(CLUSTER_PK, 1, cluster2Addr);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.NoRotation.selector, uint64(1)));
        op.proposeRotation(cluster2Addr, QUOTE, EVENT_LOG, sig);

        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        sig = _endorse(CLUSTER_PK, 2, cluster2Addr);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.NoRotation.selector, uint64(2)));
        op.proposeRotation(cluster2Addr, QUOTE, EVENT_LOG, sig);

        // Cancelled.
        _start();
        vm.prank(owner);
        op.cancelRotation("cancelled");
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.NoRotation.selector, uint64(2)));
        op.proposeRotation(cluster2Addr, QUOTE, EVENT_LOG, sig);

        // After the switch: the rotation is over.
        _start();
        uint256 id = _proposeRotation();
        _approveRotation(id, osRef, appRef);
        bytes memory next = _endorse(CLUSTER2_PK, 3, rogueAddr);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.NoRotation.selector, uint64(3)));
        op.proposeRotation(rogueAddr, QUOTE, EVENT_LOG, next);
    }

    function test_proposeRotation_checksItsArguments() public {
        _bootstrap();
        _start();
        // Signatures are made first: an expectRevert applies to the very next call, rotationDigest included.
        bytes memory zero = _endorse(CLUSTER_PK, 2, address(0));
        bytes memory same = _endorse(CLUSTER_PK, 2, clusterAddr);
        vm.expectRevert(UpgradeOperator.ZeroAddress.selector);
        op.proposeRotation(address(0), QUOTE, EVENT_LOG, zero);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.SameCluster.selector, clusterAddr));
        op.proposeRotation(clusterAddr, QUOTE, EVENT_LOG, same);
        bytes memory sig = _endorse(CLUSTER_PK, 2, cluster2Addr);
        bytes memory bigQuote = randomBytes(1, 16 * 1024 + 1);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.PayloadTooLarge.selector, uint8(0), 16385, 16384));
        op.proposeRotation(cluster2Addr, bigQuote, EVENT_LOG, sig);
        bytes memory bigLog = randomBytes(2, 64 * 1024 + 1);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.PayloadTooLarge.selector, uint8(1), 65537, 65536));
        op.proposeRotation(cluster2Addr, QUOTE, bigLog, sig);
        assertEq(op.genesisCount(), 1, "nothing stored");
    }

    function test_proposeRotation_needsTheCurrentClustersEndorsement() public {
        _bootstrap();
        _start();
        bytes32 digest = op.rotationDigest(2, cluster2Addr);
        // A rogue key.
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, rogueAddr, clusterAddr));
        op.proposeRotation(cluster2Addr, QUOTE, EVENT_LOG, _sig(ROGUE_PK, digest));
        // The new key endorsing itself.
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, cluster2Addr, clusterAddr));
        op.proposeRotation(cluster2Addr, QUOTE, EVENT_LOG, _sig(CLUSTER2_PK, digest));
        // The current key, but for another epoch.
        bytes memory other = _endorse(CLUSTER_PK, 3, cluster2Addr);
        address recovered = _ecrecover(digest, other);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, recovered, clusterAddr));
        op.proposeRotation(cluster2Addr, QUOTE, EVENT_LOG, other);
        // The current key, but for another cluster.
        other = _endorse(CLUSTER_PK, 2, rogueAddr);
        recovered = _ecrecover(digest, other);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, recovered, clusterAddr));
        op.proposeRotation(cluster2Addr, QUOTE, EVENT_LOG, other);
        // The current key, over a delivery-shaped digest (another type).
        other = _sig(CLUSTER_PK, op.refusalDigest(2, bytes32(uint256(uint160(cluster2Addr))), 1));
        recovered = _ecrecover(digest, other);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, recovered, clusterAddr));
        op.proposeRotation(cluster2Addr, QUOTE, EVENT_LOG, other);
        // Malformed.
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, address(0), clusterAddr));
        op.proposeRotation(cluster2Addr, QUOTE, EVENT_LOG, hex"00");
        assertEq(op.genesisCount(), 1, "nothing stored");
        // The right one.
        op.proposeRotation(cluster2Addr, QUOTE, EVENT_LOG, _sig(CLUSTER_PK, digest));
        assertEq(op.genesisCount(), 2, "stored");
    }

    // ================================================================== approve

    function test_approveRotation_ownerOnly() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        _start();
        uint256 id = _proposeRotation();
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        op.approveRotation(id, cluster2Addr, 2, osRef, appRef, "");
        // The old cluster key itself cannot approve either.
        vm.prank(clusterAddr);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, clusterAddr));
        op.approveRotation(id, cluster2Addr, 2, osRef, appRef, "");
        assertEq(op.cluster(), clusterAddr, "custody never moved");
    }

    /// @dev Approved by the owner only: a plain genesis proposal nobody endorsed cannot be approved as a rotation.
    function test_approveRotation_revertsOnAPlainGenesisProposal() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        _start();
        uint256 gid = _proposeGenesis(cluster2Addr);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.NotEndorsed.selector, gid));
        op.approveRotation(gid, cluster2Addr, 2, osRef, appRef, "owner alone");
        assertEq(op.cluster(), clusterAddr, "custody never moved");
        assertEq(uint256(op.epoch()), 1, "epoch");
        assertEq(uint256(op.rotationFor()), 2, "still under way");
    }

    /// @dev Signed by the old cluster only: an endorsed proposal the owner never approves changes nothing, ever.
    function test_endorsedProposalNeverApproved_changesNothing() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        _start();
        _proposeRotation();
        vm.warp(block.timestamp + 10 * DELAY);
        vm.expectRevert(UpgradeOperator.NoPendingBootstrap.selector);
        op.executeBootstrap();
        assertEq(op.cluster(), clusterAddr, "cluster");
        assertEq(uint256(op.epoch()), 1, "epoch");
        // The old cluster still answers.
        uint256 rid = _request(HPKE_KEY);
        bytes memory sig = _signDelivery(CLUSTER_PK, rid, osRef, appRef, _ek(), _ct());
        op.deliverSecret(rid, _rq(rid), _polHash(), osRef, appRef, _ek(), _ct(), sig);
        _assertStatus(rid, UpgradeOperator.RequestStatus.Delivered);
    }

    function test_approveRotation_namesTheProposalTheOwnerVerified() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        _start();
        uint256 id = _proposeRotation();
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.GenesisMismatch.selector, id, rogueAddr, uint64(2)));
        op.approveRotation(id, rogueAddr, 2, osRef, appRef, "");
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.GenesisMismatch.selector, id, cluster2Addr, uint64(3)));
        op.approveRotation(id, cluster2Addr, 3, osRef, appRef, "");
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.UnknownGenesis.selector, id + 1));
        op.approveRotation(id + 1, cluster2Addr, 2, osRef, appRef, "");
        vm.stopPrank();
        assertEq(op.cluster(), clusterAddr, "custody never moved");
    }

    function test_approveRotation_revertsAfterCancel() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        _start();
        uint256 id = _proposeRotation();
        vm.prank(owner);
        op.cancelRotation("cancelled");
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.NoRotation.selector, uint64(2)));
        op.approveRotation(id, cluster2Addr, 2, osRef, appRef, "");
        assertEq(op.cluster(), clusterAddr, "custody never moved");
        // Started again for the same epoch: the cancelled rotation's proposal stays cancelled, a new one counts.
        _start();
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.NoRotation.selector, uint64(2)));
        op.approveRotation(id, cluster2Addr, 2, osRef, appRef, "");
        uint256 again = _proposeRotation();
        _approveRotation(again, osRef, appRef);
        assertEq(op.cluster(), cluster2Addr, "the new proposal was approved");
    }

    function test_approveRotation_revertsOnDisallowedReferences() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        _start();
        uint256 id = _proposeRotation();
        bytes32 pendingOs = _proposeOs(op, 2); // proposed now, usable only after the delay
        bytes32 unknownApp = _appId(keccak256("never proposed"));
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceNotAllowed.selector, pendingOs, OS));
        op.approveRotation(id, cluster2Addr, 2, pendingOs, appRef, "");
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceNotAllowed.selector, unknownApp, APP));
        op.approveRotation(id, cluster2Addr, 2, osRef, unknownApp, "");
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceNotAllowed.selector, appRef, OS));
        op.approveRotation(id, cluster2Addr, 2, appRef, osRef, "");
        // The build that proposed was revoked meanwhile.
        op.revokeReference(appRef, "bad build");
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceNotAllowed.selector, appRef, APP));
        op.approveRotation(id, cluster2Addr, 2, osRef, appRef, "");
        vm.stopPrank();
        assertEq(op.cluster(), clusterAddr, "custody never moved");
        assertEq(uint256(op.epoch()), 1, "epoch");
    }

    // ================================================================== the switch

    function test_approveRotation_isInForceAtOnce() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        assertEq(DELAY, 1 days, "a deployment with a widening delay");
        _start();
        uint256 id = _proposeRotation();
        vm.expectEmit(address(op));
        emit UpgradeOperator.ClusterBootstrapped(2, cluster2Addr, id, osRef, appRef, "rotated");
        vm.expectEmit(address(op));
        emit UpgradeOperator.ClusterRotated(2, clusterAddr, cluster2Addr, "rotated");
        vm.recordLogs();
        vm.prank(owner);
        op.approveRotation(id, cluster2Addr, 2, osRef, appRef, "rotated");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 2, "ClusterBootstrapped, ClusterRotated and nothing else");
        assertEq(_count(logs, UpgradeOperator.CustodyReset.selector), 0, "no CustodyReset: custody was handed on");
        assertEq(_count(logs, UpgradeOperator.BootstrapScheduled.selector), 0, "not scheduled");
        assertEq(logs[1].topics[1], bytes32(uint256(2)), "ClusterRotated epoch topic");
        assertEq(logs[1].topics[2], bytes32(uint256(uint160(clusterAddr))), "previousCluster topic");
        assertEq(logs[1].topics[3], bytes32(uint256(uint160(cluster2Addr))), "newCluster topic");

        assertEq(op.cluster(), cluster2Addr, "cluster");
        assertEq(uint256(op.epoch()), 2, "epoch + 1");
        assertEq(uint256(op.rotationFor()), 0, "rotation over");
        assertTrue(op.genesisProposal(id).endorsed, "endorsed");
        (uint256 pending,,,) = op.pendingBootstrap();
        assertEq(pending, 0, "nothing scheduled");
        // Approving it again is stale.
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.StaleGenesis.selector, id, uint64(2), uint64(3)));
        op.approveRotation(id, cluster2Addr, 2, osRef, appRef, "");
    }

    function test_approveRotation_otherProposalsOfTheEpochGoStale() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        _start();
        uint256 first = _proposeRotation();
        bytes memory sig = _endorse(CLUSTER_PK, 2, rogueAddr);
        uint256 second = op.proposeRotation(rogueAddr, QUOTE, EVENT_LOG, sig);
        _approveRotation(first, osRef, appRef);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.StaleGenesis.selector, second, uint64(2), uint64(3)));
        op.approveRotation(second, rogueAddr, 2, osRef, appRef, "");
    }

    /// @dev A delivery and a refusal of request `rid` signed by the old cluster key both revert; `rid` stays pending.
    function _assertOldKeyRefused(uint256 rid, bytes32 osRef, bytes32 appRef) internal {
        bytes memory ek = _ek();
        bytes memory ct = _ct();
        bytes32 pol = _polHash();
        bytes memory oldDelivery = _signDelivery(CLUSTER_PK, rid, osRef, appRef, ek, ct);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, clusterAddr, cluster2Addr));
        op.deliverSecret(rid, _rq(rid), pol, osRef, appRef, ek, ct, oldDelivery);
        bytes memory oldRefusal = _signRefusal(CLUSTER_PK, rid, 11);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, clusterAddr, cluster2Addr));
        op.refuseRequest(rid, _rq(rid), 11, oldRefusal);
        _assertStatus(rid, UpgradeOperator.RequestStatus.Pending);
    }

    /// @dev The new cluster key delivers request `rid`, relayed by `relayer`; the event says epoch 2.
    function _deliverAsNewCluster(uint256 rid, bytes32 osRef, bytes32 appRef) internal {
        bytes memory ek = _ek();
        bytes memory ct = _ct();
        bytes32 pol = _polHash();
        bytes memory sig = _signDelivery(CLUSTER2_PK, rid, osRef, appRef, ek, ct);
        vm.expectEmit(address(op));
        emit UpgradeOperator.SecretDelivered(rid, 2, relayer, osRef, appRef, pol, ek, ct, sig);
        vm.prank(relayer);
        op.deliverSecret(rid, _rq(rid), pol, osRef, appRef, ek, ct, sig);
        _assertStatus(rid, UpgradeOperator.RequestStatus.Delivered);
    }

    /// @dev The new cluster key refuses request `rid` with `reason`, relayed by `relayer`; the event says epoch 2.
    function _refuseAsNewCluster(uint256 rid, uint8 reason) internal {
        bytes memory sig = _signRefusal(CLUSTER2_PK, rid, reason);
        vm.expectEmit(address(op));
        emit UpgradeOperator.RequestRefused(rid, 2, relayer, reason, sig);
        vm.prank(relayer);
        op.refuseRequest(rid, _rq(rid), reason, sig);
        _assertStatus(rid, UpgradeOperator.RequestStatus.Refused);
    }

    function test_rotation_oldKeySignsNothingTheNewKeyAnswers() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 before1 = _request(keccak256("before 1"));
        uint256 before2 = _request(keccak256("before 2"));
        _start();
        _approveRotation(_proposeRotation(), osRef, appRef);
        uint256 after1 = _request(keccak256("after 1"));
        uint256 after2 = _request(keccak256("after 2"));

        _assertOldKeyRefused(before1, osRef, appRef);
        _assertOldKeyRefused(before2, osRef, appRef);
        _assertOldKeyRefused(after1, osRef, appRef);
        _assertOldKeyRefused(after2, osRef, appRef);

        // The new key answers a request posted before the switch and one posted after it.
        _deliverAsNewCluster(before1, osRef, appRef);
        _deliverAsNewCluster(after1, osRef, appRef);
        _refuseAsNewCluster(before2, 11);
        _refuseAsNewCluster(after2, 12);
    }

    function test_rotation_makesAPendingRebootstrapStale() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        vm.prank(stranger);
        uint256 g = op.proposeGenesis(rogueAddr, QUOTE, EVENT_LOG);
        vm.prank(owner);
        op.approveGenesis(g, rogueAddr, 2, osRef, appRef, "re-bootstrap");
        _start();
        _approveRotation(_proposeRotation(), osRef, appRef);
        vm.warp(block.timestamp + DELAY);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.StaleGenesis.selector, g, uint64(2), uint64(3)));
        op.executeBootstrap();
        assertEq(op.cluster(), cluster2Addr, "the rotated cluster stays");
        // The owner clears the dead schedule.
        vm.prank(owner);
        op.cancelBootstrap("superseded by the rotation");
    }

    function test_rebootstrap_endsARotationUnderWay() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        _start();
        uint256 id = _proposeRotation();
        vm.prank(stranger);
        uint256 g = op.proposeGenesis(rogueAddr, QUOTE, EVENT_LOG);
        vm.prank(owner);
        op.approveGenesis(g, rogueAddr, 2, osRef, appRef, "re-bootstrap");
        vm.warp(block.timestamp + DELAY);
        op.executeBootstrap();
        assertEq(uint256(op.epoch()), 2, "epoch");
        // rotationFor (2) is no longer epoch + 1: nothing is under way.
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.StaleGenesis.selector, id, uint64(2), uint64(3)));
        op.approveRotation(id, cluster2Addr, 2, osRef, appRef, "");
        bytes memory sig = _endorse(ROGUE_PK, 3, cluster2Addr);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.NoRotation.selector, uint64(3)));
        op.proposeRotation(cluster2Addr, QUOTE, EVENT_LOG, sig);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.NoRotation.selector, uint64(3)));
        op.cancelRotation("");
    }

    function test_rotation_twiceInARow() public {
        (bytes32 osRef, bytes32 appRef,) = _rotated();
        _start();
        assertEq(uint256(op.rotationFor()), 3, "rotationFor");
        bytes memory sig = _endorse(CLUSTER2_PK, 3, rogueAddr);
        uint256 id = op.proposeRotation(rogueAddr, QUOTE, EVENT_LOG, sig);
        _approveRotation(id, osRef, appRef);
        assertEq(op.cluster(), rogueAddr, "cluster");
        assertEq(uint256(op.epoch()), 3, "epoch");
    }

    // ================================================================== EIP-712

    function test_rotationTypehash() public view {
        assertEq(op.ROTATION_TYPEHASH(), keccak256("Rotation(uint64 epoch,address cluster)"), "ROTATION_TYPEHASH");
        assertEq(op.ROTATION_TYPEHASH(), 0x4ae65fa583d222fc61edb2fc6a09c515467dc42a92fc9c6e9df5473c14a1646c, "literal");
    }

    function testFuzz_rotationDigest_matchesEip712(uint64 e, address c) public view {
        assertEq(op.rotationDigest(e, c), _digest(block.chainid, address(op), e, c), "rotationDigest");
    }

    function testFuzz_rotationDigest_changesWithChainId(uint64 newChainId) public {
        vm.assume(newChainId != block.chainid && newChainId != 0);
        bytes32 d0 = op.rotationDigest(2, cluster2Addr);
        vm.chainId(newChainId);
        bytes32 d1 = op.rotationDigest(2, cluster2Addr);
        assertNotEq(d0, d1, "depends on the chain id");
        assertEq(d1, _digest(newChainId, address(op), 2, cluster2Addr), "digest on the new chain");
    }

    /// @dev PROTOCOL.md §3.8's vector (chainId 31337, contract 0x00…09, epoch 2, cluster 0xcd×20).
    function test_rotationDigest_knownVector() public pure {
        assertEq(
            _digest(31337, address(9), 2, address(0xCdCDCdCdcdcdcdCdcDcDCdcDcDCdCdcdCdcDCDcD)),
            0x17161904d9a019f800a0e6e0e5690da36fd13880142be049fb70ccc59d2cb775,
            "PROTOCOL.md 3.8 rotation vector"
        );
    }
}
