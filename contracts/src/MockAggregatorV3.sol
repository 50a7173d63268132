// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title A Chainlink-style price feed for development chains only.
/// @notice The read side of Chainlink's `AggregatorV3Interface` (`decimals`, `description`,
/// `version`, `latestRoundData`, `getRoundData`) with 8 decimals, as Chainlink's USD feeds, and
/// open setters: anyone can move the answer, so it must never be deployed where a price matters.
/// Until the first `setAnswer` its round is empty (round 0, `updatedAt` 0), as a feed with no data.
contract MockAggregatorV3 {
    uint8 public constant decimals = 8;
    string public constant description = "TEST / USD";
    uint256 public constant version = 4;

    uint80 private _roundId;
    int256 private _answer;
    uint256 private _startedAt;
    uint256 private _updatedAt;
    uint80 private _answeredInRound;

    error NoDataPresent(uint80 roundId);

    /// @notice Starts a new, complete round with `answer`, as updated at `updatedAt`
    /// (seconds since the epoch), so that a test can make the feed fresh or stale.
    function setAnswer(int256 answer, uint256 updatedAt) external {
        _roundId += 1;
        _answer = answer;
        _startedAt = updatedAt;
        _updatedAt = updatedAt;
        _answeredInRound = _roundId;
    }

    /// @notice Sets every field of the latest round, e.g. one answered in an earlier round
    /// (`answeredInRound < roundId`: incomplete).
    function setRound(uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
        external
    {
        _roundId = roundId;
        _answer = answer;
        _startedAt = startedAt;
        _updatedAt = updatedAt;
        _answeredInRound = answeredInRound;
    }

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return (_roundId, _answer, _startedAt, _updatedAt, _answeredInRound);
    }

    /// @notice Only the latest round is kept; any other is `NoDataPresent`, as Chainlink reverts.
    function getRoundData(uint80 roundId_)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        if (roundId_ != _roundId) revert NoDataPresent(roundId_);
        return (_roundId, _answer, _startedAt, _updatedAt, _answeredInRound);
    }
}
