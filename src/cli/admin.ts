import { ADMIN_TOKEN_ENV } from '../server/dashboard/index.js'

/**
 * The origin of a server's admin listener from its configured host and port; a wildcard bind
 * address (`0.0.0.0`, `::`) is reached on the loopback address.
 */
export function adminOrigin(host: string, port: number): string {
  const reach = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host
  return `http://${reach.includes(':') ? `[${reach}]` : reach}:${port}`
}

/** The admin listener's `Authorization` header, when TOLLGATE_ADMIN_TOKEN is set. */
export function adminHeaders(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const token = env[ADMIN_TOKEN_ENV]
  return token ? { authorization: `Bearer ${token}` } : {}
}
