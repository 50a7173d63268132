import {
  type Account,
  type Address,
  concat,
  encodeFunctionData,
  type Hex,
  hexToBigInt,
  numberToHex,
  pad,
  parseEventLogs,
  sliceHex,
  toHex,
  zeroAddress,
} from 'viem'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { BatchSettlement, TestUSDC } from '../../src/chain/contracts.generated.js'
import { encodePackedClaim } from '../../src/chain/packedClaim.js'
import { ShortCollector, SmartWallet } from '../fixtures/contracts.generated.js'
import { useDevChain } from '../helpers/devChain.js'
import { type ChannelConfig, randomAccount } from '../helpers/escrow.js'

const dev = useDevChain()
const h = dev.harness
const [deployer, receiver, payer, stranger, authorizer] = dev.accounts as [
  Account,
  Account,
  Account,
  Account,
  Account,
]
const sessionKey = randomAccount()
const USDC = (n: number) => BigInt(Math.round(n * 1e6))
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

let salt = 0
function config(overrides: Partial<ChannelConfig> = {}): ChannelConfig {
  return {
    payer: payer.address,
    payerAuthorizer: sessionKey.address,
    receiver: receiver.address,
    receiverAuthorizer: authorizer.address,
    token: dev.contracts.usdc,
    withdrawDelay: 3600,
    salt: pad(toHex(++salt), { size: 32 }),
    ...overrides,
  }
}

/** A channel with an ERC-3009 deposit of `amount`. */
async function openChannel(amount = USDC(10), overrides: Partial<ChannelConfig> = {}) {
  const c = config(overrides)
  await h.depositErc3009(payer, stranger, c, amount)
  return { config: c, id: await h.channelId(c) }
}

function row(c: ChannelConfig, maxClaimableAmount: bigint, signature: Hex, totalClaimed: bigint) {
  return { voucher: { channel: c, maxClaimableAmount }, signature, totalClaimed }
}

/** The high-s twin of a valid signature: same (r), s' = n - s, v flipped. */
function highS(signature: Hex): Hex {
  const r = sliceHex(signature, 0, 32)
  const s = hexToBigInt(sliceHex(signature, 32, 64))
  const v = Number.parseInt(signature.slice(130), 16)
  return concat([
    r,
    numberToHex(SECP256K1_N - s, { size: 32 }),
    numberToHex(v === 27 ? 28 : 27, { size: 1 }),
  ])
}

let revert: () => Promise<void>
beforeEach(async () => {
  revert = await dev.snapshot()
})
afterEach(async () => {
  await revert()
})

describe('canonical placement', () => {
  it('has the escrow, the collector and Multicall3 at their canonical addresses', async () => {
    const c = config()
    const id = await h.channelId(c)
    expect(id).toBe(
      await h.publicClient.readContract({
        address: dev.contracts.escrow,
        abi: BatchSettlement.abi,
        functionName: 'getChannelId',
        args: [c],
      }),
    )
    // viem batches these reads through Multicall3 at 0xcA11…; a missing contract would throw.
    const results = await h.publicClient.multicall({
      contracts: [
        {
          address: dev.contracts.escrow,
          abi: BatchSettlement.abi,
          functionName: 'channels',
          args: [id],
        },
        {
          address: dev.contracts.usdc,
          abi: TestUSDC.abi,
          functionName: 'balanceOf',
          args: [payer.address],
        },
      ],
      allowFailure: false,
    })
    expect(results[0]).toEqual([0n, 0n])
    expect(results[1]).toBeGreaterThan(0n)
  })

  it('uses the x402 EIP-712 domain at the canonical address on this chain', async () => {
    const [, name, version, chainId, verifyingContract] = await h.publicClient.readContract({
      address: dev.contracts.escrow,
      abi: BatchSettlement.abi,
      functionName: 'eip712Domain',
    })
    expect({ name, version, chainId, verifyingContract }).toEqual({
      name: 'x402 Batch Settlement',
      version: '1',
      chainId: BigInt(dev.chainId),
      verifyingContract: dev.contracts.escrow,
    })
  })
})

