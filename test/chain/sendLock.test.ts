import { describe, expect, it } from 'vitest'
import { createSendLock, SEND_PRIORITY } from '../../src/chain/sendLock.js'

describe('send lock', () => {
  it('runs one send at a time; waiting claims go before waiting deposits, withdrawals first', async () => {
    const lock = createSendLock()
    const order: string[] = []
    let release = () => {}
    const first = lock.run(
      () =>
        new Promise<void>((resolve) => {
          order.push('deposit 1')
          release = resolve
        }),
    )
    const queued = [
      lock.run(async () => order.push('deposit 2'), SEND_PRIORITY.payer),
      lock.run(async () => order.push('claim'), SEND_PRIORITY.claim),
      lock.run(async () => order.push('deposit 3'), SEND_PRIORITY.payer),
      lock.run(async () => order.push('withdrawal claim'), SEND_PRIORITY.withdrawal),
    ]
    await Promise.resolve()
    expect(order).toEqual(['deposit 1'])
    release()
    await Promise.all([first, ...queued])
    expect(order).toEqual(['deposit 1', 'withdrawal claim', 'claim', 'deposit 2', 'deposit 3'])
  })

  it('goes on after a send that fails, which rejects only its own caller', async () => {
    const lock = createSendLock()
    const failed = lock.run(async () => {
      throw new Error('nonce too low')
    })
    const next = lock.run(async () => 'sent')
    await expect(failed).rejects.toThrow('nonce too low')
    await expect(next).resolves.toBe('sent')
  })
})
