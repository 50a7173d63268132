import type { Hex } from 'viem'
import { TollgateError } from '../errors/index.js'
import type { ClaimMethod, PlannedBatch } from './planSettlement.js'

/** Meta keys of journal entries start with this; one key per claim transaction. */
export const JOURNAL_PREFIX = 'settlement.journal.'

/** Where the journal lives: the channel store's metadata (durable in both store modes). */
export interface JournalMeta {
  getMeta(key: string): Promise<string | undefined>
  putMeta(key: string, value: string): Promise<void>
  deleteMeta(key: string): Promise<void>
  listMeta(prefix: string): Promise<[key: string, value: string][]>
}

/**
 * One claim transaction's life: `planned` is written before anything is sent, `sent` with every
 * hash sent for it (a replacement adds one) before waiting, `confirmed` once a receipt is in.
 * The entry is deleted once the ledger mirrors the claims.
 */
export interface JournalEntry {
  readonly id: string
  readonly method: ClaimMethod
  readonly state: 'planned' | 'sent' | 'confirmed'
  /** Each channel and the cumulative `totalClaimed` the transaction sets. */
  readonly claims: readonly { readonly channelId: Hex; readonly totalClaimed: bigint }[]
  /** Hashes sent for this batch, the first one first (same nonce). */
  readonly txs: readonly Hex[]
  readonly nonce?: number
}

/**
 * The settlement journal: what was about to be, or was, sent. After a crash the settler reads
 * it back and reconciles each entry with on-chain `totalClaimed` before planning again, so a
 * claim is neither sent twice nor forgotten.
 */
export interface Journal {
  /** Writes a `planned` entry for `batch`; on disk once it resolves. */
  open(batch: PlannedBatch): Promise<JournalEntry>
  /** Records a transaction sent for the entry (first send or replacement). */
  sent(entry: JournalEntry, hash: Hex, nonce: number): Promise<JournalEntry>
  confirmed(entry: JournalEntry): Promise<JournalEntry>
  /** Deletes the entry: its claims are mirrored in the ledger, or known not to have landed. */
  close(entry: JournalEntry): Promise<void>
  /** Every entry left open, oldest first. */
  entries(): Promise<JournalEntry[]>
}

/**
 * A {@link Journal} in store metadata, one key per entry (`settlement.journal.<id>`), ids in
 * time order.
 */
export function createJournal(meta: JournalMeta, now: () => number = Date.now): Journal {
  let counter = 0
  const write = async (entry: JournalEntry) => {
    await meta.putMeta(JOURNAL_PREFIX + entry.id, encodeEntry(entry))
    return entry
  }
  return {
    open(batch) {
      const id = `${now().toString().padStart(15, '0')}-${(counter++).toString().padStart(6, '0')}`
      return write({
        id,
        method: batch.method,
        state: 'planned',
        claims: batch.claims.map((c) => ({ channelId: c.channelId, totalClaimed: c.totalClaimed })),
        txs: [],
      })
    },
    sent(entry, hash, nonce) {
      return write({ ...entry, state: 'sent', txs: [...entry.txs, hash], nonce })
    },
    confirmed(entry) {
      return write({ ...entry, state: 'confirmed' })
    },
    close(entry) {
      return meta.deleteMeta(JOURNAL_PREFIX + entry.id)
    },
    async entries() {
      const rows = await meta.listMeta(JOURNAL_PREFIX)
      return rows.map(([key, value]) => decodeEntry(key, value))
    },
  }
}

function encodeEntry(entry: JournalEntry): string {
  return JSON.stringify({
    ...entry,
    claims: entry.claims.map((c) => ({
      channelId: c.channelId,
      totalClaimed: c.totalClaimed.toString(),
    })),
  })
}

function decodeEntry(key: string, value: string): JournalEntry {
  try {
    const raw = JSON.parse(value) as Omit<JournalEntry, 'claims'> & {
      claims: { channelId: Hex; totalClaimed: string }[]
    }
    return {
      ...raw,
      claims: raw.claims.map((c) => ({
        channelId: c.channelId,
        totalClaimed: BigInt(c.totalClaimed),
      })),
    }
  } catch (cause) {
    throw new TollgateError('tollgate_store_failed', `journal entry ${key} is unreadable`, {
      cause,
    })
  }
}
