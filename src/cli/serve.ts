import { loadConfig, loadKey } from '../server/config.js'
import { createServer } from '../server/createServer.js'
import { ADMIN_TOKEN_ENV } from '../server/dashboard/index.js'
import { parseCommandArgs, stringOf } from './args.js'
import { aborted, interruptible } from './interruptible.js'

/** The usage lines of `tollgate serve`. */
export const SERVE_USAGE = `  serve [--config FILE]     run the paid gateway from a JSON config (default tollgate.json);
                            the key comes from TOLLGATE_PRIVATE_KEY or TOLLGATE_KEY_FILE
`

/**
 * `tollgate serve [--config tollgate.json]`: runs the standalone gateway (paid routes proxied
 * to upstreams) until SIGINT or SIGTERM, then closes it (the store flushed and marked clean;
 * exit code 0). A signal during start-up stops the server once it has started; signals while
 * it closes are ignored. The key comes from TOLLGATE_PRIVATE_KEY or TOLLGATE_KEY_FILE.
 *
 * @returns The exit code.
 */
export async function serveCommand(argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(argv, { config: { type: 'string' } })
  const path = stringOf(args, 'config') ?? 'tollgate.json'
  return interruptible(
    async (signal) => {
      const config = loadConfig(path)
      const server = await createServer(config, loadKey(), {
        logger: { level: process.env.LOG_LEVEL ?? 'info' },
        adminToken: process.env[ADMIN_TOKEN_ENV] || undefined,
      })
      try {
        const address = await server.app.listen({
          host: config.listen.host,
          port: config.listen.port,
        })
        server.app.log.info(
          {
            network: config.chain.network,
            routes: config.routes.map((r) => `${r.methods.join(',')} ${r.path} ${r.price}`),
          },
          `tollgate serving on ${address}`,
        )
        await aborted(signal)
      } finally {
        await server.close()
      }
      return 0
    },
    { signalIsStop: true },
  )
}
