/**
 * A payer process for the crash test (crash.test.ts): pays `GET url` in a loop with a real
 * payer and journal, printing `paid <n>` after each paid call, until it is killed or refused.
 * Its settings come as JSON in `PAY_LOOP`.
 */
import type { Hex } from 'viem'
import { createPayer, keySigner } from '../../src/client/index.js'

interface Settings {
  rpcUrl: string
  chainId: number
  url: string
  dataDir: string
  key: Hex
  perDay: string
  calls: number
}

const settings = JSON.parse(process.env.PAY_LOOP ?? '{}') as Settings
const payer = await createPayer({
  account: keySigner(settings.key),
  rpcUrl: settings.rpcUrl,
  chainId: settings.chainId,
  dataDir: settings.dataDir,
  policy: { limits: { perDay: settings.perDay }, reservation: { calls: settings.calls } },
})
for (let n = 1; ; n++) {
  const response = await payer.fetch(settings.url)
  await response.arrayBuffer()
  if (response.status !== 200) throw new Error(`paid call answered ${response.status}`)
  process.stdout.write(`paid ${n}\n`)
}