describe('deposit', () => {
  it('opens a channel through the ERC-3009 collector, then tops it up', async () => {
    const before = await h.usdcBalance(payer.address)
    const c = config()
    const first = await h.depositErc3009(payer, stranger, c, USDC(5), 1n)
    const id = await h.channelId(c)
    const created = parseEventLogs({
      abi: BatchSettlement.abi,
      logs: first.logs,
      eventName: 'ChannelCreated',
    })
    expect(created).toHaveLength(1)
    expect(created[0]?.args.channelId).toBe(id)
    expect(await h.channel(id)).toEqual({ balance: USDC(5), totalClaimed: 0n })

    const topUp = await h.depositErc3009(payer, stranger, c, USDC(2), 2n)
    expect(
      parseEventLogs({ abi: BatchSettlement.abi, logs: topUp.logs, eventName: 'ChannelCreated' }),
    ).toHaveLength(0)
    const [deposited] = parseEventLogs({
      abi: BatchSettlement.abi,
      logs: topUp.logs,
      eventName: 'Deposited',
    })
    expect(deposited?.args).toMatchObject({ channelId: id, amount: USDC(2), newBalance: USDC(7) })
    expect(await h.channel(id)).toEqual({ balance: USDC(7), totalClaimed: 0n })
    expect(await h.usdcBalance(payer.address)).toBe(before - USDC(7))
  })

  it('refuses to reuse an ERC-3009 authorization (same channel, same salt)', async () => {
    const c = config()
    const id = await h.channelId(c)
    const data = await h.erc3009CollectorData(payer, id, USDC(1), 7n)
    await h.write(stranger, 'deposit', [c, USDC(1), dev.contracts.erc3009Collector, data])
    await expect(
      h.write(stranger, 'deposit', [c, USDC(1), dev.contracts.erc3009Collector, data]),
    ).rejects.toThrow(/AuthorizationAlreadyUsed/)
  })

  it('accepts a direct top-up paid by the caller', async () => {
    const { config: c, id } = await openChannel(USDC(1))
    await h.approve(payer, USDC(3))
    await h.depositDirect(payer, c, USDC(3))
    expect((await h.channel(id)).balance).toBe(USDC(4))
  })

  it('reverts on zero amount, a bad config and an out-of-range withdraw delay', async () => {
    await h.approve(payer, USDC(10))
    await expect(h.depositDirect(payer, config(), 0n)).rejects.toThrow(/ZeroAmount/)
    await expect(h.depositDirect(payer, config({ receiver: zeroAddress }), 1n)).rejects.toThrow(
      /InvalidChannelConfig/,
    )
    await expect(h.depositDirect(payer, config({ token: zeroAddress }), 1n)).rejects.toThrow(
      /InvalidChannelConfig/,
    )
    await expect(h.depositDirect(payer, config({ withdrawDelay: 899 }), 1n)).rejects.toThrow(
      /WithdrawDelayOutOfRange/,
    )
    await expect(h.depositDirect(payer, config({ withdrawDelay: 2_592_001 }), 1n)).rejects.toThrow(
      /WithdrawDelayOutOfRange/,
    )
    await h.depositDirect(payer, config({ withdrawDelay: 900 }), 1n)
    await h.depositDirect(payer, config({ withdrawDelay: 2_592_000 }), 1n)
  })

  it('reverts when the collector delivers less than the amount', async () => {
    const wallet = h.wallet(deployer)
    const hash = await wallet.deployContract({
      abi: ShortCollector.abi,
      bytecode: ShortCollector.bytecode,
      chain: dev.chain,
      account: deployer,
    })
    const { contractAddress } = await h.publicClient.waitForTransactionReceipt({ hash })
    const short = contractAddress as Address
    const approve = await h.wallet(payer).writeContract({
      address: dev.contracts.usdc,
      abi: TestUSDC.abi,
      functionName: 'approve',
      args: [short, USDC(5)],
      chain: dev.chain,
      account: payer,
    })
    await h.publicClient.waitForTransactionReceipt({ hash: approve })
    await expect(h.write(payer, 'deposit', [config(), USDC(5), short, '0x'])).rejects.toThrow(
      /DepositAmountMismatch/,
    )
  })

  it('lets only the escrow call the collector', async () => {
    const hash = h.wallet(stranger).writeContract({
      address: dev.contracts.erc3009Collector,
      abi: [
        {
          type: 'function',
          name: 'collect',
          stateMutability: 'nonpayable',
          inputs: [
            { type: 'address', name: 'payer' },
            { type: 'address', name: 'token' },
            { type: 'uint256', name: 'amount' },
            { type: 'bytes32', name: 'channelId' },
            { type: 'bytes', name: 'collectorData' },
          ],
          outputs: [],
        },
        { type: 'error', name: 'OnlyEscrow', inputs: [{ type: 'address', name: 'caller' }] },
      ],
      functionName: 'collect',
      args: [payer.address, dev.contracts.usdc, 1n, pad('0x01'), '0x'],
      chain: dev.chain,
      account: stranger,
    })
    await expect(hash).rejects.toThrow(/OnlyEscrow/)
  })

  it('rejects a config with dirty high bits in an address word', async () => {
    const c = config()
    const data = encodeFunctionData({
      abi: BatchSettlement.abi,
      functionName: 'getChannelId',
      args: [c],
    })
    // Word 1 of the arguments is `payerAuthorizer`; set a bit above its 160 low bits.
    const dirty = `${data.slice(0, 10 + 64)}01${data.slice(10 + 66)}` as Hex
    await expect(h.publicClient.call({ to: dev.contracts.escrow, data: dirty })).rejects.toThrow()
    await expect(h.publicClient.call({ to: dev.contracts.escrow, data })).resolves.toBeDefined()
  })
})

