import { Buffer } from 'node:buffer'
import type { Address, Hex } from 'viem'
import type {
  BatchPayload,
  BuildRequirementsParameters,
  ChannelConfig,
  ChannelState,
  SignedVoucher,
} from '../../src/protocol/index.js'

export const NETWORK = 'eip155:84532'
/** Base Sepolia USDC, checksummed as configuration files usually hold it. */
export const USDC_CHECKSUMMED = '0x036CbD53842c5426634e7929541eC2318f3dCF7e'
export const USDC = USDC_CHECKSUMMED.toLowerCase() as Address
export const PAY_TO: Address = '0x1111111111111111111111111111111111111111'
export const RECEIVER_AUTHORIZER: Address = '0x2222222222222222222222222222222222222222'
export const PAYER: Address = '0x3333333333333333333333333333333333333333'
export const PAYER_AUTHORIZER: Address = '0x4444444444444444444444444444444444444444'

export const REQUIREMENTS_PARAMETERS: BuildRequirementsParameters = {
  network: NETWORK,
  amount: 1000n,
  asset: USDC,
  payTo: PAY_TO,
  maxTimeoutSeconds: 60,
  receiverAuthorizer: RECEIVER_AUTHORIZER,
  withdrawDelay: 900,
  name: 'USDC',
  version: '2',
}

export const CHANNEL_ID: Hex = `0x${'ab'.repeat(32)}`
export const SIGNATURE: Hex = `0x${'cd'.repeat(64)}1b`

export const CHANNEL_CONFIG: ChannelConfig = {
  payer: PAYER,
  payerAuthorizer: PAYER_AUTHORIZER,
  receiver: PAY_TO,
  receiverAuthorizer: RECEIVER_AUTHORIZER,
  token: USDC,
  withdrawDelay: 900,
  salt: `0x${'00'.repeat(31)}07`,
}

export const VOUCHER: SignedVoucher = {
  channelId: CHANNEL_ID,
  maxClaimableAmount: 5000n,
  signature: SIGNATURE,
}

export const VOUCHER_PAYLOAD: BatchPayload = {
  type: 'voucher',
  channelConfig: CHANNEL_CONFIG,
  voucher: VOUCHER,
}

export const DEPOSIT_PAYLOAD: BatchPayload = {
  type: 'deposit',
  channelConfig: CHANNEL_CONFIG,
  voucher: VOUCHER,
  deposit: {
    amount: 10_000n,
    erc3009Authorization: {
      validAfter: 0n,
      validBefore: 1_900_000_000n,
      salt: `0x${'ef'.repeat(32)}`,
      signature: SIGNATURE,
    },
  },
}

export const REFUND_PAYLOAD: BatchPayload = {
  type: 'refund',
  channelConfig: CHANNEL_CONFIG,
  voucher: VOUCHER,
  amount: 4000n,
}

export const CHANNEL_STATE: ChannelState = {
  channelId: CHANNEL_ID,
  balance: 10_000n,
  totalClaimed: 2000n,
  withdrawRequestedAt: 0,
  refundNonce: 3n,
  chargedCumulativeAmount: 5000n,
}

/** A deep copy of a JSON value, for tests that mutate a wire object. */
export function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T
}

/** base64 of the UTF-8 JSON of a value, as an x402 header carries it. */
export function toHeader(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64')
}

/** Sets the value at a dotted path of a JSON object (`undefined` deletes the key). */
export function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.')
  const last = keys.pop() as string
  let node: Record<string, unknown> = target
  for (const key of keys) node = node[key] as Record<string, unknown>
  if (value === undefined) delete node[last]
  else node[last] = value
}
