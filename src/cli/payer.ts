import { type Address, formatUnits, getAddress, type Hex, parseEther } from 'viem'
import { PRESETS, type PresetName } from '../chain/presets.js'
import { readPrivateKey } from '../chain/privateKey.js'
import { createPayer, isOrigin, keySigner, type Payer, type SpendLimits } from '../client/index.js'
import { isErrorCode } from '../errors/index.js'
import { decodePaymentRequired, decodeSettleResponse, HEADERS } from '../protocol/index.js'
import { type OptionSpec, type ParsedArgs, parseCommandArgs, stringOf, usage } from './args.js'
import { interruptible, untilAborted } from './interruptible.js'

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

/** The usage lines of `tollgate pay`. */
export const PAY_USAGE = `  pay <url> [--method M] [--body TEXT] [--header 'Name: value' ...]
                            one paid call: prints the body, then the receipt; exits with 1 when
                            the call is refused or fails, its status and error code on stderr
`
/** The usage line of `tollgate channels`. */
export const CHANNELS_USAGE = `  channels                  the payer's channels: balance, charged, claimed on chain
`
/** The usage lines of `tollgate refund`. */
export const REFUND_USAGE = `  refund <origin> [--amount N]
                            ask the server at <origin> for a cooperative refund of every channel
                            the payer holds with it (all that is left, or N token units each)
`
/** The usage lines of `tollgate withdraw`. */
export const WITHDRAW_USAGE = `  withdraw <channelId> [--finalize]
                            start a withdrawal of a channel's unclaimed balance, or finalize it
`
/** The usage line of `tollgate fund`. */
export const FUND_USAGE = `  fund [--amount N]         dev chain only: mint test USDC (and gas) to the payer
`
/** The options every payer command takes, for the usage. */
export const PAYER_OPTIONS_USAGE = `  payer options: --network local|base-sepolia|base (default local), --rpc URL (or
    TOLLGATE_RPC_URL), --data-dir DIR (default ${DEFAULT_PAYER_DATA_DIR}), --json,
    --max-per-request P, --max-per-origin P, --max-per-day P, --max-per-week P ('$0.01' or units),
    --max-deposit P (the most one deposit locks), --allow-origin ORIGIN ... (pay no other);
    the key comes from ${PAYER_KEY_ENV} or ${PAYER_KEY_FILE_ENV}, never from the command line
`

/** The options of every payer command. */
export const PAYER_OPTIONS = {
  network: { type: 'string' },
  rpc: { type: 'string' },
  'data-dir': { type: 'string' },
  json: { type: 'boolean' },
  'max-per-request': { type: 'string' },
  'max-per-origin': { type: 'string' },
  'max-per-day': { type: 'string' },
  'max-per-week': { type: 'string' },
  'max-deposit': { type: 'string' },
  'allow-origin': { type: 'string', multiple: true },
} as const satisfies OptionSpec

/** Parses a payer command's line strictly: the payer options, the command's own, its positionals. */
function parsePayerArgs(argv: readonly string[], own: OptionSpec, positionals: number): ParsedArgs {
  return parseCommandArgs(argv, { ...PAYER_OPTIONS, ...own }, positionals)
}

/** A token amount option: a whole number of token units. */
function unitsOf(args: ParsedArgs, name: string): bigint | undefined {
  const text = stringOf(args, name)
  if (text === undefined) return undefined
  if (!/^\d+$/.test(text)) usage(`--${name} needs a whole number of token units, got "${text}"`)
  return BigInt(text)
}

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

function preset(args: ParsedArgs) {
  const name = stringOf(args, 'network') ?? 'local'
  if (!Object.hasOwn(PRESETS, name))
    usage(`--network must be one of ${Object.keys(PRESETS).join(', ')}`)
  return PRESETS[name as PresetName]
}

/**
 * Opens the payer of a payer command: its chain, key, data folder and spend limits, those of the
 * flags over `base` (a config file's).
 */