describe('claim', () => {
  it('claims partially, then more, then skips a replay', async () => {
    const { config: c, id } = await openChannel(USDC(10))
    const sig = await h.signVoucher(sessionKey, id, USDC(3))
    const r1 = await h.write(receiver, 'claim', [[row(c, USDC(3), sig, USDC(1))]])
    const [claimed] = parseEventLogs({
      abi: BatchSettlement.abi,
      logs: r1.logs,
      eventName: 'Claimed',
    })
    expect(claimed?.args).toMatchObject({
      channelId: id,
      claimAmount: USDC(1),
      newTotalClaimed: USDC(1),
    })
    await h.write(receiver, 'claim', [[row(c, USDC(3), sig, USDC(3))]])
    expect(await h.channel(id)).toEqual({ balance: USDC(10), totalClaimed: USDC(3) })
    const replay = await h.write(receiver, 'claim', [[row(c, USDC(3), sig, USDC(2))]])
    expect(
      parseEventLogs({ abi: BatchSettlement.abi, logs: replay.logs, eventName: 'Claimed' }),
    ).toHaveLength(0)
    expect(await h.channel(id)).toEqual({ balance: USDC(10), totalClaimed: USDC(3) })
    const [totalClaimed, totalSettled] = await h.publicClient.readContract({
      address: dev.contracts.escrow,
      abi: BatchSettlement.abi,
      functionName: 'receivers',
      args: [receiver.address, dev.contracts.usdc],
    })
    expect({ totalClaimed, totalSettled }).toEqual({ totalClaimed: USDC(3), totalSettled: 0n })
  })

  it('claims a batch of channels in one transaction, by the receiver authorizer too', async () => {
    const channels = [
      await openChannel(USDC(2)),
      await openChannel(USDC(2)),
      await openChannel(USDC(2)),
    ]
    const rows = []
    for (const [i, ch] of channels.entries()) {
      rows.push(
        row(
          ch.config,
          USDC(1),
          await h.signVoucher(sessionKey, ch.id, USDC(1)),
          USDC(1) - BigInt(i),
        ),
      )
    }
    const receipt = await h.write(authorizer, 'claim', [rows])
    expect(
      parseEventLogs({ abi: BatchSettlement.abi, logs: receipt.logs, eventName: 'Claimed' }),
    ).toHaveLength(3)
    for (const [i, ch] of channels.entries()) {
      expect((await h.channel(ch.id)).totalClaimed).toBe(USDC(1) - BigInt(i))
    }
  })

  it('reverts above the voucher ceiling and above the balance', async () => {
    const { config: c, id } = await openChannel(USDC(2))
    const sig = await h.signVoucher(sessionKey, id, USDC(1))
    await expect(
      h.write(receiver, 'claim', [[row(c, USDC(1), sig, USDC(1) + 1n)]]),
    ).rejects.toThrow(/ClaimExceedsCeiling/)
    const big = await h.signVoucher(sessionKey, id, USDC(5))
    await expect(h.write(receiver, 'claim', [[row(c, USDC(5), big, USDC(3))]])).rejects.toThrow(
      /ClaimExceedsBalance/,
    )
  })

  it('rejects a signature by anyone but the payer authorizer, a tampered ceiling, and an empty batch', async () => {
    const { config: c, id } = await openChannel()
    const wrong = await h.signVoucher(payer, id, USDC(1))
    await expect(h.write(receiver, 'claim', [[row(c, USDC(1), wrong, USDC(1))]])).rejects.toThrow(
      /InvalidVoucherSignature/,
    )
    const sig = await h.signVoucher(sessionKey, id, USDC(1))
    await expect(h.write(receiver, 'claim', [[row(c, USDC(2), sig, USDC(1))]])).rejects.toThrow(
      /InvalidVoucherSignature/,
    )
    await expect(h.write(receiver, 'claim', [[]])).rejects.toThrow(/EmptyClaim/)
  })

  it('rejects vouchers signed for another chain id or another escrow address', async () => {
    const { config: c, id } = await openChannel()
    const otherChain = await h.signVoucher(sessionKey, id, USDC(1), 8453)
    await expect(
      h.write(receiver, 'claim', [[row(c, USDC(1), otherChain, USDC(1))]]),
    ).rejects.toThrow(/InvalidVoucherSignature/)
    const otherEscrow = await h.signVoucher(
      sessionKey,
      id,
      USDC(1),
      dev.chainId,
      '0x000000000000000000000000000000000000dEaD',
    )
    await expect(
      h.write(receiver, 'claim', [[row(c, USDC(1), otherEscrow, USDC(1))]]),
    ).rejects.toThrow(/InvalidVoucherSignature/)
  })

  it('rejects the high-s twin of a valid signature', async () => {
    const { config: c, id } = await openChannel()
    const sig = await h.signVoucher(sessionKey, id, USDC(1))
    await expect(
      h.write(receiver, 'claim', [[row(c, USDC(1), highS(sig), USDC(1))]]),
    ).rejects.toThrow(/InvalidVoucherSignature/)
    await h.write(receiver, 'claim', [[row(c, USDC(1), sig, USDC(1))]])
  })

  it('refuses a caller who is not the receiver side', async () => {
    const { config: c, id } = await openChannel()
    const sig = await h.signVoucher(sessionKey, id, USDC(1))
    await expect(h.write(stranger, 'claim', [[row(c, USDC(1), sig, USDC(1))]])).rejects.toThrow(
      /NotReceiverSide/,
    )
    await expect(h.write(payer, 'claim', [[row(c, USDC(1), sig, USDC(1))]])).rejects.toThrow(
      /NotReceiverSide/,
    )
  })

  it('accepts EIP-1271 signatures from a smart-wallet payer when payerAuthorizer is zero', async () => {
    const owner = randomAccount()
    const wallet = h.wallet(deployer)
    const hash = await wallet.deployContract({
      abi: SmartWallet.abi,
      bytecode: SmartWallet.bytecode,
      args: [owner.address],
      chain: dev.chain,
      account: deployer,
    })
    const { contractAddress } = await h.publicClient.waitForTransactionReceipt({ hash })
    const smartPayer = contractAddress as Address
    const c = config({ payer: smartPayer, payerAuthorizer: zeroAddress })
    await h.approve(payer, USDC(5))
    await h.depositDirect(payer, c, USDC(5))
    const id = await h.channelId(c)
    const bySomeoneElse = await h.signVoucher(sessionKey, id, USDC(1))
    await expect(
      h.write(receiver, 'claim', [[row(c, USDC(1), bySomeoneElse, USDC(1))]]),
    ).rejects.toThrow(/InvalidVoucherSignature/)
    const byOwner = await h.signVoucher(owner, id, USDC(1))
    await h.write(receiver, 'claim', [[row(c, USDC(1), byOwner, USDC(1))]])
    expect((await h.channel(id)).totalClaimed).toBe(USDC(1))
  })
})

