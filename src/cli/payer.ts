import { type Address, formatUnits, getAddress, type Hex, parseEther } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { PRESETS, type PresetName } from '../chain/presets.js'
import { readPrivateKey } from '../chain/privateKey.js'
import { createPayer, type Payer, type SpendLimits } from '../client/index.js'
import { decodeSettleResponse, HEADERS } from '../protocol/index.js'

/** Environment variable holding the payer's private key. */
export const PAYER_KEY_ENV = 'TOLLGATE_PAYER_KEY'
/** Environment variable naming a file that holds the payer's private key. */
export const PAYER_KEY_FILE_ENV = 'TOLLGATE_PAYER_KEY_FILE'
/** The payer's data folder (journal of channels and spends) unless `--data-dir` says otherwise. */
export const DEFAULT_PAYER_DATA_DIR = '.tollgate-payer'
/** Test USDC `fund` mints unless `--amount` says otherwise: 100 USDC. */
const DEFAULT_FUND_AMOUNT = 100_000_000n
/** USDC's decimals, for display. */
const DECIMALS = 6

export const PAYER_USAGE = `  pay <url> [--method M] [--body TEXT] [--header 'Name: value']
                            one paid call: prints the body, then the receipt
  channels                  the payer's channels: balance, charged, claimed on chain
  refund <origin> [--amount N]
                            ask the server at <origin> for a cooperative refund of every channel
                            the payer holds with it (all that is left, or N token units each)
  withdraw <channelId> [--finalize]
                            start a withdrawal of a channel's unclaimed balance, or finalize it
  fund [--amount N]         dev chain only: mint test USDC (and gas) to the payer
  payer options: --network local|base-sepolia|base (default local), --rpc URL (or
    TOLLGATE_RPC_URL), --data-dir DIR (default ${DEFAULT_PAYER_DATA_DIR}), --json,
    --max-per-request P, --max-per-origin P, --max-per-day P, --max-per-week P ('$0.01' or units);
    the key comes from ${PAYER_KEY_ENV} or ${PAYER_KEY_FILE_ENV}, never from the command line
`

/** Parsed command-line options of the payer commands. */
interface PayerArgs {
  positional: string[]
  flags: Map<string, string[]>
  json: boolean
}

const VALUE_FLAGS = new Set([
  '--network',
  '--rpc',
  '--data-dir',
  '--method',
  '--body',
  '--header',
  '--amount',
  '--max-per-request',
  '--max-per-origin',
  '--max-per-day',
  '--max-per-week',
])
const BOOLEAN_FLAGS = new Set(['--json', '--finalize'])

function parseArgs(args: readonly string[]): PayerArgs {
  const positional: string[] = []
  const flags = new Map<string, string[]>()
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string
    if (BOOLEAN_FLAGS.has(arg)) flags.set(arg, ['true'])
    else if (VALUE_FLAGS.has(arg)) {
      const value = args[++i]
      if (value === undefined) throw new Error(`${arg} needs a value`)
      flags.set(arg, [...(flags.get(arg) ?? []), value])
    } else if (arg.startsWith('--')) throw new Error(`unknown option ${arg}`)
    else positional.push(arg)
  }
  return { positional, flags, json: flags.has('--json') }
}

const flag = (args: PayerArgs, name: string): string | undefined => args.flags.get(name)?.at(-1)

/**
 * The payer's key, from `TOLLGATE_PAYER_KEY` or the file named by `TOLLGATE_PAYER_KEY_FILE`;
 * never from a command-line argument, which other users can read in `ps`.
 */
function loadPayerKey(env: NodeJS.ProcessEnv = process.env): Hex {
  return readPrivateKey(
    { key: PAYER_KEY_ENV, file: PAYER_KEY_FILE_ENV, whose: "the payer's private key" },
    env,
  )
}

function preset(args: PayerArgs) {
  const name = (flag(args, '--network') ?? 'local') as PresetName
  const chosen = PRESETS[name]
  if (!chosen) throw new Error(`--network must be one of ${Object.keys(PRESETS).join(', ')}`)
  return chosen
}

async function openPayer(args: PayerArgs): Promise<Payer> {
  const chain = preset(args)
  const limits: SpendLimits = {}
  const limit = (name: string, key: keyof SpendLimits) => {
    const value = flag(args, name)
    if (value !== undefined) limits[key] = value
  }
  limit('--max-per-request', 'perRequest')
  limit('--max-per-origin', 'perOrigin')
  limit('--max-per-day', 'perDay')
  limit('--max-per-week', 'perWeek')
  return createPayer({
    account: privateKeyToAccount(loadPayerKey()),
    rpcUrl: flag(args, '--rpc') ?? process.env.TOLLGATE_RPC_URL ?? chain.publicRpcUrl,
    chainId: chain.chainId,
    escrow: chain.escrow,
    erc3009Collector: chain.erc3009Collector,
    dataDir: flag(args, '--data-dir') ?? DEFAULT_PAYER_DATA_DIR,
    policy: { limits },
  })
}

const usdc = (units: bigint) => `${formatUnits(units, DECIMALS)} USDC`

const json = (value: unknown): string =>
  JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))

function print(args: PayerArgs, human: string, machine: unknown): void {
  process.stdout.write(args.json ? `${json(machine)}\n` : `${human}\n`)
}

async function withPayer<T>(args: PayerArgs, run: (payer: Payer) => Promise<T>): Promise<T> {
  const payer = await openPayer(args)
  try {
    return await run(payer)
  } finally {
    await payer.close()
  }
}

