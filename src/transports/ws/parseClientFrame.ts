import { accept, type Result, reject } from '../../errors/index.js'
import { isRecord } from '../../protocol/parse.js'
import { MAX_REQUEST_ID_LENGTH } from './constants.js'
import type { ClientFrame, RequestId } from './frames.js'

/** What {@link parseClientFrame} needs to know of the raw frame. */
export type RawFrame = {
  /** The frame's bytes, as `ws` hands them over (one Buffer, or fragments). */
  data: Buffer | ArrayBuffer | Buffer[]
  isBinary: boolean
}

/**
 * Parses one client frame of the tollgate WebSocket protocol: a JSON object in a text frame, of a
 * known `type`, with its fields well formed. The `payment` of a `pay` frame is left to
 * `decodePaymentPayload`; `params` and `body` are opaque JSON.
 *
 * @param frame The raw frame.
 * @param maxBytes Largest frame accepted.
 * @returns The frame, or a rejection `tollgate_ws_frame_too_large` or `tollgate_ws_bad_frame`.
 * @example
 * socket.on('message', (data, isBinary) => {
 *   const frame = parseClientFrame({ data, isBinary }, DEFAULT_MAX_FRAME_BYTES)
 *   if (!frame.ok) return sendError(frame.code, frame.message)
 * })
 */
export function parseClientFrame(frame: RawFrame, maxBytes: number): Result<ClientFrame> {
  const size = byteLength(frame.data)
  if (size > maxBytes) {
    return reject('tollgate_ws_frame_too_large', `${size} bytes > ${maxBytes}.`)
  }
  if (frame.isBinary) return reject('tollgate_ws_bad_frame', 'Only text frames are accepted.')
  let value: unknown
  try {
    value = JSON.parse(text(frame.data))
  } catch {
    return reject('tollgate_ws_bad_frame', 'The frame is not JSON.')
  }
  if (!isRecord(value)) return reject('tollgate_ws_bad_frame', 'The frame is not a JSON object.')
  switch (value.type) {
    case 'pay':
      if (!isRecord(value.payment)) {
        return reject('tollgate_ws_bad_frame', 'pay.payment is not an object.')
      }
      return accept({ type: 'pay', payment: value.payment })
    case 'subscribe':
      return accept(
        value.params === undefined
          ? { type: 'subscribe' }
          : { type: 'subscribe', params: value.params },
      )
    case 'request': {
      const id = requestId(value.id)
      if (id === undefined) {
        return reject(
          'tollgate_ws_bad_frame',
          `request.id must be a string of 1 to ${MAX_REQUEST_ID_LENGTH} characters or a safe integer.`,
        )
      }
      return accept({ type: 'request', id, body: value.body })
    }
    case 'end':
      return accept({ type: 'end' })
    default:
      return reject(
        'tollgate_ws_bad_frame',
        typeof value.type === 'string'
          ? `Unknown frame type ${JSON.stringify(value.type.slice(0, 32))}.`
          : 'The frame has no type.',
      )
  }
}

/** A request id as the client sent it, if well formed; echoed back, so bounded in size. */
export function requestId(value: unknown): RequestId | undefined {
  if (typeof value === 'string') {
    return value.length > 0 && value.length <= MAX_REQUEST_ID_LENGTH ? value : undefined
  }
  return Number.isSafeInteger(value) ? (value as number) : undefined
}

function byteLength(data: RawFrame['data']): number {
  if (Array.isArray(data)) return data.reduce((sum, chunk) => sum + chunk.length, 0)
  return data.byteLength
}

function text(data: RawFrame['data']): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8')
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8')
  return data.toString('utf8')
}
