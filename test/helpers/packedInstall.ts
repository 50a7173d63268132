/**
 * The package as a user gets it: `npm pack` of this tree (which runs `prepare`, the build), then
 * the tarball, `fastify`, `viem` and `@types/node` at the versions of package-lock.json installed
 * into an empty ESM project outside the repository, so nothing resolves from the repository's
 * own node_modules. The install is made once per state of what goes into the package and shared
 * by every test and run that asks for it: it lives in
 * `<os.tmpdir()>/tollgate-packed/<hash of src, contracts/src, package.json, the lockfile, the
 * tsconfigs, LICENSE and the install recipe below>` (not README.md, whose blocks the checks
 * take from the tree). Entries unused for a day are removed when a new one is made.
 *
 * Checks write their files into a folder of their own inside the project ({@link checkFolder}).
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** The repository root. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** The repository's TypeScript compiler (typescript 7's native `tsc`). */
export const TSC = join(REPO_ROOT, 'node_modules/typescript/bin/tsc')

/**
 * What a careful user's tsconfig asks: the strictest flags a library's types must survive, and
 * `skipLibCheck` as `tsc --init` writes it.
 */
export const STRICT_COMPILER_OPTIONS = Object.freeze({
  target: 'ES2022',
  module: 'NodeNext',
  moduleResolution: 'NodeNext',
  lib: ['ES2022'],
  types: ['node'],
  strict: true,
  noUncheckedIndexedAccess: true,
  exactOptionalPropertyTypes: true,
  skipLibCheck: true,
})

/** The user's project before anything is installed. */
const PROJECT_PACKAGE = { name: 'tollgate-user', private: true, type: 'module' }

/** Dependencies the user's project adds beside tollgate, at the versions this tree is tested with. */
const PROJECT_DEPENDENCIES = ['fastify', 'viem', '@types/node']

/** The install, from the local npm cache where it can. */
const NPM_INSTALL = [
  'install',
  '--prefer-offline',
  '--no-audit',
  '--no-fund',
  '--save-exact',
  '--loglevel=error',
]

/** Inputs of the package: a change to any of them makes a new install. */
const PACKAGE_INPUTS = [
  'src',
  'contracts/src',
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'tsconfig.build.json',
  'LICENSE',
]

const CACHE_ROOT = join(tmpdir(), 'tollgate-packed')
const STALE_MS = 24 * 3600 * 1000
const LOCK_POLL_MS = 200
/** How long a lock may be held before its holder writes its pid into it. */
const LOCK_PID_GRACE_MS = 10_000

/**
 * The folder of an empty ESM project with the packed tollgate installed, made on first use.
 * Concurrent callers (test projects running side by side) wait for one another through a lock.
 *
 * @returns The project folder (with `node_modules/tollgate`).
 */
export async function packedInstall(): Promise<string> {
  const dir = join(CACHE_ROOT, inputsHash())
  mkdirSync(CACHE_ROOT, { recursive: true })
  const lock = `${dir}.lock`
  for (;;) {
    if (existsSync(dir)) {
      const now = new Date()
      utimesSync(dir, now, now)
      return dir
    }
    try {
      mkdirSync(lock)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      if (lockHolderGone(lock)) rmSync(lock, { recursive: true, force: true })
      else await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS))
      continue
    }
    try {
      writeFileSync(join(lock, 'pid'), String(process.pid))
      removeStale()
      const partial = `${dir}.partial`
      rmSync(partial, { recursive: true, force: true })
      await build(partial)
      renameSync(partial, dir)
    } finally {
      rmSync(lock, { recursive: true, force: true })
    }
  }
}

/**
 * A fresh folder inside the packed project for one check's files (modules resolve from the
 * project's node_modules), removed by the returned function.
 */
export function checkFolder(project: string, name: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(project, `${name}-`))
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/**
 * Runs the repository's `tsc` on a tsconfig written into `dir`: {@link STRICT_COMPILER_OPTIONS}
 * with `noEmit`, then `overrides`, over `files` (relative to `dir`).
 *
 * @param overrides Compiler options to change, e.g. `{ noEmit: false, outDir: 'out' }` to emit.
 * @returns The compiler's diagnostics, each with its elaboration (empty when it is clean).
 */
