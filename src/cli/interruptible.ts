import { DEBUG_ENV, describeError } from './describeError.js'

/** Exit codes of a command stopped by a signal: 128 + the signal's number, as shells report it. */
export const SIGNAL_EXIT_CODES = Object.freeze({ SIGINT: 130, SIGTERM: 143 })

type StopSignal = keyof typeof SIGNAL_EXIT_CODES

/**
 * Runs a long-running command so that SIGINT and SIGTERM stop it cleanly. The first signal
 * aborts `signal`: the task stops waiting ({@link untilAborted}) and closes what it opened in its
 * `finally` blocks (stores flushed and marked clean, anvil stopped). Further signals while it
 * closes are ignored with a note, so a second Ctrl-C cannot leave a store unclean.
 *
 * @param task The command's work; resolves with its exit code.
 * @param options `signalIsStop`: the signal is the command's normal way to end (serve, chain),
 *   so its exit code is the task's. Otherwise an interrupted command exits with 130 (SIGINT) or
 *   143 (SIGTERM) once the task has closed, whatever it was still waiting for.
 * @returns The task's exit code.
 */
export async function interruptible(
  task: (signal: AbortSignal) => Promise<number>,
  options: { signalIsStop?: boolean } = {},
): Promise<number> {
  const controller = new AbortController()
  let received: StopSignal | undefined
  const onSignal = (name: StopSignal) => {
    if (received === undefined) {
      received = name
      process.stderr.write(`tollgate: ${name}, closing...\n`)
      controller.abort(new Interrupted(name))
    } else process.stderr.write('tollgate: still closing, please wait\n')
  }
  const onInt = () => onSignal('SIGINT')
  const onTerm = () => onSignal('SIGTERM')
  process.on('SIGINT', onInt)
  process.on('SIGTERM', onTerm)
  let code: number
  try {
    code = await task(controller.signal)
  } catch (err) {
    if (received === undefined) throw err
    if (!(err instanceof Interrupted)) {
      process.stderr.write(`tollgate: ${describeError(err, process.env[DEBUG_ENV] === '1')}`)
    }
    code = SIGNAL_EXIT_CODES[received]
  } finally {
    process.off('SIGINT', onInt)
    process.off('SIGTERM', onTerm)
  }
  if (received !== undefined && !options.signalIsStop) process.exit(SIGNAL_EXIT_CODES[received])
  return code
}

/**
 * Waits for `work`, or rejects as soon as `signal` aborts (the work is left to fail on its own,
 * its rejection ignored): the caller's `finally` blocks then close what the work was using.
 */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  work.catch(() => {})
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

/** Resolves when `signal` aborts: the normal end of a command that runs until interrupted. */
export function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve()
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
}

/** The reason a command's signal aborts with. */
class Interrupted extends Error {
  constructor(signalName: StopSignal) {
    super(`interrupted by ${signalName}`)
  }
}