/** `tollgate pay <url>`: one paid call; prints the body, then the receipt. */
export async function payCommand(argv: readonly string[]): Promise<void> {
  const args = parseArgs(argv)
  const [url] = args.positional
  if (url === undefined) throw new Error('pay needs a URL')
  const headers = new Headers()
  for (const header of args.flags.get('--header') ?? []) {
    const at = header.indexOf(':')
    if (at <= 0) throw new Error(`--header "${header}" is not "Name: value"`)
    headers.append(header.slice(0, at).trim(), header.slice(at + 1).trim())
  }
  const body = flag(args, '--body')
  await withPayer(args, async (payer) => {
    const response = await payer.fetch(url, {
      method: flag(args, '--method') ?? (body === undefined ? 'GET' : 'POST'),
      headers,
      ...(body === undefined ? {} : { body }),
    })
    const text = await response.text()
    const decoded = decodeSettleResponse(response.headers.get(HEADERS.paymentResponse) ?? undefined)
    const receipt = decoded.ok ? decoded.value : undefined
    const charged = receipt?.chargedAmount
    const line = receipt
      ? `paid ${usdc(charged ?? 0n)} on channel ${receipt.channelState?.channelId ?? '?'}` +
        (receipt.response.transaction === ''
          ? ''
          : `, deposit ${usdc(receipt.amount ?? 0n)} in ${receipt.response.transaction}`)
      : `not paid (HTTP ${response.status})`
    print(args, `${text}\n${line}`, {
      status: response.status,
      body: text,
      receipt: receipt?.response ?? null,
    })
    if (!response.ok) process.exitCode = 1
  })
}

/** `tollgate channels`: the payer's channels with their on-chain state. */
export async function channelsCommand(argv: readonly string[]): Promise<void> {
  const args = parseArgs(argv)
  await withPayer(args, async (payer) => {
    const channels = await payer.channels({ onChain: true })
    const human =
      channels.length === 0
        ? 'no channels'
        : channels
            .map((c) =>
              [
                `${c.channelId}  ${c.origins.join(', ')}`,
                `  balance ${usdc(c.onChain?.balance ?? c.balance)}, charged ${usdc(c.charged)}, claimed ${usdc(c.onChain?.totalClaimed ?? 0n)}`,
                `  status ${c.blocked ? `blocked: ${c.blocked}` : (c.onChain?.withdrawRequestedAt ?? 0) > 0 ? 'withdrawing' : 'open'}`,
              ].join('\n'),
            )
            .join('\n')
    print(args, human, channels)
  })
}

/**
 * `tollgate refund <origin> [--amount N]`: a cooperative refund of every channel the payer holds
 * with the server at `origin`, one line (or JSON object) per channel.
 */
export async function refundCommand(argv: readonly string[]): Promise<void> {
  const args = parseArgs(argv)
  const [origin] = args.positional
  if (origin === undefined) throw new Error('refund needs the origin of the server')
  const amount = flag(args, '--amount')
  await withPayer(args, async (payer) => {
    const refunds = await payer.refund(
      origin,
      amount === undefined ? {} : { amount: BigInt(amount) },
    )
    const human =
      refunds.length === 0
        ? `no channel with ${new URL(origin).origin}`
        : refunds
            .map((r) =>
              r.ok
                ? `${r.channelId}  refunded ${usdc(r.amount)} in ${r.transaction}`
                : `${r.channelId}  failed: ${r.code}: ${r.message}`,
            )
            .join('\n')
    print(args, human, refunds)
    if (refunds.length === 0 || !refunds.every((r) => r.ok)) process.exitCode = 1
  })
}

/** `tollgate withdraw <channelId> [--finalize]`: starts or finalizes a withdrawal. */
export async function withdrawCommand(argv: readonly string[]): Promise<void> {
  const args = parseArgs(argv)
  const [channelId] = args.positional
  if (channelId === undefined || !/^0x[0-9a-fA-F]{64}$/.test(channelId)) {
    throw new Error('withdraw needs a channel id (see `tollgate channels`)')
  }
  await withPayer(args, async (payer) => {
    if (args.flags.has('--finalize')) {
      const done = await payer.finalizeWithdraw(channelId as Hex)
      print(args, `withdrew ${usdc(done.amount)} in ${done.transaction}`, done)
    } else {
      const started = await payer.initiateWithdraw(channelId as Hex)
      const after = new Date(started.finalizeAfter * 1000).toISOString()
      print(args, `withdrawal started in ${started.transaction}; finalize after ${after}`, started)
    }
  })
}

/** `tollgate fund [--amount N]`: mints test USDC (and gas when it has none) to the payer. Dev chains only. */
export async function fundCommand(argv: readonly string[]): Promise<void> {
  const args = parseArgs(argv)
  const chain = preset(args)
  if (chain.chainId !== PRESETS.local.chainId) {
    throw new Error('fund mints test USDC on a development chain only (--network local)')
  }
  const amount = BigInt(flag(args, '--amount') ?? DEFAULT_FUND_AMOUNT)
  await withPayer(args, async (payer) => {
    const { publicClient } = payer.core.chain
    const to: Address = getAddress(payer.address)
    if ((await publicClient.getBalance({ address: to })) === 0n) {
      await publicClient.request({
        method: 'anvil_setBalance' as never,
        params: [to, `0x${parseEther('10').toString(16)}`] as never,
      })
    }
    const transaction = await payer.core.chain.mint(chain.usdc.address, to, amount)
    const balance = await payer.core.chain.tokenBalance(chain.usdc.address, to)
    print(args, `minted ${usdc(amount)} to ${to} in ${transaction}; balance ${usdc(balance)}`, {
      address: to,
      transaction,
      amount,
      balance,
    })
  })
}