describe('claimWithSignature', () => {
  it('lets anyone relay a batch signed by the receiver authorizer', async () => {
    const a = await openChannel()
    const b = await openChannel()
    const rows = [
      row(a.config, USDC(1), await h.signVoucher(sessionKey, a.id, USDC(1)), USDC(1)),
      row(b.config, USDC(2), await h.signVoucher(sessionKey, b.id, USDC(2)), USDC(2)),
    ]
    const entries = [
      { channelId: a.id, maxClaimableAmount: USDC(1), totalClaimed: USDC(1) },
      { channelId: b.id, maxClaimableAmount: USDC(2), totalClaimed: USDC(2) },
    ]
    const onChainDigest = await h.publicClient.readContract({
      address: dev.contracts.escrow,
      abi: BatchSettlement.abi,
      functionName: 'getClaimBatchDigest',
      args: [rows],
    })
    const { hashTypedData } = await import('viem')
    const { claimBatchTypes, escrowDomain } = await import('../helpers/escrow.js')
    expect(onChainDigest).toBe(
      hashTypedData({
        domain: escrowDomain(dev.chainId, dev.contracts.escrow),
        types: claimBatchTypes,
        primaryType: 'ClaimBatch',
        message: { claims: entries },
      }),
    )
    const forged = await h.signClaimBatch(stranger, entries)
    await expect(h.write(stranger, 'claimWithSignature', [rows, forged])).rejects.toThrow(
      /InvalidAuthorizerSignature/,
    )
    const signature = await h.signClaimBatch(authorizer, entries)
    await h.write(stranger, 'claimWithSignature', [rows, signature])
    expect((await h.channel(b.id)).totalClaimed).toBe(USDC(2))
  })

  it('refuses rows with different receiver authorizers', async () => {
    const a = await openChannel()
    const b = await openChannel(USDC(10), { receiverAuthorizer: receiver.address })
    const rows = [
      row(a.config, USDC(1), await h.signVoucher(sessionKey, a.id, USDC(1)), USDC(1)),
      row(b.config, USDC(1), await h.signVoucher(sessionKey, b.id, USDC(1)), USDC(1)),
    ]
    await expect(h.write(stranger, 'claimWithSignature', [rows, '0x'])).rejects.toThrow(
      /ReceiverAuthorizerMismatch/,
    )
  })
})

