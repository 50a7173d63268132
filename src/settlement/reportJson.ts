import type { SettlementReport } from './settler.js'

/**
 * A settlement report as JSON-safe data (amounts as decimal strings), for `tollgate settle
 * --json` and the server's admin listener. The plan lists each claim by channel, not its voucher.
 */
export function reportJson(report: SettlementReport) {
  const { plan } = report
  return {
    ok: report.ok,
    dryRun: report.dryRun,
    recovered: report.recovered,
    claimedChannels: report.claimedChannels,
    claimedAmount: report.claimedAmount.toString(),
    claims: report.claims.map((c) => ({
      hash: c.hash,
      method: c.method,
      channels: c.channels,
      amount: c.amount.toString(),
      gasUsed: c.gasUsed.toString(),
    })),
    settled: report.settled
      ? { hash: report.settled.hash, amount: report.settled.amount.toString() }
      : null,
    failures: report.failures,
    retried: report.retried,
    plan: plan
      ? {
          claimTotal: plan.claimTotal.toString(),
          nextDeadline: plan.nextDeadline ?? null,
          settle: plan.settle ?? null,
          batches: plan.batches.map((b) => ({
            method: b.method,
            claims: b.claims.map((c) => ({
              channelId: c.channelId,
              amount: c.amount.toString(),
              totalClaimed: c.totalClaimed.toString(),
              reason: c.reason,
              deadline: c.deadline ?? null,
            })),
          })),
          skipped: plan.skipped.map((s) => ({ ...s, unclaimed: s.unclaimed.toString() })),
        }
      : null,
  }
}

/** The JSON form of a settlement report (see {@link reportJson}). */
export type SettlementReportJson = ReturnType<typeof reportJson>
