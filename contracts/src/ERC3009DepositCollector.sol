// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IDepositCollector} from "./IBatchSettlement.sol";

/// @dev The EIP-3009 function the collector calls (USDC v2.2 form with a bytes signature).
interface IERC3009Receive {
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external;
}

/// @title Collects a channel deposit by an EIP-3009 `receiveWithAuthorization` signed by the payer.
/// @notice `collectorData = abi.encode(uint256 validAfter, uint256 validBefore, uint256 salt, bytes signature)`;
/// the authorization nonce is `keccak256(abi.encode(channelId, salt))`, binding it to one channel.
/// The payer signs `to = this collector`, so only this contract can redeem the authorization,
/// and only the escrow can make it do so.
contract ERC3009DepositCollector is IDepositCollector {
    using SafeERC20 for IERC20;

    error OnlyEscrow(address caller);

    address public immutable escrow;

    constructor(address escrow_) {
        escrow = escrow_;
    }

    function collect(address payer, address token, uint256 amount, bytes32 channelId, bytes calldata collectorData)
        external
    {
        if (msg.sender != escrow) revert OnlyEscrow(msg.sender);
        (uint256 validAfter, uint256 validBefore, uint256 salt, bytes memory signature) =
            abi.decode(collectorData, (uint256, uint256, uint256, bytes));
        bytes32 nonce = keccak256(abi.encode(channelId, salt));
        IERC3009Receive(token).receiveWithAuthorization(
            payer, address(this), amount, validAfter, validBefore, nonce, signature
        );
        IERC20(token).safeTransfer(escrow, amount);
    }
}
