/**
 * The dashboard after the demo's traffic, in headless Chromium (Debian's `chromium`, driven by
 * playwright-core): it shows the demo's revenue and channel count, its revenue chart has drawn
 * bars, and the page logs no console error. A screenshot goes to test-artifacts/dashboard.png.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import { describe, expect, it } from 'vitest'
import { runDemo } from '../../src/cli/demo.js'

const CHROMIUM = '/usr/bin/chromium'
const ARTIFACTS = join(import.meta.dirname, '../../test-artifacts')
/** The revenue bars' colour in the page's script: #2a7ae2. */
const BAR_RGB = [0x2a, 0x7a, 0xe2]

/** What the test reads of the chart's canvas, in the page (the test's types have no DOM). */
interface Canvas2d {
  width: number
  height: number
  getContext(kind: '2d'): {
    getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray }
  }
}

interface Seen {
  revenue: string
  channels: string
  barPixels: number
  claimRows: number
  settleRows: number
  errors: string[]
}

describe('the dashboard page', () => {
  it("shows the demo's revenue and channels, draws the chart, logs no error", async () => {
    mkdirSync(ARTIFACTS, { recursive: true })
    const profile = mkdtempSync(join(tmpdir(), 'tollgate-chromium-'))
    // A fresh profile (--user-data-dir): playwright takes it as the persistent context's folder.
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 1100 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    })
    try {
      let seen: Seen | undefined
      const summary = await runDemo({
        agents: 2,
        calls: 20,
        streamers: 1,
        messages: 150,
        log: () => {},
        onSummary: async (s) => {
          const page = await browser.newPage()
          const errors: string[] = []
          page.on('console', (m) => {
            if (m.type() === 'error') errors.push(m.text())
          })
          page.on('pageerror', (e) => errors.push(e.message))
          await page.goto(s.dashboardUrl)
          await page.waitForSelector('body[data-loaded="true"]')
          const barPixels = await page.$eval(
            '#revenue-chart canvas',
            (element, rgb) => {
              const canvas = element as unknown as Canvas2d
              const { data } = canvas
                .getContext('2d')
                .getImageData(0, 0, canvas.width, canvas.height)
              let n = 0
              for (let i = 0; i < data.length; i += 4) {
                if (data[i] === rgb[0] && data[i + 1] === rgb[1] && data[i + 2] === rgb[2]) n++
              }
              return n
            },
            BAR_RGB,
          )
          await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true })
          seen = {
            revenue: (await page.textContent('#revenue-total')) ?? '',
            channels: (await page.textContent('#channel-count')) ?? '',
            barPixels,
            claimRows: await page.locator('#settlements tbody tr', { hasText: 'claim' }).count(),
            settleRows: await page.locator('#settlements tbody tr', { hasText: 'settle' }).count(),
            errors,
          }
          await page.close()
        },
      })
      expect(seen).toBeDefined()
      const shown = seen as Seen
      expect(shown.revenue).toBe(`$${(Number(summary.charged) / 1e6).toFixed(4)}`)
      expect(shown.channels).toBe('3')
      expect(shown.barPixels).toBeGreaterThan(20)
      // Every claim transaction of the demo is listed, and the settles after them.
      expect(shown.claimRows).toBe(summary.claimTransactions)
      expect(shown.settleRows).toBeGreaterThanOrEqual(1)
      expect(shown.errors).toEqual([])
    } finally {
      await browser.close()
      rmSync(profile, { recursive: true, force: true })
    }
  }, 120_000)
})
