/**
 * The TypeScript blocks of README.md, with what their authors said about them.
 *
 * Every block fenced as ```ts (or ```typescript) is checked; other languages (sh, json, none)
 * are not. HTML comments on the lines right above a block's opening fence (no blank line in
 * between; invisible once rendered) annotate it:
 *
 * - `<!-- readme-check: TYPESCRIPT -->` declares what the block uses but does not define, as
 *   TypeScript appended to the block, e.g.
 *   `<!-- readme-check: declare function generate(body: unknown): Promise<string[]> -->`.
 *   Several comments, or several declarations in one, add up.
 * - `<!-- readme-example: NAME -->` names the block, for a test that runs it (`local`: the
 *   Fastify example on the local development chain, run by test/e2e/package.test.ts).
 *
 * Any other `readme-` comment is a mistake and throws, so a typo cannot skip a check silently.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { REPO_ROOT } from './packedInstall.js'

/** A TypeScript block of the README and its annotations. */
export interface ReadmeBlock {
  /** 1-based line in README.md of the block's first line of code. */
  readonly line: number
  readonly code: string
  /** The block's `readme-check` declarations, joined (empty when none). */
  readonly declarations: string
  /** Its `readme-example` name, when it has one. */
  readonly example: string | undefined
}

const CHECKED_LANGUAGES = new Set(['ts', 'typescript'])
const ANNOTATION = /<!--\s*(readme-[\w-]*)\s*:?([\s\S]*?)-->/g

/** Every TypeScript block of README.md (or of `markdown`), in order. */
export function readmeBlocks(
  markdown = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8'),
): ReadmeBlock[] {
  const lines = markdown.split('\n')
  const blocks: ReadmeBlock[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i] ?? '')
    if (!open) continue
    const start = i
    let end = i + 1
    while (end < lines.length && !/^```\s*$/.test(lines[end] ?? '')) end++
    if (end === lines.length) throw new Error(`README.md:${start + 1}: the block is never closed`)
    i = end
    if (!CHECKED_LANGUAGES.has(open[1] ?? '')) continue
    const { declarations, example } = annotations(lines, start)
    blocks.push({
      line: start + 2,
      code: lines.slice(start + 1, end).join('\n'),
      declarations,
      example,
    })
  }
  return blocks
}

/**
 * The one README block named `name` by `<!-- readme-example: name -->`.
 *
 * @throws Error when no block, or more than one, has that name.
 */
export function readmeExample(name: string): ReadmeBlock {
  const found = readmeBlocks().filter((block) => block.example === name)
  if (found.length !== 1) {
    throw new Error(
      `README.md has ${found.length} blocks marked <!-- readme-example: ${name} -->, not one`,
    )
  }
  return found[0] as ReadmeBlock
}

function annotations(
  lines: readonly string[],
  fence: number,
): { declarations: string; example: string | undefined } {
  let first = fence
  while (first > 0 && (lines[first - 1] ?? '').trim() !== '') first--
  const above = lines.slice(first, fence).join('\n')
  const declarations: string[] = []
  let example: string | undefined
  for (const [, kind, body] of above.matchAll(ANNOTATION)) {
    const text = (body ?? '').trim()
    if (kind === 'readme-check') declarations.push(text)
    else if (kind === 'readme-example') {
      if (example !== undefined) throw new Error(`README.md:${fence + 1}: two readme-example names`)
      example = text
    } else throw new Error(`README.md:${fence + 1}: unknown annotation <!-- ${kind}: ... -->`)
  }
  return { declarations: declarations.join('\n'), example }
}