describe('claimPacked', () => {
  const header = () => ({
    receiver: receiver.address,
    receiverAuthorizer: authorizer.address,
    token: dev.contracts.usdc,
    withdrawDelay: 3600,
  })

  it('claims like claim does and reports each row in one BatchClaimed event', async () => {
    const chans = [
      await openChannel(USDC(3)),
      await openChannel(USDC(3)),
      await openChannel(USDC(3)),
    ]
    const rows = []
    for (const [i, ch] of chans.entries()) {
      const ceiling = USDC(2) + BigInt(i)
      rows.push({
        ...ch.config,
        maxClaimableAmount: ceiling,
        totalClaimed: ceiling - 5n,
        signature: await h.signVoucher(sessionKey, ch.id, ceiling),
      })
    }
    const receipt = await h.write(receiver, 'claimPacked', [encodePackedClaim(header(), rows)])
    const [event] = parseEventLogs({
      abi: BatchSettlement.abi,
      logs: receipt.logs,
      eventName: 'BatchClaimed',
    })
    expect(event?.args.receiver).toBe(receiver.address)
    const records = event?.args.claims ?? '0x'
    expect((records.length - 2) / 2).toBe(48 * 3)
    for (const [i, ch] of chans.entries()) {
      const at = i * 48
      expect(sliceHex(records, at, at + 32)).toBe(ch.id)
      expect(hexToBigInt(sliceHex(records, at + 32, at + 48))).toBe(USDC(2) + BigInt(i) - 5n)
      expect((await h.channel(ch.id)).totalClaimed).toBe(USDC(2) + BigInt(i) - 5n)
    }
    const [totalClaimed] = await h.publicClient.readContract({
      address: dev.contracts.escrow,
      abi: BatchSettlement.abi,
      functionName: 'receivers',
      args: [receiver.address, dev.contracts.usdc],
    })
    expect(totalClaimed).toBe(USDC(2) * 3n + 3n - 15n)
    // A replay claims nothing and emits nothing.
    const replay = await h.write(receiver, 'claimPacked', [encodePackedClaim(header(), rows)])
    expect(
      parseEventLogs({ abi: BatchSettlement.abi, logs: replay.logs, eventName: 'BatchClaimed' }),
    ).toHaveLength(0)
  })

  it('enforces the same rules as claim', async () => {
    const { config: c, id } = await openChannel(USDC(2))
    const sig = await h.signVoucher(sessionKey, id, USDC(1))
    const packed = (
      over: Partial<{ maxClaimableAmount: bigint; totalClaimed: bigint; signature: Hex }>,
    ) =>
      encodePackedClaim(header(), [
        { ...c, maxClaimableAmount: USDC(1), totalClaimed: USDC(1), signature: sig, ...over },
      ])
    await expect(h.write(stranger, 'claimPacked', [packed({})])).rejects.toThrow(/NotReceiverSide/)
    await expect(
      h.write(receiver, 'claimPacked', [packed({ totalClaimed: USDC(1) + 1n })]),
    ).rejects.toThrow(/ClaimExceedsCeiling/)
    await expect(
      h.write(receiver, 'claimPacked', [packed({ signature: highS(sig) })]),
    ).rejects.toThrow(/InvalidVoucherSignature/)
    await expect(
      h.write(receiver, 'claimPacked', [packed({ maxClaimableAmount: USDC(1) + 1n })]),
    ).rejects.toThrow(/InvalidVoucherSignature/)
    const over = await h.signVoucher(sessionKey, id, USDC(3))
    await expect(
      h.write(receiver, 'claimPacked', [
        packed({ maxClaimableAmount: USDC(3), totalClaimed: USDC(3), signature: over }),
      ]),
    ).rejects.toThrow(/ClaimExceedsBalance/)
    await expect(h.write(receiver, 'claimPacked', ['0x1234'])).rejects.toThrow(
      /MalformedPackedClaim/,
    )
    await h.write(receiver, 'claimPacked', [packed({})])
    expect((await h.channel(id)).totalClaimed).toBe(USDC(1))
  })
})

