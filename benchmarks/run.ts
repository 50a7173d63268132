/**
 * `npm run bench -- NAME [NAME...]` runs the named benchmarks (all when none is named).
 * Each benchmark is `benchmarks/NAME.ts` exporting `run(log)`, which returns its figures;
 * the runner prints them as the last line, one JSON object per benchmark.
 */
import { performance } from 'node:perf_hooks'

export type Log = (line: string) => void
export type Figures = Record<string, unknown>
export interface Benchmark {
  run(log: Log): Promise<Figures>
}

export const ALL = ['gas', 'verify', 'ledger', 'http', 'ws', 'client', 'settle'] as const

async function main(): Promise<void> {
  const names = process.argv.slice(2).filter((a) => !a.startsWith('-'))
  const selected = names.length > 0 ? names : [...ALL]
  for (const name of selected) {
    if (!(ALL as readonly string[]).includes(name)) {
      console.error(`unknown benchmark "${name}"; known: ${ALL.join(', ')}`)
      process.exitCode = 2
      return
    }
  }
  for (const name of selected) {
    const mod = (await import(`./${name}.ts`)) as Benchmark
    const started = performance.now()
    const log: Log = (line) => console.log(`[${name}] ${line}`)
    const figures = await mod.run(log)
    log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`)
    console.log(JSON.stringify(figures, (_k, v) => (typeof v === 'bigint' ? Number(v) : v)))
  }
}

await main()
