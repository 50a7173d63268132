/**
 * Gas of the escrow on a local anvil: claims of 1, 10 and 100 channels per transaction through
 * the x402 `claim` ABI and the packed `claimPacked` entry point, the settle sweep and a first
 * ERC-3009 deposit, next to the x402 reference contract's receipt gas measured the same way
 * ({@link REFERENCE_GAS}; not its Forge snapshot, which counts the called frame's execution gas
 * only).
 */
import { type Account, type Hex, pad, toHex } from 'viem'
import { startDevChain } from '../src/chain/devChain.js'
import { encodePackedClaim } from '../src/chain/packedClaim.js'
import { type ChannelConfig, EscrowHarness, randomAccount } from '../test/helpers/escrow.js'
import { REFERENCE_GAS } from './report.js'
import type { Log } from './run.js'

/** The reference's receipt gas per claimed channel, by batch size. */
const REFERENCE_CLAIM: Record<(typeof BATCH_SIZES)[number], number> = {
  1: REFERENCE_GAS.claim1,
  10: REFERENCE_GAS.claim10PerChannel,
  100: REFERENCE_GAS.claim100PerChannel,
}

const BATCH_SIZES = [1, 10, 100] as const

export async function run(log: Log) {
  const dev = await startDevChain()
  try {
    const [, receiver, payer] = dev.accounts as [Account, Account, Account]
    const h = EscrowHarness.on(dev)
    const sessionKey = randomAccount()
    let salt = 0
    const newConfig = (): ChannelConfig => ({
      payer: payer.address,
      payerAuthorizer: sessionKey.address,
      receiver: receiver.address,
      receiverAuthorizer: receiver.address,
      token: dev.contracts.usdc,
      withdrawDelay: 3600,
      salt: pad(toHex(++salt), { size: 32 }) as Hex,
    })

    const firstDeposit = await h.depositErc3009(payer, payer, newConfig(), 5_000_000n)
    const depositGas = Number(firstDeposit.gasUsed)
    log(`first ERC-3009 deposit: ${depositGas} gas (reference ${REFERENCE_GAS.firstDeposit})`)

    await h.approve(payer, 10n ** 30n)
    const prepare = async (n: number) => {
      const rows = []
      for (let i = 0; i < n; i++) {
        const config = newConfig()
        await h.depositDirect(payer, config, 1_000_000n)
        const id = await h.channelId(config)
        const ceiling = 250_000n + BigInt(i)
        const signature = await h.signVoucher(sessionKey, id, ceiling)
        rows.push({ config, ceiling, signature, charged: ceiling - 1000n })
      }
      return rows
    }
    const claimStandard = async (rows: Awaited<ReturnType<typeof prepare>>) =>
      h.write(receiver, 'claim', [
        rows.map((r) => ({
          voucher: { channel: r.config, maxClaimableAmount: r.ceiling },
          signature: r.signature,
          totalClaimed: r.charged,
        })),
      ])
    const claimPacked = async (rows: Awaited<ReturnType<typeof prepare>>) =>
      h.write(receiver, 'claimPacked', [
        encodePackedClaim(
          {
            receiver: receiver.address,
            receiverAuthorizer: receiver.address,
            token: dev.contracts.usdc,
            withdrawDelay: 3600,
          },
          rows.map((r) => ({
            ...r.config,
            maxClaimableAmount: r.ceiling,
            totalClaimed: r.charged,
            signature: r.signature,
          })),
        ),
      ])

    // The receiver's first claim and first settle write fresh storage slots (about 20 000 gas
    // each, once per receiver and token); measure after them, as an operator pays in steady state.
    const first = await claimStandard(await prepare(1))
    const firstSettle = await h.write(receiver, 'settle', [receiver.address, dev.contracts.usdc])
    log(
      `receiver's first claim: ${first.gasUsed} gas; first settle: ${firstSettle.gasUsed} gas (one-time slot creation)`,
    )

    const standard: Record<string, number> = {}
    const packed: Record<string, number> = {}
    for (const n of BATCH_SIZES) {
      const a = await claimStandard(await prepare(n))
      standard[n] = Math.round(Number(a.gasUsed) / n)
      const b = await claimPacked(await prepare(n))
      packed[n] = Math.round(Number(b.gasUsed) / n)
      log(
        `${n} channels: claim ${a.gasUsed} gas (${standard[n]}/channel), claimPacked ${b.gasUsed} gas (${packed[n]}/channel)`,
      )
    }

    const settle = await h.write(receiver, 'settle', [receiver.address, dev.contracts.usdc])
    log(`settle: ${settle.gasUsed} gas (reference ${REFERENCE_GAS.settle})`)

    const table = [
      '| operation | tollgate `claim` (x402 ABI) | tollgate `claimPacked` | reference (receipt gas) | best ratio |',
      '|---|---:|---:|---:|---:|',
      ...BATCH_SIZES.map((n) => {
        const ref = REFERENCE_CLAIM[n]
        return `| claim, ${n} channel(s), per channel | ${standard[n]} | ${packed[n]} | ${ref} | ${ratio(packed[n], ref)} |`
      }),
      `| settle | ${settle.gasUsed} | | ${REFERENCE_GAS.settle} | ${ratio(Number(settle.gasUsed), REFERENCE_GAS.settle)} |`,
      `| first ERC-3009 deposit | ${depositGas} | | ${REFERENCE_GAS.firstDeposit} | ${ratio(depositGas, REFERENCE_GAS.firstDeposit)} |`,
    ]
    for (const line of table) log(line)
    return {
      claim_gas_per_channel: packed,
      claim_gas_per_channel_x402_abi: standard,
      settle_gas: Number(settle.gasUsed),
      deposit_erc3009_gas: depositGas,
      reference_receipt_gas: {
        claim_1: REFERENCE_GAS.claim1,
        claim_10_per_channel: REFERENCE_GAS.claim10PerChannel,
        claim_100_per_channel: REFERENCE_GAS.claim100PerChannel,
        settle: REFERENCE_GAS.settle,
        deposit_erc3009: REFERENCE_GAS.firstDeposit,
      },
    }
  } finally {
    await dev.stop()
  }
}

function ratio(ours: number | undefined, reference: number): string {
  return ours === undefined ? '-' : `${(ours / reference).toFixed(2)}x`
}
