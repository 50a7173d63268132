/**
 * `npm run bench -- NAME [NAME...]` runs the named benchmarks (all when none is named).
 * Each benchmark is `benchmarks/NAME.ts` exporting `run(log)`, which returns its figures; the
 * runner prints them as one JSON line when the benchmark ends. A run of several benchmarks also
 * writes `benchmarks/results/<date>.json` (figures, table rows, machine) and ends with the
 * markdown table of each figure beside its reference (benchmarks/report.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { machine, markdownTable, type Row, rowsOf } from './report.js'

export type Log = (line: string) => void
export type Figures = Record<string, unknown>
export interface Benchmark {
  run(log: Log): Promise<Figures>
}

export const ALL = [
  'gas',
  'verify',
  'ledger',
  'http',
  'ws',
  'client',
  'settle',
  'exact',
  'abuse',
  'redis',
] as const

const RESULTS_DIR = join(fileURLToPath(new URL('.', import.meta.url)), 'results')

const json = (value: unknown): string =>
  JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))

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
  const results: Record<string, Figures> = {}
  const rows: Row[] = []
  const begun = performance.now()
  for (const [index, name] of selected.entries()) {
    const mod = (await import(`./${name}.ts`)) as Benchmark
    const started = performance.now()
    const log: Log = (line) => console.log(`[${name}] ${line}`)
    if (selected.length > 1) log(`benchmark ${index + 1} of ${selected.length}`)
    const figures = await mod.run(log)
    log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`)
    console.log(json(figures))
    results[name] = JSON.parse(json(figures)) as Figures
    rows.push(...rowsOf(name, results[name]))
  }
  if (selected.length === 1) return
  const date = new Date().toISOString().slice(0, 10)
  const file = join(RESULTS_DIR, `${date}.json`)
  mkdirSync(RESULTS_DIR, { recursive: true })
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        machine: machine(),
        seconds: Math.round((performance.now() - begun) / 1000),
        benchmarks: results,
        table: rows,
      },
      null,
      2,
    )}\n`,
  )
  const m = machine()
  console.log(`\nresults: ${file}`)
  console.log(`taken ${date} on ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB, Node ${m.node}\n`)
  console.log(markdownTable(rows))
}

await main()
