/** A ledger wired to the real verifier, with channels and vouchers signed by real keys. */
import { type Address, type Hex, pad, toHex } from 'viem'
import { type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts'
import {
  Ledger,
  type LedgerOptions,
  recordFromChain,
  type VoucherPayment,
} from '../../src/ledger/index.js'
import { CANONICAL_ADDRESSES as CANONICAL } from '../../src/protocol/constants.js'
import type { ChannelConfig } from '../../src/protocol/types.js'
import {
  bytesToHex,
  channelId,
  createVoucherVerifier,
  domainSeparator,
  loadBackend,
  voucherDigest,
} from '../../src/verify/index.js'

export const CHAIN_ID = 31337
export const DOMAIN = domainSeparator({ chainId: CHAIN_ID, verifyingContract: CANONICAL.escrow })
export const IDENTITY = {
  receiver: '0x70997970c51812dc3a010c7d01b50e0d17dc79c8',
  receiverAuthorizer: '0x15d34aaf54267db7d7c367839aaf71a00a2c6a65',
  token: '0x5fbdb2315678afecb367f032d93f642f64180aa3',
  withdrawDelay: 3600,
} as const satisfies Record<string, Address | number>

export const sessionKey = privateKeyToAccount(
  '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
)
export const otherKey = privateKeyToAccount(
  '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a',
)
export const PAYER: Address = '0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc'

export function makeLedger(options: Partial<LedgerOptions> = {}): Ledger {
  const { backend } = loadBackend('auto')
  return new Ledger({
    identity: IDENTITY,
    verifier: createVoucherVerifier({ backend, domainSeparator: DOMAIN }),
    ...options,
  })
}

let salt = 0
export function makeConfig(overrides: Partial<ChannelConfig> = {}): ChannelConfig {
  return {
    payer: PAYER,
    payerAuthorizer: sessionKey.address.toLowerCase() as Address,
    ...IDENTITY,
    salt: pad(toHex(++salt), { size: 32 }),
    ...overrides,
  }
}

/** Opens a channel in the ledger as if read from chain with `balance` deposited. */
export function openChannel(
  ledger: Ledger,
  balance: bigint,
  overrides: Partial<ChannelConfig> = {},
) {
  const config = makeConfig(overrides)
  const id = channelId(config, DOMAIN)
  ledger.open(
    recordFromChain(
      id,
      config,
      { balance, totalClaimed: 0n, withdrawRequestedAt: 0, refundNonce: 0n },
      0,
    ),
  )
  return { config, id }
}

export async function sign(
  signer: PrivateKeyAccount,
  id: Hex,
  maxClaimableAmount: bigint,
): Promise<Hex> {
  return signer.sign({ hash: bytesToHex(voucherDigest(DOMAIN, id, maxClaimableAmount)) })
}

export async function payment(
  config: ChannelConfig,
  id: Hex,
  maxClaimableAmount: bigint,
  signer: PrivateKeyAccount = sessionKey,
): Promise<VoucherPayment> {
  return {
    channelConfig: config,
    voucher: {
      channelId: id,
      maxClaimableAmount,
      signature: await sign(signer, id, maxClaimableAmount),
    },
  }
}