export async function openPayer(args: ParsedArgs, base: SpendLimits = {}): Promise<Payer> {
  const chain = preset(args)
  const limits: SpendLimits = { ...base }
  const limit = (name: string, key: Exclude<keyof SpendLimits, 'allowedOrigins'>) => {
    const value = stringOf(args, name)
    if (value !== undefined) limits[key] = value
  }
  limit('max-per-request', 'perRequest')
  limit('max-per-origin', 'perOrigin')
  limit('max-per-day', 'perDay')
  limit('max-per-week', 'perWeek')
  limit('max-deposit', 'maxDeposit')
  const allowed = args.values['allow-origin']
  if (Array.isArray(allowed)) {
    const origins = allowed.map(String)
    const bad = origins.find((origin) => !isOrigin(origin))
    if (bad !== undefined)
      usage(`--allow-origin needs an origin such as https://api.example.com, got "${bad}"`)
    limits.allowedOrigins = origins
  }
  return createPayer({
    // Signs vouchers on libsecp256k1; without the addon it says so on stderr, and signs in JS.
    account: keySigner(loadPayerKey()),
    onWarning: (message) => process.stderr.write(`tollgate: warning: ${message}\n`),
    rpcUrl: stringOf(args, 'rpc') ?? process.env.TOLLGATE_RPC_URL ?? chain.publicRpcUrl,
    chainId: chain.chainId,
    escrow: chain.escrow,
    erc3009Collector: chain.erc3009Collector,
    dataDir: stringOf(args, 'data-dir') ?? DEFAULT_PAYER_DATA_DIR,
    policy: { limits },
    onUnacknowledgedCharge: ({ channelId, acknowledged, charged }) =>
      process.stderr.write(
        `tollgate: warning: channel ${channelId} is charged ${usdc(charged)}, ${usdc(charged - acknowledged)} more than its receipts acknowledged (the server restarted with a request in flight, or charged without a receipt)\n`,
      ),
  })
}

const usdc = (units: bigint) => `${formatUnits(units, DECIMALS)} USDC`

const json = (value: unknown): string =>
  JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))

function print(args: ParsedArgs, human: string, machine: unknown): void {
  process.stdout.write(args.values.json === true ? `${json(machine)}\n` : `${human}\n`)
}

/**
 * Runs a payer command with its payer open, then closes it (the journal flushed), also when
 * SIGINT or SIGTERM stops the command (exit code 130 or 143).
 */
function withPayer(args: ParsedArgs, run: (payer: Payer) => Promise<number>): Promise<number> {
  return interruptible(async (signal) => {
    const payer = await openPayer(args)
    try {
      return await untilAborted(run(payer), signal)
    } finally {
      await payer.close()
    }
  })
}

/**
 * `tollgate pay <url>`: one paid call; prints the body, then the receipt. A refused or failed
 * call (a status of 400 or more, or no answer) exits with 1 and one line on stderr with the
 * status and the x402 error code.
 *
 * @returns The exit code.
 */
export async function payCommand(argv: readonly string[]): Promise<number> {
  const args = parsePayerArgs(
    argv,
    {
      method: { type: 'string' },
      body: { type: 'string' },
      header: { type: 'string', multiple: true },
    },
    1,
  )
  const [url] = args.positionals
  if (url === undefined) usage('pay needs a URL')
  const headers = new Headers()
  const given = args.values.header
  for (const header of Array.isArray(given) ? given.map(String) : []) {
    const at = header.indexOf(':')
    if (at <= 0) usage(`--header "${header}" is not "Name: value"`)
    headers.append(header.slice(0, at).trim(), header.slice(at + 1).trim())
  }
  const body = stringOf(args, 'body')
  return withPayer(args, async (payer) => {
    let response: Response
    try {
      response = await payer.fetch(url, {
        method: stringOf(args, 'method') ?? (body === undefined ? 'GET' : 'POST'),
        headers,
        ...(body === undefined ? {} : { body }),
      })
    } catch (err) {
      if (!(err instanceof TypeError)) throw err
      const cause = err.cause as { code?: string; message?: string } | undefined
      process.stderr.write(
        `tollgate: ${url} could not be reached: ${cause?.code ?? cause?.message ?? err.message}\n`,
      )
      return 1
    }
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
    if (response.ok) return 0
    const code = errorCodeOf(response, text)
    process.stderr.write(
      `tollgate: ${code === undefined ? '' : `${code}: `}${url} answered HTTP ${response.status}\n`,
    )
    return 1
  })
}

