// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Multicall} from "@openzeppelin/contracts/utils/Multicall.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IBatchSettlement, IDepositCollector} from "./IBatchSettlement.sol";

/// @title tollgate's escrow for x402 `batch-settlement` payment channels.
/// @notice A payer deposits into a channel once; the receiver claims cumulative vouchers
/// in batches and sweeps claimed funds with `settle`.
///
/// Accounting, per channel: `balance` is what the payer has put in and not taken back
/// (claimed funds included); `totalClaimed` is the cumulative amount claimed by the
/// receiver. Invariant: `totalClaimed <= balance`. Claims move accounting only; `settle`
/// moves tokens. The escrow holds, per token, the sum of every channel's
/// `balance - totalClaimed` plus every receiver's `totalClaimed - totalSettled`.
///
/// No constructor arguments and no storage written at construction: the runtime code can
/// be placed at the canonical x402 address on a development chain. The EIP-712 domain is
/// rebuilt from `address(this)` and `block.chainid` when they differ from construction.
contract BatchSettlement is IBatchSettlement, EIP712, ReentrancyGuardTransient, Multicall {
    using SafeERC20 for IERC20;

    /// @dev Bounds of `withdrawDelay`, in seconds (x402 batch-settlement: [15 minutes, 30 days]).
    uint40 public constant MIN_WITHDRAW_DELAY = 900;
    uint40 public constant MAX_WITHDRAW_DELAY = 2_592_000;

    bytes32 public constant CHANNEL_CONFIG_TYPEHASH = keccak256(
        "ChannelConfig(address payer,address payerAuthorizer,address receiver,address receiverAuthorizer,address token,uint40 withdrawDelay,bytes32 salt)"
    );
    bytes32 public constant VOUCHER_TYPEHASH = keccak256("Voucher(bytes32 channelId,uint128 maxClaimableAmount)");
    bytes32 public constant REFUND_TYPEHASH = keccak256("Refund(bytes32 channelId,uint256 nonce,uint128 amount)");
    bytes32 public constant CLAIM_ENTRY_TYPEHASH =
        keccak256("ClaimEntry(bytes32 channelId,uint128 maxClaimableAmount,uint128 totalClaimed)");
    bytes32 public constant CLAIM_BATCH_TYPEHASH = keccak256(
        "ClaimBatch(ClaimEntry[] claims)ClaimEntry(bytes32 channelId,uint128 maxClaimableAmount,uint128 totalClaimed)"
    );

    mapping(bytes32 channelId => ChannelState) public channels;
    mapping(bytes32 channelId => uint256) public refundNonce;
    mapping(bytes32 channelId => PendingWithdrawal) public pendingWithdrawals;
    mapping(address receiver => mapping(address token => ReceiverState)) public receivers;

    constructor() EIP712("x402 Batch Settlement", "1") {}

    // ----------------------------------------------------------------------------------
    // Deposits
    // ----------------------------------------------------------------------------------

    /// @notice Adds `amount` to a channel, creating it on first deposit. With a collector, the
    /// collector pulls the tokens from the payer (e.g. by ERC-3009 authorization); with
    /// `collector == address(0)`, the caller pays by `transferFrom` (a plain top-up).
    function deposit(ChannelConfig calldata config, uint128 amount, address collector, bytes calldata collectorData)
        external
        nonReentrant
    {
        if (amount == 0) revert ZeroAmount();
        _checkConfig(config);
        bytes32 channelId = _channelId(config, _domainSeparatorV4());
        ChannelState storage channel = channels[channelId];
        bool created = channel.balance == 0 && channel.totalClaimed == 0;

        IERC20 token = IERC20(config.token);
        uint256 before = token.balanceOf(address(this));
        if (collector == address(0)) {
            token.safeTransferFrom(msg.sender, address(this), amount);
        } else {
            IDepositCollector(collector).collect(config.payer, config.token, amount, channelId, collectorData);
        }
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert DepositAmountMismatch(amount, received);

        uint128 newBalance = channel.balance + amount;
        channel.balance = newBalance;
        if (created) emit ChannelCreated(channelId, config);
        emit Deposited(channelId, msg.sender, amount, newBalance);
    }

    // ----------------------------------------------------------------------------------
    // Claims
    // ----------------------------------------------------------------------------------

    /// @notice Claims a batch of vouchers. The caller must be the receiver or the receiver
    /// authorizer of every row. A row whose `totalClaimed` is not above the channel's current
    /// total is skipped (already claimed), so a replayed batch is harmless.
    function claim(VoucherClaim[] calldata voucherClaims) external nonReentrant {
        if (voucherClaims.length == 0) revert EmptyClaim();
        _claimAll(voucherClaims, _domainSeparatorV4(), true);
    }

    /// @notice Claims a batch relayed by anyone, authorized by one EIP-712 `ClaimBatch`
    /// signature of the receiver authorizer shared by every row.
    function claimWithSignature(VoucherClaim[] calldata voucherClaims, bytes calldata authorizerSignature)
        external
        nonReentrant
    {
        if (voucherClaims.length == 0) revert EmptyClaim();
        bytes32 domain = _domainSeparatorV4();
        address authorizer = voucherClaims[0].voucher.channel.receiverAuthorizer;
        bytes32 digest = MessageHashUtils.toTypedDataHash(domain, _claimBatchHash(voucherClaims, domain, authorizer));
        if (!SignatureChecker.isValidSignatureNowCalldata(authorizer, digest, authorizerSignature)) {
            revert InvalidAuthorizerSignature();
        }
        _claimAll(voucherClaims, domain, false);
    }

    /// @dev Byte layout of `claimPacked`: a 65-byte header, then 168-byte rows.
    uint256 private constant PACKED_HEADER = 65;
    uint256 private constant PACKED_ROW = 168;

    /// @dev secp256k1n / 2: signatures with a larger `s` are malleable and rejected.
    uint256 private constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// @notice tollgate extension, beside the x402 ABI: claims many EOA-signed vouchers of
    /// channels that share receiver, receiverAuthorizer, token and withdrawDelay (one server's
    /// channels) in a packed encoding, for about a third less gas per channel than `claim`.
    /// Same rules as `claim`: the caller is the receiver or its authorizer, each row is capped
    /// by its voucher and its channel's balance, rows already claimed are skipped, and the
    /// signature must be low-s ECDSA by the row's (non-zero) payerAuthorizer.
    ///
    /// Layout (big-endian, no padding):
    ///   header: receiver (20) | receiverAuthorizer (20) | token (20) | withdrawDelay (5)
    ///   row:    payer (20) | payerAuthorizer (20) | salt (32) | maxClaimableAmount (16)
    ///           | totalClaimed (16) | r (32) | yParityAndS (32, EIP-2098)
    /// Emits one `BatchClaimed` whose `claims` holds, per claimed row,
    /// channelId (32) | newTotalClaimed (16).
    function claimPacked(bytes calldata packed) external nonReentrant {
        if (packed.length < PACKED_HEADER + PACKED_ROW || (packed.length - PACKED_HEADER) % PACKED_ROW != 0) {
            revert MalformedPackedClaim();
        }
        address receiver = address(bytes20(packed[0:20]));
        address receiverAuthorizer = address(bytes20(packed[20:40]));
        address token = address(bytes20(packed[40:60]));
        if (msg.sender != receiver && msg.sender != receiverAuthorizer) revert NotReceiverSide(bytes32(0), msg.sender);

        // 16 spare bytes: each row's record is written as two full words (see _claimPackedRows).
        bytes memory claimed = new bytes((packed.length - PACKED_HEADER) / PACKED_ROW * 48 + 16);
        uint256 total = _claimPackedRows(packed, _domainSeparatorV4(), claimed);
        if (total == 0) return;
        receivers[receiver][token].totalClaimed += uint128(total);
        emit BatchClaimed(receiver, token, msg.sender, claimed);
    }

    /// @dev The row loop of `claimPacked`, in assembly: per row it hashes the channel id and the
    /// voucher digest in scratch memory whose batch-constant words (typehashes, domain, header
    /// fields) are written once, reads and writes the channel's one storage slot, and recovers
    /// the signer. `claimed` is shrunk to the rows actually claimed. Returns the sum claimed.
    function _claimPackedRows(bytes calldata packed, bytes32 domain, bytes memory claimed)
        private
        returns (uint256 total)
    {
        bytes32 channelTypehash = CHANNEL_CONFIG_TYPEHASH;
        bytes32 voucherTypehash = VOUCHER_TYPEHASH;
        bytes4 errCeiling = ClaimExceedsCeiling.selector;
        bytes4 errBalance = ClaimExceedsBalance.selector;
        bytes4 errSignature = InvalidVoucherSignature.selector;
        assembly ("memory-safe") {
            // Scratch beyond the free memory pointer (never allocated):
            //   cfg [0x000, 0x100): ChannelConfig struct words; only payer, payerAuthorizer, salt change per row
            //   vch [0x100, 0x160): Voucher struct words
            //   dig [0x160, 0x1a2): 0x1901 | domain | structHash
            //   rec [0x1c0, 0x260): ecrecover input and output
            let cfg := mload(0x40)
            let vch := add(cfg, 0x100)
            let dig := add(cfg, 0x160)
            let rec := add(cfg, 0x1c0)
            let p := packed.offset
            mstore(cfg, channelTypehash)
            mstore(add(cfg, 0x60), shr(96, calldataload(p)))
            mstore(add(cfg, 0x80), shr(96, calldataload(add(p, 20))))
            mstore(add(cfg, 0xa0), shr(96, calldataload(add(p, 40))))
            mstore(add(cfg, 0xc0), shr(216, calldataload(add(p, 60))))
            mstore(vch, voucherTypehash)
            mstore(dig, shl(240, 0x1901))
            mstore(add(dig, 0x02), domain)

            let out := add(claimed, 0x20)
            let end := add(p, packed.length)
            for { let row := add(p, 65) } lt(row, end) { row := add(row, 168) } {
                let payerAuthorizer := shr(96, calldataload(add(row, 20)))
                mstore(add(cfg, 0x20), shr(96, calldataload(row)))
                mstore(add(cfg, 0x40), payerAuthorizer)
                mstore(add(cfg, 0xe0), calldataload(add(row, 40)))
                mstore(add(dig, 0x22), keccak256(cfg, 0x100))
                let channelId := keccak256(dig, 0x42)

                mstore(0x00, channelId)
                mstore(0x20, channels.slot)
                let slot := keccak256(0x00, 0x40)
                let state := sload(slot)
                let bal := and(state, 0xffffffffffffffffffffffffffffffff)
                let previous := shr(128, state)
                let newTotal := shr(128, calldataload(add(row, 88)))
                if gt(newTotal, previous) {
                    let ceiling := shr(128, calldataload(add(row, 72)))
                    if gt(newTotal, ceiling) {
                        mstore(0x00, errCeiling)
                        mstore(0x04, channelId)
                        mstore(0x24, newTotal)
                        mstore(0x44, ceiling)
                        revert(0x00, 0x64)
                    }
                    if gt(newTotal, bal) {
                        mstore(0x00, errBalance)
                        mstore(0x04, channelId)
                        mstore(0x24, newTotal)
                        mstore(0x44, bal)
                        revert(0x00, 0x64)
                    }

                    mstore(add(vch, 0x20), channelId)
                    mstore(add(vch, 0x40), ceiling)
                    mstore(add(dig, 0x22), keccak256(vch, 0x60))
                    let vs := calldataload(add(row, 136))
                    let sigS := and(vs, 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff)
                    mstore(rec, keccak256(dig, 0x42))
                    mstore(add(rec, 0x20), add(shr(255, vs), 27))
                    mstore(add(rec, 0x40), calldataload(add(row, 104)))
                    mstore(add(rec, 0x60), sigS)
                    // A failed recovery returns no data, leaving the zero written here.
                    mstore(add(rec, 0x80), 0)
                    let ok := staticcall(gas(), 0x01, rec, 0x80, add(rec, 0x80), 0x20)
                    let signer := mload(add(rec, 0x80))
                    if or(or(iszero(ok), gt(sigS, HALF_N)), or(iszero(signer), iszero(eq(signer, payerAuthorizer)))) {
                        mstore(0x00, errSignature)
                        mstore(0x04, channelId)
                        revert(0x00, 0x24)
                    }

                    sstore(slot, or(shl(128, newTotal), bal))
                    total := add(total, sub(newTotal, previous))
                    mstore(out, channelId)
                    mstore(add(out, 0x20), shl(128, newTotal))
                    out := add(out, 48)
                }
            }
            mstore(claimed, sub(out, add(claimed, 0x20)))
        }
    }

    function _claimAll(VoucherClaim[] calldata voucherClaims, bytes32 domain, bool checkCaller) private {
        // Receiver totals are summed over runs of rows with the same (receiver, token) and
        // written once per run.
        address runReceiver;
        address runToken;
        uint128 runAmount;
        for (uint256 i; i < voucherClaims.length; ++i) {
            VoucherClaim calldata row = voucherClaims[i];
            ChannelConfig calldata config = row.voucher.channel;
            bytes32 channelId = _channelId(config, domain);
            if (checkCaller && msg.sender != config.receiver && msg.sender != config.receiverAuthorizer) {
                revert NotReceiverSide(channelId, msg.sender);
            }
            uint128 claimed = _claimRow(channelId, config, row, domain);
            if (claimed == 0) continue;
            if (config.receiver != runReceiver || config.token != runToken) {
                _creditReceiver(runReceiver, runToken, runAmount);
                (runReceiver, runToken, runAmount) = (config.receiver, config.token, 0);
            }
            runAmount += claimed;
        }
        _creditReceiver(runReceiver, runToken, runAmount);
    }

    /// @return claimed the amount newly claimed on this row (0 when already claimed).
    function _claimRow(bytes32 channelId, ChannelConfig calldata config, VoucherClaim calldata row, bytes32 domain)
        private
        returns (uint128 claimed)
    {
        ChannelState storage channel = channels[channelId];
        ChannelState memory state = channel;
        uint128 newTotal = row.totalClaimed;
        if (newTotal <= state.totalClaimed) return 0;
        uint128 ceiling = row.voucher.maxClaimableAmount;
        if (newTotal > ceiling) revert ClaimExceedsCeiling(channelId, newTotal, ceiling);
        if (newTotal > state.balance) revert ClaimExceedsBalance(channelId, newTotal, state.balance);

        bytes32 digest = _voucherDigest(domain, channelId, ceiling);
        if (!_isVoucherSigner(config, digest, row.signature)) revert InvalidVoucherSignature(channelId);

        channel.totalClaimed = newTotal;
        claimed = newTotal - state.totalClaimed;
        emit Claimed(channelId, msg.sender, claimed, newTotal);
    }

    /// @dev Vouchers are signed by `payerAuthorizer` (an EOA: low-s ECDSA only) or, when it is
    /// zero, by `payer` (ECDSA for an EOA, EIP-1271 for a contract).
    function _isVoucherSigner(ChannelConfig calldata config, bytes32 digest, bytes calldata signature)
        private
        view
        returns (bool)
    {
        address authorizer = config.payerAuthorizer;
        if (authorizer != address(0)) {
            (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, signature);
            return err == ECDSA.RecoverError.NoError && recovered == authorizer;
        }
        return SignatureChecker.isValidSignatureNowCalldata(config.payer, digest, signature);
    }

    function _creditReceiver(address receiver, address token, uint128 amount) private {
        if (amount != 0) receivers[receiver][token].totalClaimed += amount;
    }

    // ----------------------------------------------------------------------------------
    // Settlement
    // ----------------------------------------------------------------------------------

    /// @notice Transfers everything claimed and not yet settled to `receiver`. Permissionless.
    function settle(address receiver, address token) external nonReentrant {
        ReceiverState storage state = receivers[receiver][token];
        uint128 amount = state.totalClaimed - state.totalSettled;
        if (amount == 0) revert NothingToSettle(receiver, token);
        state.totalSettled = state.totalClaimed;
        IERC20(token).safeTransfer(receiver, amount);
        emit Settled(receiver, token, msg.sender, amount);
    }

    // ----------------------------------------------------------------------------------
    // Withdrawals (payer side)
    // ----------------------------------------------------------------------------------

    /// @notice Starts a withdrawal of up to `amount`; it can be finalized `withdrawDelay`
    /// seconds later. The receiver may still claim during the delay.
    function initiateWithdraw(ChannelConfig calldata config, uint128 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        bytes32 channelId = _channelId(config, _domainSeparatorV4());
        _checkPayerSide(channelId, config);
        if (channels[channelId].balance == 0) revert ChannelNotFound(channelId);
        PendingWithdrawal storage pending = pendingWithdrawals[channelId];
        if (pending.initiatedAt != 0) revert WithdrawalAlreadyPending(channelId);
        uint40 now_ = uint40(block.timestamp);
        (pending.amount, pending.initiatedAt) = (amount, now_);
        emit WithdrawInitiated(channelId, amount, now_ + config.withdrawDelay);
    }

    /// @notice Pays out the pending withdrawal, capped at what is still unclaimed. Vouchers
    /// above the remaining balance are worthless afterwards.
    function finalizeWithdraw(ChannelConfig calldata config) external nonReentrant {
        bytes32 channelId = _channelId(config, _domainSeparatorV4());
        _checkPayerSide(channelId, config);
        PendingWithdrawal memory pending = pendingWithdrawals[channelId];
        if (pending.initiatedAt == 0) revert NoPendingWithdrawal(channelId);
        uint40 finalizeAfter = pending.initiatedAt + config.withdrawDelay;
        if (block.timestamp < finalizeAfter) revert WithdrawDelayNotElapsed(channelId, finalizeAfter);
        delete pendingWithdrawals[channelId];

        uint128 amount = _takeUnclaimed(channelId, pending.amount);
        IERC20(config.token).safeTransfer(config.payer, amount);
        emit WithdrawFinalized(channelId, msg.sender, amount);
    }

    // ----------------------------------------------------------------------------------
    // Refunds (receiver side)
    // ----------------------------------------------------------------------------------

    /// @notice Returns up to `amount` of the unclaimed balance to the payer.
    function refund(ChannelConfig calldata config, uint128 amount) external nonReentrant {
        bytes32 channelId = _channelId(config, _domainSeparatorV4());
        if (msg.sender != config.receiver && msg.sender != config.receiverAuthorizer) {
            revert NotReceiverSide(channelId, msg.sender);
        }
        _refund(channelId, config, amount);
    }

    /// @notice A refund relayed by anyone, authorized by the receiver authorizer's EIP-712
    /// `Refund` signature over the channel's current refund nonce.
    function refundWithSignature(
        ChannelConfig calldata config,
        uint128 amount,
        uint256 nonce,
        bytes calldata receiverAuthorizerSignature
    ) external nonReentrant {
        bytes32 domain = _domainSeparatorV4();
        bytes32 channelId = _channelId(config, domain);
        uint256 expected = refundNonce[channelId];
        if (nonce != expected) revert InvalidRefundNonce(channelId, expected, nonce);
        bytes32 digest = MessageHashUtils.toTypedDataHash(domain, _refundHash(channelId, nonce, amount));
        if (!SignatureChecker.isValidSignatureNowCalldata(config.receiverAuthorizer, digest, receiverAuthorizerSignature))
        {
            revert InvalidAuthorizerSignature();
        }
        _refund(channelId, config, amount);
    }

    /// @dev The nonce advances before the amount is capped at the unclaimed balance.
    function _refund(bytes32 channelId, ChannelConfig calldata config, uint128 amount) private {
        if (amount == 0) revert ZeroAmount();
        ++refundNonce[channelId];
        uint128 refunded = _takeUnclaimed(channelId, amount);
        if (refunded == 0) revert NothingToRefund(channelId);
        IERC20(config.token).safeTransfer(config.payer, refunded);
        emit Refunded(channelId, msg.sender, refunded);
    }

    /// @dev Removes up to `amount` of the channel's unclaimed balance and returns what was
    /// removed; emits ChannelClosed when nothing unclaimed is left.
    function _takeUnclaimed(bytes32 channelId, uint128 amount) private returns (uint128 taken) {
        ChannelState storage channel = channels[channelId];
        uint128 unclaimed = channel.balance - channel.totalClaimed;
        taken = amount < unclaimed ? amount : unclaimed;
        if (taken == 0) return 0;
        channel.balance -= taken;
        if (taken == unclaimed) emit ChannelClosed(channelId);
    }

    // ----------------------------------------------------------------------------------
    // Views
    // ----------------------------------------------------------------------------------

    function getChannelId(ChannelConfig calldata config) external view returns (bytes32) {
        return _channelId(config, _domainSeparatorV4());
    }

    function getVoucherDigest(bytes32 channelId, uint128 maxClaimableAmount) external view returns (bytes32) {
        return _voucherDigest(_domainSeparatorV4(), channelId, maxClaimableAmount);
    }

    function getRefundDigest(bytes32 channelId, uint256 nonce, uint128 amount) external view returns (bytes32) {
        return _hashTypedDataV4(_refundHash(channelId, nonce, amount));
    }

    function getClaimBatchDigest(VoucherClaim[] calldata voucherClaims) external view returns (bytes32) {
        bytes32 domain = _domainSeparatorV4();
        address authorizer = voucherClaims.length == 0 ? address(0) : voucherClaims[0].voucher.channel.receiverAuthorizer;
        return MessageHashUtils.toTypedDataHash(domain, _claimBatchHash(voucherClaims, domain, authorizer));
    }

    // ----------------------------------------------------------------------------------
    // Internals
    // ----------------------------------------------------------------------------------

    /// @dev EIP-712 `hashStruct(ClaimBatch)`; every row must name `authorizer` as its
    /// receiver authorizer.
    function _claimBatchHash(VoucherClaim[] calldata voucherClaims, bytes32 domain, address authorizer)
        private
        pure
        returns (bytes32)
    {
        bytes32[] memory entries = new bytes32[](voucherClaims.length);
        for (uint256 i; i < voucherClaims.length; ++i) {
            VoucherClaim calldata row = voucherClaims[i];
            bytes32 channelId = _channelId(row.voucher.channel, domain);
            if (row.voucher.channel.receiverAuthorizer != authorizer) revert ReceiverAuthorizerMismatch(channelId);
            entries[i] = keccak256(
                abi.encode(CLAIM_ENTRY_TYPEHASH, channelId, row.voucher.maxClaimableAmount, row.totalClaimed)
            );
        }
        return keccak256(abi.encode(CLAIM_BATCH_TYPEHASH, keccak256(abi.encodePacked(entries))));
    }

    function _refundHash(bytes32 channelId, uint256 nonce, uint128 amount) private pure returns (bytes32) {
        return keccak256(abi.encode(REFUND_TYPEHASH, channelId, nonce, amount));
    }

    /// @dev `toTypedDataHash(domain, keccak256(abi.encode(CHANNEL_CONFIG_TYPEHASH, config)))`, hashed
    /// in scratch memory reused for every row (no allocation per row). Rejects calldata whose
    /// address or uint40 words carry dirty high bits, so that one config has exactly one id.
    function _channelId(ChannelConfig calldata config, bytes32 domain) private pure returns (bytes32) {
        bytes32 typehash = CHANNEL_CONFIG_TYPEHASH;
        bytes32 structHash;
        bool dirty;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typehash)
            calldatacopy(add(m, 0x20), config, 0xe0)
            dirty := or(
                or(or(shr(160, mload(add(m, 0x20))), shr(160, mload(add(m, 0x40)))), shr(160, mload(add(m, 0x60)))),
                or(or(shr(160, mload(add(m, 0x80))), shr(160, mload(add(m, 0xa0)))), shr(40, mload(add(m, 0xc0))))
            )
            structHash := keccak256(m, 0x100)
        }
        if (dirty) revert InvalidChannelConfig();
        return MessageHashUtils.toTypedDataHash(domain, structHash);
    }

    /// @dev `toTypedDataHash(domain, keccak256(abi.encode(VOUCHER_TYPEHASH, channelId, ceiling)))`.
    function _voucherDigest(bytes32 domain, bytes32 channelId, uint128 ceiling) private pure returns (bytes32) {
        bytes32 typehash = VOUCHER_TYPEHASH;
        bytes32 structHash;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typehash)
            mstore(add(m, 0x20), channelId)
            mstore(add(m, 0x40), ceiling)
            structHash := keccak256(m, 0x60)
        }
        return MessageHashUtils.toTypedDataHash(domain, structHash);
    }

    function _checkConfig(ChannelConfig calldata config) private pure {
        if (config.payer == address(0) || config.receiver == address(0) || config.token == address(0)) {
            revert InvalidChannelConfig();
        }
        uint40 delay = config.withdrawDelay;
        if (delay < MIN_WITHDRAW_DELAY || delay > MAX_WITHDRAW_DELAY) revert WithdrawDelayOutOfRange(delay);
    }

    function _checkPayerSide(bytes32 channelId, ChannelConfig calldata config) private view {
        if (msg.sender != config.payer && msg.sender != config.payerAuthorizer) {
            revert NotPayerSide(channelId, msg.sender);
        }
    }
}
