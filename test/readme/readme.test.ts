/**
 * The README is what users paste: every TypeScript block of README.md type-checks, each as a
 * module of its own, under a careful user's strict tsconfig (`strict`,
 * `noUncheckedIndexedAccess`, `exactOptionalPropertyTypes`, NodeNext, ES2022) against the package as `npm pack` makes it, installed with fastify and viem into
 * an empty project (test/helpers/packedInstall.ts). tollgate's own declaration files are checked
 * too (`skipLibCheck: false`), so a published type that does not resolve fails here rather than
 * turning into `any` for users; other packages' declarations are theirs (ox's need the DOM lib).
 *
 * How a README author marks blocks (test/helpers/readmeBlocks.ts has the rules):
 * - ```ts blocks are checked; ```sh, ```json and other languages are not.
 * - A block using names it does not define declares them in an HTML comment right above its
 *   fence: `<!-- readme-check: declare function generate(body: unknown): Promise<string[]> -->`.
 * - `<!-- readme-example: local -->` names the block test/e2e/package.test.ts runs.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkFolder, compileStrict, packedInstall } from '../helpers/packedInstall.js'
import { type ReadmeBlock, readmeBlocks } from '../helpers/readmeBlocks.js'

const blocks = readmeBlocks()
const fileOf = (block: ReadmeBlock) => `readme-line-${block.line}.ts`

let diagnostics: string[] = []
let folder: { remove(): void } | undefined

beforeAll(async () => {
  const project = await packedInstall()
  const check = checkFolder(project, 'readme')
  folder = check
  for (const block of blocks) {
    writeFileSync(join(check.dir, fileOf(block)), `${block.code}\n${block.declarations}\n`)
  }
  diagnostics = await compileStrict(check.dir, blocks.map(fileOf), { skipLibCheck: false })
}, 180_000)

afterAll(() => folder?.remove())

/** A diagnostic of a block's file, with its position as a README.md line. */
function inReadme(block: ReadmeBlock, diagnostic: string): string {
  return diagnostic.replace(/^[^(]+\((\d+),(\d+)\)/, (_, line: string, column: string) => {
    const offset = Number(line) - 1
    const codeLines = block.code.split('\n').length
    return offset < codeLines
      ? `README.md:${block.line + offset}:${column}`
      : `README.md:${block.line - 1} (its readme-check declarations, line ${offset - codeLines + 1})`
  })
}

describe('README.md TypeScript blocks, against the packed package', () => {
  it('has blocks to check', () => {
    expect(blocks.length).toBeGreaterThan(0)
  })

  it.each(blocks.map((block) => [block.line, block] as const))(
    'the block at README.md:%i type-checks',
    (_, block) => {
      const own = diagnostics.filter((d) => d.startsWith(`${fileOf(block)}(`))
      expect(own.map((d) => inReadme(block, d))).toEqual([])
    },
  )

  it('leaves no diagnostic outside the blocks but in other packages’ declarations', () => {
    const ours = (d: string) =>
      !d.startsWith('../node_modules/') || d.startsWith('../node_modules/tollgate/')
    const outside = diagnostics.filter((d) => !blocks.some((b) => d.startsWith(`${fileOf(b)}(`)))
    expect(outside.filter(ours)).toEqual([])
  })
})
