import type { Hex } from 'viem'
import type { ChannelConfig } from '../protocol/types.js'
import type { DomainSeparator } from './domainSeparator.js'
import { malformed, typedDataDigest } from './eip712.js'
import { bytesToHex, writeAddressWord, writeHex, writeNumberWord } from './hex.js'
import { keccak256 } from './keccak.js'
import { TYPEHASH_BYTES } from './typehashes.js'

export type { ChannelConfig }

/** hashStruct(ChannelConfig) encoding: typehash and seven words. Scratch, never re-entered. */
const CONFIG_BUF = /* @__PURE__ */ (() => {
  const buf = new Uint8Array(256)
  buf.set(TYPEHASH_BYTES.ChannelConfig, 0)
  return buf
})()

/**
 * The channel id as bytes: the EIP-712 typed-data hash of the `ChannelConfig` under the
 * escrow domain (what the escrow's `getChannelId(config)` returns).
 *
 * @param config - The channel config, addresses lowercase or checksummed.
 * @param domain - From {@link domainSeparator} or {@link domainSeparatorBytes}.
 * @returns 32 bytes, freshly allocated.
 * @throws TollgateError `tollgate_internal` when a field is malformed (the payload decoder
 *   must have validated it), `tollgate_invalid_config` for a malformed domain separator.
 * @example
 * const id = channelIdBytes(config, domainSeparatorBytes({ chainId: 8453, verifyingContract: escrow }))
 */
export function channelIdBytes(config: ChannelConfig, domain: DomainSeparator): Uint8Array {
  const b = CONFIG_BUF
  if (!writeAddressWord(config.payer, b, 32)) throw malformed('channelConfig.payer')
  if (!writeAddressWord(config.payerAuthorizer, b, 64))
    throw malformed('channelConfig.payerAuthorizer')
  if (!writeAddressWord(config.receiver, b, 96)) throw malformed('channelConfig.receiver')
  if (!writeAddressWord(config.receiverAuthorizer, b, 128))
    throw malformed('channelConfig.receiverAuthorizer')
  if (!writeAddressWord(config.token, b, 160)) throw malformed('channelConfig.token')
  if (!writeNumberWord(config.withdrawDelay, 40, b, 192))
    throw malformed('channelConfig.withdrawDelay')
  if (!writeHex(config.salt, 32, b, 224)) throw malformed('channelConfig.salt')
  return typedDataDigest(domain, keccak256(b))
}

/**
 * The channel id as lowercase hex, the form the ledger keys channels by.
 *
 * @param config - The channel config, addresses lowercase or checksummed.
 * @param domain - From {@link domainSeparator} or {@link domainSeparatorBytes}.
 * @returns 32-byte lowercase hex.
 * @throws TollgateError as {@link channelIdBytes}.
 * @example
 * if (channelId(payload.channelConfig, sep) !== payload.voucher.channelId.toLowerCase()) // channel_id_mismatch
 */
export function channelId(config: ChannelConfig, domain: DomainSeparator): Hex {
  return bytesToHex(channelIdBytes(config, domain))
}