/** The x402 or tollgate error code of a refused call: the 402's `error`, else the JSON body's. */
function errorCodeOf(response: Response, body: string): string | undefined {
  const required = decodePaymentRequired(response.headers.get(HEADERS.paymentRequired) ?? undefined)
  if (required.ok && required.value.error) return required.value.error
  try {
    const error = (JSON.parse(body) as { error?: unknown }).error
    return typeof error === 'string' && isErrorCode(error) ? error : undefined
  } catch {
    return undefined
  }
}

/**
 * `tollgate channels`: the payer's channels with their on-chain state.
 *
 * @returns The exit code.
 */
export async function channelsCommand(argv: readonly string[]): Promise<number> {
  const args = parsePayerArgs(argv, {}, 0)
  return withPayer(args, async (payer) => {
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
    return 0
  })
}

/**
 * `tollgate refund <origin> [--amount N]`: a cooperative refund of every channel the payer holds
 * with the server at `origin`, one line (or JSON object) per channel. Exits with 1 when there
 * is none or any refund failed.
 *
 * @returns The exit code.
 */
export async function refundCommand(argv: readonly string[]): Promise<number> {
  const args = parsePayerArgs(argv, { amount: { type: 'string' } }, 1)
  const [origin] = args.positionals
  if (origin === undefined)
    usage('refund needs the origin of the server, e.g. https://api.example.com')
  if (!URL.canParse(origin)) usage(`refund needs a URL, got "${origin}"`)
  const amount = unitsOf(args, 'amount')
  return withPayer(args, async (payer) => {
    const refunds = await payer.refund(origin, amount === undefined ? {} : { amount })
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
    return refunds.length > 0 && refunds.every((r) => r.ok) ? 0 : 1
  })
}

/**
 * `tollgate withdraw <channelId> [--finalize]`: starts or finalizes a withdrawal.
 *
 * @returns The exit code.
 */
export async function withdrawCommand(argv: readonly string[]): Promise<number> {
  const args = parsePayerArgs(argv, { finalize: { type: 'boolean' } }, 1)
  const [channelId] = args.positionals
  if (channelId === undefined || !/^0x[0-9a-fA-F]{64}$/.test(channelId)) {
    usage('withdraw needs a channel id (see `tollgate channels`)')
  }
  return withPayer(args, async (payer) => {
    if (args.values.finalize === true) {
      const done = await payer.finalizeWithdraw(channelId as Hex)
      print(args, `withdrew ${usdc(done.amount)} in ${done.transaction}`, done)
    } else {
      const started = await payer.initiateWithdraw(channelId as Hex)
      const after = new Date(started.finalizeAfter * 1000).toISOString()
      print(args, `withdrawal started in ${started.transaction}; finalize after ${after}`, started)
    }
    return 0
  })
}

/**
 * `tollgate fund [--amount N]`: mints test USDC (and gas when it has none) to the payer. Dev
 * chains only.
 *
 * @returns The exit code.
 */
export async function fundCommand(argv: readonly string[]): Promise<number> {
  const args = parsePayerArgs(argv, { amount: { type: 'string' } }, 0)
  const chain = preset(args)
  if (chain.chainId !== PRESETS.local.chainId) {
    usage('fund mints test USDC on a development chain only (--network local)')
  }
  const amount = unitsOf(args, 'amount') ?? DEFAULT_FUND_AMOUNT
  return withPayer(args, async (payer) => {
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
    return 0
  })
}
