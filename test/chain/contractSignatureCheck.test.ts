import type { Address, Hex, PrivateKeyAccount } from 'viem'
import { describe, expect, it } from 'vitest'
import { contractSignatureCheck } from '../../src/chain/contractSignatureCheck.js'
import { SmartWallet } from '../fixtures/contracts.generated.js'
import { useDevChain } from '../helpers/devChain.js'
import { randomAccount } from '../helpers/escrow.js'

const dev = useDevChain()
const h = dev.harness
const deployer = (dev.accounts as PrivateKeyAccount[])[0] as PrivateKeyAccount

describe('the EIP-1271 check', () => {
  it("accepts the wallet owner's signature, refuses others, and says false for an account without code", async () => {
    const revert = await dev.snapshot()
    try {
      const owner = randomAccount()
      const hash = await h.wallet(deployer).deployContract({
        abi: SmartWallet.abi,
        bytecode: SmartWallet.bytecode,
        args: [owner.address],
        chain: dev.chain,
        account: deployer,
      })
      const { contractAddress } = await h.publicClient.waitForTransactionReceipt({ hash })
      const wallet = contractAddress as Address
      const check = contractSignatureCheck(h.publicClient)
      const digest = `0x${'5a'.repeat(32)}` as Hex
      const byOwner = await h.signVoucher(owner, digest, 1n)
      const ownerDigestSig = await (owner as unknown as PrivateKeyAccount).sign({ hash: digest })
      expect(await check(wallet, digest, ownerDigestSig)).toBe(true)
      expect(await check(wallet, digest, byOwner)).toBe(false)
      expect(await check(wallet, digest, '0x1234')).toBe(false)
      expect(await check(owner.address, digest, ownerDigestSig)).toBe(false)
    } finally {
      await revert()
    }
  })
})
