import { loadConfig, loadKey } from '../server/config.js'
import { createServer } from '../server/createServer.js'

/**
 * `tollgate serve [--config tollgate.json]`: runs the standalone gateway (paid routes proxied
 * to upstreams) until interrupted. The key comes from TOLLGATE_PRIVATE_KEY or TOLLGATE_KEY_FILE.
 */
export async function serveCommand(args: readonly string[]): Promise<void> {
  const at = args.indexOf('--config')
  const path = at >= 0 ? args[at + 1] : 'tollgate.json'
  if (path === undefined) throw new Error('--config needs a file path')
  const config = loadConfig(path)
  const server = await createServer(config, loadKey(), {
    logger: { level: process.env.LOG_LEVEL ?? 'info' },
  })
  const address = await server.app.listen({ host: config.listen.host, port: config.listen.port })
  server.app.log.info(
    {
      network: config.chain.network,
      routes: config.routes.map((r) => `${r.methods.join(',')} ${r.path} ${r.price}`),
    },
    `tollgate serving on ${address}`,
  )
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve())
    process.once('SIGTERM', () => resolve())
  })
  await server.close()
}
