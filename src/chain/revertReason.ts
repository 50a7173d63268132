import { BaseError, decodeErrorResult, type Hex } from 'viem'
import { BatchSettlement, ERC3009DepositCollector, TestUSDC } from './contracts.generated.js'

/** Every custom error an escrow transaction can revert with (escrow, collector, development token). */
const ERRORS_ABI = [...BatchSettlement.abi, ...ERC3009DepositCollector.abi, ...TestUSDC.abi].filter(
  (item) => item.type === 'error',
)

/** Whether viem's error chain holds an error of `type` (e.g. `NonceTooLowError`). */
export function hasError(err: unknown, type: abstract new (...args: never[]) => Error): boolean {
  return err instanceof BaseError && err.walk((e) => e instanceof type) !== null
}

/** Whether the node returned revert data with the error (the contract refused, the node did not fail). */
export function hasRevertData(err: BaseError): boolean {
  return revertData(err) !== undefined
}

/** The revert reason, decoded (custom error or `Error(string)`) where the node returned data, else viem's short message. */
export function revertReason(err: unknown): string {
  if (!(err instanceof BaseError)) return err instanceof Error ? err.message : String(err)
  const data = revertData(err)
  if (data && data.length >= 10) {
    try {
      const decoded = decodeErrorResult({ abi: ERRORS_ABI, data })
      return `${decoded.errorName}(${(decoded.args ?? []).map(String).join(', ')})`
    } catch {
      return `reverted with ${data.slice(0, 10)}`
    }
  }
  return err.shortMessage
}

function revertData(err: BaseError): Hex | undefined {
  const withData = err.walk((e) => typeof (e as { data?: unknown }).data === 'string') as {
    data?: Hex
  } | null
  return withData?.data
}