describe('settle', () => {
  it('sweeps claimed funds to the receiver, once', async () => {
    const { config: c, id } = await openChannel(USDC(5))
    await h.write(receiver, 'claim', [
      [row(c, USDC(4), await h.signVoucher(sessionKey, id, USDC(4)), USDC(4))],
    ])
    const before = await h.usdcBalance(receiver.address)
    const receipt = await h.write(stranger, 'settle', [receiver.address, dev.contracts.usdc])
    const [settled] = parseEventLogs({
      abi: BatchSettlement.abi,
      logs: receipt.logs,
      eventName: 'Settled',
    })
    expect(settled?.args).toMatchObject({
      receiver: receiver.address,
      sender: stranger.address,
      amount: USDC(4),
    })
    expect(await h.usdcBalance(receiver.address)).toBe(before + USDC(4))
    await expect(
      h.write(stranger, 'settle', [receiver.address, dev.contracts.usdc]),
    ).rejects.toThrow(/NothingToSettle/)
  })
})

describe('refund', () => {
  it('returns unclaimed funds to the payer, capped, advancing the nonce', async () => {
    const { config: c, id } = await openChannel(USDC(5))
    await h.write(receiver, 'claim', [
      [row(c, USDC(2), await h.signVoucher(sessionKey, id, USDC(2)), USDC(2))],
    ])
    const before = await h.usdcBalance(payer.address)
    await h.write(receiver, 'refund', [c, USDC(1)])
    expect(await h.channel(id)).toEqual({ balance: USDC(4), totalClaimed: USDC(2) })
    const capped = await h.write(authorizer, 'refund', [c, USDC(100)])
    const [refunded] = parseEventLogs({
      abi: BatchSettlement.abi,
      logs: capped.logs,
      eventName: 'Refunded',
    })
    expect(refunded?.args.amount).toBe(USDC(2))
    expect(await h.usdcBalance(payer.address)).toBe(before + USDC(3))
    expect(await h.channel(id)).toEqual({ balance: USDC(2), totalClaimed: USDC(2) })
    const nonce = await h.publicClient.readContract({
      address: dev.contracts.escrow,
      abi: BatchSettlement.abi,
      functionName: 'refundNonce',
      args: [id],
    })
    expect(nonce).toBe(2n)
    await expect(h.write(receiver, 'refund', [c, 1n])).rejects.toThrow(/NothingToRefund/)
    await expect(h.write(receiver, 'refund', [c, 0n])).rejects.toThrow(/ZeroAmount/)
    await expect(h.write(stranger, 'refund', [c, 1n])).rejects.toThrow(/NotReceiverSide/)
  })

  it('relays a refund signed by the receiver authorizer for the current nonce only', async () => {
    const { config: c, id } = await openChannel(USDC(5))
    const digest = await h.publicClient.readContract({
      address: dev.contracts.escrow,
      abi: BatchSettlement.abi,
      functionName: 'getRefundDigest',
      args: [id, 0n, USDC(1)],
    })
    const { hashTypedData } = await import('viem')
    const { refundTypes, escrowDomain } = await import('../helpers/escrow.js')
    expect(digest).toBe(
      hashTypedData({
        domain: escrowDomain(dev.chainId, dev.contracts.escrow),
        types: refundTypes,
        primaryType: 'Refund',
        message: { channelId: id, nonce: 0n, amount: USDC(1) },
      }),
    )
    const forged = await h.signRefund(stranger, id, 0n, USDC(1))
    await expect(
      h.write(stranger, 'refundWithSignature', [c, USDC(1), 0n, forged]),
    ).rejects.toThrow(/InvalidAuthorizerSignature/)
    const sig = await h.signRefund(authorizer, id, 0n, USDC(1))
    await h.write(stranger, 'refundWithSignature', [c, USDC(1), 0n, sig])
    expect((await h.channel(id)).balance).toBe(USDC(4))
    await expect(h.write(stranger, 'refundWithSignature', [c, USDC(1), 0n, sig])).rejects.toThrow(
      /InvalidRefundNonce/,
    )
  })
})

