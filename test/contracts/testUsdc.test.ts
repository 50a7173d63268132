import { type Hex, keccak256, type PrivateKeyAccount, parseSignature, toHex } from 'viem'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { TestUSDC } from '../../src/chain/contracts.generated.js'
import { DEV_USDC_DOMAIN } from '../../src/chain/devChain.js'
import { useDevChain } from '../helpers/devChain.js'
import { randomAccount } from '../helpers/escrow.js'

const dev = useDevChain()
const h = dev.harness
const [, alice, bob, carol] = dev.accounts as [
  PrivateKeyAccount,
  PrivateKeyAccount,
  PrivateKeyAccount,
  PrivateKeyAccount,
]
const domain = { ...DEV_USDC_DOMAIN, chainId: dev.chainId, verifyingContract: dev.contracts.usdc }
const authTypes = (primaryType: 'TransferWithAuthorization' | 'ReceiveWithAuthorization') =>
  ({
    [primaryType]: [
      { name: 'from', type: 'address' },
      { name: 'to', type: 'address' },
      { name: 'value', type: 'uint256' },
      { name: 'validAfter', type: 'uint256' },
      { name: 'validBefore', type: 'uint256' },
      { name: 'nonce', type: 'bytes32' },
    ],
  }) as const

async function write(account: PrivateKeyAccount, functionName: string, args: readonly unknown[]) {
  const hash = await h.wallet(account).writeContract({
    address: dev.contracts.usdc,
    abi: TestUSDC.abi,
    functionName: functionName as 'mint',
    args: args as never,
    chain: dev.chain,
    account,
  })
  return h.publicClient.waitForTransactionReceipt({ hash })
}
const read = (functionName: string, args: readonly unknown[] = []) =>
  h.publicClient.readContract({
    address: dev.contracts.usdc,
    abi: TestUSDC.abi,
    functionName: functionName as 'decimals',
    args: args as never,
  })

let revert: () => Promise<void>
beforeEach(async () => {
  revert = await dev.snapshot()
})
afterEach(async () => {
  await revert()
})

