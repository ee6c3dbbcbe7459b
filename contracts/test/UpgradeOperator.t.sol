// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Vm} from "./Vm.sol";
import {UpgradeOperatorBase} from "./UpgradeOperatorBase.sol";
import {UpgradeOperator} from "../src/UpgradeOperator.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";

/// @notice Governance: constructor, ownership, reference values and policy.
///         Genesis and the message bus are in UpgradeOperatorBus.t.sol, EIP-712 in UpgradeOperatorEip712.t.sol.
contract UpgradeOperatorGovernanceTest is UpgradeOperatorBase {
    /// @dev All known TCB status bits (PROTOCOL.md): 0-5, 7 and 8; bit 6 (Revoked) is never acceptable.
    uint16 internal constant KNOWN = 0x1bf;
    // ================================================================== constructor

    function test_constructor_setsState() public view {
        assertEq(op.owner(), owner, "owner");
        assertEq(op.pendingOwner(), address(0), "pendingOwner");
        assertEq(uint256(op.wideningDelay()), DELAY, "wideningDelay");
        _assertPolicy(op.policy(), _pol(1, false, false), "policy");
        (UpgradeOperator.Policy memory p, uint64 at) = op.pendingPolicy();
        _assertPolicy(p, _pol(0, false, false), "pendingPolicy");
        assertEq(uint256(at), 0, "pending activatesAt");
        assertEq(op.cluster(), address(0), "cluster");
        assertEq(uint256(op.epoch()), 0, "epoch");
        assertEq(op.requestCount(), 0, "requestCount");
        assertEq(op.genesisCount(), 0, "genesisCount");
    }

    function test_constants() public view {
        assertEq(uint256(op.TCB_REVOKED_BIT()), 0x40, "TCB_REVOKED_BIT");
        assertEq(uint256(op.TCB_KNOWN_BITS()), 0x1bf, "TCB_KNOWN_BITS: bits 0-5, 7, 8");
        assertEq(uint256(op.TCB_KNOWN_BITS() & op.TCB_REVOKED_BIT()), 0, "Revoked is never a known bit");
        assertEq(uint256(op.MAX_REASON()), 14, "MAX_REASON");
        assertEq(op.MAX_QUOTE_BYTES(), 16384, "MAX_QUOTE_BYTES");
        assertEq(op.MAX_EVENT_LOG_BYTES(), 65536, "MAX_EVENT_LOG_BYTES");
        assertEq(op.MAX_CIPHERTEXT_BYTES(), 131072, "MAX_CIPHERTEXT_BYTES");
    }

    function test_constructor_emitsDeployedAndPolicySet() public {
        vm.expectEmit();
        emit UpgradeOperator.Deployed(owner, 7 days);
        vm.expectEmit();
        emit UpgradeOperator.PolicySet(0x3, true, false, 0, uint64(T0), "initial policy");
        _deploy(7 days, _pol(0x3, true, false));
    }

    function test_constructor_revertsOnRevokedBit() public {
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.InvalidTcbStatuses.selector, uint16(0x41)));
        _deploy(DELAY, _pol(0x41, false, false));
    }

    function test_constructor_revertsOnUnknownBits() public {
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.InvalidTcbStatuses.selector, uint16(0x200)));
        _deploy(DELAY, _pol(0x200, false, false));
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.InvalidTcbStatuses.selector, uint16(0x8001)));
        _deploy(DELAY, _pol(0x8001, false, false));
    }

    function test_constructor_revertsOnDelayTooLong() public {
        vm.expectRevert(
            abi.encodeWithSelector(UpgradeOperator.DelayTooLong.selector, uint64(365 days + 1), uint64(365 days))
        );
        new UpgradeOperator(owner, 365 days + 1, _pol(1, false, false));
        UpgradeOperator ok = new UpgradeOperator(owner, 365 days, _pol(1, false, false));
        assertEq(uint256(ok.wideningDelay()), 365 days, "max delay accepted");
    }

    function test_constructor_revertsOnZeroOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableInvalidOwner.selector, address(0)));
        new UpgradeOperator(address(0), DELAY, _pol(1, false, false));
    }

    function testFuzz_constructor_policyMask(uint16 mask) public {
        if (mask & ~KNOWN != 0) {
            vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.InvalidTcbStatuses.selector, mask));
            _deploy(DELAY, _pol(mask, false, false));
        } else {
            UpgradeOperator o = _deploy(DELAY, _pol(mask, true, true));
            _assertPolicy(o.policy(), _pol(mask, true, true), "policy");
        }
    }

    // ================================================================== ownership

    function test_ownership_twoStepTransfer() public {
        address next = address(0xB0B);
        vm.expectEmit(address(op));
        emit Ownable2Step.OwnershipTransferStarted(owner, next);
        vm.prank(owner);
        op.transferOwnership(next);
        assertEq(op.owner(), owner, "owner unchanged until accepted");
        assertEq(op.pendingOwner(), next, "pendingOwner");

        // The pending owner has no powers yet.
        vm.prank(next);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, next));
        op.proposeAppReference(COMPOSE_HASH, "", "");

        vm.expectEmit(address(op));
        emit Ownable.OwnershipTransferred(owner, next);
        vm.prank(next);
        op.acceptOwnership();
        assertEq(op.owner(), next, "owner");
        assertEq(op.pendingOwner(), address(0), "pendingOwner cleared");

        // The previous owner lost its powers, the new one has them.
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, owner));
        op.proposeAppReference(COMPOSE_HASH, "", "");
        vm.prank(next);
        op.proposeAppReference(COMPOSE_HASH, "", "");
    }

    function test_acceptOwnership_revertsForWrongAccount() public {
        vm.prank(owner);
        op.transferOwnership(address(0xB0B));
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        op.acceptOwnership();
        // Not even the current owner can accept on the pending owner's behalf.
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, owner));
        op.acceptOwnership();
        assertEq(op.owner(), owner, "owner");
    }

    function test_acceptOwnership_revertsWithoutPendingTransfer() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        op.acceptOwnership();
    }

    function test_transferOwnership_canBeCancelled() public {
        vm.startPrank(owner);
        op.transferOwnership(address(0xB0B));
        op.transferOwnership(address(0));
        vm.stopPrank();
        assertEq(op.pendingOwner(), address(0), "pendingOwner");
        vm.prank(address(0xB0B));
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, address(0xB0B)));
        op.acceptOwnership();
    }

    function test_renounceOwnership_disabled() public {
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.RenounceDisabled.selector));
        op.renounceOwnership();
        assertEq(op.owner(), owner, "owner");
    }

    function test_onlyOwner_revertsForNonOwner() public {
        (bytes memory a, bytes memory b, bytes memory c, bytes memory d) = _osMeas(1);
        bytes32 appRef = _proposeApp(op, COMPOSE_HASH);
        uint256 gid = _proposeGenesis(clusterAddr);
        bytes memory unauthorized = abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger);

        vm.startPrank(stranger);
        vm.expectRevert(unauthorized);
        op.proposeOsReference(a, b, c, d, "", "");
        vm.expectRevert(unauthorized);
        op.proposeAppReference(bytes32(uint256(7)), "", "");
        vm.expectRevert(unauthorized);
        op.revokeReference(appRef, "");
        vm.expectRevert(unauthorized);
        op.setPolicy(_pol(1, false, false), "");
        vm.expectRevert(unauthorized);
        op.approveGenesis(gid, _gc(gid), _ge(gid), bytes32(0), appRef, "");
        vm.expectRevert(unauthorized);
        op.transferOwnership(stranger);
        vm.expectRevert(unauthorized);
        op.renounceOwnership();
        vm.stopPrank();
    }

    // ================================================================== references: propose

    function test_proposeOsReference_storesAndEmits() public {
        (bytes memory a, bytes memory b, bytes memory c, bytes memory d) = _osMeas(1);
        bytes32 want = keccak256(abi.encodePacked(uint8(UpgradeOperator.RefKind.Os), a, b, c, d));
        vm.expectEmit(address(op));
        emit UpgradeOperator.ReferenceProposed(
            want, UpgradeOperator.RefKind.Os, abi.encodePacked(a, b, c, d), uint64(T0 + DELAY), "os v1"
        );
        vm.prank(owner);
        bytes32 id = op.proposeOsReference(a, b, c, d, "os v1", "");
        assertEq(id, want, "id");
        assertEq(op.osReferenceId(a, b, c, d), want, "osReferenceId");
        UpgradeOperator.Reference memory r = op.getReference(id);
        assertEq(uint256(r.kind), uint256(UpgradeOperator.RefKind.Os), "kind");
        assertEq(uint256(r.activatesAt), T0 + DELAY, "activatesAt");
        assertFalse(r.revoked, "revoked");
    }

    function test_proposeAppReference_storesAndEmits() public {
        bytes32 want = keccak256(abi.encodePacked(uint8(UpgradeOperator.RefKind.App), COMPOSE_HASH));
        vm.expectEmit(address(op));
        emit UpgradeOperator.ReferenceProposed(
            want, UpgradeOperator.RefKind.App, abi.encodePacked(COMPOSE_HASH), uint64(T0 + DELAY), "app v1"
        );
        vm.prank(owner);
        bytes32 id = op.proposeAppReference(COMPOSE_HASH, "app v1", "");
        assertEq(id, want, "id");
        assertEq(op.appReferenceId(COMPOSE_HASH), want, "appReferenceId");
        UpgradeOperator.Reference memory r = op.getReference(id);
        assertEq(uint256(r.kind), uint256(UpgradeOperator.RefKind.App), "kind");
        assertEq(uint256(r.activatesAt), T0 + DELAY, "activatesAt");
        assertFalse(r.revoked, "revoked");
    }

    function test_proposeAppReference_publishesTheComposeUnchecked() public {
        // Any bytes are published as given: the contract checks nothing (auditors compare the hash).
        bytes memory compose = bytes('{"docker_compose_file":"services: {}"}');
        bytes32 want = keccak256(abi.encodePacked(uint8(UpgradeOperator.RefKind.App), COMPOSE_HASH));
        vm.expectEmit(address(op));
        emit UpgradeOperator.ReferenceProposed(
            want, UpgradeOperator.RefKind.App, abi.encodePacked(COMPOSE_HASH), uint64(T0 + DELAY), "app v2"
        );
        vm.expectEmit(address(op));
        emit UpgradeOperator.ReferenceDescribed(want, UpgradeOperator.RefKind.App, compose);
        vm.recordLogs();
        vm.prank(owner);
        assertEq(op.proposeAppReference(COMPOSE_HASH, "app v2", compose), want, "same id as without a compose");
        assertEq(vm.getRecordedLogs().length, 2, "ReferenceProposed then ReferenceDescribed, nothing else");
        UpgradeOperator.Reference memory r = op.getReference(want);
        assertEq(uint256(r.activatesAt), T0 + DELAY, "the description changes nothing about activation");
    }

    function test_proposeOsReference_publishesItsDescription() public {
        (bytes memory a, bytes memory b, bytes memory c, bytes memory d) = _osMeas(2);
        bytes memory desc = bytes('{"os_image_hash":"07a2","release":"https://example.invalid/r"}');
        bytes32 want = keccak256(abi.encodePacked(uint8(UpgradeOperator.RefKind.Os), a, b, c, d));
        vm.expectEmit(address(op));
        emit UpgradeOperator.ReferenceDescribed(want, UpgradeOperator.RefKind.Os, desc);
        vm.prank(owner);
        op.proposeOsReference(a, b, c, d, "os v2", desc);
    }

    function test_propose_emptyDescriptionEmitsNoDescribedEvent() public {
        vm.recordLogs();
        vm.prank(owner);
        op.proposeAppReference(COMPOSE_HASH, "", "");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "only ReferenceProposed");
        assertEq(logs[0].topics[0], UpgradeOperator.ReferenceProposed.selector, "ReferenceProposed");
    }

    function test_propose_describedStillRequiresOwnerAndFreshId() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        op.proposeAppReference(COMPOSE_HASH, "", "x");
        vm.startPrank(owner);
        bytes32 id = op.proposeAppReference(COMPOSE_HASH, "", "x");
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceExists.selector, id));
        op.proposeAppReference(COMPOSE_HASH, "", "y");
        vm.stopPrank();
    }

    function test_proposeOsReference_revertsOnBadLength() public {
        uint256[4] memory badLens = [uint256(0), 47, 49, 96];
        for (uint8 field = 0; field < 4; field++) {
            for (uint256 j = 0; j < badLens.length; j++) {
                bytes[4] memory m = [_m48(0), _m48(1), _m48(2), _m48(3)];
                m[field] = randomBytes(j, badLens[j]);
                vm.expectRevert(
                    abi.encodeWithSelector(UpgradeOperator.BadMeasurementLength.selector, field, badLens[j])
                );
                vm.prank(owner);
                op.proposeOsReference(m[0], m[1], m[2], m[3], "", "");
                // The pure helper enforces the same lengths.
                vm.expectRevert(
                    abi.encodeWithSelector(UpgradeOperator.BadMeasurementLength.selector, field, badLens[j])
                );
                op.osReferenceId(m[0], m[1], m[2], m[3]);
            }
        }
    }

    function test_proposeOsReference_firstBadFieldIsReported() public {
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadMeasurementLength.selector, uint8(1), uint256(3)));
        vm.prank(owner);
        op.proposeOsReference(_m48(0), hex"010203", hex"", _m48(3), "", "");
    }

    function testFuzz_proposeOsReference_badLength(uint8 field, uint256 len) public {
        field = uint8(bound(field, 0, 3));
        len = bound(len, 0, 200);
        vm.assume(len != 48);
        bytes[4] memory m = [_m48(0), _m48(1), _m48(2), _m48(3)];
        m[field] = randomBytes(len, len);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadMeasurementLength.selector, field, len));
        vm.prank(owner);
        op.proposeOsReference(m[0], m[1], m[2], m[3], "", "");
    }

    function testFuzz_referenceIds_matchProposals(bytes32 s0, bytes32 s1, bytes16 t, bytes32 composeHash) public {
        bytes memory a = abi.encodePacked(s0, t);
        bytes memory b = abi.encodePacked(s1, t);
        bytes memory c = abi.encodePacked(t, s0);
        bytes memory d = abi.encodePacked(t, s1);
        bytes32 wantOs = keccak256(abi.encodePacked(uint8(1), a, b, c, d));
        bytes32 wantApp = keccak256(abi.encodePacked(uint8(2), composeHash));
        assertEq(op.osReferenceId(a, b, c, d), wantOs, "osReferenceId");
        assertEq(op.appReferenceId(composeHash), wantApp, "appReferenceId");
        vm.startPrank(owner);
        assertEq(op.proposeOsReference(a, b, c, d, "", ""), wantOs, "proposeOsReference");
        assertEq(op.proposeAppReference(composeHash, "", ""), wantApp, "proposeAppReference");
        vm.stopPrank();
        // Different kind prefixes and lengths: an OS id never names an app reference.
        assertFalse(op.isAllowed(wantOs, UpgradeOperator.RefKind.App), "os id as app");
    }

    function test_proposeReference_revertsWhenExists() public {
        bytes32 osRef = _proposeOs(op, 1);
        bytes32 appRef = _proposeApp(op, COMPOSE_HASH);
        // While pending ...
        (bytes memory a, bytes memory b, bytes memory c, bytes memory d) = _osMeas(1);
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceExists.selector, osRef));
        op.proposeOsReference(a, b, c, d, "", "");
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceExists.selector, appRef));
        op.proposeAppReference(COMPOSE_HASH, "", "");
        // ... and once active.
        vm.warp(T0 + DELAY);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceExists.selector, osRef));
        op.proposeOsReference(a, b, c, d, "", "");
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceExists.selector, appRef));
        op.proposeAppReference(COMPOSE_HASH, "", "");
        vm.stopPrank();
    }

    // ================================================================== references: timelock

    function test_reference_timelock() public {
        bytes32 osRef = _proposeOs(op, 1);
        bytes32 appRef = _proposeApp(op, COMPOSE_HASH);
        assertFalse(op.isAllowed(osRef, UpgradeOperator.RefKind.Os), "os at proposal");
        assertFalse(op.isAllowed(appRef, UpgradeOperator.RefKind.App), "app at proposal");
        vm.warp(T0 + DELAY - 1);
        assertFalse(op.isAllowed(osRef, UpgradeOperator.RefKind.Os), "os 1s before");
        assertFalse(op.isAllowed(appRef, UpgradeOperator.RefKind.App), "app 1s before");
        vm.warp(T0 + DELAY);
        assertTrue(op.isAllowed(osRef, UpgradeOperator.RefKind.Os), "os at activatesAt");
        assertTrue(op.isAllowed(appRef, UpgradeOperator.RefKind.App), "app at activatesAt");
        vm.warp(T0 + 365 days);
        assertTrue(op.isAllowed(osRef, UpgradeOperator.RefKind.Os), "os long after");
        assertTrue(op.isAllowed(appRef, UpgradeOperator.RefKind.App), "app long after");
    }

    function test_reference_zeroDelayIsImmediate() public {
        UpgradeOperator o = _deploy(0, _pol(1, false, false));
        bytes32 osRef = _proposeOs(o, 1);
        assertEq(uint256(o.getReference(osRef).activatesAt), T0, "activatesAt");
        assertTrue(o.isAllowed(osRef, UpgradeOperator.RefKind.Os), "allowed at once");
    }

    function test_isAllowed_falseForWrongKindAndNone() public {
        (bytes32 osRef, bytes32 appRef) = _activeRefs();
        assertFalse(op.isAllowed(osRef, UpgradeOperator.RefKind.App), "os as app");
        assertFalse(op.isAllowed(appRef, UpgradeOperator.RefKind.Os), "app as os");
        assertFalse(op.isAllowed(osRef, UpgradeOperator.RefKind.None), "os as None");
        assertFalse(op.isAllowed(appRef, UpgradeOperator.RefKind.None), "app as None");
        // Unknown ids: their record has kind None, which must not match kind None.
        assertFalse(op.isAllowed(bytes32(uint256(1)), UpgradeOperator.RefKind.None), "unknown as None");
        assertFalse(op.isAllowed(bytes32(0), UpgradeOperator.RefKind.None), "zero as None");
        assertFalse(op.isAllowed(bytes32(uint256(1)), UpgradeOperator.RefKind.Os), "unknown as Os");
    }

    // ================================================================== references: revoke

    function test_revokeReference_activeIsImmediate() public {
        (bytes32 osRef, bytes32 appRef) = _activeRefs();
        vm.expectEmit(address(op));
        emit UpgradeOperator.ReferenceRevoked(osRef, UpgradeOperator.RefKind.Os, "cve");
        vm.prank(owner);
        op.revokeReference(osRef, "cve");
        assertFalse(op.isAllowed(osRef, UpgradeOperator.RefKind.Os), "os revoked");
        assertTrue(op.getReference(osRef).revoked, "record revoked");

        vm.expectEmit(address(op));
        emit UpgradeOperator.ReferenceRevoked(appRef, UpgradeOperator.RefKind.App, "bad app");
        vm.prank(owner);
        op.revokeReference(appRef, "bad app");
        assertFalse(op.isAllowed(appRef, UpgradeOperator.RefKind.App), "app revoked");
    }

    function test_revokeReference_pendingNeverActivates() public {
        bytes32 osRef = _proposeOs(op, 1);
        _revoke(op, osRef);
        vm.warp(T0 + DELAY + 1);
        assertFalse(op.isAllowed(osRef, UpgradeOperator.RefKind.Os), "revoked pending ref");
    }

    function test_revokeReference_revertsWhenUnknown() public {
        bytes32 id = _osId(9);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.UnknownReference.selector, id));
        op.revokeReference(id, "");
    }

    function test_revokeReference_revertsWhenAlreadyRevoked() public {
        bytes32 appRef = _proposeApp(op, COMPOSE_HASH);
        _revoke(op, appRef);
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceAlreadyRevoked.selector, appRef));
        op.revokeReference(appRef, "");
    }

    function test_reproposeAfterRevoke_restartsTimelock() public {
        (bytes32 osRef,) = _activeRefs();
        _revoke(op, osRef);
        vm.warp(T0 + 10 days);
        (bytes memory a, bytes memory b, bytes memory c, bytes memory d) = _osMeas(1);
        vm.expectEmit(address(op));
        emit UpgradeOperator.ReferenceProposed(
            osRef, UpgradeOperator.RefKind.Os, abi.encodePacked(a, b, c, d), uint64(T0 + 10 days + DELAY), "again"
        );
        vm.prank(owner);
        assertEq(op.proposeOsReference(a, b, c, d, "again", ""), osRef, "same id");
        UpgradeOperator.Reference memory r = op.getReference(osRef);
        assertFalse(r.revoked, "revoked cleared");
        assertEq(uint256(r.activatesAt), T0 + 10 days + DELAY, "activatesAt restarted");
        assertFalse(op.isAllowed(osRef, UpgradeOperator.RefKind.Os), "pending again");
        vm.warp(T0 + 10 days + DELAY);
        assertTrue(op.isAllowed(osRef, UpgradeOperator.RefKind.Os), "active after new delay");
    }

    // ================================================================== policy

    function _recordSetPolicy(UpgradeOperator o, UpgradeOperator.Policy memory p) internal returns (uint256 n) {
        vm.recordLogs();
        vm.prank(owner);
        o.setPolicy(p, "p");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        n = _count(logs, UpgradeOperator.PolicySet.selector);
    }

    function test_setPolicy_narrowingIsImmediate() public {
        UpgradeOperator o = _deploy(DELAY, _pol(KNOWN, true, true));
        vm.expectEmit(address(o));
        emit UpgradeOperator.PolicySet(0x1, false, true, 0, uint64(T0), "p");
        assertEq(_recordSetPolicy(o, _pol(0x1, false, true)), 1, "one PolicySet");
        _assertPolicy(o.policy(), _pol(0x1, false, true), "policy");
        (UpgradeOperator.Policy memory pend, uint64 at) = o.pendingPolicy();
        _assertPolicy(pend, _pol(0, false, false), "pendingPolicy");
        assertEq(uint256(at), 0, "no pending");
    }

    function test_setPolicy_wideningWaitsForDelay() public {
        vm.expectEmit(address(op));
        emit UpgradeOperator.PolicySet(0x1, false, false, 0, uint64(T0), "p");
        vm.expectEmit(address(op));
        emit UpgradeOperator.PolicySet(0x3, true, false, 0, uint64(T0 + DELAY), "p");
        assertEq(_recordSetPolicy(op, _pol(0x3, true, false)), 2, "two PolicySet");

        _assertPolicy(op.policy(), _pol(0x1, false, false), "policy before");
        (UpgradeOperator.Policy memory pend, uint64 at) = op.pendingPolicy();
        _assertPolicy(pend, _pol(0x3, true, false), "pendingPolicy");
        assertEq(uint256(at), T0 + DELAY, "pending activatesAt");

        vm.warp(T0 + DELAY - 1);
        _assertPolicy(op.policy(), _pol(0x1, false, false), "policy 1s before");

        vm.warp(T0 + DELAY);
        _assertPolicy(op.policy(), _pol(0x3, true, false), "policy after");
        (pend, at) = op.pendingPolicy();
        _assertPolicy(pend, _pol(0, false, false), "pendingPolicy after");
        assertEq(uint256(at), 0, "no pending after");
    }

    function test_setPolicy_mixedNarrowsNowWidensLater() public {
        UpgradeOperator o = _deploy(DELAY, _pol(0x3, true, false));
        // Drops bit 1 and debug (narrowing), adds bit 2 and simulated (widening).
        vm.expectEmit(address(o));
        emit UpgradeOperator.PolicySet(0x1, false, false, 0, uint64(T0), "p");
        vm.expectEmit(address(o));
        emit UpgradeOperator.PolicySet(0x5, false, true, 0, uint64(T0 + DELAY), "p");
        assertEq(_recordSetPolicy(o, _pol(0x5, false, true)), 2, "two PolicySet");
        _assertPolicy(o.policy(), _pol(0x1, false, false), "narrowed at once");
        (UpgradeOperator.Policy memory pend, uint64 at) = o.pendingPolicy();
        _assertPolicy(pend, _pol(0x5, false, true), "pendingPolicy");
        assertEq(uint256(at), T0 + DELAY, "pending activatesAt");
        vm.warp(T0 + DELAY);
        _assertPolicy(o.policy(), _pol(0x5, false, true), "target after delay");
    }

    function test_setPolicy_raisingTheTcbEvaluationFloorIsImmediate() public {
        UpgradeOperator o = _deploy(DELAY, _polMin(0x1, false, false, 17));
        vm.expectEmit(address(o));
        emit UpgradeOperator.PolicySet(0x1, false, false, 18, uint64(T0), "p");
        assertEq(_recordSetPolicy(o, _polMin(0x1, false, false, 18)), 1, "one PolicySet");
        _assertPolicy(o.policy(), _polMin(0x1, false, false, 18), "raised at once");
        (, uint64 at) = o.pendingPolicy();
        assertEq(uint256(at), 0, "nothing pending");
    }

    function test_setPolicy_loweringTheTcbEvaluationFloorWaits() public {
        UpgradeOperator o = _deploy(DELAY, _polMin(0x1, false, false, 18));
        // A compromised owner key must not roll the floor back at once (a TCB recovery undone).
        vm.expectEmit(address(o));
        emit UpgradeOperator.PolicySet(0x1, false, false, 18, uint64(T0), "p");
        vm.expectEmit(address(o));
        emit UpgradeOperator.PolicySet(0x1, false, false, 16, uint64(T0 + DELAY), "p");
        assertEq(_recordSetPolicy(o, _polMin(0x1, false, false, 16)), 2, "two PolicySet");
        _assertPolicy(o.policy(), _polMin(0x1, false, false, 18), "floor kept");
        (UpgradeOperator.Policy memory pend, uint64 at) = o.pendingPolicy();
        _assertPolicy(pend, _polMin(0x1, false, false, 16), "pendingPolicy");
        assertEq(uint256(at), T0 + DELAY, "pending activatesAt");
        vm.warp(T0 + DELAY);
        _assertPolicy(o.policy(), _polMin(0x1, false, false, 16), "lowered after the delay");
    }

    function test_policyHashOf_coversTheTcbEvaluationFloor() public view {
        UpgradeOperator.Policy memory p = _polMin(0x1, false, false, 17);
        assertEq(op.policyHashOf(p), keccak256(abi.encode(uint16(0x1), false, false, uint32(17))), "hash");
        assertTrue(op.policyHashOf(p) != op.policyHashOf(_polMin(0x1, false, false, 18)), "floor changes the hash");
    }

    function test_setPolicy_cancelsPending() public {
        vm.prank(owner);
        op.setPolicy(_pol(0x3, true, true), "widen");
        vm.warp(T0 + 1 hours);
        vm.prank(owner);
        op.setPolicy(_pol(0x1, false, false), "cancel");
        (, uint64 at) = op.pendingPolicy();
        assertEq(uint256(at), 0, "pending cancelled");
        vm.warp(T0 + DELAY + 1);
        _assertPolicy(op.policy(), _pol(0x1, false, false), "widening never applied");
    }

    function test_setPolicy_newWideningRestartsDelay() public {
        vm.prank(owner);
        op.setPolicy(_pol(0x3, false, false), "widen 1");
        vm.warp(T0 + 12 hours);
        vm.prank(owner);
        op.setPolicy(_pol(0x7, false, false), "widen 2");
        vm.warp(T0 + DELAY);
        _assertPolicy(op.policy(), _pol(0x1, false, false), "first widening cancelled");
        vm.warp(T0 + 12 hours + DELAY);
        _assertPolicy(op.policy(), _pol(0x7, false, false), "second widening applied");
    }

    function test_setPolicy_narrowsFromMaturedPending() public {
        vm.prank(owner);
        op.setPolicy(_pol(0x3, true, false), "widen");
        vm.warp(T0 + DELAY);
        // The matured policy (0x3, debug) is the one in force, so dropping debug is a pure narrowing.
        vm.expectEmit(address(op));
        emit UpgradeOperator.PolicySet(0x3, false, false, 0, uint64(T0 + DELAY), "p");
        assertEq(_recordSetPolicy(op, _pol(0x3, false, false)), 1, "one PolicySet");
        _assertPolicy(op.policy(), _pol(0x3, false, false), "policy");
    }

    function test_setPolicy_zeroDelayWideningIsImmediate() public {
        UpgradeOperator o = _deploy(0, _pol(0x1, false, false));
        vm.expectEmit(address(o));
        emit UpgradeOperator.PolicySet(0x1, false, false, 0, uint64(T0), "p");
        vm.expectEmit(address(o));
        emit UpgradeOperator.PolicySet(KNOWN, true, true, 0, uint64(T0), "p");
        assertEq(_recordSetPolicy(o, _pol(KNOWN, true, true)), 2, "two PolicySet");
        _assertPolicy(o.policy(), _pol(KNOWN, true, true), "policy");
        (, uint64 at) = o.pendingPolicy();
        assertEq(uint256(at), 0, "no pending");
    }

    function test_setPolicy_revertsOnInvalidMask() public {
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.InvalidTcbStatuses.selector, uint16(0x40)));
        op.setPolicy(_pol(0x40, false, false), "");
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.InvalidTcbStatuses.selector, uint16(0x201)));
        op.setPolicy(_pol(0x201, false, false), "");
        vm.stopPrank();
    }

    function testFuzz_setPolicy_narrowNowTargetLater(
        uint16 curMask,
        bool curDbg,
        bool curSim,
        uint16 mask,
        bool dbg,
        bool sim
    ) public {
        curMask &= KNOWN;
        mask &= KNOWN;
        UpgradeOperator o = _deploy(DELAY, _pol(curMask, curDbg, curSim));
        vm.prank(owner);
        o.setPolicy(_pol(mask, dbg, sim), "fuzz");
        _assertPolicy(o.policy(), _pol(curMask & mask, curDbg && dbg, curSim && sim), "now");
        bool widens = (mask & ~curMask) != 0 || (dbg && !curDbg) || (sim && !curSim);
        (, uint64 at) = o.pendingPolicy();
        assertEq(uint256(at), widens ? T0 + DELAY : 0, "pending activatesAt");
        vm.warp(T0 + DELAY);
        _assertPolicy(o.policy(), _pol(mask, dbg, sim), "after delay");
    }

    // ================================================================== expiry (supersede with a grace period)

    function _scheduleExpiry(bytes32 id, uint64 at) internal {
        vm.prank(owner);
        op.scheduleExpiry(id, at, "superseded");
    }

    function test_scheduleExpiry_endsTheReferenceAtItsTime() public {
        (bytes32 osRef, bytes32 appRef) = _activeRefs();
        uint64 at = uint64(block.timestamp) + 100;
        vm.expectEmit(address(op));
        emit UpgradeOperator.ReferenceExpiryScheduled(appRef, UpgradeOperator.RefKind.App, at, "superseded");
        _scheduleExpiry(appRef, at);
        assertEq(uint256(op.getReference(appRef).expiresAt), at, "stored");
        vm.warp(at - 1);
        assertTrue(op.isAllowed(appRef, UpgradeOperator.RefKind.App), "usable through its grace period");
        vm.warp(at);
        assertTrue(!op.isAllowed(appRef, UpgradeOperator.RefKind.App), "not usable from its expiry");
        assertTrue(op.isAllowed(osRef, UpgradeOperator.RefKind.Os), "the other reference is untouched");
    }

    function test_scheduleExpiry_isBroughtForwardNeverPostponed() public {
        (, bytes32 appRef) = _activeRefs();
        uint64 at = uint64(block.timestamp) + 1000;
        _scheduleExpiry(appRef, at);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ExpiryNotSooner.selector, appRef, at));
        _scheduleExpiry(appRef, at + 1);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ExpiryNotSooner.selector, appRef, at));
        _scheduleExpiry(appRef, at);
        _scheduleExpiry(appRef, at - 500);
        assertEq(uint256(op.getReference(appRef).expiresAt), at - 500, "brought forward");
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ExpiryInPast.selector, uint64(block.timestamp) - 1));
        _scheduleExpiry(appRef, uint64(block.timestamp) - 1);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        op.scheduleExpiry(appRef, at - 600, "");
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.UnknownReference.selector, bytes32(uint256(1))));
        _scheduleExpiry(bytes32(uint256(1)), at);
        _revoke(op, appRef);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceAlreadyRevoked.selector, appRef));
        _scheduleExpiry(appRef, at - 600);
    }

    function test_expiredReference_comesBackOnlyThroughTheWideningDelay() public {
        (, bytes32 appRef) = _activeRefs();
        uint64 at = uint64(block.timestamp) + 10;
        _scheduleExpiry(appRef, at);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.ReferenceExists.selector, appRef));
        _proposeApp(op, COMPOSE_HASH); // still live during its grace period
        vm.warp(at);
        _proposeApp(op, COMPOSE_HASH);
        UpgradeOperator.Reference memory r = op.getReference(appRef);
        assertEq(uint256(r.expiresAt), 0, "a fresh proposal has no expiry");
        assertEq(uint256(r.activatesAt), uint256(at) + DELAY, "waits the widening delay");
        assertTrue(!op.isAllowed(appRef, UpgradeOperator.RefKind.App), "not usable before the delay");
        vm.warp(uint256(at) + DELAY);
        assertTrue(op.isAllowed(appRef, UpgradeOperator.RefKind.App), "usable after it");
    }

    function test_deliverSecret_revertsAfterTheReferenceExpired() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(HPKE_KEY);
        bytes memory sig = _signDelivery(CLUSTER_PK, id, osRef, appRef, _ek(), _ct());
        _scheduleExpiry(appRef, uint64(block.timestamp) + 5);
        vm.warp(block.timestamp + 5);
        vm.expectRevert(
            abi.encodeWithSelector(UpgradeOperator.ReferenceNotAllowed.selector, appRef, UpgradeOperator.RefKind.App)
        );
        op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, _ek(), _ct(), sig);
    }
}
