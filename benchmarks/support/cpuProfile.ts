/**
 * CPU profiles of this process (the server side of a benchmark) through the inspector, and the
 * top of a profile by self time as a short text: what `node --cpu-prof` records, limited to one
 * phase of a benchmark and without the load generator (which runs in a child process).
 */
import { Session } from 'node:inspector/promises'

/** The part of a V8 `.cpuprofile` read here. */
export interface CpuProfile {
  nodes: {
    id: number
    callFrame: { functionName: string; url: string; lineNumber: number }
    children?: number[]
  }[]
  samples: number[]
  timeDeltas: number[]
}

/** Starts the V8 sampling profiler; the returned function stops it and returns the profile. */
export async function startCpuProfile(): Promise<() => Promise<CpuProfile>> {
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 100 })
  await session.post('Profiler.start')
  return async () => {
    const { profile } = await session.post('Profiler.stop')
    session.disconnect()
    return profile as unknown as CpuProfile
  }
}

/** Frames that are not work of this process's JavaScript or native code: left out of the shares. */
const NOT_WORK = new Set(['(idle)', '(program)'])

/**
 * The `top` functions by self time, each with its share of the sampled busy time (idle and
 * `(program)` left out), one a line. A native function without a name (an addon's) is named
 * after its caller.
 */
export function topSelfTime(profile: CpuProfile, top = 15): string {
  const byNode = new Map(profile.nodes.map((node) => [node.id, node.callFrame]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node.id)
  const self = new Map<string, number>()
  let busy = 0
  profile.samples.forEach((id, i) => {
    const frame = byNode.get(id)
    if (!frame || NOT_WORK.has(frame.functionName)) return
    const caller = byNode.get(parent.get(id) ?? -1)
    // The profiler's own stop (the inspector session's dispatch) is not the server's work.
    if (!frame.url && caller?.url === 'node:inspector') return
    const dt = profile.timeDeltas[i] ?? 0
    busy += dt
    let name = `${frame.functionName || '(anonymous)'} ${frame.url ? shortUrl(frame.url) : 'native'}`
    if (!frame.url && !frame.functionName && caller) {
      name = `native, called by ${caller.functionName} ${shortUrl(caller.url)}`
    }
    self.set(name, (self.get(name) ?? 0) + dt)
  })
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, top)
  const lines = rows.map(
    ([name, us], i) =>
      `${String(i + 1).padStart(2)}. ${((100 * us) / busy).toFixed(1).padStart(5)}%  ${name}`,
  )
  return [`busy ${(busy / 1000).toFixed(0)} ms sampled; top ${top} by self time:`, ...lines].join(
    '\n',
  )
}

/** A frame's file, from `node_modules/` or the repository's folder on. */
function shortUrl(url: string): string {
  const modules = url.lastIndexOf('node_modules/')
  if (modules >= 0) return url.slice(modules + 'node_modules/'.length)
  const src = url.search(/\/(src|benchmarks)\//)
  return src >= 0 ? url.slice(src + 1) : url.replace(/^file:\/\//, '')
}