describe('TestUSDC', () => {
  it('has 6 decimals and the EIP-712 domain USDC / 2', async () => {
    expect(await read('decimals')).toBe(6)
    const [, name, version] = (await read('eip712Domain')) as unknown as [Hex, string, string]
    expect({ name, version }).toEqual({ name: 'USDC', version: '2' })
  })

  it('moves funds by EIP-3009 transferWithAuthorization once per nonce', async () => {
    const nonce = keccak256(toHex('t1'))
    const message = {
      from: alice.address,
      to: carol.address,
      value: 5n,
      validAfter: 0n,
      validBefore: 2n ** 40n,
      nonce,
    }
    const signature = await alice.signTypedData({
      domain,
      types: authTypes('TransferWithAuthorization'),
      primaryType: 'TransferWithAuthorization',
      message,
    })
    const before = (await read('balanceOf', [carol.address])) as unknown as bigint
    const args = [alice.address, carol.address, 5n, 0n, 2n ** 40n, nonce, signature]
    await write(bob, 'transferWithAuthorization', args)
    expect(await read('balanceOf', [carol.address])).toBe(before + 5n)
    expect(await read('authorizationState', [alice.address, nonce])).toBe(true)
    await expect(write(bob, 'transferWithAuthorization', args)).rejects.toThrow(
      /AuthorizationAlreadyUsed/,
    )
  })

  it('accepts the v, r, s form and rejects expired or not-yet-valid authorizations', async () => {
    const nonce = keccak256(toHex('t2'))
    const message = {
      from: alice.address,
      to: carol.address,
      value: 5n,
      validAfter: 0n,
      validBefore: 2n ** 40n,
      nonce,
    }
    const signature = await alice.signTypedData({
      domain,
      types: authTypes('TransferWithAuthorization'),
      primaryType: 'TransferWithAuthorization',
      message,
    })
    const { v, r, s } = parseSignature(signature)
    await write(bob, 'transferWithAuthorization', [
      alice.address,
      carol.address,
      5n,
      0n,
      2n ** 40n,
      nonce,
      Number(v),
      r,
      s,
    ])
    const expired = { ...message, nonce: keccak256(toHex('t3')), validBefore: 1n }
    const sig2 = await alice.signTypedData({
      domain,
      types: authTypes('TransferWithAuthorization'),
      primaryType: 'TransferWithAuthorization',
      message: expired,
    })
    await expect(
      write(bob, 'transferWithAuthorization', [
        alice.address,
        carol.address,
        5n,
        0n,
        1n,
        expired.nonce,
        sig2,
      ]),
    ).rejects.toThrow(/AuthorizationExpired/)
    const future = { ...message, nonce: keccak256(toHex('t4')), validAfter: 2n ** 39n }
    const sig3 = await alice.signTypedData({
      domain,
      types: authTypes('TransferWithAuthorization'),
      primaryType: 'TransferWithAuthorization',
      message: future,
    })
    await expect(
      write(bob, 'transferWithAuthorization', [
        alice.address,
        carol.address,
        5n,
        2n ** 39n,
        2n ** 40n,
        future.nonce,
        sig3,
      ]),
    ).rejects.toThrow(/AuthorizationNotYetValid/)
  })

  it('lets only the payee submit receiveWithAuthorization', async () => {
    const nonce = keccak256(toHex('r1'))
    const message = {
      from: alice.address,
      to: carol.address,
      value: 7n,
      validAfter: 0n,
      validBefore: 2n ** 40n,
      nonce,
    }
    const signature = await alice.signTypedData({
      domain,
      types: authTypes('ReceiveWithAuthorization'),
      primaryType: 'ReceiveWithAuthorization',
      message,
    })
    const args = [alice.address, carol.address, 7n, 0n, 2n ** 40n, nonce, signature]
    await expect(write(bob, 'receiveWithAuthorization', args)).rejects.toThrow(/CallerMustBePayee/)
    await write(carol, 'receiveWithAuthorization', args)
  })

  it('cancels an unused authorization', async () => {
    const nonce = keccak256(toHex('c1'))
    const signature = await alice.signTypedData({
      domain,
      types: {
        CancelAuthorization: [
          { name: 'authorizer', type: 'address' },
          { name: 'nonce', type: 'bytes32' },
        ],
      },
      primaryType: 'CancelAuthorization',
      message: { authorizer: alice.address, nonce },
    })
    await write(bob, 'cancelAuthorization', [alice.address, nonce, signature])
    expect(await read('authorizationState', [alice.address, nonce])).toBe(true)
    await expect(
      write(bob, 'cancelAuthorization', [alice.address, nonce, signature]),
    ).rejects.toThrow(/AuthorizationAlreadyUsed/)
  })

  it('sets allowances by EIP-2612 permit, once per nonce, and rejects a wrong signer', async () => {
    const owner = alice
    const spender = randomAccount().address
    const nonce = (await read('nonces', [owner.address])) as unknown as bigint
    const message = { owner: owner.address, spender, value: 99n, nonce, deadline: 2n ** 40n }
    const permitTypes = {
      Permit: [
        { name: 'owner', type: 'address' },
        { name: 'spender', type: 'address' },
        { name: 'value', type: 'uint256' },
        { name: 'nonce', type: 'uint256' },
        { name: 'deadline', type: 'uint256' },
      ],
    } as const
    const bad = parseSignature(
      await bob.signTypedData({ domain, types: permitTypes, primaryType: 'Permit', message }),
    )
    await expect(
      write(carol, 'permit', [owner.address, spender, 99n, 2n ** 40n, Number(bad.v), bad.r, bad.s]),
    ).rejects.toThrow(/InvalidSignature/)
    const { v, r, s } = parseSignature(
      await owner.signTypedData({ domain, types: permitTypes, primaryType: 'Permit', message }),
    )
    await write(carol, 'permit', [owner.address, spender, 99n, 2n ** 40n, Number(v), r, s])
    expect(await read('allowance', [owner.address, spender])).toBe(99n)
    await expect(
      write(carol, 'permit', [owner.address, spender, 99n, 2n ** 40n, Number(v), r, s]),
    ).rejects.toThrow(/InvalidSignature/)
  })
})
