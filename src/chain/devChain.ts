import {
  type Account,
  type Address,
  type Chain,
  createPublicClient,
  createTestClient,
  createWalletClient,
  getAddress,
  type Hex,
  http,
  type PublicClient,
} from 'viem'
import { mnemonicToAccount } from 'viem/accounts'
import { CANONICAL_ADDRESSES } from '../protocol/constants.js'
import { type Anvil, type AnvilOptions, DEV_MNEMONIC, startAnvil } from './anvil.js'
import {
  BatchSettlement,
  ERC3009DepositCollector,
  MockAggregatorV3,
  Multicall3,
  TestUSDC,
} from './contracts.generated.js'
import { evmChain } from './evmChain.js'

/** The development token's EIP-712 domain, as Base Sepolia USDC's. */
export const DEV_USDC_DOMAIN = Object.freeze({ name: 'USDC', version: '2' })

/** How much test USDC each funded development account gets: 1 000 000 USDC. */
export const DEV_FUNDING = 1_000_000n * 10n ** 6n

/** Receipt and block polling against a local node, which mines at once (viem's default is 4 s). */
export const LOCAL_POLLING_MS = 50

/** How many anvil development accounts are derived and funded. */
export const DEV_ACCOUNT_COUNT = 10

export interface DevContracts {
  escrow: Address
  erc3009Collector: Address
  multicall3: Address
  usdc: Address
  /**
   * A Chainlink-style price feed (`MockAggregatorV3`, 8 decimals) whose answer anyone can set
   * (`setAnswer(answer, updatedAt)`); it has no round until the first one is set.
   */
  priceFeed: Address
}

export interface DevChain {
  anvil: Anvil
  chain: Chain
  rpcUrl: string
  contracts: DevContracts
  /** The funded development accounts (index 0 deployed the contracts). */
  accounts: Account[]
  /** Private keys of {@link accounts}, in the same order. Development only. */
  privateKeys: Hex[]
  stop(): Promise<void>
}

/** The anvil development accounts with their private keys. */
export function devAccounts(count = DEV_ACCOUNT_COUNT): {
  accounts: Account[]
  privateKeys: Hex[]
} {
  const accounts: Account[] = []
  const privateKeys: Hex[] = []
  for (let i = 0; i < count; i++) {
    const account = mnemonicToAccount(DEV_MNEMONIC, { addressIndex: i })
    const key = account.getHdKey().privateKey
    if (!key) throw new Error('mnemonic account has no private key')
    accounts.push(account)
    privateKeys.push(`0x${Buffer.from(key).toString('hex')}`)
  }
  return { accounts, privateKeys }
}

/**
 * Deploys tollgate's contracts to a development node: the escrow, the ERC-3009 collector and a
 * Multicall3 at their canonical addresses (their runtime code is set there, which is why none of
 * them writes storage at construction), the test USDC at an ordinary address, then mints test
 * USDC to `fund` and deploys a mock price feed (after the mints, so that the earlier addresses
 * stay where they were).
 */
export async function deployDevContracts(params: {
  rpcUrl: string
  chain: Chain
  deployer: Account
  fund: readonly Address[]
}): Promise<DevContracts> {
  const transport = http(params.rpcUrl, { retryCount: 0 })
  const pollingInterval = LOCAL_POLLING_MS
  const publicClient = createPublicClient({ chain: params.chain, transport, pollingInterval })
  const wallet = createWalletClient({
    chain: params.chain,
    transport,
    account: params.deployer,
    pollingInterval,
  })
  const testClient = createTestClient({
    chain: params.chain,
    transport,
    mode: 'anvil',
    pollingInterval,
  })

  const deploy = async (
    artifact: { abi: readonly unknown[]; bytecode: Hex },
    args: readonly unknown[] = [],
  ) => {
    const hash = await wallet.deployContract({
      abi: artifact.abi,
      bytecode: artifact.bytecode,
      args,
    })
    const receipt = await publicClient.waitForTransactionReceipt({ hash })
    if (!receipt.contractAddress) throw new Error('deployment produced no contract')
    return receipt.contractAddress
  }
  const placeAt = async (
    target: Address,
    artifact: { abi: readonly unknown[]; bytecode: Hex },
    args?: unknown[],
  ) => {
    const temp = await deploy(artifact, args)
    const code = await publicClient.getCode({ address: temp })
    if (!code) throw new Error(`no code at ${temp}`)
    await testClient.setCode({ address: target, bytecode: code })
  }

  const usdc = await deploy(TestUSDC)
  await placeAt(CANONICAL_ADDRESSES.escrow, BatchSettlement)
  await placeAt(CANONICAL_ADDRESSES.erc3009Collector, ERC3009DepositCollector, [
    CANONICAL_ADDRESSES.escrow,
  ])
  await placeAt(CANONICAL_ADDRESSES.multicall3, Multicall3)

  for (const to of params.fund) {
    const hash = await wallet.writeContract({
      address: usdc,
      abi: TestUSDC.abi,
      functionName: 'mint',
      args: [to, DEV_FUNDING],
    })
    await publicClient.waitForTransactionReceipt({ hash })
  }
  const priceFeed = await deploy(MockAggregatorV3)
  return {
    escrow: getAddress(CANONICAL_ADDRESSES.escrow),
    erc3009Collector: getAddress(CANONICAL_ADDRESSES.erc3009Collector),
    multicall3: getAddress(CANONICAL_ADDRESSES.multicall3),
    usdc: getAddress(usdc),
    priceFeed: getAddress(priceFeed),
  }
}

/**
 * Starts a local anvil and deploys everything on it: what the tests, the demo and the
 * benchmarks run against. With `blockTime`, the contracts are deployed with a block per
 * transaction (fast), then the node switches to a block every `blockTime` seconds.
 *
 * @example
 * const dev = await startDevChain()
 * console.log(dev.rpcUrl, dev.contracts.escrow)
 * await dev.stop()
 */
export async function startDevChain(options: AnvilOptions = {}): Promise<DevChain> {
  const { blockTime, ...anvilOptions } = options
  const anvil = await startAnvil(anvilOptions)
  try {
    const chain = evmChain(anvil.rpcUrl, anvil.chainId, `Local ${anvil.chainId}`)
    const { accounts, privateKeys } = devAccounts()
    const [deployer] = accounts
    if (!deployer) throw new Error('no development account')
    const contracts = await deployDevContracts({
      rpcUrl: anvil.rpcUrl,
      chain,
      deployer,
      fund: accounts.map((a) => a.address),
    })
    if (blockTime !== undefined) {
      const testClient = createTestClient({ mode: 'anvil', chain, transport: http(anvil.rpcUrl) })
      await testClient.setIntervalMining({ interval: blockTime })
    }
    return {
      anvil,
      chain,
      rpcUrl: anvil.rpcUrl,
      contracts,
      accounts,
      privateKeys,
      stop: () => anvil.stop(),
    }
  } catch (err) {
    await anvil.stop()
    throw err
  }
}

/** A public client for a development chain, with retries off (a local node does not flake). */
export function devPublicClient(dev: Pick<DevChain, 'chain' | 'rpcUrl'>): PublicClient {
  return createPublicClient({
    chain: dev.chain,
    transport: http(dev.rpcUrl, { retryCount: 0 }),
    pollingInterval: LOCAL_POLLING_MS,
  })
}
