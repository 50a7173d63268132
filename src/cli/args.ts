import { type ParseArgsConfig, parseArgs } from 'node:util'
import { didYouMean } from '../errors/didYouMean.js'
import { TollgateError } from '../errors/index.js'

/** The options a command takes, in `node:util` `parseArgs` form. */
export type OptionSpec = NonNullable<ParseArgsConfig['options']>

/** A command line parsed strictly: the values by option name and the positionals, in order. */
export interface ParsedArgs {
  readonly values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>
  readonly positionals: readonly string[]
}

/**
 * Parses a command's arguments with `parseArgs` in strict mode, before the command reads,
 * opens or sends anything: an unknown option, an option without its value or an unexpected
 * argument is refused, the unknown option with the closest known one as a hint.
 *
 * @param args The arguments after the command's name.
 * @param options The options the command takes.
 * @param positionals How many positional arguments it takes. @default 0
 * @throws TollgateError `tollgate_invalid_arguments`, e.g. `unknown option --dryrun (did you mean --dry-run?)`.
 * @example
 * const { values } = parseCommandArgs(argv, { config: { type: 'string' }, 'dry-run': { type: 'boolean' } })
 */
export function parseCommandArgs(
  args: readonly string[],
  options: OptionSpec,
  positionals = 0,
): ParsedArgs {
  // A lenient pass names the unknown options with the command's own words; the strict pass
  // then refuses everything else that is wrong.
  const { tokens } = parseArgs({
    args: [...args],
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  })
  for (const token of tokens) {
    if (token.kind === 'option' && !Object.hasOwn(options, token.name)) {
      const known = Object.keys(options).map((name) => `--${name}`)
      const close = didYouMean(token.rawName, known)
      usage(`unknown option ${token.rawName}${close ? ` (did you mean ${close}?)` : ''}`)
    }
  }
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({ args: [...args], options, strict: true, allowPositionals: true })
  } catch (err) {
    const message = (err as Error).message
    const [, flag, problem] =
      /^Option '(?:-\w, )?(--[^ ']*)(?: <value>)?' argument (missing|is ambiguous)/.exec(message) ??
      []
    if (problem === 'missing') usage(`${flag} needs a value`)
    if (problem !== undefined)
      usage(`${flag} needs a value (write ${flag}=VALUE for one starting with -)`)
    usage(message)
  }
  if (parsed.positionals.length > positionals) {
    const extra = parsed.positionals.slice(positionals).join(' ')
    usage(`unexpected argument${parsed.positionals.length - positionals > 1 ? 's' : ''} ${extra}`)
  }
  return { values: parsed.values, positionals: parsed.positionals }
}

/** Refuses the command line; the CLI prints `detail` and the command's usage, and exits 2. */
export function usage(detail: string): never {
  throw new TollgateError('tollgate_invalid_arguments', detail)
}

/** A string option's value (the last when given more than once). */
export function stringOf(args: ParsedArgs, name: string): string | undefined {
  const value = args.values[name]
  const last = Array.isArray(value) ? value.at(-1) : value
  return typeof last === 'string' ? last : undefined
}