describe('withdrawal', () => {
  it('lets the receiver claim during the delay; after finalize, vouchers are worthless', async () => {
    const { config: c, id } = await openChannel(USDC(10))
    const sig3 = await h.signVoucher(sessionKey, id, USDC(3))
    const sig8 = await h.signVoucher(sessionKey, id, USDC(8))
    const initiated = await h.write(payer, 'initiateWithdraw', [c, USDC(10)])
    const [event] = parseEventLogs({
      abi: BatchSettlement.abi,
      logs: initiated.logs,
      eventName: 'WithdrawInitiated',
    })
    const block = await h.publicClient.getBlock({ blockNumber: initiated.blockNumber })
    expect(event?.args).toMatchObject({
      channelId: id,
      amount: USDC(10),
      finalizeAfter: Number(block.timestamp) + 3600,
    })
    await expect(h.write(payer, 'initiateWithdraw', [c, USDC(1)])).rejects.toThrow(
      /WithdrawalAlreadyPending/,
    )

    await dev.advance(1800)
    await expect(h.write(payer, 'finalizeWithdraw', [c])).rejects.toThrow(/WithdrawDelayNotElapsed/)
    await h.write(receiver, 'claim', [[row(c, USDC(3), sig3, USDC(3))]])

    await dev.advance(1800)
    const before = await h.usdcBalance(payer.address)
    const fin = await h.write(payer, 'finalizeWithdraw', [c])
    expect(
      parseEventLogs({ abi: BatchSettlement.abi, logs: fin.logs, eventName: 'ChannelClosed' }),
    ).toHaveLength(1)
    expect(await h.usdcBalance(payer.address)).toBe(before + USDC(7))
    expect(await h.channel(id)).toEqual({ balance: USDC(3), totalClaimed: USDC(3) })
    await expect(h.write(receiver, 'claim', [[row(c, USDC(8), sig8, USDC(8))]])).rejects.toThrow(
      /ClaimExceedsBalance/,
    )
    await expect(h.write(payer, 'finalizeWithdraw', [c])).rejects.toThrow(/NoPendingWithdrawal/)
  })

  it('is only for the payer side and for existing channels', async () => {
    const { config: c } = await openChannel()
    await expect(h.write(stranger, 'initiateWithdraw', [c, 1n])).rejects.toThrow(/NotPayerSide/)
    await expect(h.write(receiver, 'initiateWithdraw', [c, 1n])).rejects.toThrow(/NotPayerSide/)
    await expect(h.write(payer, 'initiateWithdraw', [c, 0n])).rejects.toThrow(/ZeroAmount/)
    await expect(h.write(payer, 'initiateWithdraw', [config(), 1n])).rejects.toThrow(
      /ChannelNotFound/,
    )
    const sessionWallet = dev.accounts[6] as Account
    const { config: c2 } = await openChannel(USDC(1), { payerAuthorizer: sessionWallet.address })
    await h.write(sessionWallet, 'initiateWithdraw', [c2, 1n])
  })
})

describe('multicall', () => {
  it('runs several escrow calls in one transaction (as the stock facilitator does)', async () => {
    const { config: c, id } = await openChannel(USDC(5))
    const sig = await h.signVoucher(sessionKey, id, USDC(2))
    const calls = [
      encodeFunctionData({
        abi: BatchSettlement.abi,
        functionName: 'claim',
        args: [[row(c, USDC(2), sig, USDC(2))]],
      }),
      encodeFunctionData({ abi: BatchSettlement.abi, functionName: 'refund', args: [c, USDC(3)] }),
    ]
    await h.write(receiver, 'multicall', [calls])
    expect(await h.channel(id)).toEqual({ balance: USDC(2), totalClaimed: USDC(2) })
  })
})
