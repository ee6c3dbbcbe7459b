// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {UpgradeOperator} from "../contracts/src/UpgradeOperator.sol";

/// @notice The Foundry cheatcodes this script uses (no forge-std in this repository).
///         Signatures follow Foundry's cheatcode interface (foundry-cheatcodes-spec `Vm`).
interface DeployVm {
    function envOr(string calldata name, address defaultValue) external view returns (address value);
    function envOr(string calldata name, uint256 defaultValue) external view returns (uint256 value);
    function envOr(string calldata name, bool defaultValue) external view returns (bool value);
    function startBroadcast() external;
    function stopBroadcast() external;
    function toString(address value) external pure returns (string memory);
    function toString(uint256 value) external pure returns (string memory);
    function toString(bool value) external pure returns (string memory);
}

/// @title Deploy
/// @notice Deploys UpgradeOperator with its owner, widening delay and initial policy taken from the environment.
///         Defaults are strict: UpToDate TCB only, no debug TDs, no simulated quotes, one-day widening delay,
///         the newest Intel TCB evaluation this release knows as the collateral floor, owner = the broadcasting
///         account. See docs/deploy.md.
///
///         forge script script/Deploy.s.sol --rpc-url URL --broadcast --private-key KEY
///
///         | variable          | default     | meaning                                                          |
///         |-------------------|-------------|------------------------------------------------------------------|
///         | `OWNER`           | broadcaster | first owner (a multisig or timelock in production)               |
///         | `WIDENING_DELAY`  | 86400       | seconds every widening change waits (max 365 days; 0 = dev only) |
///         | `TCB_STATUSES`    | 0x1         | accepted TCB statuses, bitmask (PROTOCOL.md §4.4)                |
///         | `ALLOW_DEBUG`     | false       | accept debug TDs (gives up confidentiality: dev only)            |
///         | `ALLOW_SIMULATED` | false       | accept SIMULATED quotes (gives up every hardware guarantee)      |
///         | `MIN_TCB_EVALUATION_DATA_NUMBER` | 18 | oldest Intel TCB evaluation holders may judge with (0 = any) |
///
///         Prints `REPLICATOOR_CONTRACT=<address>` and `REPLICATOOR_START_BLOCK=<block>`, the agent's settings.
/// @dev    A script cannot see the block its transaction will be mined in. It runs against the chain head H, so
///         the deployment lands in H+1 or later: the start block printed is H+1, a lower bound an agent can scan
///         from without missing the contract's first events, and the exact block when nothing else is mined in
///         between (as on an auto-mining anvil). The receipt has the exact block
///         (`broadcast/Deploy.s.sol/<chainId>/run-latest.json`, `receipts[0].blockNumber`).
contract Deploy {
    DeployVm internal constant vm = DeployVm(address(uint160(uint256(keccak256("hevm cheat code")))));
    /// @dev Where forge's console.log calls go (forge-std's `console`).
    address internal constant CONSOLE = 0x000000000000000000636F6e736F6c652e6c6f67;
    /// @dev The sender forge uses when no key was given; a contract owned by it could never be governed.
    address internal constant FOUNDRY_DEFAULT_SENDER = 0x1804c8AB1F12E6bbf3894d4083f33e07309d1f38;

    uint64 public constant DEFAULT_WIDENING_DELAY = 1 days;
    uint16 public constant DEFAULT_TCB_STATUSES = 0x1;
    /// @dev The newest Intel TCB evaluation (collateral `tcbEvaluationDataNumber`) this release knows: the agent's
    ///      `NEWEST_TCB_EVALUATION_DATA_NUMBER` (agent/core/src/attest/mod.rs), bumped with it (tests/tests/deploy.rs
    ///      checks that they agree). Never 0 by default: a 0 floor lets a stale collateral source undo a TCB recovery.
    uint32 public constant DEFAULT_MIN_TCB_EVALUATION_DATA_NUMBER = 18;

    /// @notice A setting read from the environment is out of range.
    error BadSetting(string name, uint256 value);
    /// @notice No owner could be determined (no OWNER and no broadcasting key).
    error NoOwner();

    /// @notice The deployment settings after applying the environment.
    function settings() public view returns (address owner, uint64 delay, UpgradeOperator.Policy memory p) {
        owner = vm.envOr("OWNER", msg.sender);
        if (owner == address(0) || owner == FOUNDRY_DEFAULT_SENDER) revert NoOwner();
        uint256 d = vm.envOr("WIDENING_DELAY", uint256(DEFAULT_WIDENING_DELAY));
        if (d > 365 days) revert BadSetting("WIDENING_DELAY", d);
        uint256 tcb = vm.envOr("TCB_STATUSES", uint256(DEFAULT_TCB_STATUSES));
        if (tcb == 0 || tcb > type(uint16).max) revert BadSetting("TCB_STATUSES", tcb);
        // casting to 'uint64' is safe because d <= 365 days was checked above
        // forge-lint: disable-next-line(unsafe-typecast)
        delay = uint64(d);
        uint256 minEval = vm.envOr("MIN_TCB_EVALUATION_DATA_NUMBER", uint256(DEFAULT_MIN_TCB_EVALUATION_DATA_NUMBER));
        if (minEval > type(uint32).max) revert BadSetting("MIN_TCB_EVALUATION_DATA_NUMBER", minEval);
        p = UpgradeOperator.Policy({
            // casting to 'uint16' is safe because tcb <= type(uint16).max was checked above
            // forge-lint: disable-next-line(unsafe-typecast)
            tcbStatuses: uint16(tcb),
            allowDebug: vm.envOr("ALLOW_DEBUG", false),
            allowSimulated: vm.envOr("ALLOW_SIMULATED", false),
            // casting to 'uint32' is safe because minEval <= type(uint32).max was checked above
            // forge-lint: disable-next-line(unsafe-typecast)
            minTcbEvaluationDataNumber: uint32(minEval)
        });
    }

    /// @notice Deploy and print the agent's `REPLICATOOR_CONTRACT` and `REPLICATOOR_START_BLOCK`.
    function run() external returns (UpgradeOperator op, uint256 startBlock) {
        (address owner, uint64 delay, UpgradeOperator.Policy memory p) = settings();
        startBlock = block.number + 1; // the first block the deployment can be mined in (see @dev)
        vm.startBroadcast();
        op = new UpgradeOperator(owner, delay, p);
        vm.stopBroadcast();

        _log(string.concat("REPLICATOOR_CONTRACT=", vm.toString(address(op))));
        _log(string.concat("REPLICATOOR_START_BLOCK=", vm.toString(startBlock)));
        _log(string.concat("owner=", vm.toString(owner)));
        _log(string.concat("wideningDelay=", vm.toString(uint256(delay))));
        _log(string.concat("tcbStatuses=", vm.toString(uint256(p.tcbStatuses))));
        _log(string.concat("allowDebug=", vm.toString(p.allowDebug)));
        _log(string.concat("allowSimulated=", vm.toString(p.allowSimulated)));
        _log(string.concat("minTcbEvaluationDataNumber=", vm.toString(uint256(p.minTcbEvaluationDataNumber))));
        if (p.allowSimulated || p.allowDebug || delay == 0) {
            _log("WARNING: development policy (simulated quotes, debug TDs or no widening delay); never in production");
        }
        if (p.minTcbEvaluationDataNumber == 0) {
            _log("WARNING: minTcbEvaluationDataNumber=0 accepts collateral of any TCB evaluation; never in production");
        }
    }

    function _log(string memory s) internal view {
        (bool ok,) = CONSOLE.staticcall(abi.encodeWithSignature("log(string)", s));
        ok; // console.log never fails the script
    }
}
