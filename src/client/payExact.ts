import { getAddress, type Hex, type LocalAccount, toHex } from 'viem'
import { describe, TollgateError } from '../errors/index.js'
import {
  EXACT_SCHEME,
  type ExactPayload,
  type Network,
  type PaymentRequired,
  type PaymentRequirements,
} from '../protocol/index.js'
import { TRANSFER_WITH_AUTHORIZATION_TYPES } from '../verify/index.js'
import type { Journal } from './journal.js'
import { checkSpend, type ResolvedLimits } from './spendPolicy.js'

/**
 * The exact (EIP-3009) entry of a 402 this payer can pay, if any: on its network, in a token it
 * pays in, by `transferWithAuthorization` with the token's EIP-712 domain given.
 */
export function selectExact(
  required: PaymentRequired,
  network: Network,
  assets: ReadonlySet<string>,
): PaymentRequirements | undefined {
  return required.accepts.find(
    (a) =>
      a.scheme === EXACT_SCHEME &&
      a.network === network &&
      (a.extra?.assetTransferMethod ?? 'eip3009') === 'eip3009' &&
      typeof a.extra?.name === 'string' &&
      typeof a.extra?.version === 'string' &&
      (assets.size === 0 || assets.has(a.asset.toLowerCase())),
  )
}

/** What {@link authorizeExact} needs of the payer. */
export interface ExactPayer {
  readonly account: LocalAccount
  readonly chainId: number
  readonly journal: Journal
  readonly limits: ResolvedLimits
  readonly now: () => number
}

/**
 * Authorizes one exact payment of `requirements` to `origin`: checks the spend limits (a refusal
 * signs nothing), records the spend durably, then signs the EIP-3009 `TransferWithAuthorization`
 * of exactly the price to `payTo`, valid from now for `maxTimeoutSeconds`, with a random nonce.
 *
 * @throws TollgateError `tollgate_spend_limit` (nothing signed).
 */
export async function authorizeExact(
  payer: ExactPayer,
  requirements: PaymentRequirements,
  origin: string,
): Promise<ExactPayload> {
  const price = BigInt(requirements.amount)
  const at = payer.now()
  const verdict = checkSpend(payer.limits, payer.journal, {
    origin,
    price,
    increase: price,
    now: at,
  })
  if (!verdict.ok) {
    throw new TollgateError(verdict.code, verdict.message.slice(describe(verdict.code).length + 1))
  }
  await payer.journal.putTransferSpend({ at, origin, amount: price })
  const from = getAddress(payer.account.address)
  const to = getAddress(requirements.payTo)
  const validBefore = BigInt(Math.floor(at / 1000) + requirements.maxTimeoutSeconds)
  const nonce = toHex(crypto.getRandomValues(new Uint8Array(32))) as Hex
  const message = { from, to, value: price, validAfter: 0n, validBefore, nonce }
  const signature = await payer.account.signTypedData({
    domain: {
      name: String(requirements.extra?.name),
      version: String(requirements.extra?.version),
      chainId: payer.chainId,
      verifyingContract: getAddress(requirements.asset),
    },
    types: TRANSFER_WITH_AUTHORIZATION_TYPES,
    primaryType: 'TransferWithAuthorization',
    message,
  })
  return {
    signature,
    authorization: {
      ...message,
      from: from.toLowerCase() as Hex,
      to: to.toLowerCase() as Hex,
    },
  }
}
