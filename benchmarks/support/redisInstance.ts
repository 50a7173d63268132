/**
 * One tollgate instance on a shared Redis in a child process of its own, for the Redis
 * benchmark's several-instance phase: a Fastify app with the tollgate plugin (RedisStore, rate
 * limits counted in Redis as createTollgate sets them) serving one priced route. The parent
 * forks it with {@link startRedisInstance}; the child answers its CPU time on request, so that
 * the parent can count the CPU each paid request cost across instances.
 */
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import type { Address } from 'viem'
import { DEV_USDC_DOMAIN } from '../../src/chain/devChain.js'
import { openPayee } from '../../src/payee/index.js'
import { RedisStore } from '../../src/store/index.js'
import { tollgate } from '../../src/transports/http/index.js'
import { HANDLER_BODY } from '../../test/helpers/stockServer.js'

/** What an instance is started with. */
export interface InstanceSpec {
  readonly redisUrl: string
  readonly keyPrefix: string
  readonly chainId: number
  readonly escrow: Address
  readonly usdc: Address
  readonly receiver: Address
  readonly authorizer: Address
  readonly withdrawDelay: number
  readonly price: bigint
  /** Balance the instance takes every channel to hold (the benchmark's deposit): no chain reads. */
  readonly balance: bigint
}

/** A running instance, seen from the parent. */
export interface RedisInstance {
  /** `http://127.0.0.1:<port>/paid` */
  readonly url: string
  /** The child's CPU time so far, in microseconds. */
  cpuUs(): Promise<number>
  stop(): Promise<void>
}

type ToChild = { kind: 'spec'; spec: InstanceSpec } | { kind: 'cpu' }
type ToParent = { kind: 'ready' } | { kind: 'listening'; url: string } | { kind: 'cpu'; us: number }

const CHILD_FLAG = 'TOLLGATE_REDIS_INSTANCE_CHILD'

/** Forks an instance and waits until it listens. */
export async function startRedisInstance(spec: InstanceSpec): Promise<RedisInstance> {
  const child = fork(fileURLToPath(import.meta.url), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, [CHILD_FLAG]: '1' },
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const next = (kind: ToParent['kind']) =>
    new Promise<ToParent>((resolve, reject) => {
      const onMessage = (message: ToParent) => {
        if (message.kind !== kind) return
        child.off('message', onMessage)
        child.off('exit', onExit)
        resolve(message)
      }
      const onExit = (code: number | null) =>
        reject(new Error(`redis instance exited with ${code}`))
      child.on('message', onMessage)
      child.once('exit', onExit)
    })
  await next('ready')
  child.send({ kind: 'spec', spec } satisfies ToChild)
  const listening = (await next('listening')) as { kind: 'listening'; url: string }
  return {
    url: listening.url,
    async cpuUs() {
      const reply = next('cpu')
      child.send({ kind: 'cpu' } satisfies ToChild)
      return ((await reply) as { kind: 'cpu'; us: number }).us
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
      })
    },
  }
}

async function serve(spec: InstanceSpec, send: (message: ToParent) => void): Promise<void> {
  const store = await RedisStore.open({ url: spec.redisUrl, keyPrefix: spec.keyPrefix })
  const payee = await openPayee({
    chainId: spec.chainId,
    escrow: spec.escrow,
    identity: {
      receiver: spec.receiver,
      receiverAuthorizer: spec.authorizer,
      token: spec.usdc,
      withdrawDelay: spec.withdrawDelay,
    },
    store,
    readChannel: async () => ({
      balance: spec.balance,
      totalClaimed: 0n,
      withdrawRequestedAt: 0,
      refundNonce: 0n,
    }),
  })
  const app = Fastify()
  await app.register(tollgate, {
    payee,
    network: `eip155:${spec.chainId}`,
    asset: { address: spec.usdc, ...DEV_USDC_DOMAIN, decimals: 6 },
    payTo: spec.receiver,
    receiverAuthorizer: spec.authorizer,
    withdrawDelay: spec.withdrawDelay,
    metrics: false,
    rateLimit: {
      perIp: { max: 1_000_000_000, timeWindowMs: 10_000 },
      perPayer: { max: 1_000_000_000, timeWindowMs: 10_000 },
    },
    rateLimitRedis: store.client,
  })
  app.get('/paid', { config: { price: spec.price } }, async () => HANDLER_BODY)
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  process.once('SIGTERM', () => {
    app
      .close()
      .then(() => payee.close())
      .finally(() => process.exit(0))
  })
  send({ kind: 'listening', url: `${base}/paid` })
}

if (process.env[CHILD_FLAG] === '1' && process.send) {
  const send = (message: ToParent) => process.send?.(message)
  process.on('message', (message: ToChild) => {
    if (message.kind === 'cpu') {
      const used = process.cpuUsage()
      send({ kind: 'cpu', us: used.user + used.system })
    } else {
      serve(message.spec, send).catch((err: unknown) => {
        console.error(err)
        process.exit(1)
      })
    }
  })
  send({ kind: 'ready' })
}
