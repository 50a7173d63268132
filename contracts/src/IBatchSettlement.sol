// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title The external interface of an x402 `batch-settlement` escrow.
/// @notice Types, events and function signatures match the x402 batch-settlement scheme
/// (coinbase/x402 specs/schemes/batch-settlement), so stock x402 clients and facilitators
/// work against it unchanged. Errors are tollgate's own.
interface IBatchSettlement {
    /// @dev EIP-712 `ChannelConfig`; its typed-data hash under the escrow domain is the channel id.
    struct ChannelConfig {
        address payer;
        address payerAuthorizer;
        address receiver;
        address receiverAuthorizer;
        address token;
        uint40 withdrawDelay;
        bytes32 salt;
    }

    struct Voucher {
        ChannelConfig channel;
        uint128 maxClaimableAmount;
    }

    /// @dev One claim row: the voucher, its signature, and the channel's new cumulative
    /// `totalClaimed` (at most the voucher's ceiling and the channel's balance).
    struct VoucherClaim {
        Voucher voucher;
        bytes signature;
        uint128 totalClaimed;
    }

    struct ChannelState {
        uint128 balance;
        uint128 totalClaimed;
    }

    struct PendingWithdrawal {
        uint128 amount;
        uint40 initiatedAt;
    }

    struct ReceiverState {
        uint128 totalClaimed;
        uint128 totalSettled;
    }

    event ChannelCreated(bytes32 indexed channelId, ChannelConfig config);
    event ChannelClosed(bytes32 indexed channelId);
    event Deposited(bytes32 indexed channelId, address indexed sender, uint128 amount, uint128 newBalance);
    event Claimed(bytes32 indexed channelId, address indexed sender, uint128 claimAmount, uint128 newTotalClaimed);
    /// @dev tollgate extension: one event per `claimPacked` call (layout documented there).
    event BatchClaimed(address indexed receiver, address indexed token, address indexed sender, bytes claims);
    event Settled(address indexed receiver, address indexed token, address indexed sender, uint128 amount);
    event Refunded(bytes32 indexed channelId, address indexed sender, uint128 amount);
    event WithdrawInitiated(bytes32 indexed channelId, uint128 amount, uint40 finalizeAfter);
    event WithdrawFinalized(bytes32 indexed channelId, address indexed sender, uint128 amount);

    error ZeroAmount();
    error InvalidChannelConfig();
    error WithdrawDelayOutOfRange(uint40 withdrawDelay);
    error DepositAmountMismatch(uint256 expected, uint256 received);
    error ChannelNotFound(bytes32 channelId);
    error NotReceiverSide(bytes32 channelId, address caller);
    error NotPayerSide(bytes32 channelId, address caller);
    error InvalidVoucherSignature(bytes32 channelId);
    error ClaimExceedsCeiling(bytes32 channelId, uint128 totalClaimed, uint128 maxClaimableAmount);
    error ClaimExceedsBalance(bytes32 channelId, uint128 totalClaimed, uint128 balance);
    error ReceiverAuthorizerMismatch(bytes32 channelId);
    error InvalidAuthorizerSignature();
    error EmptyClaim();
    error NothingToSettle(address receiver, address token);
    error WithdrawalAlreadyPending(bytes32 channelId);
    error NoPendingWithdrawal(bytes32 channelId);
    error WithdrawDelayNotElapsed(bytes32 channelId, uint40 finalizeAfter);
    error InvalidRefundNonce(bytes32 channelId, uint256 expected, uint256 given);
    error NothingToRefund(bytes32 channelId);
    error MalformedPackedClaim();

    function deposit(ChannelConfig calldata config, uint128 amount, address collector, bytes calldata collectorData)
        external;
    function claim(VoucherClaim[] calldata voucherClaims) external;
    function claimWithSignature(VoucherClaim[] calldata voucherClaims, bytes calldata authorizerSignature) external;
    function claimPacked(bytes calldata packed) external;
    function settle(address receiver, address token) external;
    function initiateWithdraw(ChannelConfig calldata config, uint128 amount) external;
    function finalizeWithdraw(ChannelConfig calldata config) external;
    function refund(ChannelConfig calldata config, uint128 amount) external;
    function refundWithSignature(
        ChannelConfig calldata config,
        uint128 amount,
        uint256 nonce,
        bytes calldata receiverAuthorizerSignature
    ) external;

    function channels(bytes32 channelId) external view returns (uint128 balance, uint128 totalClaimed);
    function refundNonce(bytes32 channelId) external view returns (uint256);
    function pendingWithdrawals(bytes32 channelId) external view returns (uint128 amount, uint40 initiatedAt);
    function receivers(address receiver, address token)
        external
        view
        returns (uint128 totalClaimed, uint128 totalSettled);
    function getChannelId(ChannelConfig calldata config) external view returns (bytes32);
    function getVoucherDigest(bytes32 channelId, uint128 maxClaimableAmount) external view returns (bytes32);
    function getRefundDigest(bytes32 channelId, uint256 nonce, uint128 amount) external view returns (bytes32);
    function getClaimBatchDigest(VoucherClaim[] calldata voucherClaims) external view returns (bytes32);
}

/// @title A deposit collector: pulls a payer's tokens into the escrow on its behalf.
interface IDepositCollector {
    /// @notice Moves `amount` of `token` from `payer` to the escrow. Callable only by the escrow,
    /// which checks that its own balance grew by exactly `amount`.
    function collect(address payer, address token, uint256 amount, bytes32 channelId, bytes calldata collectorData)
        external;
}
