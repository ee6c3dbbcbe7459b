// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {UpgradeOperatorBase} from "./UpgradeOperatorBase.sol";
import {UpgradeOperator} from "../src/UpgradeOperator.sol";

/// @notice The EIP-712 encoders, recomputed here from the documented type strings (PROTOCOL.md).
contract UpgradeOperatorEip712Test is UpgradeOperatorBase {
    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    string internal constant DELIVERY_TYPE =
        "Delivery(uint256 requestId,bytes32 request,bytes32 policy,bytes32 osRef,bytes32 appRef,bytes encapsulatedKey,bytes ciphertext)";
    string internal constant REFUSAL_TYPE = "Refusal(uint256 requestId,bytes32 request,uint8 reason)";

    function _domainSeparator(uint256 chainId, address verifyingContract) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                DOMAIN_TYPEHASH, keccak256("Replicatoor UpgradeOperator"), keccak256("6"), chainId, verifyingContract
            )
        );
    }

    function _deliveryDigest(
        uint256 chainId,
        address verifyingContract,
        uint256 requestId,
        bytes32 request,
        bytes32 policy,
        bytes32 osRef,
        bytes32 appRef,
        bytes memory ek,
        bytes memory ct
    ) internal pure returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(bytes(DELIVERY_TYPE)), requestId, request, policy, osRef, appRef, keccak256(ek), keccak256(ct)
            )
        );
        return keccak256(abi.encodePacked(hex"1901", _domainSeparator(chainId, verifyingContract), structHash));
    }

    function _refusalDigest(
        uint256 chainId,
        address verifyingContract,
        uint256 requestId,
        bytes32 request,
        uint8 reason
    ) internal pure returns (bytes32) {
        bytes32 structHash = keccak256(abi.encode(keccak256(bytes(REFUSAL_TYPE)), requestId, request, uint256(reason)));
        return keccak256(abi.encodePacked(hex"1901", _domainSeparator(chainId, verifyingContract), structHash));
    }

    function test_typeHashes() public view {
        assertEq(op.DELIVERY_TYPEHASH(), keccak256(bytes(DELIVERY_TYPE)), "DELIVERY_TYPEHASH");
        assertEq(op.REFUSAL_TYPEHASH(), keccak256(bytes(REFUSAL_TYPE)), "REFUSAL_TYPEHASH");
    }

    function test_eip712Domain() public view {
        (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        ) = op.eip712Domain();
        assertEq(uint256(uint8(fields)), 0x0f, "fields: name, version, chainId, verifyingContract");
        assertEq(name, "Replicatoor UpgradeOperator", "name");
        assertEq(version, "6", "version");
        assertEq(chainId, block.chainid, "chainId");
        assertEq(verifyingContract, address(op), "verifyingContract");
        assertEq(salt, bytes32(0), "salt");
        assertEq(extensions.length, 0, "extensions");
    }

    function testFuzz_deliveryDigest_matchesEip712(
        uint256 requestId,
        bytes32 request,
        bytes32 policy,
        bytes32 osRef,
        bytes32 appRef,
        bytes calldata ek,
        bytes calldata ct
    ) public view {
        assertEq(
            op.deliveryDigest(requestId, request, policy, osRef, appRef, ek, ct),
            _deliveryDigest(block.chainid, address(op), requestId, request, policy, osRef, appRef, ek, ct),
            "deliveryDigest"
        );
    }

    function testFuzz_refusalDigest_matchesEip712(uint256 requestId, bytes32 request, uint8 reason) public view {
        assertEq(
            op.refusalDigest(requestId, request, reason),
            _refusalDigest(block.chainid, address(op), requestId, request, reason),
            "refusalDigest"
        );
    }

    /// @dev A fixed vector, so the encoding cannot drift silently together with the helper above.
    function test_digests_knownVector() public view {
        bytes memory ek = abi.encodePacked(bytes32(uint256(0xee)));
        bytes memory ct = hex"c0ffee";
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "Delivery(uint256 requestId,bytes32 request,bytes32 policy,bytes32 osRef,bytes32 appRef,bytes encapsulatedKey,bytes ciphertext)"
                ),
                uint256(7),
                bytes32(uint256(3)),
                bytes32(uint256(4)),
                bytes32(uint256(1)),
                bytes32(uint256(2)),
                keccak256(ek),
                keccak256(ct)
            )
        );
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("Replicatoor UpgradeOperator"),
                keccak256("6"),
                block.chainid,
                address(op)
            )
        );
        assertEq(
            op.deliveryDigest(
                7, bytes32(uint256(3)), bytes32(uint256(4)), bytes32(uint256(1)), bytes32(uint256(2)), ek, ct
            ),
            keccak256(abi.encodePacked(bytes2(0x1901), domain, structHash)),
            "delivery vector"
        );
    }

    function testFuzz_digests_changeWithChainId(uint64 newChainId, uint256 requestId, uint8 reason) public {
        vm.assume(newChainId != block.chainid && newChainId != 0);
        bytes memory ek = _ek();
        bytes memory ct = _ct();
        bytes32 d0 =
            op.deliveryDigest(requestId, _rq(requestId), _polHash(), bytes32(uint256(1)), bytes32(uint256(2)), ek, ct);
        bytes32 r0 = op.refusalDigest(requestId, _rq(requestId), reason);
        vm.chainId(newChainId);
        bytes32 d1 =
            op.deliveryDigest(requestId, _rq(requestId), _polHash(), bytes32(uint256(1)), bytes32(uint256(2)), ek, ct);
        bytes32 r1 = op.refusalDigest(requestId, _rq(requestId), reason);
        assertNotEq(d0, d1, "delivery digest must depend on the chain id");
        assertNotEq(r0, r1, "refusal digest must depend on the chain id");
        assertEq(
            d1,
            _deliveryDigest(
                newChainId,
                address(op),
                requestId,
                _rq(requestId),
                _polHash(),
                bytes32(uint256(1)),
                bytes32(uint256(2)),
                ek,
                ct
            ),
            "delivery digest on the new chain"
        );
        assertEq(
            r1,
            _refusalDigest(newChainId, address(op), requestId, _rq(requestId), reason),
            "refusal digest on the new chain"
        );
    }

    function test_signatureFromOtherChainRejected() public {
        (bytes32 osRef, bytes32 appRef) = _bootstrap();
        uint256 id = _request(HPKE_KEY);
        bytes memory sig = _signDelivery(CLUSTER_PK, id, osRef, appRef, _ek(), _ct());
        bytes memory refusal = _signRefusal(CLUSTER_PK, id, 1);
        uint256 home = block.chainid;
        vm.chainId(home + 1);
        address recovered = _ecrecover(op.deliveryDigest(id, _rq(id), _polHash(), osRef, appRef, _ek(), _ct()), sig);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, recovered, clusterAddr));
        op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, _ek(), _ct(), sig);
        recovered = _ecrecover(op.refusalDigest(id, _rq(id), 1), refusal);
        vm.expectRevert(abi.encodeWithSelector(UpgradeOperator.BadClusterSignature.selector, recovered, clusterAddr));
        op.refuseRequest(id, _rq(id), 1, refusal);
        vm.chainId(home);
        op.deliverSecret(id, _rq(id), _polHash(), osRef, appRef, _ek(), _ct(), sig);
        _assertStatus(id, UpgradeOperator.RequestStatus.Delivered);
    }

    function test_digests_dependOnVerifyingContract() public {
        UpgradeOperator other = _deploy(DELAY, _pol(1, false, false));
        assertNotEq(
            op.deliveryDigest(1, _rq(1), _polHash(), bytes32(0), bytes32(0), _ek(), _ct()),
            other.deliveryDigest(1, _rq(1), _polHash(), bytes32(0), bytes32(0), _ek(), _ct()),
            "delivery digest must depend on the contract"
        );
        assertNotEq(
            op.refusalDigest(1, _rq(1), 1),
            other.refusalDigest(1, _rq(1), 1),
            "refusal digest must depend on the contract"
        );
        assertEq(
            other.refusalDigest(1, bytes32(uint256(9)), 1),
            _refusalDigest(block.chainid, address(other), 1, bytes32(uint256(9)), 1),
            "other contract's digest"
        );
    }
}
