// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test, Vm} from "./Vm.sol";
import {UpgradeOperator} from "../src/UpgradeOperator.sol";

/// @notice Shared fixture: a deployment with a one-day widening delay, keys, measurements and helpers.
abstract contract UpgradeOperatorBase is Test {
    uint64 internal constant DELAY = 1 days;
    uint256 internal constant T0 = 1_700_000_000;

    uint256 internal constant OWNER_PK = 0xA11CE;
    uint256 internal constant CLUSTER_PK = 0xC1057E5;
    uint256 internal constant CLUSTER2_PK = 0xC1057E52;
    uint256 internal constant ROGUE_PK = 0xBAD;

    address internal owner;
    address internal clusterAddr;
    address internal cluster2Addr;
    address internal rogueAddr;
    address internal stranger = address(0x5757);
    address internal relayer = address(0xDE1);

    UpgradeOperator internal op;

    bytes internal constant QUOTE = hex"04000200810000000000000000000000939a7233f79c4ca9940a0db3957f0607";
    bytes internal constant EVENT_LOG = hex"7b226576656e7473223a5b5d7d";
    bytes32 internal constant HPKE_KEY = keccak256("hpke public key 1");
    /// @dev sha256("app-compose.json v1"), as a literal: a sha256() call between vm.prank and the call would eat the prank.
    bytes32 internal constant COMPOSE_HASH = 0xd0e457e2c2ad39f7a5a0253ae7b068b0a2fc4bc0aa2e650375d6956b008f1526;

    function setUp() public virtual {
        vm.warp(T0);
        owner = vm.addr(OWNER_PK);
        clusterAddr = vm.addr(CLUSTER_PK);
        cluster2Addr = vm.addr(CLUSTER2_PK);
        rogueAddr = vm.addr(ROGUE_PK);
        op = _deploy(DELAY, _pol(1, false, false));
    }

    // ------------------------------------------------------------------ builders

    function _deploy(uint64 delay, UpgradeOperator.Policy memory p) internal returns (UpgradeOperator) {
        return new UpgradeOperator(owner, delay, p);
    }

    function _pol(uint16 tcb, bool dbg, bool sim) internal pure returns (UpgradeOperator.Policy memory) {
        return _polMin(tcb, dbg, sim, 0);
    }

    function _polMin(uint16 tcb, bool dbg, bool sim, uint32 minEval)
        internal
        pure
        returns (UpgradeOperator.Policy memory)
    {
        return UpgradeOperator.Policy({
            tcbStatuses: tcb, allowDebug: dbg, allowSimulated: sim, minTcbEvaluationDataNumber: minEval
        });
    }

    /// @dev A 48-byte measurement derived from `seed`.
    function _m48(uint256 seed) internal pure returns (bytes memory) {
        return abi.encodePacked(keccak256(abi.encode("m", seed)), bytes16(keccak256(abi.encode("m2", seed))));
    }

    function _osMeas(uint256 seed) internal pure returns (bytes memory, bytes memory, bytes memory, bytes memory) {
        return (_m48(seed * 4), _m48(seed * 4 + 1), _m48(seed * 4 + 2), _m48(seed * 4 + 3));
    }

    function _osId(uint256 seed) internal pure returns (bytes32) {
        (bytes memory a, bytes memory b, bytes memory c, bytes memory d) = _osMeas(seed);
        return keccak256(abi.encodePacked(uint8(1), a, b, c, d));
    }

    function _appId(bytes32 composeHash) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(uint8(2), composeHash));
    }

    // ------------------------------------------------------------------ governance helpers (as owner)

    function _proposeOs(UpgradeOperator o, uint256 seed) internal returns (bytes32 id) {
        (bytes memory a, bytes memory b, bytes memory c, bytes memory d) = _osMeas(seed);
        vm.prank(owner);
        id = o.proposeOsReference(a, b, c, d, "os", "");
    }

    function _proposeApp(UpgradeOperator o, bytes32 composeHash) internal returns (bytes32 id) {
        vm.prank(owner);
        id = o.proposeAppReference(composeHash, "app", "");
    }

    function _revoke(UpgradeOperator o, bytes32 id) internal {
        vm.prank(owner);
        o.revokeReference(id, "revoked");
    }

    /// @dev Proposes OS ref (seed 1) and app ref (COMPOSE_HASH) and waits out the delay.
    function _activeRefs() internal returns (bytes32 osRef, bytes32 appRef) {
        osRef = _proposeOs(op, 1);
        appRef = _proposeApp(op, COMPOSE_HASH);
        vm.warp(block.timestamp + DELAY);
    }

    function _proposeGenesis(address c) internal returns (uint256 id) {
        vm.prank(stranger);
        id = op.proposeGenesis(c, QUOTE, EVENT_LOG);
    }

    function _approveGenesis(uint256 id, bytes32 osRef, bytes32 appRef) internal {
        vm.prank(owner);
        op.approveGenesis(id, _gc(id), _ge(id), osRef, appRef, "genesis");
    }

    /// @dev The cluster and epoch proposal `id` names (what an owner verifies before approving it). Read from
    ///      storage (`_genesis`, slot 10: cluster at byte 0, forEpoch at byte 20) so that it can sit between a prank or an
    ///      expectRevert and the call it is meant for.
    function _gc(uint256 id) internal view returns (address) {
        return address(uint160(uint256(vm.load(address(op), keccak256(abi.encode(id, uint256(10)))))));
    }

    function _ge(uint256 id) internal view returns (uint64) {
        return uint64(uint256(vm.load(address(op), keccak256(abi.encode(id, uint256(10))))) >> 160);
    }

    /// @dev The `request` field of request `id` (keccak256(hpkePubKey ‖ requester)); zero for unknown ids.
    function _rq(uint256 id) internal view returns (bytes32) {
        return _reqHash[id];
    }

    /// @dev The policy hash a delivery decided now names: `policyHashOf(policy())`, recomputed from storage (slots 5
    ///      policy, 6 pending policy, 7 pending-at at byte 26) for the same reason as `_gc`; `test_policyHash_matchesContract`
    ///      checks it against the contract.
    function _polHash() internal view returns (bytes32) {
        uint256 at = uint256(vm.load(address(op), bytes32(uint256(7)))) >> 208;
        uint256 slot = at != 0 && block.timestamp >= at ? 6 : 5;
        uint256 w = uint256(vm.load(address(op), bytes32(slot)));
        return keccak256(abi.encode(uint16(w), (w >> 16) & 0xff != 0, (w >> 24) & 0xff != 0, uint32(w >> 32)));
    }

    /// @dev Active references plus an approved genesis with `clusterAddr` (epoch 1).
    function _bootstrap() internal returns (bytes32 osRef, bytes32 appRef) {
        (osRef, appRef) = _activeRefs();
        _approveGenesis(_proposeGenesis(clusterAddr), osRef, appRef);
    }

    mapping(uint256 => bytes32) internal _reqHash;

    function _request(bytes32 key) internal returns (uint256 id) {
        vm.prank(stranger);
        id = op.requestSecret(key, QUOTE, EVENT_LOG);
        _reqHash[id] = keccak256(abi.encodePacked(key, stranger));
    }

    // ------------------------------------------------------------------ signatures

    function _sig(uint256 pk, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        return abi.encodePacked(r, s, v);
    }

    function _signDelivery(
        uint256 pk,
        uint256 requestId,
        bytes32 osRef,
        bytes32 appRef,
        bytes memory ek,
        bytes memory ct
    ) internal view returns (bytes memory) {
        return _sig(pk, op.deliveryDigest(requestId, _rq(requestId), _polHash(), osRef, appRef, ek, ct));
    }

    function _signRefusal(uint256 pk, uint256 requestId, uint8 reason) internal view returns (bytes memory) {
        return _sig(pk, op.refusalDigest(requestId, _rq(requestId), reason));
    }

    /// @dev The address `sig` (r ‖ s ‖ v) recovers to for `digest` with the raw precompile.
    function _ecrecover(bytes32 digest, bytes memory sig) internal pure returns (address) {
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := mload(add(sig, 32))
            s := mload(add(sig, 64))
            v := byte(0, mload(add(sig, 96)))
        }
        return ecrecover(digest, v, r, s);
    }

    function _ek() internal pure returns (bytes memory) {
        return abi.encodePacked(keccak256("encapsulated key"));
    }

    function _ct() internal pure returns (bytes memory) {
        return randomBytes(42, 1085);
    }

    // ------------------------------------------------------------------ assertions on contract types

    function _assertStatus(uint256 requestId, UpgradeOperator.RequestStatus want) internal view {
        assertEq(uint256(op.requestStatus(_rq(requestId))), uint256(want), "request status");
    }

    function _assertPolicy(UpgradeOperator.Policy memory got, UpgradeOperator.Policy memory want, string memory what)
        internal
        pure
    {
        assertEq(uint256(got.tcbStatuses), uint256(want.tcbStatuses), string.concat(what, ".tcbStatuses"));
        assertEq(got.allowDebug, want.allowDebug, string.concat(what, ".allowDebug"));
        assertEq(got.allowSimulated, want.allowSimulated, string.concat(what, ".allowSimulated"));
        assertEq(
            uint256(got.minTcbEvaluationDataNumber),
            uint256(want.minTcbEvaluationDataNumber),
            string.concat(what, ".minTcbEvaluationDataNumber")
        );
    }

    /// @dev Number of recorded logs whose topic0 is `sig`.
    function _count(Vm.Log[] memory logs, bytes32 sig) internal pure returns (uint256 n) {
        for (uint256 i = 0; i < logs.length; i++) {
            if (logs[i].topics.length > 0 && logs[i].topics[0] == sig) n++;
        }
    }
}