export async function compileStrict(
  dir: string,
  files: readonly string[],
  overrides: Record<string, unknown> = {},
): Promise<string[]> {
  const compilerOptions = { ...STRICT_COMPILER_OPTIONS, noEmit: true, ...overrides }
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, files }, null, 2))
  try {
    await run(process.execPath, [TSC, '-p', dir, '--pretty', 'false'], { cwd: dir })
    return []
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: string; stderr?: string }
    // A diagnostic is its `file(line,col): error ...` line and the indented lines elaborating it.
    const diagnostics: string[] = []
    for (const line of `${stdout ?? ''}${stderr ?? ''}`.split('\n')) {
      if (line.trim() === '') continue
      const last = diagnostics.length - 1
      if (/^\s/.test(line) && last >= 0) diagnostics[last] += `\n${line}`
      else diagnostics.push(line)
    }
    return diagnostics.length > 0 ? diagnostics : [String(err)]
  }
}

async function build(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true })
  const env = npmEnv()
  const { stdout } = await run('npm', ['pack', '--pack-destination', dir, '--silent'], {
    cwd: REPO_ROOT,
    env,
    maxBuffer: 16 * 1024 * 1024,
  })
  const tarball = stdout.trim().split('\n').pop()
  if (!tarball) throw new Error(`npm pack printed no tarball name: ${stdout}`)
  writeFileSync(join(dir, 'package.json'), JSON.stringify(PROJECT_PACKAGE, null, 2))
  const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { version?: string }>
  }
  const pinned = PROJECT_DEPENDENCIES.map((name) => {
    const version = lock.packages[`node_modules/${name}`]?.version
    if (!version) throw new Error(`${name} is not in package-lock.json`)
    return `${name}@${version}`
  })
  await run('npm', [...NPM_INSTALL, `./${tarball}`, ...pinned], {
    cwd: dir,
    env,
    maxBuffer: 16 * 1024 * 1024,
  })
}

/** The environment without what npm sets for the script running the tests (the repo's package). */
function npmEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const key of Object.keys(env)) {
    if (key.startsWith('npm_package_') || key.startsWith('npm_lifecycle_')) delete env[key]
  }
  delete env.npm_config_local_prefix
  delete env.INIT_CWD
  return env
}

function inputsHash(): string {
  const hash = createHash('sha256')
  const add = (path: string) => {
    if (statSync(path).isDirectory()) {
      for (const entry of readdirSync(path).sort()) add(join(path, entry))
      return
    }
    hash.update(relative(REPO_ROOT, path)).update('\0').update(readFileSync(path)).update('\0')
  }
  for (const input of PACKAGE_INPUTS) add(join(REPO_ROOT, input))
  hash.update(JSON.stringify([PROJECT_PACKAGE, PROJECT_DEPENDENCIES, NPM_INSTALL]))
  return hash.digest('hex').slice(0, 16)
}

/** Whether the process that took the lock died holding it (a released lock is not gone: retry). */
function lockHolderGone(lock: string): boolean {
  const pidWaitOver = () => {
    const taken = statSync(lock, { throwIfNoEntry: false })
    return taken !== undefined && Date.now() - taken.mtimeMs > LOCK_PID_GRACE_MS
  }
  try {
    const pid = readFileSync(join(lock, 'pid'), 'utf8')
    if (pid === '') return pidWaitOver()
    process.kill(Number(pid), 0)
    return false
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    // ENOENT: released meanwhile, or just taken and its pid not written yet. ESRCH: no such process.
    if (code === 'ENOENT') return pidWaitOver()
    return code === 'ESRCH'
  }
}

function removeStale(): void {
  const now = Date.now()
  for (const entry of readdirSync(CACHE_ROOT)) {
    if (entry.endsWith('.lock')) continue
    const path = join(CACHE_ROOT, entry)
    if (now - statSync(path).mtimeMs > STALE_MS) rmSync(path, { recursive: true, force: true })
  }
}
