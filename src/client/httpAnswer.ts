import { decodePaymentRequired, HEADERS, type PaymentRequired } from '../protocol/index.js'
import type { Attempt } from './payRequirements.js'

/** x402's `PaymentRequired` of a 402 answer (its header); undefined for any other answer. */
export function paymentRequiredOf(response: Response): PaymentRequired | undefined {
  if (response.status !== 402) return undefined
  const decoded = decodePaymentRequired(response.headers.get(HEADERS.paymentRequired) ?? undefined)
  return decoded.ok ? decoded.value : undefined
}

/** An HTTP answer without a receipt as an {@link Attempt}: a 402 to pay again (its body freed on a retry), or any other answer as it is. */
export function unreceiptedAttempt(response: Response): Attempt<Response> {
  const required = paymentRequiredOf(response)
  if (!required) return { kind: 'other', answer: response }
  return {
    kind: 'required',
    required,
    answer: response,
    discard: async () => {
      await response.body?.cancel()
    },
  }
}
