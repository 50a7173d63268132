import type { Address } from 'viem'
import { SCHEME, X402_VERSION } from './constants.js'
import type { Network, SupportedResponse } from './types.js'

/** Parameters of {@link supported}. */
export type SupportedParameters = {
  /** Networks served, each `eip155:<chainId>`. */
  networks: readonly Network[]
  /** The receiver authorizer, advertised in each kind's `extra` as stock facilitators do. */
  receiverAuthorizer: Address
  /** Addresses that send this facilitator's transactions. */
  signers: readonly Address[]
  /** Names of x402 extensions served. @default [] */
  extensions?: readonly string[]
}

/**
 * Builds the response of `GET /supported`: one batch-settlement kind per network, and the
 * signers under the CAIP family `eip155:*`.
 *
 * @returns `{ kinds: [{ x402Version: 2, scheme, network, extra: { receiverAuthorizer } }], extensions, signers }`
 * @example
 * const body = supported({ networks: ['eip155:84532'], receiverAuthorizer, signers: [relayer] })
 */
export function supported(parameters: SupportedParameters): SupportedResponse {
  const { receiverAuthorizer } = parameters
  return {
    kinds: parameters.networks.map((network) => ({
      x402Version: X402_VERSION,
      scheme: SCHEME,
      network,
      extra: { receiverAuthorizer },
    })),
    extensions: [...(parameters.extensions ?? [])],
    signers: { 'eip155:*': [...parameters.signers] },
  }
}
